// The worker side of the Server: messages on the worker ROUTER turned into
// core events, the map between worker names and their routes, heartbeats,
// and the revocation of workers whose key left the allowlist.
#include "common/codec.h"
#include "coordinator/server.h"

namespace cohort::coordinator {

using common::Clock;
using common::LogDebug;
using common::LogInfo;
using common::LogWarn;
using common::Status;
using common::Time;

namespace {

constexpr const char* kKeyRevoked = "this worker's key is no longer authorized";

}  // namespace

void Server::SendToWorker(const std::string& worker, common::Message msg) {
  auto it = route_of_.find(worker);
  if (it == route_of_.end()) return;  // lost; its attempts are already decided
  Send(workers_, it->second, std::move(msg));
}

void Server::Refuse(const std::string& route, std::string reason) {
  common::ReregisterMsg refuse;
  refuse.reason = std::move(reason);
  Send(workers_, route, std::move(refuse));
}

void Server::KeepTails(const std::string& worker, const common::FinishedMsg& m, common::AttemptOutcome* o,
                       Time now) {
  const size_t cap = options_.max_tail_bytes;
  size_t cut = 0;
  for (auto [from, to] : {std::pair{&m.stdout_tail, &o->stdout_tail}, {&m.stderr_tail, &o->stderr_tail}}) {
    const size_t over = from->size() > cap ? from->size() - cap : 0;
    to->assign(*from, over);  // a tail: the end is what matters
    cut += over;
  }
  if (cut == 0) return;
  uint64_t suppressed = 0;
  if (refusal_log_.Allow(now, &suppressed)) {
    LogWarn("output_tail_cut").Kv("worker", worker).Kv("bytes-cut", cut).Kv("limit", cap)
        .Kv("suppressed", suppressed);
  }
}

void Server::Forget(const std::string& worker) {
  auto it = route_of_.find(worker);
  if (it == route_of_.end()) return;
  worker_at_.erase(it->second);
  route_of_.erase(it);
  acked_.erase(worker);
}

void Server::RevokeWorkers(Time now) {
  // Which keys are admitted is the allowlist's answer (ZapHandler); the core
  // hears of each revoked worker as an ordinary loss.
  for (const WorkerView& w : core_.Workers()) {
    // A grant narrowed by the reload binds workers registered before it, as
    // a removed key does.
    const WorkerGrant* grant = zap_->GrantOf(w.user_id);
    common::RegisterMsg as_joined;
    as_joined.name = w.name;
    as_joined.slots = static_cast<uint32_t>(w.slots);
    as_joined.agents = w.agents;
    Status within = grant ? CheckRegistration(*grant, as_joined) : Status::FailedPrecondition(kKeyRevoked);
    if (within.ok()) continue;
    LogWarn("worker_revoked")
        .Kv("worker", w.name)
        .Kv("key-name", UserIdName(w.user_id))
        .Kv("key", UserIdKey(w.user_id))
        .Kv("reason", within.message());
    auto route = route_of_.find(w.name);
    if (route != route_of_.end()) Refuse(route->second, within.message());
    // w comes from the core's own list of live workers.
    core_.Lose(w.name, grant ? "its key's grant no longer allows it: " + within.message()
                             : "its key was removed from the allowlist or replaced",
               now, &actions_)
        .IgnoreError();
    Forget(w.name);
  }
  Apply(now);
}

void Server::SendHeartbeats(Time now) {
  // An ack renews a worker's lease: only a leader may give it.
  if (!Leads()) return;
  for (const auto& [name, route] : route_of_) {
    common::HeartbeatMsg beat;
    beat.epoch = options_.epoch;
    if (auto it = acked_.find(name); it != acked_.end()) beat.ack = it->second;
    common::SendMessage(workers_, route, beat);
  }
  next_heartbeat_ = now + std::chrono::milliseconds(options_.heartbeat_ms);
}

void Server::OnWorker(const common::Envelope& env, Time now) {
  common::Message msg;
  if (Status s = common::DecodeEnvelope(env, &msg); !s.ok()) {
    BadMessage("worker", s, now);
    return;
  }
  // A client pointed at this port by mistake (`--coordinator host:5701`):
  // answered in its own terms, else it waits out its whole timeout, since
  // the REREGISTER below means nothing to it. Not a REPLY: no client sends one.
  const std::optional<uint64_t> client_req = common::RequestIdOf(msg);
  if (client_req && !std::holds_alternative<common::ReplyMsg>(msg)) {
    BadMessage("worker", Status::InvalidArgument("a client request on the worker port"), now);
    common::ReplyMsg reply;
    reply.req = *client_req;
    reply.code = Status::Code::kInvalidArgument;
    reply.error = "this is the coordinator's worker port; clients use its client port (" + bound_client_ + ")";
    Send(workers_, env.route, std::move(reply));
    return;
  }
  if (auto* reg = std::get_if<common::RegisterMsg>(&msg)) {
    OnRegister(env, *reg, now);
    return;
  }
  auto who = worker_at_.find(env.route);
  if (who == worker_at_.end()) {
    if (!std::holds_alternative<common::ByeMsg>(msg)) Refuse(env.route, "unknown worker; register again");
    return;
  }
  const std::string name = who->second;
  // Any message from a worker counts as a heartbeat; a HEARTBEAT may also
  // say what the worker holds.
  auto* beat = std::get_if<common::HeartbeatMsg>(&msg);
  if (beat && beat->seq != 0) acked_[name] = beat->seq;
  Status s;
  if (beat) {
    // A list is passed only while what was sent left on time (see
    // NoteSendDelay); whether the worker is leaving, always.
    WorkerHeartbeat h = beat->running && now >= lists_from_ ? Holding(name, beat) : WorkerHeartbeat{name, {}, false};
    h.draining = beat->draining;
    s = core_.Heartbeat(h, now, &actions_);
  } else {
    s = core_.Heartbeat(name, now);
  }
  if (!s.ok()) {
    Forget(name);
    Refuse(env.route, s.message());
    return;
  }
  OnReport(name, env.route, msg, now);
}

WorkerHeartbeat Server::Holding(const std::string& name, common::HeartbeatMsg* beat) {
  WorkerHeartbeat h{name, std::vector<AttemptRef>{}};
  h.running->reserve(beat->running->size());
  for (common::AttemptId& a : *beat->running) {
    h.running->push_back({std::move(a.group), a.step, a.attempt, a.submission});
  }
  return h;
}

void Server::NoteSendDelay(Time turn_start, bool was_held) {
  // The core gives a RUN heartbeat x liveness from its dispatch to show up
  // in its worker's list. A turn that sent its messages long after it began
  // (a stall, a slow commit), or an outbox held for the store (until the
  // turn that sends it), sent RUNs late: lists read before they could have
  // arrived would lose them. Lists count again a full window after messages
  // leave promptly.
  const Time sent = Clock::now();
  const auto beat = std::chrono::milliseconds(options_.heartbeat_ms);
  if (was_held || store_error_ || sent - turn_start > beat) lists_from_ = sent + beat * options_.liveness;
}

void Server::OnRegister(const common::Envelope& env, const common::RegisterMsg& reg, Time now) {
  if (zap_) {
    // A key has a grant exactly while it is in the workers' allowlist.
    const WorkerGrant* grant = zap_->GrantOf(env.user);
    if (!grant) {
      BadMessage("worker", Status::FailedPrecondition("key \"" + UserIdName(env.user) + "\" is no longer authorized"),
                 now);
      Refuse(env.route, kKeyRevoked);
      return;
    }
    if (Status within = CheckRegistration(*grant, reg); !within.ok()) {
      uint64_t suppressed = 0;
      if (refusal_log_.Allow(now, &suppressed)) {
        LogWarn("worker_refused").Kv("worker", reg.name).Kv("key-name", UserIdName(env.user))
            .Kv("reason", within.message()).Kv("suppressed", suppressed);
      }
      Refuse(env.route, within.message());
      return;
    }
  }
  auto holder = route_of_.find(reg.name);
  WorkerJoined j;
  j.name = reg.name;
  j.slots = reg.slots;
  j.agents = reg.agents;
  for (const auto& a : reg.running) j.running.push_back({a.group, a.step, a.attempt, a.submission});
  j.same_connection = holder != route_of_.end() && holder->second == env.route;
  j.instance = reg.instance;
  j.kill_grace = std::chrono::milliseconds(reg.kill_grace_ms);
  j.version = reg.version;
  j.draining = reg.draining;
  if (zap_) j.user_id = env.user;
  if (Status s = core_.Handle(std::move(j), now, &actions_); !s.ok()) {
    BadMessage("worker", s, now);
    if (s.code() == Status::Code::kAlreadyExists) {
      Refuse(env.route, "the name \"" + reg.name +
                            "\" is in use by another live worker; give every worker a unique --name");
    }
    return;
  }
  if (holder != route_of_.end() && holder->second != env.route) {
    LogInfo("worker_reconnected").Kv("worker", reg.name);
    worker_at_.erase(holder->second);
  }
  route_of_[reg.name] = env.route;
  worker_at_[env.route] = reg.name;
  LogInfo("worker_joined")
      .Kv("worker", reg.name)
      .Kv("slots", reg.slots)
      .Kv("running", reg.running.size())
      .Kv("version", reg.version);
  common::WelcomeMsg welcome;
  welcome.heartbeat_ms = static_cast<uint32_t>(options_.heartbeat_ms);
  welcome.liveness = static_cast<uint32_t>(options_.liveness);
  welcome.cancel_endpoint = bound_cancel_;
  welcome.lease_ms = static_cast<uint32_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(options_.scheduler.worker_lease).count());
  welcome.ack = reg.seq;
  welcome.epoch = options_.epoch;
  if (reg.seq != 0) acked_[reg.name] = reg.seq;
  // Order matters: WELCOME first, then whatever Join placed on it.
  Send(workers_, env.route, std::move(welcome));
}

