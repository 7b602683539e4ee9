// The Scheduler's workers: joining, heartbeats, reconciling what a worker
// says it holds (when it joins again, and in its heartbeats), and losing a
// worker with the attempts it held.
#include <algorithm>
#include <set>
#include <tuple>

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
    w->joined_at = now;
    workers_by_seq_[w->seq] = w;
    workers_.emplace(j.name, std::move(owned));
  } else {
    UnindexWorker(w);
    for (const std::string& a : w->agents) CountAgentWorker(a, -1);
  }
  w->instance = j.instance;
  w->user_id = j.user_id;
  w->version = j.version;
  if (j.draining && !w->draining) w->draining_since = now;
  w->draining = j.draining;
  lost_.erase(w->name);
  w->slots = j.slots;
  w->stop_grace = StopGraceFor(j.kill_grace);
  w->agents = j.agents;
  std::sort(w->agents.begin(), w->agents.end());
  w->agents.erase(std::unique(w->agents.begin(), w->agents.end()), w->agents.end());
  for (const std::string& a : w->agents) CountAgentWorker(a, +1);
  w->last_heartbeat = now;
  AddTimer({now + ExpiryWindow(), TimerKind::kWorkerExpiry, w->seq}, &w->expiry);

  // Reconcile with what the worker says it runs. The worker is unindexed
  // here, so its slot count can be set directly.
  w->running -= static_cast<int64_t>(w->stale.size());
  w->stale.clear();
  w->reported.clear();
  // Restored attempts it claims become its own before the check below.
  ClaimRestored(w, j.running, now, out);
  std::set<internal::AttemptKey> held;
  // Its kept results are sent again after WELCOME and clear their slots then.
  SortListed(w, j.running, /*results_taken=*/false, &held, out);
  if (!j.same_connection) {
    LoseUnheld(w, held, std::nullopt, "worker " + Quote(w->name) + " restarted and no longer runs it", now, out);
  }
  ReleaseFenced(w->name, j.instance, j.running);
  SetPlaceable(w);  // unindexed here
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

Status Scheduler::Heartbeat(const WorkerHeartbeat& h, Time now, std::vector<Action>* out) {
  if (Status s = Heartbeat(h.name, now); !s.ok()) return s;
  Worker* w = FindWorker(h.name);
  if (h.draining != w->draining) {
    event_time_ = now;
    w->draining = h.draining;
    w->draining_since = now;
    Replace(w, now, out);
  }
  if (!h.running) return Status::Ok();
  event_time_ = now;
  std::set<internal::AttemptKey> held;
  // Every result the worker has sent and not yet seen confirmed is listed,
  // so most heartbeats of a busy worker name attempts already closed: those
  // are not stopped again.
  SortListed(w, *h.running, /*results_taken=*/true, &held, out);
  bool freed = false;
  if (!w->stale.empty() || !w->reported.empty()) {
    // What it no longer lists is over, its result sent or dropped: a stale
    // attempt's slot is free. (A FINISHED sent before this list was read
    // before it.)
    std::set<std::tuple<uint64_t, uint32_t, uint32_t>> listed;
    for (const AttemptRef& ref : *h.running) listed.insert({ref.submission, ref.step, ref.attempt});
    std::erase_if(w->reported, [&](const auto& key) { return !listed.count(key); });
    const size_t stale = std::erase_if(w->stale, [&](const auto& key) { return !listed.count(key); });
    if (stale > 0) {
      AdjustRunning(w, -static_cast<int64_t>(stale));
      freed = true;
    }
  }
  // A RUN still on its way is not listed yet; one dispatched a full expiry
  // window ago has had the time a live worker needs to list it, so it was
  // dropped (ZeroMQ's high-water mark) or lost some other way.
  if (LoseUnheld(w, held, now - ExpiryWindow(),
                 "worker " + Quote(w->name) + " does not hold it: its RUN never arrived", now, out)) {
    freed = true;
  }
  if (freed) Pump(now, out);
  return Status::Ok();
}

void Scheduler::SortListed(Worker* w, const std::vector<AttemptRef>& listed, bool results_taken,
                           std::set<internal::AttemptKey>* held, std::vector<Action>* out) {
  for (const AttemptRef& ref : listed) {
    Group* g = FindGroup(ref.group);
    if (g && g->submission != ref.submission) g = nullptr;
    const StepRt* st = g && ref.step < g->steps.size() ? &g->steps[ref.step] : nullptr;
    if (st && st->attempt_active && st->worker == w->seq && st->attempts.size() == ref.attempt) {
      held->insert({g->seq, ref.step, ref.attempt});
      continue;
    }
    if (results_taken && ResultTaken(*w, st, ref)) continue;
    // Not current: stop it. It holds a slot until it is reported over. A
    // worker that keeps listing it gets the cancel again, in case the last
    // one was dropped too.
    out->push_back(CancelAttempt{ref, w->name});
    if (w->stale.insert({ref.submission, ref.step, ref.attempt}).second) {
      ++stale_reports_;
      AdjustRunning(w, +1);
    }
  }
}

