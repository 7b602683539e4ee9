#include "worker/worker_loop.h"

#include <unistd.h>

#include <algorithm>
#include <random>
#include <thread>

#include "common/options.h"
#include "common/secure_options.h"
#include "common/transport.h"

namespace cohort::worker {

using common::Clock;
using common::LogDebug;
using common::LogWarn;
using common::Status;
using common::Time;

namespace {

constexpr int kBatch = 256;

}  // namespace

WorkerOptions WithDefaults(WorkerOptions o) {
  if (o.name.empty()) o.name = common::HostName("worker");
  if (o.slots <= 0) o.slots = std::max(1u, std::thread::hardware_concurrency());
  return o;
}

namespace {

RunnerOptions RunnerOptionsOf(const WorkerOptions& o) {
  RunnerOptions r;
  r.kill_grace = o.kill_grace;
  r.tail_bytes = o.tail_bytes;
  r.isolation = o.isolation;
  if (o.run_as) {
    r.run_as = o.run_as->credentials;
    for (auto& [name, value] : r.base_env) {
      if (name == "HOME") value = o.run_as->home;
    }
  }
  return r;
}

// The user a client's step runs as, when --client-users maps clients to users;
// the request keeps the runner's --run-as user otherwise.
common::Status RunAsClient(const std::optional<ClientUsers>& users, const std::string& client, RunRequest* req) {
  if (!users) return common::Status::Ok();
  const RunAsUser* user = nullptr;
  if (auto s = users->Resolve(client, &user); !s.ok()) return s;
  if (user != nullptr) {
    req->run_as = user->credentials;
    req->home = user->home;
  }
  return common::Status::Ok();
}

WorkerCoreOptions CoreOptionsOf(const WorkerOptions& o, bool spill) {
  WorkerCoreOptions c;
  c.coordinator = o.coordinator;
  c.coordinators = common::SplitEndpoints(o.coordinator);
  c.name = o.name;
  c.slots = o.slots;
  c.agents = o.agents;
  c.version = common::kVersion;
  std::random_device rd;
  c.instance = (static_cast<uint64_t>(rd()) << 32 | rd()) | 1;  // never 0, which means "not given"
  c.life = o.life;
  c.heartbeat_ms = o.heartbeat_ms;
  c.liveness = o.liveness;
  c.max_reconnect_backoff = o.max_reconnect_backoff;
  c.kill_grace = o.kill_grace;
  c.max_unconfirmed = o.max_unconfirmed;
  c.max_unconfirmed_bytes = o.max_unconfirmed_bytes;
  c.spill = spill;
  c.max_spilled_bytes = o.max_spilled_bytes;
  c.wall = common::ReadWallClock();
  return c;
}

void Log(const Notice& n) {
  common::LogLevel level = n.level == Notice::Level::kDebug  ? common::LogLevel::kDebug
                           : n.level == Notice::Level::kInfo ? common::LogLevel::kInfo
                                                             : common::LogLevel::kWarn;
  common::LogLine line(level, n.event);
  for (const NoticeField& f : n.fields) {
    if (f.number) line.KvNumber(f.key, f.value);
    else line.Kv(f.key, f.value);
  }
}

// Once per change: a refused key or a broken handshake would otherwise look
// like a coordinator that is simply down.
void LogHandshake(const common::HandshakeMonitor& m, const WorkerOptions& o) {
  using Outcome = common::HandshakeMonitor::Outcome;
  if (m.outcome() == Outcome::kRefused) {
    common::LogError("coordinator_refused_key")
        .Kv("coordinator", o.coordinator)
        .Kv("key", o.curve ? o.curve->own.public_z85 : "")
        .Kv("detail", m.detail())
        .Kv("hint", "add this worker's public key file to the coordinator's authorized-workers directory");
  } else if (m.outcome() == Outcome::kFailed || m.outcome() == Outcome::kMismatch ||
             m.outcome() == Outcome::kClosed) {
    common::LogError("handshake_failed")
        .Kv("coordinator", o.coordinator)
        .Kv("detail", m.detail())
        .Kv("hint", o.curve ? "is coordinator-key the public key of the coordinator at this address?"
                            : "the coordinator may require CURVE: give coordinator-key and curve-secret-key");
  } else if (m.outcome() == Outcome::kSucceeded) {
    LogDebug("handshake_ok").Kv("coordinator", o.coordinator);
  }
}

}  // namespace

WorkerLoop::WorkerLoop(WorkerOptions options, const ResultSpill* spill)
    : options_(WithDefaults(std::move(options))),
      spill_(spill),
      context_(1),
      runner_(RunnerOptionsOf(options_)),
      core_(CoreOptionsOf(options_, spill != nullptr)) {}

WorkerLoop::~WorkerLoop() = default;

void WorkerLoop::Send(const common::Message& msg) {
  if (dealer_) common::SendMessage(*dealer_, std::nullopt, msg);
}

void WorkerLoop::SendSpilled(uint64_t seq, Time now) {
  common::Message msg;
  Status s = spill_ ? spill_->Read(seq, &msg) : Status::FailedPrecondition("no directory for kept results");
  if (s.ok()) {
    Send(msg);
    return;
  }
  std::vector<Action> actions;
  core_.SpillFailed(seq, s.message(), now, &actions);
  Execute(actions, now);
}

void WorkerLoop::Connect(Time now) {
  monitor_.reset();  // it watches the socket it was made for
  dealer_.emplace(context_, zmq::socket_type::dealer);
  common::ConfigureSocket(*dealer_);
  if (options_.curve) {
    // Keys were checked at start-up; a failure here is an old libzmq.
    if (auto s = common::MakeCurveClient(*dealer_, options_.curve->own, options_.curve->server_public); !s.ok()) {
      LogWarn("curve_failed").Kv("error", s.message());
    }
  }
  monitor_.emplace(context_, *dealer_);
  // A connection whose peer stopped answering ZMTP PINGs (a coordinator
  // host that vanished) is dropped and dialled again, with backoff. The
  // coordinator's I/O thread answers them even while its loop is busy.
  dealer_->set(zmq::sockopt::heartbeat_ivl, core_.heartbeat_ms());
  dealer_->set(zmq::sockopt::heartbeat_timeout, core_.heartbeat_ms() * core_.liveness());
  dealer_->set(zmq::sockopt::reconnect_ivl_max,
               static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                    options_.max_reconnect_backoff).count()));
  if (auto s = common::ConnectSocket(*dealer_, core_.endpoint()); !s.ok()) {
    LogWarn("connect_failed").Kv("error", s.message());
  }
  std::vector<Action> actions;
  core_.Connect(now, &actions);
  Execute(actions, now);
}

