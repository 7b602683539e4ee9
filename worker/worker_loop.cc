#include "worker/worker_loop.h"

#include <unistd.h>

#include <algorithm>
#include <random>
#include <thread>

#include "common/options.h"
#include "common/transport.h"
#include "worker/leftovers.h"

namespace cohort::worker {

using common::Clock;
using common::LogDebug;
using common::LogInfo;
using common::LogWarn;
using common::Time;

namespace {

constexpr size_t kMaxRememberedCancels = 10000;
constexpr int kBatch = 256;

std::string HostName() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "worker";
  return buf;
}

// "tcp://0.0.0.0:5702" from a coordinator bound to a wildcard is reachable at
// the host we used to reach the coordinator itself.
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
  } else if (m.outcome() == Outcome::kFailed || m.outcome() == Outcome::kMismatch) {
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

WorkerLoop::WorkerLoop(WorkerOptions options)
    : options_(std::move(options)),
      context_(1),
      runner_([&] {
        RunnerOptions r;
        r.kill_grace = options_.kill_grace;
        r.tail_bytes = options_.tail_bytes;
        if (options_.run_as) {
          r.run_as = options_.run_as->credentials;
          for (auto& [name, value] : r.base_env) {
            if (name == "HOME") value = options_.run_as->home;
          }
        }
        return r;
      }()),
      wall_(common::WallClock::Now()),
      heartbeat_ms_(options_.heartbeat_ms),
      liveness_(options_.liveness),
      register_every_(std::chrono::milliseconds(options_.heartbeat_ms)) {
  std::random_device rd;
  instance_ = (static_cast<uint64_t>(rd()) << 32 | rd()) | 1;  // never 0, which means "not given"
  if (options_.name.empty()) options_.name = HostName();
  if (options_.slots <= 0) options_.slots = std::max(1u, std::thread::hardware_concurrency());
}

WorkerLoop::~WorkerLoop() = default;

void WorkerLoop::Send(const common::Message& msg) {
  if (dealer_) common::SendMessage(*dealer_, std::nullopt, msg);
}

void WorkerLoop::Connect(Time now) {
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
  dealer_->set(zmq::sockopt::heartbeat_ivl, heartbeat_ms_);
  dealer_->set(zmq::sockopt::heartbeat_timeout, heartbeat_ms_ * liveness_);
  dealer_->set(zmq::sockopt::reconnect_ivl_max,
               static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                    options_.max_reconnect_backoff).count()));
  if (auto s = common::ConnectSocket(*dealer_, options_.coordinator); !s.ok()) {
    LogWarn("connect_failed").Kv("error", s.message());
  }
  registered_ = false;
  last_heard_ = now;
  SendRegister(now);
}

void WorkerLoop::SendRegister(Time now) {
  common::RegisterMsg reg;
  reg.name = options_.name;
  reg.slots = static_cast<uint32_t>(options_.slots);
  reg.agents = options_.agents;
  reg.version = common::kVersion;
  reg.instance = instance_;
  last_register_ = now;
  for (const auto& [key, a] : attempts_) reg.running.push_back(a.id);
  // Results the coordinator may have missed are reported as still running,
  // then sent again once it welcomes us, so none is lost across a reconnect.
  for (const Unconfirmed& u : unconfirmed_) reg.running.push_back(u.msg.id);
  Send(reg);
  next_heartbeat_ = now + std::chrono::milliseconds(heartbeat_ms_);
  LogInfo("registering").Kv("coordinator", options_.coordinator).Kv("name", options_.name)
      .Kv("slots", options_.slots).Kv("running", reg.running.size());
}

Time WorkerLoop::NextWake() const {
  Time until = next_heartbeat_;
  if (registered_) until = std::min(until, last_heard_ + std::chrono::milliseconds(heartbeat_ms_) * liveness_);
  if (auto d = runner_.NextDeadline()) until = std::min(until, *d);
  return until;
}

