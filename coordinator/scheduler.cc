#include "coordinator/scheduler.h"

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstring>
#include <utility>

#include "coordinator/group_access.h"
#include "coordinator/scheduler_text.h"

namespace cohort::coordinator {

using common::AttemptStatus;
using common::Duration;
using common::GroupState;
using common::Status;
using common::StepState;
using common::Time;
using internal::Quote;
using internal::SecondsText;
using internal::TimerKind;

namespace {

std::string SignalText(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  return "killed by signal " + std::to_string(sig) + (abbrev ? " (SIG" + std::string(abbrev) + ")" : "");
}

}  // namespace

Scheduler::Scheduler(SchedulerOptions options) : options_(options), rng_(options.seed) {}
Scheduler::~Scheduler() = default;

Status Scheduler::Handle(Event event, Time now, std::vector<Action>* out) {
  struct Visitor {
    Scheduler* s;
    Time now;
    std::vector<Action>* out;
    Status operator()(SubmitGroup& e) { return s->Submit(std::move(e), now, out); }
    Status operator()(WorkerJoined& e) { return s->Join(e, now, out); }
    Status operator()(WorkerHeartbeat& e) { return s->Heartbeat(e, now, out); }
    Status operator()(WorkerLost& e) { return s->Lose(e.name, e.reason, now, out); }
    Status operator()(StepStarted& e) { return s->Started(e, now, out); }
    Status operator()(StepFinished& e) { return s->Finished(e, now, out); }
    Status operator()(coordinator::Tick&) {
      s->Tick(now, out);
      return Status::Ok();
    }
    Status operator()(LoopStalled& e) {
      s->Stalled(e.busy, now);
      return Status::Ok();
    }
    Status operator()(CancelGroup& e) { return s->CancelGroupById(e.group, now, out, e.who); }
    Status operator()(CancelStep& e) { return s->CancelStepById(e.group, e.step_id, now, out, e.who); }
    Status operator()(SetWorkerMode& e) { return s->SetMode(e, now, out); }
  };
  return std::visit(Visitor{this, now, out}, event);
}

internal::Group* Scheduler::FindGroup(std::string_view id) const {
  auto it = groups_.find(std::string(id));
  return it == groups_.end() ? nullptr : it->second.get();
}

internal::Worker* Scheduler::FindWorker(std::string_view name) const {
  auto it = workers_.find(name);
  return it == workers_.end() ? nullptr : it->second.get();
}

// ---- Groups ---------------------------------------------------------------

void Scheduler::TakeJournal(std::vector<Record>* out) {
  if (out->empty()) {
    out->swap(journal_);
  } else {
    std::move(journal_.begin(), journal_.end(), std::back_inserter(*out));
  }
  journal_.clear();
}

void Scheduler::AddError(Group* g, std::string step_id, std::string error) {
  Journal<ErrorAdded>(g->submission, static_cast<uint32_t>(g->errors.size()), step_id, error, UnixMs(event_time_));
  g->errors.push_back({std::move(step_id), std::move(error)});
}

void Scheduler::JournalAttemptEnd(const Group& g, uint32_t i, const common::AttemptOutcome* o) {
  if (!options_.journal) return;
  const common::AttemptRecord& rec = g.steps[i].attempts.back();
  AttemptEnded e;
  e.submission = g.submission;
  e.step = i;
  e.attempt = rec.attempt;
  e.ended_unix_ms = UnixMs(rec.finished_at.value_or(event_time_));
  if (rec.started_at) e.started_unix_ms = UnixMs(*rec.started_at);
  e.status = rec.status;
  e.exit_code = rec.exit_code;
  e.signal = rec.signal;
  e.error = rec.error;
  e.stdout_tail = rec.stdout_tail;
  e.stderr_tail = rec.stderr_tail;
  if (o) {
    e.timed_out = o->timed_out;
    e.cancelled = o->cancelled;
    e.stdout_bytes = o->stdout_bytes;
    e.stderr_bytes = o->stderr_bytes;
  }
  journal_.emplace_back(std::move(e));
}

Status Scheduler::Submit(SubmitGroup e, Time now, std::vector<Action>* out, std::string* assigned_id,
                         bool* attached) {
  event_time_ = now;
  if (attached) *attached = false;
  common::GroupSpec& spec = e.spec;
  if (Status s = common::ValidateGroupSpec(spec); !s.ok()) return s;
  // Each client's ids are its own (group_access.h).
  if (spec.id.empty()) {
    uint64_t n = next_group_seq_;
    do {
      spec.id = QualifiedGroupId(e.client, options_.id_prefix + std::to_string(n++));
    } while (groups_.count(spec.id));
  } else {
    spec.id = QualifiedGroupId(e.client, spec.id);
  }
  if (spec.id.size() > common::kMaxIdBytes) {
    return Status::InvalidArgument("id: with the client's prefix \"" + e.client + "/\" the group's id is " +
                                   std::to_string(spec.id.size()) + " bytes; the limit is " +
                                   std::to_string(common::kMaxIdBytes));
  }
  if (auto it = groups_.find(spec.id); it != groups_.end()) {
    const Group& existing = *it->second;
    if (existing.archived) {
      return Status::Unavailable("group " + Quote(spec.id) + " is kept in the state store only, and was not read");
    }
    if (existing.spec == spec && existing.client == e.client) {
      if (assigned_id) *assigned_id = spec.id;
      if (attached) *attached = true;
      return Status::Ok();
    }
    return Status::AlreadyExists("id: a group " + Quote(spec.id) + " exists already" +
                                 (existing.client == e.client ? ", with another spec" : "") +
                                 "; give this one another id (or leave \"id\" out to get one)");
  }
  if (!MakeRoom(spec.steps.size())) {
    return Status::Unavailable("the coordinator is full: it runs " + std::to_string(groups_.size()) +
                               " groups with " + std::to_string(steps_held_) + " steps; this group's " +
                               std::to_string(spec.steps.size()) + " steps would pass its limits (" +
                               std::to_string(options_.max_groups) + " groups, " +
                               std::to_string(options_.max_steps) + " steps, " +
                               std::to_string(options_.max_output_bytes >> 20) + " MiB of output held (" +
                               std::to_string(output_held_ >> 20) + " now): --max-groups, --max-steps, "
                               "--max-output-mb); submit again once groups have finished");
  }

  auto owned = std::make_unique<Group>();
  Group* g = owned.get();
  g->seq = next_group_seq_++;
  g->submission = next_submission_++;
  g->spec = std::move(spec);
  g->client = e.client;
  g->submitted_at = now;
  const size_t n = g->spec.steps.size();
  g->steps.resize(n);
  g->counts[static_cast<int>(StepState::kPending)] = n;
  if (g->spec.max_parallel) g->max_parallel = *g->spec.max_parallel;
  g->index.reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    const common::StepSpec& step = g->spec.steps[i];
    g->index.emplace(step.id, i);
    g->pending[step.agent].push_back(i);
  }
  if (g->spec.deadline_s) {
    AddTimer({now + common::SecondsToDuration(*g->spec.deadline_s), TimerKind::kGroupDeadline, g->seq},
             &g->deadline_timer);
  }
  if (assigned_id) *assigned_id = g->spec.id;
  Journal<GroupAccepted>(g->submission, g->spec.id, std::move(e.spec_json), g->client, UnixMs(now),
                         static_cast<uint64_t>(n));
  groups_by_seq_[g->seq] = g;
  groups_.emplace(g->spec.id, std::move(owned));
  steps_held_ += n;
  Enqueue(g);
  Pump(now, out);
  return Status::Ok();
}

