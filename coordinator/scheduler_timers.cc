// The Scheduler's timers: one ordered set holds every deadline the core
// keeps (attempt backstops, retry backoffs, group deadlines, worker expiries,
// cancel resends, result retention); Tick() fires those that are due. A timer
// is also remembered in the record it belongs to, so replacing or clearing it
// costs one erase, and a fired timer that no longer matches its record is
// ignored.
#include "coordinator/scheduler.h"

#include "common/protocol.h"
#include "coordinator/scheduler_text.h"

namespace cohort::coordinator {

using common::Duration;
using common::GroupState;
using common::Time;
using internal::Quote;
using internal::SecondsText;
using internal::TimerKind;

void Scheduler::AddTimer(const Timer& t, std::optional<Timer>* slot) {
  ClearTimer(slot);
  timers_.insert(t);
  *slot = t;
}

void Scheduler::ClearTimer(std::optional<Timer>* slot) {
  if (*slot) {
    timers_.erase(**slot);
    slot->reset();
  }
}

std::optional<Time> Scheduler::NextDeadline() const {
  if (timers_.empty()) return std::nullopt;
  return timers_.begin()->at;
}

void Scheduler::Tick(Time now, std::vector<Action>* out, bool workers_unread) {
  event_time_ = now;
  workers_unread_ = workers_unread;
  auto judges_worker = [](TimerKind k) {
    return k == TimerKind::kWorkerExpiry || k == TimerKind::kAttemptBackstop || k == TimerKind::kReattach;
  };
  // Held timers leave the set while the others fire, and go back unchanged:
  // their records still name them.
  std::vector<Timer> held;
  while (!timers_.empty() && timers_.begin()->at <= now) {
    Timer t = *timers_.begin();
    timers_.erase(timers_.begin());
    if (workers_unread && judges_worker(t.kind) && now - t.at < ExpiryWindow()) {
      held.push_back(t);
      continue;
    }
    // Handlers may clear or replace this timer's slot: it is out of the set
    // already, so either is a no-op on the set.
    FireTimer(t, now, out);
  }
  timers_.insert(held.begin(), held.end());
  workers_unread_ = false;
  Pump(now, out);
}

void Scheduler::FireTimer(const Timer& t, Time now, std::vector<Action>* out) {
  if (t.kind == TimerKind::kWorkerExpiry) {
    FireWorkerExpiry(t, now, out);
    return;
  }
  if (t.kind == TimerKind::kReattach) {
    if (reattach_timer_ != t) return;
    reattach_timer_.reset();
    LoseUnclaimed(now, out);
    return;
  }
  auto git = groups_by_seq_.find(t.a);
  if (git == groups_by_seq_.end()) return;
  Group* g = git->second;
  switch (t.kind) {
    case TimerKind::kGroupDeadline: {
      if (g->deadline_timer != t) return;
      g->deadline_timer.reset();
      if (g->finished || g->stopping) return;
      AddError(g, "", "group deadline of " + SecondsText(common::SecondsToDuration(*g->spec.deadline_s)) +
                          " exceeded");
      StopGroup(g, GroupState::kFailed, now, out);
      return;
    }
    case TimerKind::kAttemptBackstop: {
      if (t.b >= g->steps.size()) return;  // archived since
      StepRt& st = g->steps[t.b];
      if (st.timer != t) return;
      st.timer.reset();
      // The worker enforces timeouts; one that has not reported past the
      // grace is broken or cut off. Declaring it lost frees its slots
      // honestly (nothing is assumed stopped while it may still run) and
      // fences its late reports; its attempts retry elsewhere.
      auto wit = workers_by_seq_.find(st.worker);
      if (wit == workers_by_seq_.end()) return;
      ExpireWorker(wit->second->name,
                   "no report of step " + Quote(g->spec.steps[t.b].id) + " attempt " + std::to_string(t.c) +
                       " within its timeout plus " + SecondsText(wit->second->stop_grace),
                   now, out);
      return;
    }
    case TimerKind::kBackoff: {
      if (t.b >= g->steps.size() || g->steps[t.b].timer != t) return;
      RetryNow(g, t.b);
      return;
    }
    case TimerKind::kCancelResend: {
      if (g->resend_timer != t) return;
      g->resend_timer.reset();
      ResendCancels(g, now, out);
      return;
    }
    case TimerKind::kRetention: {
      if (g->retention_timer != t) return;
      Forget(g);
      return;
    }
    case TimerKind::kWorkerExpiry:
    case TimerKind::kReattach:
      return;
  }
}

void Scheduler::FireWorkerExpiry(const Timer& t, Time now, std::vector<Action>* out) {
  auto it = workers_by_seq_.find(t.a);
  if (it == workers_by_seq_.end() || it->second->expiry != t) return;
  Worker* w = it->second;
  w->expiry.reset();
  // Heartbeats only move last_heartbeat; the timer catches up here, once
  // per window, instead of being moved on every message.
  if (const Time due = w->last_heartbeat + ExpiryWindow(); due > now) {
    AddTimer({due, TimerKind::kWorkerExpiry, w->seq}, &w->expiry);
    return;
  }
  ExpireWorker(w->name, "no heartbeat for " + SecondsText(ExpiryWindow()), now, out);
}

void Scheduler::ResendCancels(Group* g, Time now, std::vector<Action>* out) {
  std::vector<uint32_t> overdue;
  bool any = false;
  for (uint32_t i : g->active) {
    StepRt& st = g->steps[i];
    if (!st.cancel_requested) continue;
    // Its confirmation may be among worker messages not read yet: then it
    // gets one more expiry window, as the other timers that judge workers.
    const Duration unread = workers_unread_ ? ExpiryWindow() : Duration::zero();
    if (now - st.cancel_at >= StopGraceOf(st.worker) + unread) {
      overdue.push_back(i);
      continue;
    }
    any = true;
    auto wit = workers_by_seq_.find(st.worker);
    if (wit != workers_by_seq_.end()) {
      out->push_back(CancelAttempt{{g->spec.id, i, static_cast<uint32_t>(st.attempts.size()), g->submission},
                                   wit->second->name});
    }
  }
  // A worker that stays alive but never confirms a cancel must not hold
  // the group open for ever, nor may its slot be reused while the step
  // may still run: past the grace the worker is declared lost.
  for (uint32_t i : overdue) {
    StepRt& st = g->steps[i];
    if (!st.attempt_active) continue;  // already closed with its worker
    auto wit = workers_by_seq_.find(st.worker);
    if (wit == workers_by_seq_.end()) continue;
    ExpireWorker(wit->second->name,
                 "did not confirm the cancel of step " + Quote(g->spec.steps[i].id) + " within " +
                     SecondsText(wit->second->stop_grace),
                 now, out);
  }
  if (any) AddTimer({now + options_.cancel_resend, TimerKind::kCancelResend, g->seq}, &g->resend_timer);
}

Duration Scheduler::StopGraceFor(Duration kill_grace) const {
  if (kill_grace <= Duration::zero()) return options_.backstop_grace;
  // A second for the report to travel and be read.
  const Duration stop = kill_grace + std::chrono::milliseconds(common::kStopAfterKillMs) + std::chrono::seconds(1);
  return std::max(options_.backstop_grace, stop);
}

Duration Scheduler::StopGraceOf(uint64_t worker_seq) const {
  auto it = workers_by_seq_.find(worker_seq);
  return it == workers_by_seq_.end() ? options_.backstop_grace : it->second->stop_grace;
}

void Scheduler::ExpireWorker(std::string name, const std::string& reason, Time now, std::vector<Action>* out) {
  out->push_back(WorkerExpired{name, reason});
  // Only a known worker's timer fires, so Lose cannot miss it.
  Lose(name, reason, now, out).IgnoreError();
}

void Scheduler::GraceWorkers(Time until) {
  for (auto& [name, w] : workers_) {
    if (w->expiry && w->expiry->at < until) {
      Timer t = *w->expiry;
      t.at = until;
      AddTimer(t, &w->expiry);
    }
  }
}

void Scheduler::Stalled(Duration busy, Time now) { GraceWorkers(now + busy + ExpiryWindow()); }

}  // namespace cohort::coordinator
