#include "coordinator/standby.h"

#include "common/clock.h"
#include "common/codec.h"
#include "common/metrics_poll.h"
#include "common/result_json.h"
#include "coordinator/server.h"
#include "common/transport.h"

namespace cohort::coordinator {

using common::Clock;
using common::LogInfo;
using common::LogWarn;
using common::Status;
using common::Time;

std::string StandbyMessage(const std::string& me, const std::optional<Leader>& leader, const std::string& trouble) {
  std::string m = "standby: coordinator " + me + " does not lead";
  if (leader && leader->epoch > 0 && leader->expires_in_ms >= 0) {
    return m + "; the leader is " + leader->holder + " at " + leader->client_endpoint + " (epoch " +
           std::to_string(leader->epoch) + ")";
  }
  if (!trouble.empty()) return m + ", and cannot reach the database to learn who does (" + trouble + ")";
  return m + "; no coordinator leads at the moment (a takeover is under way): try again in a few seconds";
}

Standby::Standby(StandbyOptions options, Election* election, LeaderLease* lease)
    : options_(std::move(options)),
      election_(election),
      lease_(lease),
      context_(1),
      clients_(context_, zmq::socket_type::router),
      workers_(context_, zmq::socket_type::router) {
  for (zmq::socket_t* s : {&clients_, &workers_}) common::ConfigureSocket(*s);
}

Standby::~Standby() = default;

Status Standby::Bind() {
  if (options_.curve) {
    // The same keys are admitted as by the leader: a standby tells an
    // unknown peer nothing, not even where the leader is.
    zap_ = std::make_unique<ZapHandler>(context_, options_.authorized_clients, options_.authorized_workers,
                                        options_.admin_clients);
    if (Status s = zap_->Start(); !s.ok()) return s;
    for (auto [socket, domain] : {std::pair{&clients_, kClientDomain}, {&workers_, kWorkerDomain}}) {
      if (Status s = common::MakeCurveServer(*socket, *options_.curve, domain); !s.ok()) return s;
    }
  }
  if (Status s = guard_.Watch(clients_, "client", common::kMaxClientFrameBytes); !s.ok()) return s;
  if (Status s = guard_.Watch(workers_, "worker", common::kMaxWorkerFrameBytes); !s.ok()) return s;
  if (Status s = common::BindSocket(clients_, options_.client_endpoint, nullptr, options_.ipc); !s.ok()) return s;
  if (Status s = common::BindSocket(workers_, options_.worker_endpoint, nullptr, options_.ipc); !s.ok()) return s;
  LogInfo("standby")
      .Kv("name", options_.me.holder)
      .Kv("client", options_.client_endpoint)
      .Kv("worker", options_.worker_endpoint);
  return Status::Ok();
}

Standby::Outcome Standby::Run(const common::StopSignal& stop, Leader* won) {
  // At once: until a campaign has read the row, every answer would say that
  // no leader is known.
  bool first = true;
  bool first_ready = true;
  common::MetricsPoll metrics(options_.metrics);
  std::vector<zmq::pollitem_t> items;
  while (true) {
    const Time now = Clock::now();
    if (first || now >= lease_->NextCampaign()) {
      first = false;
      bool did_win = false;
      Campaign(now, &did_win);
      if (did_win) {
        *won = *leader_;
        return Outcome::kWon;
      }
      // Ready as a standby: bound, and able to say who leads. Again after
      // each campaign, so the status names the current leader.
      if (options_.notifier) {
        if (first_ready) options_.notifier->Ready(StatusLine());
        options_.notifier->Status(StatusLine());
      }
      first_ready = false;
    }
    if (options_.notifier) options_.notifier->Watchdog(Clock::now());
    Time wake = lease_->NextCampaign();
    if (options_.notifier) {
      if (auto w = options_.notifier->NextWatchdog()) wake = std::min(wake, *w);
    }
    if (auto m = metrics.NextDeadline()) wake = std::min(wake, *m);
    items.assign({
        {static_cast<void*>(clients_), 0, ZMQ_POLLIN, 0},
        {static_cast<void*>(workers_), 0, ZMQ_POLLIN, 0},
        {nullptr, stop.fd(), ZMQ_POLLIN, 0},
    });
    if (zap_) items.push_back({static_cast<void*>(zap_->socket()), 0, ZMQ_POLLIN, 0});
    guard_.AddTo(&items);
    metrics.AddTo(&items);
    try {
      zmq::poll(items.data(), items.size(), std::chrono::milliseconds(common::PollTimeoutMs(Clock::now(), wake)));
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) {
        common::LogError("poll_failed").Kv("error", e.what());
        return Outcome::kFailed;
      }
    }
    if (items[2].revents & ZMQ_POLLIN) {
      if (options_.notifier) options_.notifier->Stopping("stopping: " + StatusLine());
      return Outcome::kStopped;
    }
    // Before the ZAP requests: a connection over a cap is cut, not answered.
    guard_.Drain(Clock::now());
    if (zap_ && (items[3].revents & ZMQ_POLLIN)) zap_->HandleRequests(Clock::now());
    AnswerWorkers();
    AnswerClients();
    const Time served = Clock::now();
    metrics.Serve(items, served, [&] {
      common::Exposition e;
      CoordinatorBuildMetrics(e, false, options_.started, served);
      return e.Text();
    });
  }
}