Status Scheduler::CancelGroupById(std::string_view id, Time now, std::vector<Action>* out, std::string_view who) {
  event_time_ = now;
  Group* g = FindGroup(id);
  if (!g) return Status::NotFound("no group " + Quote(id));
  if (g->finished) {
    return Status::FailedPrecondition("group " + Quote(id) + " has already finished " +
                                      std::string(common::GroupStateName(g->state)));
  }
  Journal<CancelRequested>(g->submission, std::nullopt, std::string(who), UnixMs(now));
  if (g->stopping) return Status::Ok();  // already being stopped; the first reason stands
  StopGroup(g, GroupState::kCancelled, now, out);
  Pump(now, out);
  return Status::Ok();
}

Status Scheduler::CancelStepById(std::string_view id, std::string_view step_id, Time now,
                                 std::vector<Action>* out, std::string_view who) {
  event_time_ = now;
  Group* g = FindGroup(id);
  if (!g) return Status::NotFound("no group " + Quote(id));
  if (g->archived) {
    return Status::FailedPrecondition("group " + Quote(id) + " has already finished " +
                                      std::string(common::GroupStateName(g->state)));
  }
  auto it = g->index.find(step_id);
  if (it == g->index.end()) return Status::NotFound("group " + Quote(id) + " has no step " + Quote(step_id));
  uint32_t i = it->second;
  StepRt& st = g->steps[i];
  if (common::IsFinal(st.state)) {
    return Status::FailedPrecondition("step " + Quote(step_id) + " has already " +
                                      std::string(common::StepStateName(st.state)));
  }
  Journal<CancelRequested>(g->submission, std::optional<uint32_t>(i), std::string(who), UnixMs(now));
  if (st.attempt_active) {
    if (!st.cancel_requested) RequestAttemptCancel(g, i, now, out);
  } else {
    CancelPendingOrBackoff(g, i, "cancelled by user");
    MaybeFinish(g, now, out);
  }
  Pump(now, out);
  return Status::Ok();
}

