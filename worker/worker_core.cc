#include "worker/worker_core.h"

#include <algorithm>

#include "common/codec.h"

#include "worker/worker_core_internal.h"

namespace cohort::worker {

using common::Time;
using internal::Named;
using internal::Note;

namespace {

constexpr size_t kMaxRememberedCancels = 10000;
// Numbered messages awaiting an acknowledgement; an ack of an older one,
// forgotten, renews nothing.
constexpr size_t kMaxUnacked = 1024;
// Between the steps' death and the lease's end: clocks on two hosts run at
// slightly different rates, and reaping takes a moment.
constexpr common::Duration kLeaseMargin = std::chrono::seconds(1);

// Small actions are built in place (emplace_back with in_place_type): GCC 12
// takes a temporary variant holding one for uninitialized memory (a false
// -Wmaybe-uninitialized, fatal under -Werror).

int64_t MsCount(common::Duration d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); }

std::string Ms(common::Duration d) { return std::to_string(MsCount(d)); }

}  // namespace

std::string ReachableEndpoint(const std::string& advertised, const std::string& coordinator) {
  auto host_of = [](const std::string& ep, size_t* begin, size_t* end) {
    size_t scheme = ep.find("://");
    if (scheme == std::string::npos) return false;
    *begin = scheme + 3;
    *end = ep.rfind(':');
    return *end != std::string::npos && *end > *begin;
  };
  size_t b = 0, e = 0, cb = 0, ce = 0;
  if (advertised.rfind("tcp://", 0) != 0 || !host_of(advertised, &b, &e)) return advertised;
  std::string host = advertised.substr(b, e - b);
  if (host != "0.0.0.0" && host != "*" && host != "[::]" && host != "::") return advertised;
  if (coordinator.rfind("tcp://", 0) != 0 || !host_of(coordinator, &cb, &ce)) return advertised;
  return advertised.substr(0, b) + coordinator.substr(cb, ce - cb) + advertised.substr(e);
}

WorkerCore::WorkerCore(WorkerCoreOptions options)
    : options_(std::move(options)),
      heartbeat_ms_(options_.heartbeat_ms),
      liveness_(options_.liveness),
      register_every_(std::chrono::milliseconds(options_.heartbeat_ms)) {
  // A REGISTER listing more than kMaxArgs attempts would be refused, and the
  // worker never registered.
  const size_t slots = std::min(static_cast<size_t>(std::max<int64_t>(options_.slots, 0)), common::kMaxArgs - 1);
  options_.max_unconfirmed = std::min(options_.max_unconfirmed, common::kMaxArgs - slots);
  if (options_.coordinators.empty()) options_.coordinators.push_back(options_.coordinator);
  current_ = options_.coordinators.front();
}

void WorkerCore::Connect(Time now, std::vector<Action>* out) {
  registered_ = false;
  last_heard_ = now;
  SendRegister(now, out);
}

void WorkerCore::SendRegister(Time now, std::vector<Action>* out) {
  common::RegisterMsg reg;
  reg.name = options_.name;
  reg.slots = static_cast<uint32_t>(options_.slots);
  reg.agents = options_.agents;
  reg.version = options_.version;
  reg.instance = options_.instance;
  reg.seq = NextSeq(now);
  reg.kill_grace_ms = static_cast<uint32_t>(
      std::clamp<int64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(options_.kill_grace).count(), 0,
                          common::kMaxKillGraceMs));
  last_register_ = now;
  reg.running = Holding();
  reg.draining = draining_;
  const size_t running = reg.running.size();
  out->push_back(SendToCoordinator{std::move(reg)});
  next_heartbeat_ = now + heartbeat();
  out->push_back(Note(Notice::Level::kInfo, "registering",
                      {{"coordinator", current_},
                       {"name", options_.name},
                       {"slots", options_.slots},
                       {"running", running}}));
}

