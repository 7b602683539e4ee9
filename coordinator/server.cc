#include "coordinator/server.h"

#include <malloc.h>

#include <algorithm>

#include "common/codec.h"
#include "common/group_spec.h"
#include "common/result_json.h"

namespace cohort::coordinator {

using common::Clock;
using common::LogDebug;
using common::LogInfo;
using common::LogWarn;
using common::Status;
using common::Time;

namespace {

// Messages handled per socket per loop turn, so a flood on one socket (a
// client bursting 10,000 submits) cannot starve the other (worker heartbeats).
constexpr int kBatch = 256;
// Steps detailed in a STATUS or WAIT reply; the rest are counted.
constexpr size_t kMaxDetailedSteps = 10000;
// WAITs held at once, over all clients (about 100 bytes each); past it a WAIT
// is refused and the client polls with STATUS instead.
constexpr size_t kMaxWaiters = 100000;
// After a request at least this large, freed memory is given back to the
// system (malloc_trim): glibc would otherwise keep it for the process.
constexpr size_t kTrimAfterBytes = 1u << 20;

std::optional<uint64_t> RequestId(const common::Message& m) {
  return std::visit(
      [](const auto& msg) -> std::optional<uint64_t> {
        if constexpr (requires { msg.req; }) {
          return msg.req;
        } else {
          return std::nullopt;
        }
      },
      m);
}

}  // namespace

Server::Server(ServerOptions options)
    : options_(std::move(options)),
      context_(1),
      clients_(context_, zmq::socket_type::router),
      workers_(context_, zmq::socket_type::router),
      cancels_(context_, zmq::socket_type::pub),
      core_([&] {
        SchedulerOptions s = options_.scheduler;
        s.heartbeat_interval = std::chrono::milliseconds(options_.heartbeat_ms);
        s.liveness = options_.liveness;
        return s;
      }()),
      limits_(options_.max_groups_per_client, options_.max_steps_per_group),
      wall_(common::WallClock::Now()) {
  for (zmq::socket_t* s : {&clients_, &workers_, &cancels_}) common::ConfigureSocket(*s);
  // A send to a client that has disconnected fails (EHOSTUNREACH) instead of
  // vanishing: that is how SweepWaiters tells a gone client from a live one.
  clients_.set(zmq::sockopt::router_mandatory, 1);
}

Server::~Server() = default;

Status Server::Bind() {
  if (options_.curve) {
    // The handler must answer before the first peer can handshake.
    zap_ = std::make_unique<ZapHandler>(context_, options_.authorized_clients, options_.authorized_workers);
    if (Status s = zap_->Start(); !s.ok()) return s;
    for (auto [socket, domain] : {std::pair{&clients_, kClientDomain}, {&workers_, kWorkerDomain},
                                  {&cancels_, kWorkerDomain}}) {
      if (Status s = common::MakeCurveServer(*socket, *options_.curve, domain); !s.ok()) return s;
    }
  }
  if (Status s = common::BindSocket(clients_, options_.client_endpoint, &bound_client_); !s.ok()) return s;
  if (Status s = common::BindSocket(workers_, options_.worker_endpoint, &bound_worker_); !s.ok()) return s;
  if (Status s = common::BindSocket(cancels_, options_.cancel_endpoint, &bound_cancel_); !s.ok()) return s;
  LogInfo("listening")
      .Kv("client", bound_client_)
      .Kv("worker", bound_worker_)
      .Kv("cancel", bound_cancel_)
      .Kv("heartbeat_ms", options_.heartbeat_ms)
      .Kv("liveness", options_.liveness)
      .Kv("curve", options_.curve.has_value());
  return Status::Ok();
}

Time Server::NextWake() const {
  Time until = std::min(next_heartbeat_, next_waiter_sweep_);
  if (auto d = core_.NextDeadline()) until = std::min(until, *d);
  return until;
}

int Server::Run(const common::StopSignal& stop, common::StopSignal* reload) {
  next_heartbeat_ = Clock::now();
  next_waiter_sweep_ = next_heartbeat_;
  common::Envelope env;
  while (true) {
    Time now = Clock::now();
    // Optional items last, so the indices of the first three hold.
    zmq::pollitem_t items[5] = {
        {static_cast<void*>(clients_), 0, ZMQ_POLLIN, 0},
        {static_cast<void*>(workers_), 0, ZMQ_POLLIN, 0},
        {nullptr, stop.fd(), ZMQ_POLLIN, 0},
    };
    int count = 3;
    const int zap_at = zap_ ? count++ : -1;
    if (zap_at >= 0) items[zap_at] = {static_cast<void*>(zap_->socket()), 0, ZMQ_POLLIN, 0};
    const int reload_at = reload ? count++ : -1;
    if (reload_at >= 0) items[reload_at] = {nullptr, reload->fd(), ZMQ_POLLIN, 0};
    try {
      zmq::poll(items, count, std::chrono::milliseconds(common::PollTimeoutMs(now, NextWake())));
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) {
        common::LogError("poll_failed").Kv("error", e.what());
        return 1;
      }
    }
    if (items[2].revents & ZMQ_POLLIN) {
      LogInfo("stopping").Kv("groups", core_.group_count());
      return 0;
    }
    now = Clock::now();
    const Time turn_start = now;
    if (reload_at >= 0 && (items[reload_at].revents & ZMQ_POLLIN) && reload->Consume()) {
      if (zap_) {
        zap_->Reload();
        RevokeWorkers(now);
      } else {
        LogInfo("reload_ignored").Kv("reason", "no CURVE allowlists to reload");
      }
    }
    // Handshakes wait on these answers; they cost a lookup each.
    if (zap_at >= 0 && (items[zap_at].revents & ZMQ_POLLIN)) zap_->HandleRequests(now);
      // Workers first: their heartbeats and results must never wait behind clients.
    DrainWorkers(env, now);
    for (int i = 0; i < kBatch && common::ReceiveEnvelope(clients_, true, &env, zap_ != nullptr); ++i) {
      OnClient(env, now);
      Apply(now);
      for (const std::string& f : env.frames) trim_memory_ = trim_memory_ || f.size() >= kTrimAfterBytes;
    }
    if (trim_memory_) {
      // A big request and what was built from it (hundreds of MB of JSON
      // tree for a million-step spec) are freed by now; without this glibc
      // keeps that memory resident for good.
      env.frames.clear();
      env.frames.shrink_to_fit();
      malloc_trim(0);
      trim_memory_ = false;
    }
    now = Clock::now();
    // Read what workers sent while clients were served (a big SUBMIT can take
    // a while), so the drained flag below is true of now, not of before.
    const bool workers_drained = DrainWorkers(env, now);
    if (const auto busy = now - turn_start; busy > std::chrono::milliseconds(options_.heartbeat_ms)) {
      // We read nothing and sent no heartbeats meanwhile; how much grace that
      // earns the workers is the core's rule.
      LogWarn("busy").Kv("ms", std::chrono::duration_cast<std::chrono::milliseconds>(busy).count());
      core_.Handle(LoopStalled{busy}, now, &actions_);
      next_heartbeat_ = now;
    }
    // After a stall, heartbeats may still be queued: timers wait until every
    // worker message that arrived has been read, so no worker is declared
    // lost because the coordinator was busy. The next poll returns at once.
    if (auto d = core_.NextDeadline(); d && *d <= now && workers_drained) core_.Tick(now, &actions_);
    Apply(now);
    if (now >= next_heartbeat_) SendHeartbeats(now);
    if (now >= next_waiter_sweep_) SweepWaiters(now);
  }
}

