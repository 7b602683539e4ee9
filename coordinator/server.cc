#include "coordinator/server.h"

#include <malloc.h>

#include <algorithm>
#include <tuple>

#include "common/codec.h"

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
// After a request at least this large, freed memory is given back to the
// system (malloc_trim): glibc would otherwise keep it for the process.
constexpr size_t kTrimAfterBytes = 1u << 20;

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
        s.journal = options_.store != nullptr;
        s.wall = common::ReadWallClock();
        return s;
      }()),
      limits_(options_.max_groups_per_client, options_.max_steps_per_group, options_.max_waits_per_client),
      wall_(core_.wall()) {
  for (zmq::socket_t* s : {&clients_, &workers_, &cancels_}) common::ConfigureSocket(*s);
  // A send to a client that has disconnected fails (EHOSTUNREACH) instead of
  // vanishing: that is how SweepWaiters tells a gone client from a live one.
  clients_.set(zmq::sockopt::router_mandatory, 1);
}

Server::~Server() = default;

Status Server::Bind() {
  // Before any peer can connect: a worker registering must find the
  // restored attempts it claims.
  // Loading a large store takes longer than the watchdog's interval, and
  // nothing pings meanwhile.
  if (options_.notifier) {
    options_.notifier->Status("loading the state from " + options_.store_description);
    options_.notifier->BeginLongWork(std::chrono::hours(1));
  }
  Status restored = Restore();
  if (options_.notifier) options_.notifier->EndLongWork(Clock::now());
  if (!restored.ok()) return restored;
  // A long restore may have outlasted the lease as this process counts it
  // (the store renewed it in the database meanwhile).
  if (options_.election && !KeepLease(Clock::now())) {
    return Status::Unavailable("the lease was lost while the state was loaded");
  }
  if (options_.curve) {
    // The handler must answer before the first peer can handshake.
    zap_ = std::make_unique<ZapHandler>(context_, options_.authorized_clients, options_.authorized_workers,
                                        options_.admin_clients);
    if (Status s = zap_->Start(); !s.ok()) return s;
    for (auto [socket, domain] : {std::pair{&clients_, kClientDomain}, {&workers_, kWorkerDomain},
                                  {&cancels_, kWorkerDomain}}) {
      if (Status s = common::MakeCurveServer(*socket, *options_.curve, domain); !s.ok()) return s;
    }
  }
  // Watched before they bind, so no connection goes uncounted.
  for (auto [socket, name, frame] : {std::tuple{&clients_, "client", common::kMaxClientFrameBytes},
                                     {&workers_, "worker", common::kMaxWorkerFrameBytes},
                                     {&cancels_, "cancel", common::kMaxCancelFrameBytes}}) {
    if (Status s = guard_.Watch(*socket, name, frame); !s.ok()) return s;
  }
  const common::IpcAccess& ipc = options_.ipc;
  if (Status s = common::BindSocket(clients_, options_.client_endpoint, &bound_client_, ipc); !s.ok()) return s;
  if (Status s = common::BindSocket(workers_, options_.worker_endpoint, &bound_worker_, ipc); !s.ok()) return s;
  if (Status s = common::BindSocket(cancels_, options_.cancel_endpoint, &bound_cancel_, ipc); !s.ok()) return s;
  LogInfo("listening")
      .Kv("client", bound_client_)
      .Kv("worker", bound_worker_)
      .Kv("cancel", bound_cancel_)
      .Kv("heartbeat-ms", options_.heartbeat_ms)
      .Kv("liveness", options_.liveness)
      .Kv("curve", options_.curve.has_value())
      .Kv("max-handshakes", options_.connection_limits.max_handshakes)
      .Kv("max-connections", options_.connection_limits.max_connections);
  return Status::Ok();
}

Time Server::NextWake() const {
  Time until = std::min({next_heartbeat_, next_waiter_sweep_, next_store_retry_});
  if (options_.lease) until = std::min(until, options_.lease->NextRenewal());
  if (options_.notifier) {
    if (auto w = options_.notifier->NextWatchdog()) until = std::min(until, *w);
  }
  if (auto m = metrics_.NextDeadline()) until = std::min(until, *m);
  // While the store cannot be written the core's timers wait (see Turn).
  if (auto d = core_.NextDeadline(); d && !store_error_) until = std::min(until, *d);
  return until;
}

int Server::Run(const common::StopSignal& stop, common::StopSignal* reload) {
  next_heartbeat_ = Clock::now();
  next_waiter_sweep_ = next_heartbeat_;
  if (options_.notifier) options_.notifier->Ready(StatusLine());
  next_status_ = next_heartbeat_ + std::chrono::seconds(1);
  common::Envelope env;
  while (true) {
    Ready ready;
    if (!Wait(stop, reload, &ready)) return 1;
    if (ready.stop) {
      LogInfo("stopping").Kv("groups", core_.group_count());
      if (options_.notifier) options_.notifier->Stopping("stopping: " + StatusLine());
      Resign();
      return 0;
    }
    if (!Turn(ready, reload, env)) return stepped_down_ ? kSteppedDown : 1;
    const Time done = Clock::now();
    metrics_.Serve(poll_items_, done, [&] { return MetricsText(done); });
    Notify(done);
  }
}

