// Placement: which ready step goes to which worker. Groups with ready work
// wait in a ring and place one step per turn, so groups share the cluster
// round robin whatever their size; within a group, retries (which already
// hold a slot) go first, then pending steps in submission order.
#include <string>

#include "coordinator/scheduler.h"

namespace cohort::coordinator {

using common::StepState;
using common::Time;

bool Scheduler::HasReady(const Group* g) const {
  if (g->finished || g->stopping) return false;
  return g->retry_ready_count > 0 ||
         (g->count(StepState::kPending) > 0 && g->in_progress < g->max_parallel);
}

void Scheduler::Enqueue(Group* g) {
  if (g->in_ring || !HasReady(g)) return;
  Unpark(g);
  g->in_ring = true;
  ring_.push_back(g->seq);
}

void Scheduler::Park(Group* g) {
  // Its ready steps all need labels whose workers are busy or absent.
  Unpark(g);
  auto park_under = [&](auto& queues) {
    for (auto& [agent, q] : queues) {
      if (agent.empty() || q.empty()) continue;
      if (parked_[agent].insert(g->seq).second) g->parked_under.push_back(agent);
    }
  };
  park_under(g->retry_ready);
  if (g->in_progress < g->max_parallel) park_under(g->pending);
}

void Scheduler::Unpark(Group* g) {
  for (const std::string& agent : g->parked_under) {
    auto it = parked_.find(agent);
    if (it == parked_.end()) continue;
    it->second.erase(g->seq);
    if (it->second.empty()) parked_.erase(it);
  }
  g->parked_under.clear();
}

void Scheduler::WakeFor(Worker* w) {
  // Wake as many groups waiting for this worker's labels as it has free
  // slots, oldest first: each either places a step or parks again.
  int64_t budget = w->free();
  for (const std::string& agent : w->agents) {
    while (budget > 0) {
      auto it = parked_.find(agent);
      if (it == parked_.end()) break;
      Group* g = groups_by_seq_.at(*it->second.begin());
      Unpark(g);
      Enqueue(g);
      // A group with nothing left to place (stopping, say) costs no wake.
      if (g->in_ring) --budget;
    }
  }
}

void Scheduler::CountAgentWorker(const std::string& agent, int delta) {
  auto it = agent_workers_.try_emplace(agent, 0).first;
  it->second += delta;
  if (it->second <= 0) agent_workers_.erase(it);
}

void Scheduler::Pump(Time now, std::vector<Action>* out) {
  while (total_free_ > 0 && !ring_.empty()) {
    uint64_t seq = ring_.front();
    ring_.pop_front();
    auto it = groups_by_seq_.find(seq);
    if (it == groups_by_seq_.end()) continue;
    Group* g = it->second;
    g->in_ring = false;
    switch (PlaceOne(g, now, out)) {
      case Placement::kDispatched:
        Enqueue(g);
        break;
      case Placement::kNoWorker:
        Park(g);
        break;
      case Placement::kGroupFull:
      case Placement::kNothing:
        break;  // a slot of its own freeing re-enqueues it
    }
  }
}

internal::Worker* Scheduler::FreeWorkerFor(const std::string& agent) const {
  const std::set<internal::FreeKey>* set = &free_any_;
  if (!agent.empty()) {
    auto it = free_by_agent_.find(agent);
    if (it == free_by_agent_.end()) return nullptr;
    set = &it->second;
  }
  if (set->empty()) return nullptr;
  return workers_by_seq_.at(set->begin()->seq);
}

Scheduler::Placement Scheduler::PlaceOne(Group* g, Time now, std::vector<Action>* out) {
  if (!HasReady(g)) return Placement::kNothing;
  // The earliest step (by submission order) among the queue fronts that a
  // free worker can take.
  auto pick = [&](auto& queues, bool skip_stale) -> std::pair<std::deque<uint32_t>*, Worker*> {
    std::deque<uint32_t>* best = nullptr;
    Worker* best_worker = nullptr;
    for (auto& [agent, q] : queues) {
      if (skip_stale) {
        while (!q.empty() && g->steps[q.front()].state != StepState::kPending) q.pop_front();
      }
      if (q.empty() || (best && q.front() > best->front())) continue;
      if (Worker* w = FreeWorkerFor(agent)) {
        best = &q;
        best_worker = w;
      }
    }
    return {best, best_worker};
  };
  if (g->retry_ready_count > 0) {
    auto [q, w] = pick(g->retry_ready, false);
    if (q) {
      uint32_t step = q->front();
      q->pop_front();
      --g->retry_ready_count;
      DispatchTo(g, step, w, now, out);
      return Placement::kDispatched;
    }
  }
  const bool full = g->in_progress >= g->max_parallel;
  if (!full && g->count(StepState::kPending) > 0) {
    auto [q, w] = pick(g->pending, true);
    if (q) {
      uint32_t step = q->front();
      q->pop_front();
      DispatchTo(g, step, w, now, out);
      return Placement::kDispatched;
    }
  }
  if (full && g->retry_ready_count == 0) return Placement::kGroupFull;
  return Placement::kNoWorker;
}

void Scheduler::DispatchTo(Group* g, uint32_t i, Worker* w, Time now, std::vector<Action>* out) {
  StepRt& st = g->steps[i];
  SetState(g, i, StepState::kRunning);
  if (!st.holds_slot) {
    st.holds_slot = true;
    ++g->in_progress;
  }
  common::AttemptRecord rec;
  rec.attempt = static_cast<uint32_t>(st.attempts.size() + 1);
  rec.worker = w->name;
  rec.dispatched_at = now;
  st.attempts.push_back(std::move(rec));
  const uint32_t attempt = st.attempts.back().attempt;
  st.attempt_active = true;
  st.cancel_requested = false;
  st.worker = w->seq;
  g->active.insert(i);
  w->attempts.insert({g->seq, i, attempt});
  AdjustRunning(w, +1);
  Journal<AttemptStarted>(g->submission, i, attempt, w->name, UnixMs(now));

  std::optional<common::Duration> timeout;
  if (std::optional<double> t = common::EffectiveTimeout(g->spec, g->spec.steps[i])) {
    timeout = common::SecondsToDuration(*t);
  }
  ArmBackstop(g, i, now);
  out->push_back(Dispatch{{g->spec.id, i, attempt, g->submission}, w->name, timeout, g->spec.steps[i], g->client});
}

void Scheduler::ArmBackstop(Group* g, uint32_t i, Time at_least) {
  // The worker enforces the timeout; this is the backstop for a worker that
  // never reports. A restored attempt's worker gets at least the grace from
  // its return to report what happened while the coordinator was away.
  std::optional<double> t = common::EffectiveTimeout(g->spec, g->spec.steps[i]);
  if (!t) return;
  StepRt& st = g->steps[i];
  const common::AttemptRecord& rec = st.attempts.back();
  const Time at = std::max(rec.dispatched_at + common::SecondsToDuration(*t) + StopGraceOf(st.worker), at_least);
  AddTimer({at, internal::TimerKind::kAttemptBackstop, g->seq, i, rec.attempt}, &st.timer);
}

// ---- The free-worker index --------------------------------------------------

void Scheduler::IndexWorker(Worker* w) {
  if (w->indexed) return;
  w->indexed = true;
  const int64_t free = w->placeable ? w->free() : 0;
  total_free_ += free;
  if (free <= 0) return;
  w->key = {-free, w->seq};
  free_any_.insert(w->key);
  for (const std::string& a : w->agents) free_by_agent_[a].insert(w->key);
}

void Scheduler::UnindexWorker(Worker* w) {
  if (!w->indexed) return;
  w->indexed = false;
  const int64_t free = w->placeable ? w->free() : 0;
  total_free_ -= free;
  if (free <= 0) return;
  free_any_.erase(w->key);
  for (const std::string& a : w->agents) {
    auto it = free_by_agent_.find(a);
    if (it == free_by_agent_.end()) continue;
    it->second.erase(w->key);
    if (it->second.empty()) free_by_agent_.erase(it);
  }
}

void Scheduler::AdjustRunning(Worker* w, int64_t delta) {
  const bool was_indexed = w->indexed;
  UnindexWorker(w);
  w->running += delta;
  if (was_indexed) IndexWorker(w);
  if (delta < 0 && was_indexed && !w->agents.empty() && !parked_.empty()) WakeFor(w);
}

QueueCause Scheduler::CauseOf(const Group& g, const std::string& agent) const {
  if (!agent.empty()) {
    auto it = agent_workers_.find(agent);
    if (it == agent_workers_.end() || it->second <= 0) return QueueCause::kNoEligibleWorker;
  }
  if (g.in_progress >= g.max_parallel) return QueueCause::kMaxParallel;
  if (workers_.empty()) return QueueCause::kNoEligibleWorker;
  if (!agent.empty()) return QueueCause::kNoFreeSlot;
  return total_free_ > 0 ? QueueCause::kBehindOtherGroups : QueueCause::kNoFreeSlot;
}

std::string Scheduler::WaitingReason(const Group& g, uint32_t i) const {
  if (g.stopping || g.finished) return "";
  const std::string& agent = g.spec.steps[i].agent;
  // Cordoned and draining workers offer no free slot: say so, or an
  // operator would look for busy steps that are not there.
  const std::string unplaceable =
      unplaceable_ == 0 ? "" : " (" + std::to_string(unplaceable_) + " cordoned or draining)";
  switch (CauseOf(g, agent)) {
    case QueueCause::kNoEligibleWorker:
      return agent.empty() ? "no worker has joined" : "no live worker offers agent \"" + agent + "\"";
    case QueueCause::kMaxParallel:
      return "max_parallel (" + std::to_string(g.max_parallel) + ") reached";
    case QueueCause::kNoFreeSlot:
      return agent.empty() ? "every worker slot is busy" + unplaceable
                           : "every worker offering agent \"" + agent + "\" is busy" + unplaceable;
    case QueueCause::kBehindOtherGroups:
    case QueueCause::kBackoff:
      break;
  }
  return "queued behind other groups";
}

}  // namespace cohort::coordinator
