// MetricsPoll drives a MetricsServer from a zmq::poll loop: before each poll
// the loop lets it append the server's descriptors to its poll items, and
// after it hands poll's answer back with Serve. A null server makes every
// call a no-op, so a loop without --metrics-endpoint needs no branch.
//
// Thread contract: the loop's thread only.
#ifndef COHORT_COMMON_METRICS_POLL_H_
#define COHORT_COMMON_METRICS_POLL_H_

#include <poll.h>

#include <optional>
#include <vector>

#include <zmq.hpp>

#include "common/metrics_server.h"
#include "common/time.h"

namespace cohort::common {

class MetricsPoll {
 public:
  explicit MetricsPoll(MetricsServer* server) : server_(server) {}

  // Appends the server's descriptors to `items`, remembering where.
  void AddTo(std::vector<zmq::pollitem_t>* items) {
    fds_.clear();
    at_ = items->size();
    if (!server_) return;
    server_->PollFds(&fds_);
    for (const pollfd& p : fds_) items->push_back({nullptr, p.fd, p.events, 0});
  }
  // Takes their revents from the polled `items`, and answers what arrived.
  void Serve(const std::vector<zmq::pollitem_t>& items, Time now, const MetricsServer::Render& render) {
    if (!server_) return;
    for (size_t i = 0; i < fds_.size() && at_ + i < items.size(); ++i) fds_[i].revents = items[at_ + i].revents;
    server_->Process(fds_, now, render);
  }
  // Bounds the poll's timeout.
  std::optional<Time> NextDeadline() const { return server_ ? server_->NextDeadline() : std::nullopt; }

 private:
  MetricsServer* server_;
  std::vector<pollfd> fds_;
  size_t at_ = 0;
};

}  // namespace cohort::common

#endif  // COHORT_COMMON_METRICS_POLL_H_