void Scheduler::StopGroup(Group* g, GroupState final_state, Time now, std::vector<Action>* out) {
  if (g->stopping || g->finished) return;
  g->stopping = true;
  g->stop_state = final_state;
  Unpark(g);  // nothing of it starts any more
  Journal<GroupStopped>(g->submission, final_state, UnixMs(now));
  const std::string why = StopReason(*g);
  for (auto& [agent, queue] : g->pending) {
    for (uint32_t i : queue) {
      if (g->steps[i].state == StepState::kPending) CancelPendingOrBackoff(g, i, why);
    }
    queue.clear();
  }
  for (auto& [agent, queue] : g->retry_ready) {
    std::deque<uint32_t> copy;
    copy.swap(queue);
    for (uint32_t i : copy) CancelPendingOrBackoff(g, i, why);
  }
  g->retry_ready_count = 0;  // the queues were emptied above, not searched
  for (uint32_t i : std::vector<uint32_t>(g->backoff.begin(), g->backoff.end())) {
    CancelPendingOrBackoff(g, i, why);
  }
  if (!g->active.empty()) {
    out->push_back(BroadcastCancel{g->spec.id, g->submission});
    for (uint32_t i : g->active) {
      g->steps[i].error = why;
      RequestAttemptCancel(g, i, now, out);
    }
  }
  ClearTimer(&g->deadline_timer);
  MaybeFinish(g, now, out);
}

std::string Scheduler::StopReason(const Group& g) {
  if (g.stop_state == GroupState::kCancelled) return "cancelled by user";
  if (!g.errors.empty() && !g.errors.front().step.empty()) {
    return "cancelled because step " + Quote(g.errors.front().step) + " failed";
  }
  return "cancelled because the group failed: " + (g.errors.empty() ? "" : g.errors.front().error);
}

void Scheduler::CancelPendingOrBackoff(Group* g, uint32_t i, std::string why) {
  StepRt& st = g->steps[i];
  if (st.state == StepState::kRetrying) {
    if (st.timer) {
      ClearTimer(&st.timer);
      g->backoff.erase(i);
    } else {
      // Waiting in retry_ready: remove it there (those queues are short).
      auto& q = g->retry_ready[g->spec.steps[i].agent];
      auto pos = std::find(q.begin(), q.end(), i);
      if (pos != q.end()) {
        q.erase(pos);
        --g->retry_ready_count;
      }
    }
  }
  // A pending step's queue entry is skipped later, when met.
  st.error = std::move(why);
  SetState(g, i, StepState::kCancelled);
  ReleaseSlot(g, i);
}