bool Server::DrainWorkers(common::Envelope& env, Time now) {
  for (int i = 0; i < kBatch; ++i) {
    if (!common::ReceiveEnvelope(workers_, true, &env, zap_ != nullptr)) return true;
    OnWorker(env, now);
    Apply(now);
  }
  return false;
}

void Server::BadMessage(std::string_view socket, const Status& why, Time now) {
  uint64_t suppressed = 0;
  if (bad_input_log_.Allow(now, &suppressed)) {
    LogWarn("bad_message").Kv("socket", socket).Kv("error", why.message()).Kv("suppressed", suppressed);
  }
}

// ---- Clients ----------------------------------------------------------------

void Server::Reply(const std::string& route, uint64_t req, const Status& status, std::string body) {
  common::ReplyMsg reply;
  reply.req = req;
  reply.code = status.code();
  reply.error = status.ok() ? "" : status.message();
  reply.body = std::move(body);
  common::SendMessage(clients_, route, reply);
}

std::string Server::ResultBody(std::string_view group) const {
  // A document for a million steps would take seconds to build on this loop
  // and exceed a message; the steps that matter most are detailed, all are
  // counted.
  auto r = core_.Result(group, kMaxDetailedSteps);
  if (!r) return "";
  return common::GroupResultJson(*r, wall_);
}

