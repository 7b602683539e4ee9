// WorkerCore with several coordinators sharing a database: which of them to
// talk to, and whose orders to follow. Leadership epochs only grow, so a
// message carrying an older epoch than one already heard comes from a
// former leader (paused, cut off, deposed) and is ignored; messages without
// an epoch come from a coordinator that leads alone and are obeyed.
#include "common/codec.h"
#include "worker/worker_core.h"
#include "worker/worker_core_internal.h"

namespace cohort::worker {

using common::Time;
using internal::Note;

bool WorkerCore::FromOldLeader(uint64_t epoch, std::string_view what, std::vector<Action>* out) {
  if (epoch == 0 || epoch == epoch_) return false;
  if (epoch < epoch_) {
    out->push_back(Note(Notice::Level::kWarn, "ignored_former_leader",
                        {{"message", std::string(what)},
                         {"epoch", epoch},
                         {"leader-epoch", epoch_}}));
    return true;
  }
  if (epoch_ != 0) {
    out->push_back(Note(Notice::Level::kInfo, "new_leader",
                        {{"coordinator", current_}, {"epoch", epoch}}));
  }
  epoch_ = epoch;
  return false;
}

void WorkerCore::MoveTo(const std::string& endpoint, const std::string& why, Time now, std::vector<Action>* out) {
  out->push_back(Note(Notice::Level::kInfo, "coordinator_moved",
                      {{"from", current_}, {"to", endpoint}, {"reason", why}}));
  for (size_t i = 0; i < options_.coordinators.size(); ++i) {
    if (options_.coordinators[i] == endpoint) at_ = i;
  }
  current_ = endpoint;
  moved_at_ = now;
  registered_ = false;
  // The cancel endpoint is learned anew from the next WELCOME.
  subscribed_.reset();
  out->emplace_back(std::in_place_type<Dial>);
}

void WorkerCore::MoveOnIfSilent(Time now, std::vector<Action>* out) {
  const common::Duration patience = heartbeat() * liveness_;
  if (options_.coordinators.size() < 2 || now - last_heard_ < patience || now - moved_at_ < patience) return;
  const std::string& next = options_.coordinators[(at_ + 1) % options_.coordinators.size()];
  MoveTo(next, "no answer for " + std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                     now - std::max(last_heard_, moved_at_))
                                                     .count()) +
                   " ms",
         now, out);
}

}  // namespace cohort::worker