void Scheduler::RequestAttemptCancel(Group* g, uint32_t i, Time now, std::vector<Action>* out) {
  StepRt& st = g->steps[i];
  // A second request (a user's cancel, then the group's fail-fast) keeps
  // the first one's time: the worker has had since then to stop it.
  if (!st.cancel_requested) st.cancel_at = now;
  st.cancel_requested = true;
  auto wit = workers_by_seq_.find(st.worker);
  std::string worker = wit != workers_by_seq_.end() ? wit->second->name : st.attempts.back().worker;
  out->push_back(CancelAttempt{{g->spec.id, i, static_cast<uint32_t>(st.attempts.size()), g->submission}, worker});
  if (!g->resend_timer) {
    AddTimer({now + options_.cancel_resend, TimerKind::kCancelResend, g->seq}, &g->resend_timer);
  }
}

void Scheduler::MaybeFinish(Group* g, Time now, std::vector<Action>* out) {
  if (g->finished || g->final_count() != g->steps.size() || !g->active.empty()) return;
  g->finished = true;
  g->finished_at = now;
  if (g->stopping) {
    g->state = g->stop_state;
  } else {
    g->state = g->errors.empty() ? GroupState::kCompleted : GroupState::kFailed;
  }
  ClearTimer(&g->deadline_timer);
  ClearTimer(&g->resend_timer);
  AddTimer({now + options_.retention, TimerKind::kRetention, g->seq}, &g->retention_timer);
  finished_seqs_.push_back(g->seq);
  detailed_seqs_.push_back(g->seq);
  g->pending.clear();
  g->retry_ready.clear();
  Unpark(g);
  ++observations_.groups_ended[static_cast<int>(g->state)];
  Journal<GroupEnded>(g->submission, g->state, UnixMs(now));
  out->push_back(GroupFinished{g->spec.id, g->state, g->submission});
}

// ---- Steps and attempts ---------------------------------------------------

void Scheduler::SetState(Group* g, uint32_t i, StepState s) {
  StepRt& st = g->steps[i];
  --g->counts[static_cast<int>(st.state)];
  ++g->counts[static_cast<int>(s)];
  st.state = s;
  if (common::IsFinal(s)) Journal<StepEnded>(g->submission, i, s, st.error, UnixMs(event_time_));
}

void Scheduler::ReleaseSlot(Group* g, uint32_t i) {
  StepRt& st = g->steps[i];
  if (!st.holds_slot) return;
  st.holds_slot = false;
  --g->in_progress;
  Enqueue(g);
}

void Scheduler::CloseAttempt(Group* g, uint32_t i, AttemptStatus status, Time now) {
  StepRt& st = g->steps[i];
  common::AttemptRecord& rec = st.attempts.back();
  rec.status = status;
  rec.finished_at = now;
  st.attempt_active = false;
  ClearTimer(&st.timer);
  g->active.erase(i);
  auto wit = workers_by_seq_.find(st.worker);
  if (wit != workers_by_seq_.end()) {
    wit->second->attempts.erase({g->seq, i, rec.attempt});
    AdjustRunning(wit->second, -1);
  }
  st.worker = 0;
}

Duration Scheduler::BackoffDelay(const common::RetryPolicy& p, uint32_t attempts_made) {
  // 0 x pow(...) is NaN once the power overflows to infinity: no backoff
  // stays no backoff however many attempts came before.
  double delay = 0;
  if (p.backoff_s > 0) {
    delay = p.backoff_s * std::pow(p.backoff_multiplier, attempts_made > 0 ? attempts_made - 1 : 0);
    if (!(delay <= p.max_backoff_s)) delay = p.max_backoff_s;
  }
  if (p.jitter > 0) {
    double u = static_cast<double>(rng_() >> 11) * 0x1.0p-53;  // [0, 1), same on every platform
    delay *= 1.0 + p.jitter * (2.0 * u - 1.0);
  }
  return common::SecondsToDuration(delay);
}