void Standby::Campaign(Time now, bool* won) {
  Leader current;
  const Status s = election_->Campaign(options_.me, lease_->lease(), won, &current);
  if (!s.ok()) {
    lease_->Lost(Clock::now());
    trouble_ = s.message();
    uint64_t suppressed = 0;
    if (trouble_log_.Allow(now, &suppressed)) {
      LogWarn("campaign_failed").Kv("error", s.message()).Kv("suppressed", suppressed);
    }
    return;
  }
  trouble_.clear();
  if (*won) {
    lease_->Won(now);
    leader_ = current;
    return;
  }
  lease_->Lost(Clock::now());
  // This process's own lease, not yet run out after it stepped down: it
  // must not send anyone to itself.
  if (current.client_endpoint == options_.me.client_endpoint &&
      current.worker_endpoint == options_.me.worker_endpoint) {
    current.expires_in_ms = -1;
  }
  if (!leader_ || leader_->epoch != current.epoch) {
    LogInfo("leader_seen").Kv("leader", current.holder).Kv("epoch", current.epoch).Kv("client",
                                                                                       current.client_endpoint);
  }
  leader_ = current;
}

void Standby::AnswerClients() {
  common::Envelope env;
  for (int i = 0; i < 256 && common::ReceiveEnvelope(clients_, true, &env); ++i) {
    common::Message msg;
    if (!common::DecodeEnvelope(env, &msg).ok()) continue;  // the leader logs bad input; a standby drops it
    common::ReplyMsg reply;
    reply.req = common::RequestIdOf(msg).value_or(0);
    const bool known = leader_ && leader_->expires_in_ms >= 0;
    if (std::holds_alternative<common::PingMsg>(msg)) {
      // A health check: a standby is healthy, and says it stands by.
      reply.code = Status::Code::kOk;
      reply.body = common::PingJson(
          {"standby", options_.me.holder, known ? leader_->client_endpoint : "", known ? leader_->epoch : 0,
           std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - options_.started).count()});
      common::SendMessage(clients_, env.route, reply);
      continue;
    }
    reply.code = Status::Code::kUnavailable;
    reply.error = StandbyMessage(options_.me.holder, leader_, trouble_);
    if (known) reply.leader = leader_->client_endpoint;
    common::SendMessage(clients_, env.route, reply);
  }
}

std::string Standby::StatusLine() const { return StandbyMessage(options_.me.holder, leader_, trouble_); }

void Standby::AnswerWorkers() {
  common::Envelope env;
  for (int i = 0; i < 256 && common::ReceiveEnvelope(workers_, true, &env); ++i) {
    common::Message msg;
    if (!common::DecodeEnvelope(env, &msg).ok()) continue;
    common::ReregisterMsg answer;
    answer.reason = StandbyMessage(options_.me.holder, leader_, trouble_);
    if (leader_ && leader_->expires_in_ms >= 0) answer.leader = leader_->worker_endpoint;
    common::SendMessage(workers_, env.route, answer);
  }
}

}  // namespace cohort::coordinator