int WorkerLoop::Run(const common::StopSignal& stop) {
  Time now = Clock::now();
  Connect(now);
  std::vector<PollFd> fds;
  std::vector<zmq::pollitem_t> items;
  std::vector<RunResult> finished;
  common::Envelope env;
  while (true) {
    now = Clock::now();
    items.clear();
    items.push_back({nullptr, stop.fd(), ZMQ_POLLIN, 0});
    const size_t dealer_at = items.size();
    if (dealer_) items.push_back({static_cast<void*>(*dealer_), 0, ZMQ_POLLIN, 0});
    const size_t monitor_at = items.size();
    if (monitor_ && monitor_->pollable()) items.push_back({monitor_->pollable(), 0, ZMQ_POLLIN, 0});
    const size_t sub_at = items.size();
    if (sub_) items.push_back({static_cast<void*>(*sub_), 0, ZMQ_POLLIN, 0});
    fds.clear();
    runner_.PollFds(&fds);
    for (const PollFd& f : fds) items.push_back({nullptr, f.fd, f.events, 0});
    try {
      zmq::poll(items.data(), items.size(), std::chrono::milliseconds(common::PollTimeoutMs(now, NextWake())));
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) {
        common::LogError("poll_failed").Kv("error", e.what());
        return 1;
      }
    }
    now = Clock::now();
    if (items[0].revents & ZMQ_POLLIN) {
      Shutdown();
      return 0;
    }
    // Finished processes first: their reports free the coordinator's slots.
    finished.clear();
    runner_.Process(now, &finished);
    for (const RunResult& r : finished) Report(r);

    if (dealer_ && dealer_at < items.size()) {
      for (int i = 0; i < kBatch && common::ReceiveEnvelope(*dealer_, false, &env); ++i) {
        common::Message msg;
        if (auto s = common::DecodeEnvelope(env, &msg); !s.ok()) {
          uint64_t suppressed = 0;
          if (bad_input_log_.Allow(now, &suppressed)) {
            LogWarn("bad_message").Kv("socket", "coordinator").Kv("error", s.message()).Kv("suppressed", suppressed);
          }
          continue;
        }
        last_heard_ = now;
        OnCoordinator(msg, now);
        if (!dealer_) break;
      }
    }
    if (monitor_at < sub_at && (items[monitor_at].revents & ZMQ_POLLIN) && monitor_->Drain()) {
      LogHandshake(*monitor_, options_);
    }
    if (sub_ && sub_at < items.size()) {
      for (int i = 0; i < kBatch && common::ReceiveEnvelope(*sub_, false, &env); ++i) {
        common::Message msg;
        if (common::DecodeEnvelope(env, &msg).ok()) {
          if (auto* c = std::get_if<common::CancelGroupMsg>(&msg)) OnCancelGroup(c->group, now);
        }
      }
    }
    // Drop results the coordinator has had long enough to act on: only while
    // registered, so an outage of any length loses none (they are re-sent,
    // with a fresh sent_at, once it welcomes us back).
    const auto keep = std::chrono::milliseconds(heartbeat_ms_) * liveness_ * 2;
    while (registered_ && !unconfirmed_.empty() && now - unconfirmed_.front().sent_at > keep) {
      unconfirmed_.pop_front();
    }

    if (registered_ && now - last_heard_ >= std::chrono::milliseconds(heartbeat_ms_) * liveness_) {
      // The coordinator restarted, is gone, or is busy. The socket is kept:
      // ZeroMQ re-establishes a broken connection by itself (with backoff),
      // and a dead one is noticed by the ZMTP heartbeats set in Connect().
      // Closing it would only make a busy coordinator lose us: we register
      // again until it answers.
      LogWarn("coordinator_silent")
          .Kv("coordinator", options_.coordinator)
          .Kv("silent_ms", std::chrono::duration_cast<std::chrono::milliseconds>(now - last_heard_).count());
      registered_ = false;
    }
    if (dealer_ && now >= next_heartbeat_) {
      if (registered_) {
        Send(common::HeartbeatMsg{});
        next_heartbeat_ = now + std::chrono::milliseconds(heartbeat_ms_);
      } else {
        SendRegister(now);
        // Unanswered REGISTERs queue on a connection that is up but not
        // read (a stuck coordinator): ask less and less often.
        next_heartbeat_ = now + register_every_;
        register_every_ = std::min(register_every_ * 2, options_.max_reconnect_backoff);
      }
    }
  }
}