void WorkerLoop::Subscribe(const std::string& endpoint) {
  sub_.emplace(context_, zmq::socket_type::sub);
  common::ConfigureSocket(*sub_);
  sub_->set(zmq::sockopt::subscribe, common::kProtocol);
  if (options_.curve) {
    if (auto s = common::MakeCurveClient(*sub_, options_.curve->own, options_.curve->server_public); !s.ok()) {
      LogWarn("curve_failed").Kv("error", s.message());
    }
  }
  if (auto s = common::ConnectSocket(*sub_, endpoint); !s.ok()) {
    LogWarn("cancel_subscribe_failed").Kv("error", s.message());
  }
}

void WorkerLoop::Execute(std::vector<Action>& actions, Time now) {
  for (Action& action : actions) {
    if (auto* s = std::get_if<SendToCoordinator>(&action)) {
      Send(*s->msg);
    } else if (auto* sub = std::get_if<worker::Subscribe>(&action)) {
      Subscribe(sub->endpoint);
    } else if (auto* start = std::get_if<StartStep>(&action)) {
      StartOne(*start, now);
    } else if (auto* c = std::get_if<CancelStep>(&action)) {
      runner_.Cancel(c->key, now);
    } else if (auto* a = std::get_if<AwaitSteps>(&action)) {
      AwaitStopped(a->until);
    } else if (auto* w = std::get_if<SpillResult>(&action)) {
      Status s = spill_ ? spill_->Write(w->seq, *w->msg) : Status::FailedPrecondition("no directory for kept results");
      if (!s.ok()) {
        std::vector<Action> failed;
        core_.SpillFailed(w->seq, s.message(), now, &failed);
        Execute(failed, now);
      }
    } else if (auto* r = std::get_if<worker::SendSpilled>(&action)) {
      SendSpilled(r->seq, now);
    } else if (auto* d = std::get_if<DeleteSpilled>(&action)) {
      if (spill_) spill_->Remove(d->seq);
    } else if (std::holds_alternative<Dial>(action)) {
      Connect(now);
    } else if (auto* n = std::get_if<Notice>(&action)) {
      Log(*n);
    }
  }
}