void WorkerCore::SendHeartbeat(Time now, std::vector<Action>* out) {
  common::HeartbeatMsg beat{Holding()};
  beat.seq = NextSeq(now);
  beat.draining = draining_;
  out->push_back(SendToCoordinator{std::move(beat)});
}

std::vector<common::AttemptId> WorkerCore::Holding() const {
  std::vector<common::AttemptId> held;
  held.reserve(attempts_.size() + unconfirmed_.size());
  for (const auto& [key, a] : attempts_) held.push_back(a.id);
  // Results not yet confirmed are listed as if still running, so that the
  // coordinator does not take them for lost before their FINISHED (sent
  // again after a WELCOME, and until confirmed) reaches it.
  for (const auto& [seq, u] : unconfirmed_) held.push_back(u.id);
  return held;
}

uint64_t WorkerCore::NextSeq(Time now) {
  if (unacked_.size() >= kMaxUnacked) unacked_.pop_front();
  unacked_.emplace_back(next_seq_, now);
  return next_seq_++;
}

void WorkerCore::Renew(uint64_t ack) {
  // Unknown (never sent, or forgotten): renews nothing, and keeps the rest.
  if (ack == 0 || unacked_.empty() || ack < unacked_.front().first || ack > unacked_.back().first) return;
  while (unacked_.front().first < ack) unacked_.pop_front();  // stops at the back at the latest
  if (unacked_.front().first != ack) return;  // a number we never used
  lease_from_ = std::max(lease_from_.value_or(unacked_.front().second), unacked_.front().second);
  unacked_.pop_front();
}

Time WorkerCore::LeaseStopAt() const {
  if (!lease_from_) return Time{};  // never acknowledged: run out at once
  // The steps get SIGTERM here and SIGKILL a kill grace later, so they are
  // dead a margin before the lease ends; with a kill grace too long for the
  // lease, at half of it (OnWelcome warns of that).
  const common::Duration before = options_.kill_grace + kLeaseMargin;
  return *lease_from_ + std::max(lease_ - before, lease_ / 2);
}

Time WorkerCore::NextDeadline() const {
  Time until = next_heartbeat_;
  // Once the lease has stopped every attempt there is nothing more to do at
  // LeaseStopAt, which stays in the past: waking for it would spin.
  const bool unstopped = std::any_of(attempts_.begin(), attempts_.end(),
                                     [](const auto& entry) { return !entry.second.lease_stopped; });
  if (lease_ > common::Duration::zero() && unstopped) until = std::min(until, LeaseStopAt());
  if (registered_) until = std::min(until, last_heard_ + heartbeat() * liveness_);
  if (registered_ && !sends_.empty()) until = std::min(until, sends_.front().first + heartbeat() * liveness_);
  if (registered_ && !spill_queue_.empty()) until = std::min(until, spill_window_ + heartbeat());
  if (draining_ && !stopping_) until = std::min(until, drain_until_);
  return until;
}

void WorkerCore::Tick(Time now, std::vector<Action>* out) {
  if (draining_ && !stopping_) {
    DrainTick(now, out);
    if (stopping_) return;
  }
  if (LeaseRunOut(now)) StopForLease(now, out);
  if (registered_ && now - last_heard_ >= heartbeat() * liveness_) {
    // The coordinator restarted, is gone, or is busy. The socket is kept:
    // ZeroMQ re-establishes a broken connection by itself (with backoff),
    // and the ZMTP heartbeats notice a dead one. Closing it would only make
    // a busy coordinator lose us: we register again until it answers.
    out->push_back(Note(Notice::Level::kWarn, "coordinator_silent",
                        {{"coordinator", current_}, {"silent-ms", MsCount(now - last_heard_)}}));
    registered_ = false;
  }
  if (!registered_) MoveOnIfSilent(now, out);
  // Unregistered, results wait for the WELCOME, which sends them all.
  if (registered_) {
    ResendDue(now, out);
    FlushSpilled(now, out);
  }
  if (now < next_heartbeat_) return;
  if (registered_) {
    // Every interval, however many other messages went out: the list is how
    // the coordinator learns of a RUN that never arrived (ZeroMQ drops one
    // silently at the high-water mark).
    SendHeartbeat(now, out);
    next_heartbeat_ = now + heartbeat();
  } else {
    SendRegister(now, out);
    // Unanswered REGISTERs queue on a connection that is up but not read
    // (a stuck coordinator): ask less and less often.
    next_heartbeat_ = now + register_every_;
    register_every_ = std::min(register_every_ * 2, options_.max_reconnect_backoff);
    // Steps running under a lease: a coordinator back from a restart must
    // hear from us well before the lease stops them.
    if (lease_ > common::Duration::zero() && !attempts_.empty()) {
      next_heartbeat_ = std::min(next_heartbeat_, now + std::max(heartbeat(), lease_ / 8));
    }
  }
}