void Server::OnClient(const common::Envelope& env, Time now) {
  common::Message msg;
  if (Status s = common::DecodeEnvelope(env, &msg); !s.ok()) {
    BadMessage("client", s, now);
    return;
  }
  std::optional<uint64_t> req = RequestId(msg);
  if (!req) {
    BadMessage("client", Status::Corruption(std::string(common::CommandName(msg)) + " is not a client request"),
               now);
    return;
  }
  // Limits and logs go by the key's name; admission by the key itself.
  const std::string client = UserIdName(env.user);
  if (zap_ && !zap_->Admits(kClientDomain, env.user)) {
    // Connected before a reload removed or replaced its key.
    Reply(env.route, *req, Status::FailedPrecondition("key \"" + client + "\" is no longer authorized"), "");
    return;
  }
  if (auto* m = std::get_if<common::SubmitMsg>(&msg)) {
    common::GroupSpec spec;
    // The client's share is checked before its spec is parsed or scheduled.
    Status s = limits_.CheckSubmit(client);
    // The step limit is enforced while reading, which stops past it: a
    // refused huge group costs no more than an allowed one.
    if (s.ok()) s = common::ParseGroupSpecJson(m->spec, &spec, limits_.max_steps(), "--max-steps-per-group");
    std::string id;
    if (s.ok()) s = core_.Submit(std::move(spec), now, &actions_, &id);
    if (s.ok()) limits_.Admitted(client, id);
    if (s.ok()) {
      auto sum = core_.Summary(id);
      LogInfo("group_submitted").Kv("group", id).Kv("client", client).Kv("steps", sum ? sum->total : 0);
      Reply(env.route, *req, s, common::SubmittedJson(id));
    } else {
      LogInfo("group_refused").Kv("client", client).Kv("error", s.message());
      Reply(env.route, *req, s, "");
    }
  } else if (auto* m = std::get_if<common::StatusMsg>(&msg); m && m->brief) {
    auto sum = core_.Summary(m->group);
    if (!sum) {
      Reply(env.route, *req, Status::NotFound("no group \"" + m->group + "\""), "");
    } else {
      Reply(env.route, *req, Status::Ok(), common::GroupSummaryJson(*sum, wall_));
    }
  } else if (auto* m = std::get_if<common::StatusMsg>(&msg)) {
    std::string body = ResultBody(m->group);
    // Decided before the call: its arguments may be evaluated in any order.
    Status found = body.empty() ? Status::NotFound("no group \"" + m->group + "\"") : Status::Ok();
    Reply(env.route, *req, found, std::move(body));
  } else if (auto* m = std::get_if<common::WaitMsg>(&msg)) {
    auto sum = core_.Summary(m->group);
    if (!sum) {
      Reply(env.route, *req, Status::NotFound("no group \"" + m->group + "\""), "");
    } else if (sum->state != common::GroupState::kRunning) {
      Reply(env.route, *req, Status::Ok(), ResultBody(m->group));
    } else if (waiter_count_ >= kMaxWaiters) {
      Reply(env.route, *req,
            Status::Unavailable("too many clients are waiting (" + std::to_string(kMaxWaiters) +
                                "); poll group \"" + m->group + "\" with STATUS instead"),
            "");
    } else {
      waiters_[m->group].push_back({env.route, *req});
      ++waiter_count_;
    }
  } else if (auto* m = std::get_if<common::CancelRequestMsg>(&msg)) {
    Status s = m->step.empty() ? core_.CancelGroupById(m->group, now, &actions_)
                               : core_.CancelStepById(m->group, m->step, now, &actions_);
    LogInfo("cancel_requested").Kv("group", m->group).Kv("step", m->step).Kv("result", s.ToString());
    Reply(env.route, *req, s, "");
  } else if (std::holds_alternative<common::GroupsMsg>(msg)) {
    Reply(env.route, *req, Status::Ok(), common::GroupListJson(core_.Groups(), wall_));
  } else if (std::holds_alternative<common::WorkersMsg>(msg)) {
    std::vector<common::WorkerSummary> list;
    for (WorkerView& w : core_.Workers()) {
      list.push_back({std::move(w.name), w.slots, w.running, std::move(w.agents), w.last_heartbeat});
    }
    Reply(env.route, *req, Status::Ok(), common::WorkerListJson(list, wall_));
  } else {
    Reply(env.route, *req, Status::InvalidArgument("not a client request"), "");
  }
}