void WorkerLoop::AwaitStopped(Time until) {
  // In slices of a heartbeat, heartbeating and reading the coordinator in
  // between: a worker whose steps take long to die must not be declared
  // lost meanwhile, or their retries would wait out its lease instead of
  // following its BYE. Their results are not sent: the BYE says they are over.
  std::vector<RunResult> ignored;
  std::vector<Action> actions;
  const auto slice = std::chrono::milliseconds(core_.heartbeat_ms());
  bool all_stopped = false;
  while (true) {
    all_stopped = runner_.RunUntilIdle(std::min(until, Clock::now() + slice), &ignored);
    const Time now = Clock::now();
    if (all_stopped || now >= until) break;
    ReadCoordinator(now);
    actions.clear();
    core_.Tick(now, &actions);
    Execute(actions, now);
    // A kill grace may be longer than the watchdog's interval.
    if (options_.notifier) options_.notifier->Watchdog(now);
  }
  actions.clear();
  core_.StepsAwaited(all_stopped, Clock::now(), &actions);
  Execute(actions, Clock::now());
}

void WorkerLoop::StartOne(StartStep& start, Time now) {
  // Checked and started in place: argv and env are not copied again.
  RunRequest& req = start.request;
  std::vector<Action> actions;
  // Started at Clock::now(): the timeout runs from this step's own start,
  // not from when the loop woke, or later steps of a burst would lose the
  // time spent spawning the earlier ones and be killed early.
  if (auto s = options_.policy.Check(&req); !s.ok()) {
    core_.StepNotStarted(req.key, StartFailure::kRefusedByPolicy, s.message(), now, &actions);
  } else if (auto u = RunAsClient(options_.client_users, start.client, &req); !u.ok()) {
    core_.StepNotStarted(req.key, StartFailure::kRefusedByPolicy, u.message(), now, &actions);
  } else if (auto s = runner_.Start(req, Clock::now()); !s.ok()) {
    core_.StepNotStarted(req.key, StartFailure::kStartFailed, s.message(), now, &actions);
  } else {
    core_.StepStarted(req.key, now, &actions);
  }
  Execute(actions, now);
}

Time WorkerLoop::NextWake() const {
  Time until = core_.NextDeadline();
  if (auto d = runner_.NextDeadline()) until = std::min(until, *d);
  if (options_.notifier) {
    if (auto w = options_.notifier->NextWatchdog()) until = std::min(until, *w);
  }
  if (auto m = metrics_.NextDeadline()) until = std::min(until, *m);
  return until;
}

std::string WorkerLoop::StatusLine(Time now) const {
  std::string line;
  if (core_.stopping()) {
    line = "stopping: ";
  } else if (core_.draining()) {
    const auto left = std::chrono::duration_cast<std::chrono::seconds>(core_.drain_until() - now).count();
    line = "draining (" + std::to_string(std::max<int64_t>(left, 0)) + " s left): ";
  }
  line += std::to_string(core_.running()) + "/" + std::to_string(core_.options().slots) + " slots busy, ";
  line += core_.registered() ? "registered with " + core_.endpoint() : "not registered, dialling " + core_.endpoint();
  if (core_.unconfirmed() > 0) line += ", " + std::to_string(core_.unconfirmed()) + " results unconfirmed";
  return line;
}

void WorkerLoop::Notify(Time now) {
  if (!options_.notifier || !options_.notifier->enabled()) return;
  options_.notifier->Watchdog(now);
  if (now < next_status_) return;
  next_status_ = now + std::chrono::seconds(1);
  options_.notifier->Status(StatusLine(now));
}

void WorkerLoop::OnStop(Time now) {
  if (core_.draining() || options_.drain_timeout <= common::Duration::zero()) {
    if (options_.notifier) options_.notifier->Stopping("stopping the steps still running");
    Shutdown();
    return;
  }
  std::vector<Action> actions;
  core_.Drain(now, options_.drain_timeout, &actions);
  if (options_.notifier) options_.notifier->Stopping(StatusLine(now));
  Execute(actions, now);
  if (core_.stopping()) CloseSockets();
}