void WorkerCore::OnCoordinator(const common::Message& msg, Time now, std::vector<Action>* out) {
  uint64_t epoch = 0;
  std::visit(
      [&epoch](const auto& m) {
        if constexpr (requires { m.epoch; }) epoch = m.epoch;
      },
      msg);
  if (FromOldLeader(epoch, common::CommandName(msg), out)) return;
  last_heard_ = now;
  if (auto* w = std::get_if<common::WelcomeMsg>(&msg)) {
    OnWelcome(*w, now, out);
  } else if (auto* run = std::get_if<common::RunMsg>(&msg)) {
    OnRun(*run, now, out);
  } else if (auto* c = std::get_if<common::CancelAttemptMsg>(&msg)) {
    OnCancelAttempt(c->id, now, out);
  } else if (auto* g = std::get_if<common::CancelGroupMsg>(&msg)) {
    OnCancelGroup(*g, now, out);
  } else if (auto* r = std::get_if<common::ReregisterMsg>(&msg)) {
    OnReregister(*r, now, out);
  } else if (auto* c = std::get_if<common::ConfirmMsg>(&msg)) {
    OnConfirm(*c, out);
  } else if (auto* h = std::get_if<common::HeartbeatMsg>(&msg)) {
    Renew(h->ack);
  }
}

void WorkerCore::StopForLease(Time now, std::vector<Action>* out) {
  int n = 0;
  for (auto& [key, a] : attempts_) {
    if (a.lease_stopped) continue;
    a.lease_stopped = true;
    out->emplace_back(std::in_place_type<CancelStep>, key);
    ++n;
  }
  if (n == 0) return;
  out->push_back(Note(Notice::Level::kWarn, "lease_expired",
                      {{"coordinator", current_},
                       {"lease-ms", MsCount(lease_)},
                       lease_from_ ? NoticeField{"acknowledged-ms-ago", MsCount(now - *lease_from_)}
                                   : NoticeField{"acknowledged-ms-ago", "never"},
                       {"stopping", n}}));
}

void WorkerCore::OnBroadcast(const common::Message& msg, Time now, std::vector<Action>* out) {
  auto* g = std::get_if<common::CancelGroupMsg>(&msg);
  if (g && !FromOldLeader(g->epoch, "CANCEL_GROUP", out)) OnCancelGroup(*g, now, out);
}