void WorkerLoop::OnCoordinator(const common::Message& msg, Time now) {
  if (auto* w = std::get_if<common::WelcomeMsg>(&msg)) {
    const bool first = !registered_;
    registered_ = true;
    register_every_ = std::chrono::milliseconds(heartbeat_ms_);
    if (w->heartbeat_ms > 0) heartbeat_ms_ = static_cast<int>(w->heartbeat_ms);
    if (w->liveness > 0) liveness_ = static_cast<int>(w->liveness);
    std::string endpoint = ReachableEndpoint(w->cancel_endpoint, options_.coordinator);
    if (!sub_ || endpoint != sub_endpoint_) {
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
      sub_endpoint_ = endpoint;
    }
    if (first) {
      // Cancels seen before guard against a RUN racing its group's cancel in
      // one coordinator's life; after a reconnect the coordinator may be a
      // new one that reuses group ids, so the memory starts afresh.
      cancelled_groups_.clear();
      cancelled_order_.clear();
      LogInfo("registered").Kv("heartbeat_ms", heartbeat_ms_).Kv("liveness", liveness_).Kv("cancel", endpoint);
      for (Unconfirmed& u : unconfirmed_) {
        Send(u.msg);
        u.sent_at = now;
      }
    }
  } else if (auto* run = std::get_if<common::RunMsg>(&msg)) {
    OnRun(*run, now);
  } else if (auto* c = std::get_if<common::CancelAttemptMsg>(&msg)) {
    auto it = key_of_.find({c->id.group, c->id.step, c->id.attempt});
    if (it != key_of_.end()) {
      LogInfo("cancel").Kv("group", c->id.group).Kv("step", c->id.step).Kv("attempt", c->id.attempt);
      runner_.Cancel(it->second, now);
      return;
    }
    // Already over: the coordinator may have missed the report; send it again.
    for (Unconfirmed& u : unconfirmed_) {
      if (u.msg.id.group == c->id.group && u.msg.id.step == c->id.step && u.msg.id.attempt == c->id.attempt) {
        Send(u.msg);
      }
    }
  } else if (auto* c = std::get_if<common::CancelGroupMsg>(&msg)) {
    OnCancelGroup(c->group, now);
  } else if (auto* r = std::get_if<common::ReregisterMsg>(&msg)) {
    LogWarn("register_again").Kv("reason", r->reason);
    registered_ = false;
    // At most once per heartbeat: a refusal must not become a tight loop.
    if (now - last_register_ >= std::chrono::milliseconds(heartbeat_ms_)) SendRegister(now);
  }
}

void WorkerLoop::RememberCancelled(const std::string& group) {
  if (!cancelled_groups_.insert(group).second) return;
  cancelled_order_.push_back(group);
  if (cancelled_order_.size() > kMaxRememberedCancels) {
    cancelled_groups_.erase(cancelled_order_.front());
    cancelled_order_.pop_front();
  }
}

void WorkerLoop::OnCancelGroup(const std::string& group, Time now) {
  RememberCancelled(group);
  int n = 0;
  for (auto it = key_of_.lower_bound({group, 0, 0}); it != key_of_.end() && std::get<0>(it->first) == group;
       ++it) {
    runner_.Cancel(it->second, now);
    ++n;
  }
  LogInfo("group_cancelled").Kv("group", group).Kv("running", n);
}

void WorkerLoop::RefuseAsCancelled(const common::RunMsg& run, const std::string& why, Time now) {
  common::FinishedMsg f;
  f.id = run.id;
  f.cancelled = true;
  f.error = why;
  f.started_ms = f.finished_ms = wall_.ToUnixMs(now);
  SendFinished(std::move(f), now);
}

void WorkerLoop::FailRun(const common::RunMsg& run, const std::string& why, Time now) {
  common::FinishedMsg f;
  f.id = run.id;
  f.error = "worker " + options_.name + " " + why;
  f.started_ms = f.finished_ms = wall_.ToUnixMs(now);
  SendFinished(std::move(f), now);
}