int WorkerLoop::Run(common::StopSignal& stop) {
  Connect(Clock::now());
  if (options_.notifier) options_.notifier->Ready(StatusLine(Clock::now()));
  std::vector<PollFd> fds;
  std::vector<zmq::pollitem_t> items;
  std::vector<RunResult> finished;
  std::vector<Action> actions;
  while (true) {
    Time now = Clock::now();
    items.clear();
    items.push_back({nullptr, stop.fd(), ZMQ_POLLIN, 0});
    items.push_back({static_cast<void*>(*dealer_), 0, ZMQ_POLLIN, 0});
    const size_t monitor_at = items.size();
    if (monitor_->pollable()) items.push_back({monitor_->pollable(), 0, ZMQ_POLLIN, 0});
    const bool monitored = items.size() > monitor_at;
    if (sub_) items.push_back({static_cast<void*>(*sub_), 0, ZMQ_POLLIN, 0});
    fds.clear();
    runner_.PollFds(&fds);
    for (const PollFd& f : fds) items.push_back({nullptr, f.fd, f.events, 0});
    metrics_.AddTo(&items);
    try {
      zmq::poll(items.data(), items.size(), std::chrono::milliseconds(common::PollTimeoutMs(now, NextWake())));
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) {
        common::LogError("poll_failed").Kv("error", e.what());
        return 1;
      }
    }
    now = Clock::now();
    if ((items[0].revents & ZMQ_POLLIN) && stop.Consume()) {
      OnStop(now);
      if (core_.stopping()) return 0;
    }
    // Finished processes first: their reports free the coordinator's slots.
    finished.clear();
    runner_.Process(now, &finished);
    for (const RunResult& r : finished) {
      ++(r.kind == RunResult::Kind::kExited      ? (r.exit_code == 0 ? ended_ok_ : ended_exit_)
         : r.kind == RunResult::Kind::kSignaled   ? ended_signal_
         : r.kind == RunResult::Kind::kSpawnFailed ? ended_not_started_
                                                   : ended_lost_);
      actions.clear();
      core_.StepEnded(r, Clock::now(), &actions);
      Execute(actions, now);
    }
    ReadCoordinator(now);
    if (monitored && (items[monitor_at].revents & ZMQ_POLLIN) && monitor_->Drain()) {
      LogHandshake(*monitor_, options_);
    }
    ReadBroadcasts(now);
    actions.clear();
    core_.Tick(now, &actions);
    Execute(actions, now);
    if (core_.stopping()) {
      // A drain ended: its shutdown has run.
      CloseSockets();
      return 0;
    }
    metrics_.Serve(items, now, [&] { return MetricsText(now); });
    Notify(now);
  }
}

void WorkerLoop::ReadCoordinator(Time now) {
  common::Envelope env;
  std::vector<Action> actions;
  for (int i = 0; i < kBatch && common::ReceiveEnvelope(*dealer_, false, &env); ++i) {
    common::Message msg;
    if (auto s = common::DecodeEnvelope(env, &msg); !s.ok()) {
      uint64_t suppressed = 0;
      ++bad_messages_;
      if (bad_input_log_.Allow(now, &suppressed)) {
        LogWarn("bad_message").Kv("socket", "coordinator").Kv("error", s.message()).Kv("suppressed", suppressed);
      }
      continue;
    }
    actions.clear();
    core_.OnCoordinator(msg, now, &actions);
    Execute(actions, now);
  }
}

void WorkerLoop::ReadBroadcasts(Time now) {
  if (!sub_) return;
  common::Envelope env;
  std::vector<Action> actions;
  for (int i = 0; i < kBatch && common::ReceiveEnvelope(*sub_, false, &env); ++i) {
    common::Message msg;
    if (!common::DecodeEnvelope(env, &msg).ok()) continue;
    actions.clear();
    core_.OnBroadcast(msg, now, &actions);
    Execute(actions, now);
  }
}

void WorkerLoop::Shutdown() {
  std::vector<Action> actions;
  core_.Shutdown(Clock::now(), &actions);
  Execute(actions, Clock::now());
  CloseSockets();
}

void WorkerLoop::CloseSockets() {
  // The BYE just queued must leave: with the sockets' usual linger of 0
  // closing would drop it, and the coordinator would wait out the lease.
  if (dealer_) dealer_->set(zmq::sockopt::linger, 2000);
  dealer_.reset();
  monitor_.reset();
  sub_.reset();
}

}  // namespace cohort::worker