void WorkerCore::OnWelcome(const common::WelcomeMsg& w, Time now, std::vector<Action>* out) {
  const bool first = !registered_;
  registered_ = true;
  register_every_ = heartbeat();
  if (w.heartbeat_ms > 0) heartbeat_ms_ = static_cast<int>(w.heartbeat_ms);
  if (w.liveness > 0) liveness_ = static_cast<int>(w.liveness);
  const common::Duration lease = std::chrono::milliseconds(w.lease_ms);
  if (lease != lease_ && lease > common::Duration::zero() && options_.kill_grace + kLeaseMargin > lease / 2) {
    out->push_back(Note(Notice::Level::kWarn, "kill_grace_too_long_for_lease",
                        {{"kill-grace-ms", MsCount(options_.kill_grace)},
                         {"lease-ms", MsCount(lease)},
                         {"hint", "steps may outlive the lease by up to the kill grace; keep --kill-grace-ms "
                                  "under half the coordinator's --worker-lease minus 1 s"}}));
  }
  lease_ = lease;
  Renew(w.ack);
  // While unregistered the next REGISTER may have been a backoff away; from
  // now on the coordinator counts our silence by its heartbeat.
  next_heartbeat_ = std::min(next_heartbeat_, now + heartbeat());
  std::string endpoint = ReachableEndpoint(w.cancel_endpoint, current_);
  if (subscribed_ != endpoint) {
    out->push_back(Subscribe{endpoint});
    subscribed_ = endpoint;
  }
  if (!first) return;
  // The memory of cancels guards against a RUN racing its group's broadcast,
  // which cannot outlast a registration: the coordinator places nothing of a
  // cancelled group, and what it sent before reaches us ahead of its
  // WELCOME. Starting afresh spares a coordinator that lost its store (and
  // numbers submissions from 1 again) refusals of its new groups.
  cancelled_.clear();
  cancelled_order_.clear();
  out->push_back(Note(Notice::Level::kInfo, "registered",
                      {{"heartbeat-ms", heartbeat_ms_},
                       {"liveness", liveness_},
                       {"cancel", endpoint}}));
  // Results the coordinator may have missed while we were apart; their
  // resend schedule starts afresh from here.
  sends_.clear();
  for (const auto& [seq, u] : unconfirmed_) SendResult(seq, now, out);
  FlushSpilled(now, out);
}

void WorkerCore::OnRun(const common::RunMsg& run, Time now, std::vector<Action>* out) {
  // Both lost, so that the coordinator runs them elsewhere as a lost
  // worker's steps.
  if (stopping_) {
    FailRun(run.id, "is shutting down", now, out, /*lost=*/true);
    return;
  }
  if (LeaseRunOut(now)) {
    // A RUN sent before a partition and delivered after it: the coordinator
    // may already run this step elsewhere.
    out->push_back(Note(Notice::Level::kWarn, "run_after_lease", Named(run.id, run.step_id)));
    FailRun(run.id, "did not start it: its lease had run out when the RUN arrived", now, out, /*lost=*/true);
    return;
  }
  if (ResendResults(KeyOf(run.id), now, out)) {
    // This very attempt ran here already: the answer is its result, not a
    // second run under the same fencing token.
    out->push_back(Note(Notice::Level::kInfo, "run_repeated", Named(run.id, run.step_id)));
    return;
  }
  if (cancelled_.count(run.id.submission)) {
    common::FinishedMsg f;
    f.id = run.id;
    f.cancelled = true;
    f.error = "group was cancelled before this step started";
    f.started_ms = f.finished_ms = options_.wall.ToUnixMs(now);
    SendFinished(std::move(f), now, out);
    return;
  }
  if (key_of_.count(KeyOf(run.id))) {
    // Only a coordinator that restarted and reused a submission can send
    // this: the process running under that id belongs to the old one.
    // Refuse loudly.
    out->push_back(Note(Notice::Level::kWarn, "run_collision", Named(run.id, run.step_id)));
    FailRun(run.id, "still runs an attempt with the same id from before a coordinator restart", now, out);
    return;
  }
  if (attempts_.size() >= static_cast<size_t>(options_.slots)) {
    // The coordinator never sends more than our slots (it counts attempts
    // being stopped too), so this is a confused or hostile peer: the host is
    // protected, and the refusal is a result it can act on, not silence.
    out->push_back(Note(Notice::Level::kWarn, "run_refused",
                        {{"group", run.id.group},
                         {"step", run.step_id},
                         {"running", attempts_.size()}}));
    FailRun(run.id,
            "refused the step: it already runs " + std::to_string(attempts_.size()) + " steps, all of its " +
                std::to_string(options_.slots) + " slots",
            now, out);
    return;
  }
  RunRequest req;
  req.key = next_key_++;
  req.argv = run.argv;
  req.shell = run.shell;
  req.env = run.env;
  req.env.emplace_back(kWorkerEnv, options_.name);
  if (!options_.life.empty()) req.env.emplace_back(kLifeEnv, options_.life);  // finds leftovers after a crash
  req.env.emplace_back(kGroupEnv, run.id.group);
  req.env.emplace_back(kStepEnv, run.step_id);
  req.env.emplace_back(kAttemptEnv, std::to_string(run.id.attempt));
  req.cwd = run.cwd;
  if (run.timeout_ms > 0) req.timeout = std::chrono::milliseconds(run.timeout_ms);
  // Held before the loop reports the outcome, so a later RUN counts this slot;
  // a step that does not start is released then.
  attempts_[req.key] = {run.id, run.step_id};
  key_of_[KeyOf(run.id)] = req.key;
  out->push_back(StartStep{std::move(req), run.client});
}

