// The Scheduler's workers: joining (and reconciling what a returning worker
// says it runs), heartbeats, and losing a worker with the attempts it held.
#include <algorithm>

#include "coordinator/scheduler.h"
#include "coordinator/scheduler_text.h"

namespace cohort::coordinator {

using common::Status;
using common::Time;
using internal::Quote;
using internal::TimerKind;

Status Scheduler::Join(const WorkerJoined& j, Time now, std::vector<Action>* out) {
  event_time_ = now;
  if (j.name.empty()) return Status::InvalidArgument("name: a worker needs a name");
  Worker* w = FindWorker(j.name);
  // An instance of 0 (none given) matches no live one: otherwise any
  // authorized worker could take a live worker's name, and its steps, by
  // leaving the field out.
  if (w && !j.same_connection && ((w->instance != 0 && w->instance != j.instance) || w->user_id != j.user_id)) {
    // Two processes with one name would take each other's steps away in
    // turn; the first keeps the name while it lives.
    return Status::AlreadyExists("worker name " + Quote(j.name) + " is in use by another live worker");
  }
  if (j.slots < 1) {
    return Status::InvalidArgument("slots: worker " + Quote(j.name) + " must offer at least 1 slot, got " +
                                   std::to_string(j.slots));
  }
  if (!w) {
    auto owned = std::make_unique<Worker>();
    w = owned.get();
    w->seq = next_worker_seq_++;
    w->name = j.name;
    workers_by_seq_[w->seq] = w;
    workers_.emplace(j.name, std::move(owned));
  } else {
    UnindexWorker(w);
    for (const std::string& a : w->agents) --agent_workers_[a];
  }
  w->instance = j.instance;
  w->user_id = j.user_id;
  w->slots = j.slots;
  w->agents = j.agents;
  std::sort(w->agents.begin(), w->agents.end());
  w->agents.erase(std::unique(w->agents.begin(), w->agents.end()), w->agents.end());
  for (const std::string& a : w->agents) ++agent_workers_[a];
  w->last_heartbeat = now;
  AddTimer({now + ExpiryWindow(), TimerKind::kWorkerExpiry, w->seq}, &w->expiry);

  // Reconcile with what the worker says it runs. The worker is unindexed
  // here, so its slot count can be set directly.
  w->running -= static_cast<int64_t>(w->stale.size());
  w->stale.clear();
  std::set<internal::AttemptKey> confirmed;
  // Restored attempts it claims become its own before the check below.
  ClaimRestored(w, j.running, now, out);
  for (const AttemptRef& ref : j.running) {
    Group* g = FindGroup(ref.group);
    if (g && g->submission != ref.submission) g = nullptr;
    const StepRt* st = g && ref.step < g->steps.size() ? &g->steps[ref.step] : nullptr;
    if (st && st->attempt_active && st->worker == w->seq && st->attempts.size() == ref.attempt) {
      confirmed.insert({g->seq, ref.step, ref.attempt});
    } else {
      ++stale_reports_;
      out->push_back(CancelAttempt{ref, w->name});
      if (w->stale.insert({ref.submission, ref.step, ref.attempt}).second) ++w->running;
    }
  }
  std::vector<internal::AttemptKey> missing;
  for (const auto& key : w->attempts) {
    if (!confirmed.count(key) && !j.same_connection) missing.push_back(key);
  }
  for (const auto& key : missing) {
    Group* g = groups_by_seq_.at(key.group);
    LoseAttempt(g, key.step, "worker " + Quote(w->name) + " restarted and no longer runs it", now, out);
  }
  IndexWorker(w);
  WakeFor(w);
  Pump(now, out);
  return Status::Ok();
}

Status Scheduler::Heartbeat(std::string_view name, Time now) {
  Worker* w = FindWorker(name);
  if (!w) return Status::NotFound("unknown worker " + Quote(name) + "; it must register first");
  w->last_heartbeat = now;
  // Every worker message lands here (two per step): an erase and an insert
  // in timers_ each time cost more than the rest of the heartbeat. FireTimer
  // re-arms from last_heartbeat instead.
  if (!w->expiry) AddTimer({now + ExpiryWindow(), TimerKind::kWorkerExpiry, w->seq}, &w->expiry);
  return Status::Ok();
}

Status Scheduler::Lose(std::string_view name, std::string_view reason, Time now, std::vector<Action>* out) {
  event_time_ = now;
  Worker* w = FindWorker(name);
  if (!w) return Status::NotFound("unknown worker " + Quote(name));
  UnindexWorker(w);
  for (const std::string& a : w->agents) --agent_workers_[a];
  ClearTimer(&w->expiry);
  std::vector<internal::AttemptKey> held(w->attempts.begin(), w->attempts.end());
  std::string why = "worker " + Quote(w->name) + " lost: " + std::string(reason);
  // Detach first, so closing the attempts does not touch the worker's slots.
  workers_by_seq_.erase(w->seq);
  std::unique_ptr<Worker> gone = std::move(workers_.find(name)->second);
  workers_.erase(workers_.find(name));
  for (const auto& key : held) {
    Group* g = groups_by_seq_.at(key.group);
    LoseAttempt(g, key.step, why, now, out);
  }
  Pump(now, out);
  return Status::Ok();
}

}  // namespace cohort::coordinator