std::string Server::StatusLine() const {
  const CoreCounts c = core_.Counts();
  std::string line = options_.epoch ? "leading (epoch " + std::to_string(options_.epoch) + "): " : "";
  if (std::string trouble = StoreTrouble(); !trouble.empty()) line += "REFUSING GROUPS: " + trouble + "; ";
  line += std::to_string(c.groups_running) + " groups running, " +
          std::to_string(c.steps[static_cast<int>(common::StepState::kRunning)]) + " steps running, " +
          std::to_string(c.workers) + " workers";
  if (c.workers_unplaceable) line += " (" + std::to_string(c.workers_unplaceable) + " cordoned or draining)";
  line += ", " + std::to_string(c.slots_busy) + "/" + std::to_string(c.slots) + " slots busy";
  return line;
}

void Server::Notify(Time now) {
  if (!options_.notifier || !options_.notifier->enabled()) return;
  options_.notifier->Watchdog(now);
  if (now < next_status_) return;
  next_status_ = now + std::chrono::seconds(1);
  options_.notifier->Status(StatusLine());
}

bool Server::Wait(const common::StopSignal& stop, common::StopSignal* reload, Ready* ready) {
  const Time now = Clock::now();
  // Optional items last, so the indices of the first three hold. The
  // vector is the Server's, so a turn allocates nothing for it.
  std::vector<zmq::pollitem_t>& items = poll_items_;
  items.assign({
      {static_cast<void*>(clients_), 0, ZMQ_POLLIN, 0},
      {static_cast<void*>(workers_), 0, ZMQ_POLLIN, 0},
      {nullptr, stop.fd(), ZMQ_POLLIN, 0},
  });
  // A pipelined commit's answer wakes the loop.
  if (in_flight_ && options_.store->fd() >= 0) items.push_back({nullptr, options_.store->fd(), ZMQ_POLLIN, 0});
  const int zap_at = zap_ ? static_cast<int>(items.size()) : -1;
  if (zap_) items.push_back({static_cast<void*>(zap_->socket()), 0, ZMQ_POLLIN, 0});
  const int reload_at = reload ? static_cast<int>(items.size()) : -1;
  if (reload) items.push_back({nullptr, reload->fd(), ZMQ_POLLIN, 0});
  guard_.AddTo(&items);
  metrics_.AddTo(&items);
  try {
    zmq::poll(items.data(), items.size(), std::chrono::milliseconds(common::PollTimeoutMs(now, NextWake())));
  } catch (const zmq::error_t& e) {
    if (e.num() != EINTR) {
      common::LogError("poll_failed").Kv("error", e.what());
      return false;
    }
  }
  ready->stop = items[2].revents & ZMQ_POLLIN;
  ready->zap = zap_at >= 0 && (items[zap_at].revents & ZMQ_POLLIN);
  ready->reload = reload_at >= 0 && (items[reload_at].revents & ZMQ_POLLIN);
  return true;
}

bool Server::Turn(const Ready& ready, common::StopSignal* reload, common::Envelope& env) {
  Time now = Clock::now();
  const Time turn_start = now;
  // First, before anything read is acted on: a process that was paused may
  // have been deposed meanwhile.
  if (!KeepLease(now)) return false;
  // A commit that landed sends what waited for it before anything new.
  if (!PollCommit(now)) return false;
  // Before the ZAP requests: a connection over a cap is cut, not answered.
  guard_.Drain(now);
  if (ready.reload && reload->Consume()) {
    if (zap_) {
      if (options_.notifier) options_.notifier->Reloading();
      zap_->Reload();
      RevokeWorkers(now);
      if (options_.notifier) options_.notifier->Ready(StatusLine());
    } else {
      LogInfo("reload_ignored").Kv("reason", "no CURVE allowlists to reload");
    }
  }
  // Handshakes wait on these answers; they cost a lookup each.
  if (ready.zap) zap_->HandleRequests(now);
  // Workers first: their heartbeats and results must never wait behind clients.
  DrainWorkers(env, now);
  ServeClients(env, now);
  now = Clock::now();
  // Read what workers sent while clients were served (a big SUBMIT can take
  // a while), so the drained flag below is true of now, not of before.
  const bool workers_drained = DrainWorkers(env, now);
  if (const auto busy = now - turn_start; busy > std::chrono::milliseconds(options_.heartbeat_ms)) {
    // We read nothing and sent no heartbeats meanwhile; how much grace that
    // earns the workers is the core's rule.
    LogWarn("busy").Kv("ms", std::chrono::duration_cast<std::chrono::milliseconds>(busy).count());
    // A stall is news, not a request: the core has nothing to refuse.
    core_.Handle(LoopStalled{busy}, now, &actions_).IgnoreError();
    next_heartbeat_ = now;
  }
  // Worker messages may still be queued (after a stall, or under sustained
  // traffic): the core holds the timers that judge workers until they are
  // read, and fires the rest on time. The next poll returns at once.
  // No timer runs while the store cannot be written: the RUNs and cancels
  // they would judge the workers by are held, not sent.
  if (auto d = core_.NextDeadline(); d && *d <= now && !store_error_) {
    core_.Tick(now, &actions_, !workers_drained);
  }
  Apply(now);
  // One commit for everything this turn did, then its replies and messages.
  const bool was_held = store_error_.has_value();
  if (!Flush(now)) return false;
  NoteSendDelay(turn_start, was_held);
  if (now >= next_heartbeat_) SendHeartbeats(now);
  if (now >= next_waiter_sweep_) SweepWaiters(now);
  return true;
}