// A report the core refuses names an attempt it no longer knows (its group
// was forgotten, its worker lost it): expected after losses and restarts,
// so it is noted at debug level, not warned about.
void Server::NoteRefusedReport(const Status& s, const common::Message& msg) {
  if (s.ok()) return;
  LogDebug("report_refused").Kv("command", common::CommandName(msg)).Kv("reason", s.message());
}

void Server::OnReport(const std::string& name, const std::string& route, const common::Message& msg, Time now) {
  if (auto* m = std::get_if<common::StartedMsg>(&msg)) {
    NoteRefusedReport(
        core_.Started({{m->id.group, m->id.step, m->id.attempt, m->id.submission}, name}, now, &actions_), msg);
  } else if (auto* m = std::get_if<common::FinishedMsg>(&msg)) {
    common::AttemptOutcome o;
    o.exit_code = m->exit_code;
    o.signal = m->signal;
    o.timed_out = m->timed_out;
    o.cancelled = m->cancelled;
    o.lost = m->lost;
    o.error = m->error;
    KeepTails(name, *m, &o, now);
    o.stdout_bytes = m->stdout_bytes;
    o.stderr_bytes = m->stderr_bytes;
    LogDebug("step_finished")
        .Kv("group", m->id.group)
        .Kv("step", m->id.step)
        .Kv("attempt", m->id.attempt)
        .Kv("worker", name)
        .Kv("exit-code", m->exit_code.value_or(-1))
        .Kv("signal", m->signal.value_or(0));
    NoteRefusedReport(core_.Finished({{m->id.group, m->id.step, m->id.attempt, m->id.submission}, name, std::move(o)},
                                     now, &actions_),
                      msg);
    // Confirmed whether it counted or not (a stale report too), so the
    // worker forgets it; with a store, only once this turn is committed.
    ConfirmLater(route, m->id);
  } else if (std::holds_alternative<common::ByeMsg>(msg)) {
    LogInfo("worker_left").Kv("worker", name);
    // `name` is registered (its route was found), so the core knows it.
    // It says BYE only once its steps are dead: they run again at once.
    core_.Lose(name, "worker shut down", now, &actions_, /*steps_stopped=*/true).IgnoreError();
    Forget(name);
  } else if (!std::holds_alternative<common::HeartbeatMsg>(msg)) {
    BadMessage("worker",
               Status::Corruption(std::string(common::CommandName(msg)) + " is not a worker message"), now);
  }
}

}  // namespace cohort::coordinator