void Scheduler::Decide(Group* g, uint32_t i, AttemptStatus status, const std::string& error, Time now,
                       std::vector<Action>* out, Time retry_not_before) {
  StepRt& st = g->steps[i];
  const bool cancel_asked = st.cancel_requested;
  st.cancel_requested = false;
  if (status == AttemptStatus::kSucceeded) {
    st.error.clear();
    SetState(g, i, StepState::kCompleted);
    ReleaseSlot(g, i);
  } else if (status == AttemptStatus::kCancelled || (cancel_asked && status != AttemptStatus::kFailed)) {
    // Cancelled, or gone (lost, unresponsive) while being cancelled: either
    // way it is stopped as asked. A cancelled step is never retried.
    if (st.error.empty()) st.error = "cancelled by user";
    SetState(g, i, StepState::kCancelled);
    ReleaseSlot(g, i);
  } else {
    common::FailureKind kind = status == AttemptStatus::kTimedOut ? common::FailureKind::kTimeout
                               : status == AttemptStatus::kWorkerLost ? common::FailureKind::kWorkerLost
                                                                      : common::FailureKind::kExit;
    const common::RetryPolicy& policy = common::EffectiveRetry(g->spec, g->spec.steps[i]);
    int64_t limit = policy.max_attempts;
    bool allowed = policy.RetriesOn(kind);
    if (kind == common::FailureKind::kWorkerLost && (allowed || !policy.retry_on_given)) {
      allowed = true;
      limit = std::max<int64_t>(limit, options_.worker_lost_attempts);
    }
    bool retry = allowed && !g->stopping && !cancel_asked && static_cast<int64_t>(st.attempts.size()) < limit;
    if (retry) {
      ++(kind == common::FailureKind::kTimeout      ? observations_.retries_timeout
         : kind == common::FailureKind::kWorkerLost ? observations_.retries_worker_lost
                                                    : observations_.retries_exit);
      SetState(g, i, StepState::kRetrying);
      Duration delay = kind == common::FailureKind::kWorkerLost
                           ? std::max(Duration::zero(), retry_not_before - now)
                           : BackoffDelay(policy, static_cast<uint32_t>(st.attempts.size()));
      if (delay <= Duration::zero()) {
        g->retry_ready[g->spec.steps[i].agent].push_back(i);
        ++g->retry_ready_count;
        Enqueue(g);
      } else {
        g->backoff.insert(i);
        AddTimer({now + delay, TimerKind::kBackoff, g->seq, i}, &st.timer);
      }
    } else {
      FailStep(g, i, error, now, out);
    }
  }
  MaybeFinish(g, now, out);
}

void Scheduler::FailStep(Group* g, uint32_t i, std::string error, Time now, std::vector<Action>* out) {
  StepRt& st = g->steps[i];
  st.error = error;
  SetState(g, i, StepState::kFailed);
  ReleaseSlot(g, i);
  AddError(g, g->spec.steps[i].id, std::move(error));
  if (g->spec.on_failure == common::OnFailure::kCancel) StopGroup(g, GroupState::kFailed, now, out);
}

void Scheduler::LoseAttempt(Group* g, uint32_t i, const std::string& why, Time now, std::vector<Action>* out,
                            Time retry_not_before) {
  CloseAttempt(g, i, AttemptStatus::kWorkerLost, now);
  g->steps[i].attempts.back().error = why;
  JournalAttemptEnd(*g, i, nullptr);
  Decide(g, i, AttemptStatus::kWorkerLost, why, now, out, retry_not_before);
}

void Scheduler::RetryNow(Group* g, uint32_t i) {
  ClearTimer(&g->steps[i].timer);
  g->backoff.erase(i);
  g->retry_ready[g->spec.steps[i].agent].push_back(i);
  ++g->retry_ready_count;
  Enqueue(g);
}