bool Server::DrainWorkers(common::Envelope& env, Time now) {
  for (int i = 0; i < kBatch; ++i) {
    if (!common::ReceiveEnvelope(workers_, true, &env, zap_ != nullptr)) return true;
    OnWorker(env, now);
    Apply(now);
  }
  return false;
}

void Server::ServeClients(common::Envelope& env, Time now) {
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
}

void Server::BadMessage(std::string_view socket, const Status& why, Time now) {
  ++(socket == "client" ? bad_client_messages_ : bad_worker_messages_);
  uint64_t suppressed = 0;
  if (bad_input_log_.Allow(now, &suppressed)) {
    LogWarn("bad_message").Kv("socket", socket).Kv("error", why.message()).Kv("suppressed", suppressed);
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
    SendDispatch(*d, now);
  } else if (auto* c = std::get_if<BroadcastCancel>(&a)) {
    LogInfo("group_cancel_broadcast").Kv("group", c->group);
    common::CancelGroupMsg msg;
    msg.group = c->group;
    msg.submission = c->submission;
    msg.epoch = options_.epoch;
    Send(cancels_, std::nullopt, std::move(msg));
  } else if (auto* c = std::get_if<CancelAttempt>(&a)) {
    common::CancelAttemptMsg msg;
    msg.id = {c->ref.group, c->ref.step, c->ref.attempt, c->ref.submission};
    msg.epoch = options_.epoch;
    SendToWorker(c->worker, std::move(msg));
  } else if (auto* f = std::get_if<GroupFinished>(&a)) {
    limits_.Ended(f->group);
    auto sum = core_.Summary(f->group);
    LogInfo("group_finished")
        .Kv("group", f->group)
        .Kv("state", common::GroupStateName(f->state))
        .Kv("steps", sum ? sum->total : 0);
    AnswerWaiters(*f, now);
  } else if (auto* e = std::get_if<WorkerExpired>(&a)) {
    LogWarn("worker_lost").Kv("worker", e->worker).Kv("reason", e->reason);
    Forget(e->worker);
  }
}

void Server::SendDispatch(Dispatch& d, Time now) {
  // Built in place inside a Message, from the action's own copy of the step:
  // validating and sending a RunMsg would each copy its argv and env into a
  // temporary variant.
  common::Message msg{std::in_place_type<common::RunMsg>};
  common::RunMsg& run = std::get<common::RunMsg>(msg);
  run.id = {d.ref.group, d.ref.step, d.ref.attempt, d.ref.submission};
  run.step_id = std::move(d.spec.id);
  run.argv = std::move(d.spec.argv);
  run.shell = std::move(d.spec.shell);
  run.env = std::move(d.spec.env);
  run.cwd = std::move(d.spec.cwd);
  run.client = std::move(d.client);
  run.epoch = options_.epoch;
  run.timeout_ms = d.timeout ? static_cast<uint64_t>(std::max<int64_t>(
                                   1, std::chrono::duration_cast<std::chrono::milliseconds>(*d.timeout).count()))
                             : 0;
  LogDebug("dispatch")
      .Kv("group", d.ref.group)
      .Kv("step", run.step_id)
      .Kv("attempt", d.ref.attempt)
      .Kv("worker", d.worker);
  if (Status s = common::ValidateMessage(msg); !s.ok()) {
    // Specs are validated against the wire's limits on submission; this
    // is the second line, so a step that cannot be sent fails visibly
    // instead of waiting for ever on a worker that dropped it.
    common::AttemptOutcome o;
    o.error = "cannot send the step to a worker: " + s.message();
    // The attempt may already be over (its worker expired earlier in this
    // batch of actions); then there is nothing left to fail.
    core_.Finished({d.ref, d.worker, std::move(o)}, now, &actions_).IgnoreError();
    return;
  }
  SendToWorker(d.worker, std::move(msg));
}

}  // namespace cohort::coordinator