bool Scheduler::ResultTaken(const Worker& w, const StepRt* st, const AttemptRef& ref) {
  if (w.reported.count({ref.submission, ref.step, ref.attempt})) return true;
  if (!st || ref.attempt < 1 || ref.attempt > st->attempts.size()) return false;
  // Closed by this worker's own FINISHED.
  const common::AttemptRecord& rec = st->attempts[ref.attempt - 1];
  return rec.worker == w.name && rec.status != common::AttemptStatus::kRunning &&
         rec.status != common::AttemptStatus::kWorkerLost;
}

bool Scheduler::LoseUnheld(Worker* w, const std::set<internal::AttemptKey>& held,
                           std::optional<Time> dispatched_before, const std::string& why, Time now,
                           std::vector<Action>* out) {
  std::vector<internal::AttemptKey> missing;
  for (const auto& key : w->attempts) {
    if (held.count(key)) continue;
    Group* g = groups_by_seq_.at(key.group);
    if (dispatched_before && g->steps[key.step].attempts.back().dispatched_at > *dispatched_before) continue;
    missing.push_back(key);
  }
  // Collected first: losing an attempt takes it out of w->attempts.
  for (const auto& key : missing) LoseAttempt(groups_by_seq_.at(key.group), key.step, why, now, out);
  return !missing.empty();
}

Status Scheduler::Lose(std::string_view name, std::string_view reason, Time now, std::vector<Action>* out,
                       bool steps_stopped) {
  event_time_ = now;
  Worker* w = FindWorker(name);
  if (!w) return Status::NotFound("unknown worker " + Quote(name));
  UnindexWorker(w);
  for (const std::string& a : w->agents) CountAgentWorker(a, -1);
  ClearTimer(&w->expiry);
  std::vector<internal::AttemptKey> held(w->attempts.begin(), w->attempts.end());
  std::string why = "worker " + Quote(w->name) + " lost: " + std::string(reason);
  // Detach first, so closing the attempts does not touch the worker's slots.
  workers_by_seq_.erase(w->seq);
  if (!w->placeable) --unplaceable_;
  std::unique_ptr<Worker> gone = std::move(workers_.find(name)->second);
  workers_.erase(workers_.find(name));
  RememberLost(*gone, std::string(reason), steps_stopped, now);
  // Gone silent, it stops its steps itself once its lease runs out, counted
  // from no later than the last message we had from it (its lease renews
  // only from messages we received). Until then they may still run.
  const Time fence = steps_stopped ? now : gone->last_heartbeat + options_.worker_lease;
  std::erase_if(fenced_, [&](const auto& entry) { return entry.second.until <= now; });
  Fenced* fenced = nullptr;
  if (fence > now && !held.empty()) {
    fenced = &fenced_[gone->name];
    fenced->instance = gone->instance;
    fenced->until = std::max(fenced->until, fence);
  }
  for (const auto& key : held) {
    Group* g = groups_by_seq_.at(key.group);
    LoseAttempt(g, key.step, why, now, out, fence);
    const StepRt& st = g->steps[key.step];
    if (fenced && st.timer && st.timer->kind == TimerKind::kBackoff) fenced->retries.push_back(*st.timer);
  }
  Pump(now, out);
  return Status::Ok();
}

void Scheduler::ReleaseFenced(const std::string& name, uint64_t instance, const std::vector<AttemptRef>& running) {
  auto it = fenced_.find(name);
  if (it == fenced_.end()) return;
  Fenced& fenced = it->second;
  // Another process under the name: the one we lost is gone, and a worker
  // kills what its previous life left running before it registers. (An
  // instance of 0 tells nothing.)
  const bool new_process = instance != 0 && fenced.instance != 0 && instance != fenced.instance;
  std::erase_if(fenced.retries, [&](const Timer& t) {
    auto g_it = groups_by_seq_.find(t.a);
    if (g_it == groups_by_seq_.end()) return true;
    Group* g = g_it->second;
    if (t.b >= g->steps.size() || g->steps[t.b].timer != t) return true;  // retried, cancelled, stopped, archived
    const uint32_t lost_attempt = static_cast<uint32_t>(g->steps[t.b].attempts.size());
    const bool listed = std::any_of(running.begin(), running.end(), [&](const AttemptRef& ref) {
      return ref.submission == g->submission && ref.step == t.b && ref.attempt == lost_attempt;
    });
    // The same process still listing it: it is told to stop it (SortListed),
    // and the fence holds until it reports it over or the lease ends.
    if (!new_process && listed) return false;
    RetryNow(g, t.b);
    return true;
  });
  if (fenced.retries.empty()) fenced_.erase(it);
}

bool Scheduler::ReleaseFencedAttempt(std::string_view worker, const AttemptRef& ref) {
  auto it = fenced_.find(worker);
  if (it == fenced_.end()) return false;
  Group* g = FindGroup(ref.group);
  if (!g || g->submission != ref.submission || ref.step >= g->steps.size()) return false;
  StepRt& st = g->steps[ref.step];
  if (st.attempts.size() != ref.attempt) return false;  // a later attempt exists: this one was not fenced
  std::vector<Timer>& retries = it->second.retries;
  for (auto t = retries.begin(); t != retries.end(); ++t) {
    if (t->a != g->seq || t->b != ref.step) continue;
    const bool waiting = st.timer == *t;
    if (waiting) RetryNow(g, ref.step);
    retries.erase(t);
    return waiting;
  }
  return false;
}

}  // namespace cohort::coordinator
