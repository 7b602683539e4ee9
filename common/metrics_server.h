// MetricsServer answers Prometheus's scrapes: a tiny HTTP/1.x server for
// `GET /metrics` (and HEAD) that a daemon's poll loop drives, beside its
// ZeroMQ sockets, with no thread of its own. It owns its listening socket and
// the connections it has accepted, each with the bytes it has read of the
// request and the rest of the answer it has not sent yet. The body comes
// from the caller at the moment a request is complete, so gauges are computed
// from the core's state at scrape time (common/metrics.h writes the text).
//
// The loop, each turn: PollFds() adds the descriptors to poll and for which
// events, NextDeadline() bounds the poll's timeout, and Process() takes poll's
// answer with `now` and the render callback. Nothing blocks: sockets are
// non-blocking, an answer the client does not read stays queued and the
// socket is polled for POLLOUT.
//
// Nothing a client sends can crash it, block it or make it hold more than a
// bounded amount of memory: a request is read up to max_request_bytes, then
// answered 431 (or 400) and closed; a connection is closed `timeout` after
// it was accepted, whatever it is doing (silent, trickling, not reading);
// past max_connections a new connection is accepted and closed at once with
// a 503, so the backlog cannot fill; accepts per turn are bounded; when
// accept fails for want of descriptors or memory (EMFILE), the listening
// socket is left out of the poll set for accept_pause rather than reported
// ready again at once, which would spin the loop. Memory is at most
// max_connections × (max_request_bytes + one answer). Every connection is
// closed after its answer (`Connection: close`): Prometheus opens one per
// scrape interval at most, and there is no keep-alive state to bound.
//
// Thread contract: not thread-safe; one thread (the loop's) calls it.
#ifndef COHORT_COMMON_METRICS_SERVER_H_
#define COHORT_COMMON_METRICS_SERVER_H_

#include <poll.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/time.h"
#include "common/unique_fd.h"

namespace cohort::common {

class MetricsServer {
 public:
  struct Options {
    size_t max_request_bytes = 8192;
    size_t max_connections = 32;
    // From accept to close, for each connection.
    Duration timeout = std::chrono::seconds(10);
    // How long accept rests after it failed for want of resources.
    Duration accept_pause = std::chrono::milliseconds(100);
    int backlog = 64;
  };

  // What happened so far, for the daemon's own metrics and logs.
  struct Stats {
    uint64_t accepted = 0;       // connections accepted, refused ones included
    uint64_t answered = 0;       // answers queued (200 and errors)
    uint64_t scrapes = 0;        // of which 200 to GET or HEAD /metrics
    uint64_t refused = 0;        // closed at once past max_connections
    uint64_t timed_out = 0;      // closed at the timeout before their answer was sent
    uint64_t bad_requests = 0;   // 400, 404, 405, 431, 505
    uint64_t accept_errors = 0;  // accept failures that paused accepting
  };

  // The body for GET /metrics, in the text exposition format. Called at most
  // once per Process(), and only when a request for it is complete.
  using Render = std::function<std::string()>;

  // Binds and listens on `endpoint`: HOST:PORT (a name or an IPv4 address),
  // [IPV6]:PORT, or a bare PORT, which means 127.0.0.1. Port 0 picks a free
  // one; port() and endpoint() then say which. InvalidArgument for an
  // endpoint it cannot read, IoError when the system refuses.
  static Status Listen(const std::string& endpoint, std::unique_ptr<MetricsServer>* out);
  static Status Listen(const std::string& endpoint, const Options& options, std::unique_ptr<MetricsServer>* out);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  int port() const { return port_; }
  // Where it listens, as bound: "127.0.0.1:9464", "[::1]:9464".
  const std::string& endpoint() const { return endpoint_; }
  size_t connections() const { return connections_.size(); }
  const Stats& stats() const { return stats_; }

  // Appends {fd, events, 0} for each descriptor to poll until the next
  // Process(); the set changes every turn, so fetch it every turn.
  void PollFds(std::vector<pollfd>* fds) const;
  // When Process() must run even if no descriptor is ready (a connection's
  // timeout, the end of an accept pause); nullopt when only a descriptor
  // can make progress. May be in the past.
  std::optional<Time> NextDeadline() const;
  // Does all the work poll's answer allows without blocking, then closes
  // what has timed out by `now`. `polled` is poll's array (fd and revents);
  // entries that are not the server's, or report nothing, are skipped, so a
  // loop may pass its whole array.
  void Process(std::span<const pollfd> polled, Time now, const Render& render);

 private:
  struct Connection;
  class Turn;

  MetricsServer(UniqueFd listener, Options options, int port, std::string endpoint);
  void Accept(Time now);
  void Read(Connection& c, Turn& turn);
  void Write(Connection& c);
  void Drain(Connection& c);
  void Answer(Connection& c, Turn& turn);

  UniqueFd listener_;
  Options options_;
  int port_;
  std::string endpoint_;
  std::vector<std::unique_ptr<Connection>> connections_;
  std::optional<Time> accept_paused_until_;
  Stats stats_;
};

}  // namespace cohort::common

#endif  // COHORT_COMMON_METRICS_SERVER_H_