Status Scheduler::Started(const StepStarted& e, Time now, std::vector<Action>* out) {
  event_time_ = now;
  Group* g = FindGroup(e.ref.group);
  if (g && g->submission != e.ref.submission) g = nullptr;
  StepRt* st = g && e.ref.step < g->steps.size() ? &g->steps[e.ref.step] : nullptr;
  if (!st || !st->attempt_active || st->attempts.size() != e.ref.attempt ||
      st->attempts.back().worker != e.worker) {
    // Fencing: whatever runs this attempt is not the current one. Stop it.
    ++stale_reports_;
    out->push_back(CancelAttempt{e.ref, e.worker});
    return Status::Ok();
  }
  common::AttemptRecord& rec = st->attempts.back();
  if (!rec.started_at) {
    rec.started_at = now;
    observations_.dispatch_to_start.Observe(common::DurationToSeconds(now - rec.dispatched_at));
  }
  return Status::Ok();
}

Status Scheduler::Finished(const StepFinished& e, Time now, std::vector<Action>* out) {
  event_time_ = now;
  Group* g = FindGroup(e.ref.group);
  if (g && g->submission != e.ref.submission) g = nullptr;
  StepRt* st = g && e.ref.step < g->steps.size() ? &g->steps[e.ref.step] : nullptr;
  if (!st || !st->attempt_active || st->attempts.size() != e.ref.attempt ||
      st->attempts.back().worker != e.worker) {
    ++stale_reports_;  // a late report for an attempt already decided: ignored
    // ... except that a stale attempt's slot is free again.
    const std::tuple<uint64_t, uint32_t, uint32_t> key{e.ref.submission, e.ref.step, e.ref.attempt};
    bool freed = ReleaseFencedAttempt(e.worker, e.ref);
    if (Worker* w = FindWorker(e.worker); w && w->stale.erase(key)) {
      w->reported.insert(key);
      AdjustRunning(w, -1);
      freed = true;
    }
    if (freed) Pump(now, out);
    return Status::Ok();
  }
  const common::AttemptOutcome& o = e.outcome;
  AttemptStatus status;
  std::string error;
  if (o.lost) {
    // Stopped (or never started) by a worker that lost us for its lease:
    // as if the worker were lost, though it is known dead already.
    status = st->cancel_requested ? AttemptStatus::kCancelled : AttemptStatus::kWorkerLost;
    error = o.error.empty() ? "the worker's lease ran out" : o.error;
  } else if (o.cancelled && st->cancel_requested) {
    status = AttemptStatus::kCancelled;
  } else if (o.cancelled) {
    status = AttemptStatus::kFailed;
    error = "the worker stopped it without a cancel from this coordinator" + (o.error.empty() ? "" : ": " + o.error);
  } else if (o.timed_out) {
    status = AttemptStatus::kTimedOut;
    std::optional<double> t = common::EffectiveTimeout(g->spec, g->spec.steps[e.ref.step]);
    error = t ? "timed out after " + SecondsText(common::SecondsToDuration(*t)) : "timed out";
  } else if (o.exit_code == 0 && !o.signal && o.error.empty()) {
    status = AttemptStatus::kSucceeded;
  } else {
    status = AttemptStatus::kFailed;
    if (!o.error.empty()) {
      error = o.error;
    } else if (o.signal) {
      error = SignalText(*o.signal);
    } else if (o.exit_code) {
      error = "exited with code " + std::to_string(*o.exit_code);
    } else {
      error = "ended without an exit code";
    }
  }
  if (status == AttemptStatus::kCancelled && st->cancel_requested) {
    observations_.cancel_latency.Observe(common::DurationToSeconds(now - st->cancel_at));
  }
  CloseAttempt(g, e.ref.step, status, now);
  common::AttemptRecord& rec = st->attempts.back();
  if (!rec.started_at) rec.started_at = rec.dispatched_at;
  observations_.run_time.Observe(common::DurationToSeconds(now - *rec.started_at));
  rec.exit_code = o.exit_code;
  rec.signal = o.signal;
  rec.error = error;
  rec.stdout_tail = o.stdout_tail;
  rec.stderr_tail = o.stderr_tail;
  JournalAttemptEnd(*g, e.ref.step, &o);
  Decide(g, e.ref.step, status, error, now, out);
  HoldOutput(g, rec.stdout_tail.size() + rec.stderr_tail.size());
  Pump(now, out);
  return Status::Ok();
}

}  // namespace cohort::coordinator
