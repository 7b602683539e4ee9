// The Scheduler's restore: groups rebuilt from what a store kept, and the
// reattach of attempts that were running when the coordinator stopped. A
// restored group is the group the core had when the records were committed,
// with each timer at its stored wall-clock time; what happened since (a step
// that ended on a worker while the coordinator was away) arrives afterwards
// as ordinary events.
#include <algorithm>

#include "coordinator/scheduler.h"
#include "coordinator/scheduler_text.h"

namespace cohort::coordinator {

using common::AttemptStatus;
using common::GroupState;
using common::Status;
using common::StepState;
using common::Time;
using internal::Quote;
using internal::SecondsText;
using internal::TimerKind;

namespace {

std::string Where(const LoadedGroup& lg) {
  return "stored group " + Quote(lg.accepted.group_id) + " (submission " + std::to_string(lg.accepted.submission) +
         ")";
}

// What the core relies on and a store does not check: attempts numbered
// 1, 2, ... and only the last one possibly running.
Status CheckSteps(const LoadedGroup& lg, size_t step_count) {
  for (size_t k = 0; k < lg.errors.size(); ++k) {
    if (lg.errors[k].seq != k) {
      return Status::Corruption(Where(lg) + ": its errors are not numbered 0, 1, ... (entry " + std::to_string(k) +
                                " has " + std::to_string(lg.errors[k].seq) + ")");
    }
  }
  std::vector<bool> seen(step_count, false);
  size_t ended = 0;
  for (const LoadedStep& ls : lg.steps) {
    if (ls.step >= step_count || seen[ls.step]) {
      return Status::Corruption(Where(lg) + ": step " + std::to_string(ls.step) + " is past its " +
                                std::to_string(step_count) + " steps or listed twice");
    }
    seen[ls.step] = true;
    ended += ls.ended ? 1 : 0;
    for (size_t k = 0; k < ls.attempts.size(); ++k) {
      const LoadedAttempt& la = ls.attempts[k];
      if (la.started.attempt != k + 1) {
        return Status::Corruption(Where(lg) + ": step " + std::to_string(ls.step) + " has attempt " +
                                  std::to_string(la.started.attempt) + " where " + std::to_string(k + 1) +
                                  " was expected");
      }
      if (!la.ended && (k + 1 < ls.attempts.size() || ls.ended)) {
        return Status::Corruption(Where(lg) + ": step " + std::to_string(ls.step) + " attempt " +
                                  std::to_string(k + 1) + " never ended, yet the step went on");
      }
    }
  }
  if (lg.ended && ended != step_count) {
    return Status::Corruption(Where(lg) + ": the group ended but " + std::to_string(step_count - ended) +
                              " of its steps did not");
  }
  return Status::Ok();
}

common::AttemptRecord RestoredAttempt(const LoadedAttempt& la, const common::WallClock& wall) {
  common::AttemptRecord rec;
  rec.attempt = la.started.attempt;
  rec.worker = la.started.worker;
  rec.dispatched_at = wall.FromUnixMs(la.started.dispatched_unix_ms);
  if (!la.ended) return rec;  // kRunning
  const AttemptEnded& e = *la.ended;
  if (e.started_unix_ms) rec.started_at = wall.FromUnixMs(*e.started_unix_ms);
  rec.finished_at = wall.FromUnixMs(e.ended_unix_ms);
  rec.status = e.status;
  rec.exit_code = e.exit_code;
  rec.signal = e.signal;
  rec.error = e.error;
  rec.stdout_tail = e.stdout_tail;
  rec.stderr_tail = e.stderr_tail;
  return rec;
}

// A stored group's spec, parsed and checked against its records.
Status ParseStored(const LoadedGroup& lg, common::GroupSpec* spec) {
  Status s = common::ParseGroupSpecJson(lg.accepted.spec_json, spec, SIZE_MAX);
  if (s.ok() && spec->steps.size() != lg.accepted.step_count) {
    s = Status::Corruption("its spec has " + std::to_string(spec->steps.size()) + " steps, its record " +
                           std::to_string(lg.accepted.step_count));
  }
  if (!s.ok()) return Status::Corruption(Where(lg) + ": " + s.message());
  if (s = CheckSteps(lg, spec->steps.size()); !s.ok()) return s;
  spec->id = lg.accepted.group_id;
  return Status::Ok();
}

}  // namespace

Status Scheduler::Restore(const LoadedState& state, Time now, std::vector<Action>* out) {
  event_time_ = now;
  if (!groups_.empty() || !workers_.empty()) {
    return Status::FailedPrecondition("a store is restored only into a new core");
  }
  // Everything is checked before anything is built, so a bad store leaves
  // the core empty rather than half restored.
  std::vector<common::GroupSpec> specs(state.groups.size());
  std::set<std::string_view> ids;
  for (size_t k = 0; k < state.groups.size(); ++k) {
    const LoadedGroup& lg = state.groups[k];
    if (Status s = ParseStored(lg, &specs[k]); !s.ok()) return s;
    if (!ids.insert(lg.accepted.group_id).second) {
      return Status::Corruption(Where(lg) + ": its id is held by another stored group");
    }
  }
  for (const FinishedSummary& f : state.finished) {
    const std::string where =
        "stored group " + Quote(f.group_id) + " (submission " + std::to_string(f.submission) + ")";
    if (!ids.insert(f.group_id).second) return Status::Corruption(where + ": its id is held by another stored group");
    uint64_t ended = 0;
    for (uint64_t n : f.counts) ended += n;
    if (ended != f.step_count || f.ended.state == GroupState::kRunning) {
      return Status::Corruption(where + ": the group ended but " + std::to_string(f.step_count - ended) +
                                " of its steps did not");
    }
  }
  for (size_t k = 0; k < state.groups.size(); ++k) {
    if (Status s = RestoreGroup(state.groups[k], std::move(specs[k]), now); !s.ok()) return s;
    next_submission_ = std::max(next_submission_, state.groups[k].accepted.submission + 1);
  }
  for (const FinishedSummary& f : state.finished) {
    RestoreArchived(f);
    next_submission_ = std::max(next_submission_, f.submission + 1);
  }
  next_submission_ = std::max(next_submission_, state.max_submission + 1);
  for (const WorkerModeSet& m : state.worker_modes) {
    WorkerMode mode = WorkerMode::kReady;
    // The loader lets only cordoned and draining through.
    if (ParseWorkerMode(m.mode, &mode) && mode != WorkerMode::kReady) {
      modes_[m.worker] = {mode, options_.wall.FromUnixMs(m.unix_ms), m.who};
    }
  }
  // Retention forgets the oldest finished first.
  std::sort(finished_seqs_.begin(), finished_seqs_.end(), [&](uint64_t a, uint64_t b) {
    return *groups_by_seq_.at(a)->finished_at < *groups_by_seq_.at(b)->finished_at;
  });
  if (unclaimed_count_ > 0) {
    AddTimer({now + options_.worker_lease, TimerKind::kReattach}, &reattach_timer_);
  }
  Pump(now, out);
  return Status::Ok();
}

void Scheduler::RestoreArchived(const FinishedSummary& f) {
  auto owned = std::make_unique<Group>();
  Group* g = owned.get();
  g->seq = next_group_seq_++;
  g->submission = f.submission;
  g->client = f.client;
  g->spec.id = f.group_id;
  g->submitted_at = options_.wall.FromUnixMs(f.submitted_unix_ms);
  g->finished = true;
  g->archived = true;
  g->archived_steps = f.step_count;
  g->state = f.ended.state;
  g->finished_at = options_.wall.FromUnixMs(f.ended.unix_ms);
  for (int k = 0; k < common::kStepStateCount; ++k) g->counts[k] = f.counts[k];
  groups_by_seq_[g->seq] = g;
  groups_.emplace(g->spec.id, std::move(owned));
  AddTimer({*g->finished_at + options_.retention, TimerKind::kRetention, g->seq}, &g->retention_timer);
  finished_seqs_.push_back(g->seq);
}

std::optional<uint64_t> Scheduler::ArchivedSubmission(std::string_view id) const {
  const Group* g = FindGroup(id);
  if (!g || !g->archived) return std::nullopt;
  return g->submission;
}

Status Scheduler::Hydrate(const LoadedGroup& lg, Time now) {
  event_time_ = now;
  const Group* stub = FindGroup(lg.accepted.group_id);
  if (!stub || !stub->archived || stub->submission != lg.accepted.submission || !lg.ended) {
    return Status::Corruption(Where(lg) + " is not the finished group the coordinator holds under its id");
  }
  common::GroupSpec spec;
  if (Status s = ParseStored(lg, &spec); !s.ok()) return s;
  const uint64_t seq = stub->seq;
  // Read back whatever output running groups hold: only steps can refuse it.
  ArchiveForRoom(spec.steps.size());
  if (steps_held_ + spec.steps.size() > options_.max_steps) {
    return Status::Unavailable("the coordinator is full: its running groups hold " + std::to_string(steps_held_) +
                               " steps, and group " + Quote(lg.accepted.group_id) + "'s " +
                               std::to_string(spec.steps.size()) + " would pass --max-steps");
  }
  Group* g = groups_by_seq_.at(seq);
  ClearTimer(&g->retention_timer);
  groups_by_seq_.erase(seq);
  groups_.erase(g->spec.id);  // destroys the stub; its entry in finished_seqs_ stands for the new one
  return RestoreGroup(lg, std::move(spec), now, seq);
}

Status Scheduler::RestoreGroup(const LoadedGroup& lg, common::GroupSpec spec, Time now,
                               std::optional<uint64_t> seq) {
  if (groups_.count(spec.id)) return Status::Corruption(Where(lg) + ": its id is held by another stored group");
  auto owned = std::make_unique<Group>();
  Group* g = owned.get();
  g->seq = seq ? *seq : next_group_seq_++;
  g->submission = lg.accepted.submission;
  g->client = lg.accepted.client;
  g->spec = std::move(spec);
  g->submitted_at = options_.wall.FromUnixMs(lg.accepted.submitted_unix_ms);
  const size_t n = g->spec.steps.size();
  g->steps.resize(n);
  g->counts[static_cast<int>(StepState::kPending)] = n;
  if (g->spec.max_parallel) g->max_parallel = *g->spec.max_parallel;
  g->index.reserve(n);
  for (uint32_t i = 0; i < n; ++i) g->index.emplace(g->spec.steps[i].id, i);
  for (const ErrorAdded& e : lg.errors) g->errors.push_back({e.step_id, e.error});
  if (lg.stopped) {
    g->stopping = true;
    g->stop_state = lg.stopped->state;
  }
  std::set<uint32_t> cancel_asked;
  for (const CancelRequested& c : lg.cancels) {
    if (c.step) cancel_asked.insert(*c.step);
  }
  for (const LoadedStep& ls : lg.steps) RestoreStep(g, ls, cancel_asked.count(ls.step) > 0, now);
  for (const StepRt& st : g->steps) {
    for (const common::AttemptRecord& a : st.attempts) g->output_bytes += a.stdout_tail.size() + a.stderr_tail.size();
  }
  output_held_ += g->output_bytes;
  for (uint32_t i = 0; i < n; ++i) {
    if (g->steps[i].state == StepState::kPending) g->pending[g->spec.steps[i].agent].push_back(i);
  }
  groups_by_seq_[g->seq] = g;
  groups_.emplace(g->spec.id, std::move(owned));
  steps_held_ += n;
  if (lg.ended) {
    g->finished = true;
    g->state = lg.ended->state;
    g->finished_at = options_.wall.FromUnixMs(lg.ended->unix_ms);
    g->pending.clear();
    AddTimer({*g->finished_at + options_.retention, TimerKind::kRetention, g->seq}, &g->retention_timer);
    if (!seq) finished_seqs_.push_back(g->seq);
    detailed_seqs_.push_back(g->seq);
    return Status::Ok();
  }
  if (g->spec.deadline_s && !g->stopping) {
    AddTimer({g->submitted_at + common::SecondsToDuration(*g->spec.deadline_s), TimerKind::kGroupDeadline, g->seq},
             &g->deadline_timer);
  }
  Enqueue(g);
  return Status::Ok();
}

void Scheduler::RestoreStep(Group* g, const LoadedStep& ls, bool cancel_asked, Time now) {
  const uint32_t i = ls.step;
  StepRt& st = g->steps[i];
  for (const LoadedAttempt& la : ls.attempts) st.attempts.push_back(RestoredAttempt(la, options_.wall));
  StepState state = StepState::kPending;
  if (ls.ended) {
    state = ls.ended->state;
    st.error = ls.ended->error;
  } else if (!st.attempts.empty() && st.attempts.back().status == AttemptStatus::kRunning) {
    state = StepState::kRunning;
    st.attempt_active = true;
    g->active.insert(i);
    const common::AttemptRecord& rec = st.attempts.back();
    if (unclaimed_[rec.worker].insert({g->seq, i, rec.attempt}).second) ++unclaimed_count_;
    if (g->stopping || cancel_asked) {
      // Sent once its worker claims it (RequestAttemptCancel then).
      st.cancel_requested = true;
      st.cancel_at = now;
      if (g->stopping) st.error = StopReason(*g);
    }
  } else if (!st.attempts.empty()) {
    state = StepState::kRetrying;
    const common::AttemptRecord& rec = st.attempts.back();
    const common::RetryPolicy& policy = common::EffectiveRetry(g->spec, g->spec.steps[i]);
    // A lost worker's attempt may have run on until that worker's lease
    // ended, at most a lease after it was declared lost.
    const Time at = rec.status == AttemptStatus::kWorkerLost
                        ? rec.finished_at.value_or(now) + options_.worker_lease
                        : rec.finished_at.value_or(now) + BackoffDelay(policy, static_cast<uint32_t>(st.attempts.size()));
    if (at <= now) {
      g->retry_ready[g->spec.steps[i].agent].push_back(i);
      ++g->retry_ready_count;
    } else {
      g->backoff.insert(i);
      AddTimer({at, TimerKind::kBackoff, g->seq, i}, &st.timer);
    }
  }
  --g->counts[static_cast<int>(StepState::kPending)];
  ++g->counts[static_cast<int>(state)];
  st.state = state;
  if (state == StepState::kRunning || state == StepState::kRetrying) {
    st.holds_slot = true;
    ++g->in_progress;
  }
}

void Scheduler::ClaimRestored(Worker* w, const std::vector<AttemptRef>& running, Time now,
                              std::vector<Action>* out) {
  auto it = unclaimed_.find(w->name);
  if (it == unclaimed_.end()) return;
  std::set<internal::AttemptKey> recorded = std::move(it->second);
  unclaimed_.erase(it);
  unclaimed_count_ -= recorded.size();
  if (unclaimed_count_ == 0) ClearTimer(&reattach_timer_);
  for (const AttemptRef& ref : running) {
    Group* g = FindGroup(ref.group);
    if (!g || g->submission != ref.submission || !recorded.erase({g->seq, ref.step, ref.attempt})) continue;
    StepRt& st = g->steps[ref.step];
    st.worker = w->seq;
    w->attempts.insert({g->seq, ref.step, ref.attempt});
    AdjustRunning(w, +1);
    ArmBackstop(g, ref.step, now + options_.backstop_grace);
    if (st.cancel_requested) RequestAttemptCancel(g, ref.step, now, out);
  }
  // Its worker is back and does not run these: they ended unreported.
  for (const internal::AttemptKey& key : recorded) {
    LoseAttempt(groups_by_seq_.at(key.group), key.step,
                "worker " + Quote(w->name) + " came back after the coordinator restarted and no longer runs it",
                now, out);
  }
}

void Scheduler::LoseUnclaimed(Time now, std::vector<Action>* out) {
  std::map<std::string, std::set<internal::AttemptKey>, std::less<>> left;
  left.swap(unclaimed_);
  unclaimed_count_ = 0;
  for (const auto& [worker, keys] : left) {
    for (const internal::AttemptKey& key : keys) {
      LoseAttempt(groups_by_seq_.at(key.group), key.step,
                  "worker " + Quote(worker) + " did not register again within " +
                      SecondsText(options_.worker_lease) + " of the coordinator's restart",
                  now, out);
    }
  }
}

}  // namespace cohort::coordinator
