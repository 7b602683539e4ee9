// The Scheduler's worker states: the modes an operator sets (cordoned,
// draining), a worker leaving of its own accord, what the WORKERS view
// shows of each, and the workers lost lately.
#include <algorithm>

#include "coordinator/scheduler.h"
#include "coordinator/scheduler_text.h"

namespace cohort::coordinator {

using common::Status;
using common::Time;
using internal::Quote;

std::string_view WorkerModeName(WorkerMode mode) {
  switch (mode) {
    case WorkerMode::kReady: return "ready";
    case WorkerMode::kCordoned: return "cordoned";
    case WorkerMode::kDraining: return "draining";
  }
  return "ready";
}

bool ParseWorkerMode(std::string_view name, WorkerMode* out) {
  for (WorkerMode m : {WorkerMode::kReady, WorkerMode::kCordoned, WorkerMode::kDraining}) {
    if (name == WorkerModeName(m)) {
      *out = m;
      return true;
    }
  }
  return false;
}

Status Scheduler::SetMode(const SetWorkerMode& e, Time now, std::vector<Action>* out) {
  event_time_ = now;
  Worker* w = FindWorker(e.worker);
  if (!w && !lost_.count(e.worker) && !modes_.count(e.worker)) {
    return Status::NotFound("no worker named " + Quote(e.worker) + " is connected or was lost lately");
  }
  auto it = modes_.find(e.worker);
  const WorkerMode before = it == modes_.end() ? WorkerMode::kReady : it->second.mode;
  if (e.mode == before) return Status::Ok();
  if (e.mode == WorkerMode::kReady) {
    modes_.erase(it);
  } else {
    modes_[e.worker] = {e.mode, now, e.who};
  }
  Journal<WorkerModeSet>(e.worker, std::string(WorkerModeName(e.mode)), e.who, UnixMs(now));
  if (w) Replace(w, now, out);
  return Status::Ok();
}

bool Scheduler::Placeable(const Worker& w) const {
  if (w.draining) return false;
  auto it = modes_.find(w.name);
  return it == modes_.end() || it->second.mode == WorkerMode::kReady;
}

bool Scheduler::SetPlaceable(Worker* w) {
  const bool placeable = Placeable(*w);
  if (placeable == w->placeable) return false;
  w->placeable = placeable;
  if (placeable) {
    --unplaceable_;
  } else {
    ++unplaceable_;
  }
  return true;
}

void Scheduler::Replace(Worker* w, Time now, std::vector<Action>* out) {
  if (Placeable(*w) == w->placeable) return;
  // The free index counts a worker's slots as of when it was indexed.
  const bool was_indexed = w->indexed;
  UnindexWorker(w);
  SetPlaceable(w);
  if (!was_indexed) return;
  IndexWorker(w);
  if (w->placeable) {
    WakeFor(w);
    Pump(now, out);
  }
}

WorkerView Scheduler::ViewOf(const Worker& w) const {
  WorkerView v;
  v.name = w.name;
  v.slots = w.slots;
  v.running = w.running;
  v.agents = w.agents;
  v.last_heartbeat = w.last_heartbeat;
  v.user_id = w.user_id;
  v.version = w.version;
  v.since = w.joined_at;  // ready since it joined, unless a state below says otherwise
  auto it = modes_.find(w.name);
  if (w.draining) {
    v.state = w.running > 0 ? "draining" : "drained";
    v.since = w.draining_since;
    v.reason = "the worker is stopping";
  } else if (it != modes_.end()) {
    v.state = it->second.mode == WorkerMode::kDraining && w.running == 0 ? "drained"
                                                                          : std::string(WorkerModeName(it->second.mode));
    v.since = it->second.since;
    v.reason = it->second.who.empty() ? "" : "by " + it->second.who;
  }
  return v;
}

std::vector<WorkerView> Scheduler::Workers() const {
  std::vector<WorkerView> out;
  out.reserve(workers_.size());
  for (const auto& [name, w] : workers_) out.push_back(ViewOf(*w));
  return out;
}

std::vector<WorkerView> Scheduler::LostWorkers(Time now) const {
  std::vector<WorkerView> out;
  for (const auto& [name, v] : lost_) {
    if (v.since + options_.lost_listed_for > now) out.push_back(v);
  }
  std::sort(out.begin(), out.end(), [](const WorkerView& a, const WorkerView& b) { return a.since > b.since; });
  return out;
}

void Scheduler::RememberLost(const Worker& gone, std::string reason, bool left, Time now) {
  WorkerView v = ViewOf(gone);
  v.running = 0;
  // A worker that said goodbye (stopped, drained, scaled down) is no alarm.
  v.state = left ? "left" : "lost";
  v.since = now;
  v.reason = std::move(reason);
  std::erase_if(lost_, [&](const auto& entry) { return entry.second.since + options_.lost_listed_for <= now; });
  if (lost_.size() >= kMaxLostWorkers && !lost_.count(gone.name)) {
    auto oldest = std::min_element(lost_.begin(), lost_.end(),
                                   [](const auto& a, const auto& b) { return a.second.since < b.second.since; });
    lost_.erase(oldest);
  }
  // A mode stays until an operator readies the worker, however long the
  // worker is away: maintenance can outlast the lost list.
  lost_[gone.name] = std::move(v);
}

}  // namespace cohort::coordinator