// ---- Workers ----------------------------------------------------------------

void Server::SendToWorker(const std::string& worker, const common::Message& msg) {
  auto it = route_of_.find(worker);
  if (it == route_of_.end()) return;  // lost; its attempts are already decided
  if (!common::SendMessage(workers_, it->second, msg)) {
    LogWarn("send_failed").Kv("worker", worker).Kv("command", common::CommandName(msg));
  }
}

void Server::Forget(const std::string& worker) {
  auto it = route_of_.find(worker);
  if (it == route_of_.end()) return;
  worker_at_.erase(it->second);
  route_of_.erase(it);
}

void Server::RevokeWorkers(Time now) {
  // Which keys are admitted is the allowlist's answer (ZapHandler); the core
  // hears of each revoked worker as an ordinary loss.
  for (const WorkerView& w : core_.Workers()) {
    if (zap_->Admits(kWorkerDomain, w.user_id)) continue;
    LogWarn("worker_revoked")
        .Kv("worker", w.name)
        .Kv("key_name", UserIdName(w.user_id))
        .Kv("key", UserIdKey(w.user_id));
    auto route = route_of_.find(w.name);
    if (route != route_of_.end()) {
      common::ReregisterMsg bye;
      bye.reason = "this worker's key is no longer authorized";
      common::SendMessage(workers_, route->second, bye);
    }
    core_.Lose(w.name, "its key was removed from the allowlist or replaced", now, &actions_);
    Forget(w.name);
  }
  Apply(now);
}

void Server::SendHeartbeats(Time now) {
  for (const auto& [name, route] : route_of_) common::SendMessage(workers_, route, common::HeartbeatMsg{});
  next_heartbeat_ = now + std::chrono::milliseconds(options_.heartbeat_ms);
}

// A client that disconnects says nothing on a ROUTER, and its WAITs would be
// held until their groups end, which may be never. Every liveness interval
// each client holding a WAIT is sent a HEARTBEAT (clients ignore it): with
// ROUTER_MANDATORY, a route that is gone fails at once, and its WAITs are
// forgotten. A live client whose queue is full is kept.
bool Server::ClientGone(const std::string& route) {
  try {
    std::vector<std::string> frames = common::Encode(common::HeartbeatMsg{});
    if (!clients_.send(zmq::buffer(route), zmq::send_flags::sndmore | zmq::send_flags::dontwait)) return false;
    for (size_t i = 0; i < frames.size(); ++i) {
      auto flags = zmq::send_flags::dontwait;
      if (i + 1 < frames.size()) flags = flags | zmq::send_flags::sndmore;
      clients_.send(zmq::buffer(frames[i]), flags);
    }
    return false;
  } catch (const zmq::error_t& e) {
    return e.num() == EHOSTUNREACH;
  }
}

void Server::SweepWaiters(Time now) {
  next_waiter_sweep_ = now + std::chrono::milliseconds(options_.heartbeat_ms) * options_.liveness;
  if (waiters_.empty()) return;
  std::unordered_map<std::string, bool> gone;  // route -> gone, one probe per client
  size_t dropped = 0;
  for (auto it = waiters_.begin(); it != waiters_.end();) {
    auto& list = it->second;
    const size_t before = list.size();
    std::erase_if(list, [&](const Waiter& w) {
      auto [at, fresh] = gone.try_emplace(w.route, false);
      if (fresh) at->second = ClientGone(w.route);
      return at->second;
    });
    dropped += before - list.size();
    it = list.empty() ? waiters_.erase(it) : std::next(it);
  }
  waiter_count_ -= dropped;
  if (dropped > 0) LogInfo("waiters_gone").Kv("dropped", dropped).Kv("waiting", waiter_count_);
}