void WorkerCore::StepStarted(uint64_t key, Time, std::vector<Action>* out) {
  auto it = attempts_.find(key);
  if (it == attempts_.end()) return;
  const Attempt& a = it->second;
  out->push_back(Note(Notice::Level::kDebug, "started", Named(a.id, a.step_id)));
  out->push_back(SendToCoordinator{common::StartedMsg{a.id}});
}

void WorkerCore::StepNotStarted(uint64_t key, StartFailure why, const std::string& error, Time now,
                                std::vector<Action>* out) {
  Attempt a;
  if (!Release(key, &a)) return;
  const bool policy = why == StartFailure::kRefusedByPolicy;
  out->push_back(Note(Notice::Level::kWarn, policy ? "step_refused" : "start_failed",
                      {{"group", a.id.group}, {"step", a.step_id}, {"error", error}}));
  FailRun(a.id, policy ? error : "could not start the step: " + error, now, out);
}

void WorkerCore::StepEnded(const RunResult& r, Time now, std::vector<Action>* out) {
  Attempt a;
  if (!Release(r.key, &a)) return;
  common::FinishedMsg f;
  f.id = a.id;
  if (r.kind == RunResult::Kind::kExited) f.exit_code = r.exit_code;
  if (r.kind == RunResult::Kind::kSignaled) f.signal = r.signal;
  f.timed_out = r.timed_out;
  f.cancelled = r.cancelled && !r.timed_out;
  f.escalated = r.escalated_to_kill;
  f.error = r.error;
  if (r.kind == RunResult::Kind::kLost && f.error.empty()) f.error = "the step's exit status was lost";
  if (a.lease_stopped && r.cancelled) {
    f.cancelled = false;
    f.lost = true;
    f.error = "worker " + options_.name + " stopped it: no word from the coordinator acknowledged within its lease of " +
              Ms(lease_) + " ms";
  }
  f.stdout_tail = r.stdout_tail;
  f.stderr_tail = r.stderr_tail;
  f.stdout_bytes = r.stdout_bytes;
  f.stderr_bytes = r.stderr_bytes;
  f.started_ms = options_.wall.ToUnixMs(r.start);
  f.finished_ms = options_.wall.ToUnixMs(r.end);
  auto fields = Named(a.id, a.step_id);
  fields.emplace_back("result", r.Summary());
  out->push_back(Note(Notice::Level::kInfo, "finished", std::move(fields)));
  SendFinished(std::move(f), now, out);
}

void WorkerCore::OnCancelAttempt(const common::AttemptId& id, Time now, std::vector<Action>* out) {
  auto it = key_of_.find(KeyOf(id));
  if (it != key_of_.end()) {
    out->push_back(Note(Notice::Level::kInfo, "cancel", Named(id, std::to_string(id.step))));
    out->emplace_back(std::in_place_type<CancelStep>, it->second);
    return;
  }
  // Already over: the coordinator may have missed the report; send it again.
  ResendResults(KeyOf(id), now, out);
}