void WorkerLoop::OnRun(const common::RunMsg& run, Time now) {
  if (cancelled_groups_.count(run.id.group)) {
    RefuseAsCancelled(run, "group was cancelled before this step started", now);
    return;
  }
  if (key_of_.count({run.id.group, run.id.step, run.id.attempt})) {
    // Only a coordinator that restarted and reused an id can send this: the
    // process running under that id belongs to the old one. Refuse loudly.
    LogWarn("run_collision").Kv("group", run.id.group).Kv("step", run.step_id).Kv("attempt", run.id.attempt);
    FailRun(run, "still runs an attempt with the same id from before a coordinator restart", now);
    return;
  }
  if (attempts_.size() >= static_cast<size_t>(options_.slots)) {
    // The coordinator never sends more than our slots (it counts attempts
    // being stopped too), so this is a confused or hostile peer: the host is
    // protected, and the refusal is a result it can act on, not silence.
    common::FinishedMsg f;
    f.id = run.id;
    f.error = "worker " + options_.name + " refused the step: it already runs " + std::to_string(attempts_.size()) +
              " steps, all of its " + std::to_string(options_.slots) + " slots";
    f.started_ms = f.finished_ms = wall_.ToUnixMs(now);
    LogWarn("run_refused").Kv("group", run.id.group).Kv("step", run.step_id).Kv("running", attempts_.size());
    SendFinished(std::move(f), now);
    return;
  }
  RunRequest req;
  req.key = next_key_++;
  req.argv = run.argv;
  req.shell = run.shell;
  req.env = run.env;
  req.env.emplace_back(kWorkerEnv, options_.name);  // finds leftovers after a crash (leftovers.h)
  req.env.emplace_back("COHORT_GROUP", run.id.group);
  req.env.emplace_back("COHORT_STEP", run.step_id);
  req.env.emplace_back("COHORT_ATTEMPT", std::to_string(run.id.attempt));
  req.cwd = run.cwd;
  if (run.timeout_ms > 0) req.timeout = std::chrono::milliseconds(run.timeout_ms);
  if (auto s = options_.policy.Check(&req); !s.ok()) {
    LogWarn("step_refused").Kv("group", run.id.group).Kv("step", run.step_id).Kv("error", s.message());
    FailRun(run, s.message(), now);
    return;
  }
  // The timeout runs from this step's own start, not from when the loop
  // woke: later steps of a burst would otherwise lose the time spent
  // spawning the earlier ones and be killed early.
  if (auto s = runner_.Start(req, Clock::now()); !s.ok()) {
    LogWarn("start_failed").Kv("group", run.id.group).Kv("step", run.step_id).Kv("error", s.message());
    FailRun(run, "could not start the step: " + s.message(), now);
    return;
  }
  attempts_[req.key] = {run.id, run.step_id};
  key_of_[{run.id.group, run.id.step, run.id.attempt}] = req.key;
  LogDebug("started").Kv("group", run.id.group).Kv("step", run.step_id).Kv("attempt", run.id.attempt);
  common::StartedMsg started;
  started.id = run.id;
  Send(started);
}

void WorkerLoop::Report(const RunResult& r) {
  auto it = attempts_.find(r.key);
  if (it == attempts_.end()) return;
  Attempt a = std::move(it->second);
  attempts_.erase(it);
  key_of_.erase({a.id.group, a.id.step, a.id.attempt});
  common::FinishedMsg f;
  f.id = a.id;
  if (r.kind == RunResult::Kind::kExited) f.exit_code = r.exit_code;
  if (r.kind == RunResult::Kind::kSignaled) f.signal = r.signal;
  f.timed_out = r.timed_out;
  f.cancelled = r.cancelled && !r.timed_out;
  f.escalated = r.escalated_to_kill;
  f.error = r.error;
  if (r.kind == RunResult::Kind::kLost && f.error.empty()) f.error = "the step's exit status was lost";
  f.stdout_tail = r.stdout_tail;
  f.stderr_tail = r.stderr_tail;
  f.stdout_bytes = r.stdout_bytes;
  f.stderr_bytes = r.stderr_bytes;
  f.started_ms = wall_.ToUnixMs(r.start);
  f.finished_ms = wall_.ToUnixMs(r.end);
  LogInfo("finished")
      .Kv("group", a.id.group)
      .Kv("step", a.step_id)
      .Kv("attempt", a.id.attempt)
      .Kv("result", r.Summary());
  SendFinished(std::move(f), Clock::now());
}

void WorkerLoop::SendFinished(common::FinishedMsg f, Time now) {
  // Moved through one Message rather than converted twice: the output tails
  // it carries can be 64 KiB each.
  common::Message msg(std::move(f));
  Send(msg);
  unconfirmed_.push_back({std::get<common::FinishedMsg>(std::move(msg)), now});
}

void WorkerLoop::Shutdown() {
  LogInfo("stopping").Kv("running", runner_.running());
  // Goodbye first: the coordinator retries these steps elsewhere at once
  // instead of waiting for our heartbeats to lapse.
  Send(common::ByeMsg{});
  Time now = Clock::now();
  for (const auto& [key, a] : attempts_) runner_.Cancel(key, now);
  std::vector<RunResult> ignored;
  runner_.RunUntilIdle(now + options_.kill_grace + std::chrono::seconds(2), &ignored);
  dealer_.reset();
  monitor_.reset();
  sub_.reset();
}

}  // namespace cohort::worker