void Server::OnWorker(const common::Envelope& env, Time now) {
  common::Message msg;
  if (Status s = common::DecodeEnvelope(env, &msg); !s.ok()) {
    BadMessage("worker", s, now);
    return;
  }
  if (auto* reg = std::get_if<common::RegisterMsg>(&msg)) {
    if (zap_ && !zap_->Admits(kWorkerDomain, env.user)) {
      BadMessage("worker", Status::FailedPrecondition("key \"" + UserIdName(env.user) + "\" is no longer authorized"),
                 now);
      common::ReregisterMsg refuse;
      refuse.reason = "this worker's key is no longer authorized";
      common::SendMessage(workers_, env.route, refuse);
      return;
    }
    auto holder = route_of_.find(reg->name);
    WorkerJoined j;
    j.name = reg->name;
    j.slots = reg->slots;
    j.agents = reg->agents;
    for (const auto& a : reg->running) j.running.push_back({a.group, a.step, a.attempt});
    j.same_connection = holder != route_of_.end() && holder->second == env.route;
    j.instance = reg->instance;
    if (zap_) j.user_id = env.user;
    if (Status s = core_.Handle(std::move(j), now, &actions_); !s.ok()) {
      BadMessage("worker", s, now);
      if (s.code() == Status::Code::kAlreadyExists) {
        common::ReregisterMsg refuse;
        refuse.reason = "the name \"" + reg->name +
                        "\" is in use by another live worker; give every worker a unique --name";
        common::SendMessage(workers_, env.route, refuse);
      }
      return;
    }
    if (holder != route_of_.end() && holder->second != env.route) {
      LogInfo("worker_reconnected").Kv("worker", reg->name);
      worker_at_.erase(holder->second);
    }
    route_of_[reg->name] = env.route;
    worker_at_[env.route] = reg->name;
    LogInfo("worker_joined")
        .Kv("worker", reg->name)
        .Kv("slots", reg->slots)
        .Kv("running", reg->running.size())
        .Kv("version", reg->version);
    common::WelcomeMsg welcome;
    welcome.heartbeat_ms = static_cast<uint32_t>(options_.heartbeat_ms);
    welcome.liveness = static_cast<uint32_t>(options_.liveness);
    welcome.cancel_endpoint = bound_cancel_;
    // Order matters: WELCOME first, then whatever Join placed on it.
    common::SendMessage(workers_, env.route, welcome);
    return;
  }
  auto who = worker_at_.find(env.route);
  if (who == worker_at_.end()) {
    if (std::holds_alternative<common::ByeMsg>(msg)) return;
    common::ReregisterMsg again;
    again.reason = "unknown worker; register again";
    common::SendMessage(workers_, env.route, again);
    return;
  }
  const std::string name = who->second;
  // Any message from a worker counts as a heartbeat.
  if (Status s = core_.Heartbeat(name, now); !s.ok()) {
    Forget(name);
    common::ReregisterMsg again;
    again.reason = s.message();
    common::SendMessage(workers_, env.route, again);
    return;
  }
  if (auto* m = std::get_if<common::StartedMsg>(&msg)) {
    core_.Started({{m->id.group, m->id.step, m->id.attempt}, name}, now, &actions_);
  } else if (auto* m = std::get_if<common::FinishedMsg>(&msg)) {
    common::AttemptOutcome o;
    o.exit_code = m->exit_code;
    o.signal = m->signal;
    o.timed_out = m->timed_out;
    o.cancelled = m->cancelled;
    o.error = m->error;
    o.stdout_tail = m->stdout_tail;
    o.stderr_tail = m->stderr_tail;
    LogDebug("step_finished")
        .Kv("group", m->id.group)
        .Kv("step", m->id.step)
        .Kv("attempt", m->id.attempt)
        .Kv("worker", name)
        .Kv("exit_code", m->exit_code.value_or(-1))
        .Kv("signal", m->signal.value_or(0));
    core_.Finished({{m->id.group, m->id.step, m->id.attempt}, name, std::move(o)}, now, &actions_);
  } else if (std::holds_alternative<common::ByeMsg>(msg)) {
    LogInfo("worker_left").Kv("worker", name);
    core_.Lose(name, "worker shut down", now, &actions_);
    Forget(name);
  } else if (!std::holds_alternative<common::HeartbeatMsg>(msg)) {
    BadMessage("worker",
               Status::Corruption(std::string(common::CommandName(msg)) + " is not a worker message"), now);
  }
}

