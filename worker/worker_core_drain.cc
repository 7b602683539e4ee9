// WorkerCore's gentle exit: draining, then the shutdown every exit ends in.
#include "worker/worker_core.h"

namespace cohort::worker {

using common::Time;

void WorkerCore::Drain(Time now, common::Duration timeout, std::vector<Action>* out) {
  if (stopping_ || draining_) return;
  draining_ = true;
  drain_until_ = now + timeout;
  Notice n{Notice::Level::kInfo, "draining",
           {{"running", attempts_.size()},
            {"unconfirmed", unconfirmed_.size()},
            {"drain-timeout-ms", std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count()}}};
  out->push_back(std::move(n));
  // Tell the coordinator now rather than at the next heartbeat: every RUN
  // it sends meanwhile is one more step to wait for.
  if (registered_) SendHeartbeat(now, out);
  DrainTick(now, out);
}

void WorkerCore::DrainTick(Time now, std::vector<Action>* out) {
  // Done when every step has ended and the coordinator holds every result:
  // leaving earlier would make it wait for those results until its lease.
  if (attempts_.empty() && unconfirmed_.empty() && spilled_ == 0) {
    out->push_back(Notice{Notice::Level::kInfo, "drained", {}});
    Shutdown(now, out);
    return;
  }
  if (now < drain_until_) return;
  out->push_back(Notice{Notice::Level::kWarn,
                        "drain_timeout",
                        {{"running", attempts_.size()},
                         {"unconfirmed", unconfirmed_.size() + spilled_},
                         {"detail", "stopping the steps still running"}}});
  Shutdown(now, out);
}

}  // namespace cohort::worker