void WorkerCore::OnCancelGroup(const common::CancelGroupMsg& g, Time, std::vector<Action>* out) {
  RememberCancelled(g.submission);
  int n = 0;
  for (auto it = key_of_.lower_bound({g.submission, 0, 0});
       it != key_of_.end() && std::get<0>(it->first) == g.submission; ++it) {
    out->emplace_back(std::in_place_type<CancelStep>, it->second);
    ++n;
  }
  out->push_back(Note(Notice::Level::kInfo, "group_cancelled",
                      {{"group", g.group},
                       {"submission", g.submission},
                       {"running", n}}));
}

void WorkerCore::OnReregister(const common::ReregisterMsg& r, Time now, std::vector<Action>* out) {
  if (!r.leader.empty() && r.leader != current_) {
    MoveTo(r.leader, r.reason, now, out);
    return;
  }
  // A standby that knows no leader (a takeover under way, or it cannot
  // reach the database): another in the list may lead.
  if (r.reason.starts_with("standby: ") && options_.coordinators.size() > 1 &&
      now - moved_at_ >= heartbeat() * liveness_) {
    MoveTo(options_.coordinators[(at_ + 1) % options_.coordinators.size()], r.reason, now, out);
    return;
  }
  out->push_back(Note(Notice::Level::kWarn, "register_again", {{"reason", r.reason}}));
  registered_ = false;
  // At most once per heartbeat: a refusal must not become a tight loop.
  if (now - last_register_ >= heartbeat()) SendRegister(now, out);
}

void WorkerCore::Shutdown(Time now, std::vector<Action>* out) {
  out->push_back(Note(Notice::Level::kInfo, "stopping", {{"running", attempts_.size()}}));
  // Steps stopping here take up to a kill grace to die: meanwhile the
  // coordinator must not send more, each of which would come back lost.
  if (!draining_) {
    draining_ = true;
    if (registered_) SendHeartbeat(now, out);
  }
  stopping_ = true;
  for (const auto& [key, a] : attempts_) out->emplace_back(std::in_place_type<CancelStep>, key);
  out->emplace_back(std::in_place_type<AwaitSteps>, now + options_.kill_grace + std::chrono::seconds(2));
}

void WorkerCore::StepsAwaited(bool all_stopped, Time, std::vector<Action>* out) {
  if (all_stopped) {
    // Goodbye once they are dead: the coordinator retries them elsewhere at
    // once, never beside a copy still being killed.
    out->push_back(SendToCoordinator{common::ByeMsg{}});
    return;
  }
  out->push_back(Note(Notice::Level::kWarn, "steps_outlived_stop",
                      {{"hint", "no BYE sent: the coordinator runs this worker's steps elsewhere only once its "
                                "lease has run out"}}));
}

void WorkerCore::FailRun(const common::AttemptId& id, const std::string& why, Time now, std::vector<Action>* out,
                         bool lost) {
  common::FinishedMsg f;
  f.id = id;
  f.lost = lost;
  f.error = "worker " + options_.name + " " + why;
  f.started_ms = f.finished_ms = options_.wall.ToUnixMs(now);
  SendFinished(std::move(f), now, out);
}

void WorkerCore::RememberCancelled(uint64_t submission) {
  if (!cancelled_.insert(submission).second) return;
  cancelled_order_.push_back(submission);
  if (cancelled_order_.size() > kMaxRememberedCancels) {
    cancelled_.erase(cancelled_order_.front());
    cancelled_order_.pop_front();
  }
}

bool WorkerCore::Release(uint64_t key, Attempt* attempt) {
  auto it = attempts_.find(key);
  if (it == attempts_.end()) return false;
  *attempt = std::move(it->second);
  attempts_.erase(it);
  key_of_.erase(KeyOf(attempt->id));
  return true;
}

}  // namespace cohort::worker