// ---- Actions ------------------------------------------------------------------

void Server::Apply(Time now) {
  // Carrying out an action can feed the core again (a RUN that cannot be
  // sent), which appends more actions: drain until none are left.
  while (!actions_.empty()) {
    std::vector<Action> batch;
    batch.swap(actions_);
    for (Action& a : batch) Carry(a, now);
  }
}

void Server::Carry(Action& a, Time now) {
  if (auto* d = std::get_if<Dispatch>(&a)) {
    // Built in place inside a Message, from the action's own copy of the
    // step: validating and sending a RunMsg would each copy its argv and env
    // into a temporary variant.
    common::Message msg{std::in_place_type<common::RunMsg>};
    common::RunMsg& run = std::get<common::RunMsg>(msg);
    run.id = {d->ref.group, d->ref.step, d->ref.attempt};
    run.step_id = std::move(d->spec.id);
    run.argv = std::move(d->spec.argv);
    run.shell = std::move(d->spec.shell);
    run.env = std::move(d->spec.env);
    run.cwd = std::move(d->spec.cwd);
    run.timeout_ms =
        d->timeout ? static_cast<uint64_t>(std::max<int64_t>(
                         1, std::chrono::duration_cast<std::chrono::milliseconds>(*d->timeout).count()))
                   : 0;
    LogDebug("dispatch")
        .Kv("group", d->ref.group)
        .Kv("step", run.step_id)
        .Kv("attempt", d->ref.attempt)
        .Kv("worker", d->worker);
    if (Status s = common::ValidateMessage(msg); !s.ok()) {
      // Specs are validated against the wire's limits on submission; this
      // is the second line, so a step that cannot be sent fails visibly
      // instead of waiting for ever on a worker that dropped it.
      common::AttemptOutcome o;
      o.error = "cannot send the step to a worker: " + s.message();
      core_.Finished({d->ref, d->worker, std::move(o)}, now, &actions_);
      return;
    }
    SendToWorker(d->worker, msg);
  } else if (auto* c = std::get_if<BroadcastCancel>(&a)) {
    LogInfo("group_cancel_broadcast").Kv("group", c->group);
    common::CancelGroupMsg msg;
    msg.group = c->group;
    common::SendMessage(cancels_, std::nullopt, msg);
  } else if (auto* c = std::get_if<CancelAttempt>(&a)) {
    common::CancelAttemptMsg msg;
    msg.id = {c->ref.group, c->ref.step, c->ref.attempt};
    SendToWorker(c->worker, msg);
  } else if (auto* f = std::get_if<GroupFinished>(&a)) {
    limits_.Ended(f->group);
    auto sum = core_.Summary(f->group);
    LogInfo("group_finished")
        .Kv("group", f->group)
        .Kv("state", common::GroupStateName(f->state))
        .Kv("steps", sum ? sum->total : 0);
    auto it = waiters_.find(f->group);
    if (it != waiters_.end()) {
      std::string body = ResultBody(f->group);
      // Empty only with --retention 0, when the group is already forgotten.
      Status found = body.empty() ? Status::NotFound("group \"" + f->group + "\" finished " +
                                                     std::string(common::GroupStateName(f->state)) +
                                                     " and is no longer retained")
                                  : Status::Ok();
      for (const Waiter& w : it->second) Reply(w.route, w.req, found, body);
      waiter_count_ -= it->second.size();
      waiters_.erase(it);
    }
  } else if (auto* e = std::get_if<WorkerExpired>(&a)) {
    LogWarn("worker_lost").Kv("worker", e->worker).Kv("reason", e->reason);
    Forget(e->worker);
  }
}

}  // namespace cohort::coordinator
