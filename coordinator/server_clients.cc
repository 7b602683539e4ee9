// The client side of the Server: requests on the client ROUTER (submit,
// status, wait, cancel, lists), their replies, and the WAITs held until a
// group ends or its client goes away.
#include <algorithm>

#include "common/codec.h"
#include "common/group_spec.h"
#include "common/result_json.h"
#include "coordinator/server.h"

namespace cohort::coordinator {

using common::LogInfo;
using common::Status;
using common::Time;

namespace {

// A page of a STATUS or WAIT reply: at most this many steps and this many
// bytes of output and error text. JSON escapes a byte into at most 6, so a
// page stays within a message (kMaxDocumentBytes) whatever the steps printed.
constexpr size_t kPageSteps = 10000;
constexpr size_t kPageBytes = 8u << 20;
static_assert(kPageBytes * 6 + kPageSteps * 1024 < common::kMaxDocumentBytes);
// WAITs held at once, over all clients (about 100 bytes each); past it a WAIT
// is refused and the client polls with STATUS instead.
constexpr size_t kMaxWaiters = 100000;

}  // namespace

void Server::Reply(const std::string& route, uint64_t req, const Status& status, std::string body) {
  common::ReplyMsg reply;
  reply.req = req;
  reply.code = status.code();
  reply.error = status.ok() ? "" : status.message();
  reply.body = std::move(body);
  Send(clients_, route, std::move(reply));
}

std::string Server::ResultBody(std::string_view group, uint64_t cursor) const {
  // A document for a million steps would take seconds to build on this loop
  // and exceed a message: one page, and the client asks for the next.
  auto r = core_.ResultPage(group, cursor, kPageSteps, kPageBytes);
  if (!r) return "";
  return common::GroupResultJson(*r, wall_);
}

void Server::OnClient(const common::Envelope& env, Time now) {
  common::Message msg;
  if (Status s = common::DecodeEnvelope(env, &msg); !s.ok()) {
    BadMessage("client", s, now);
    return;
  }
  std::optional<uint64_t> req = common::RequestIdOf(msg);
  if (!req) {
    BadMessage("client", Status::Corruption(std::string(common::CommandName(msg)) + " is not a client request"),
               now);
    // A worker pointed at this port by mistake: its REGISTER is answered
    // with the reason, which the worker logs each time it tries again.
    if (std::holds_alternative<common::RegisterMsg>(msg)) {
      common::ReregisterMsg wrong_port;
      wrong_port.reason = "this is the coordinator's client port; workers use its worker port (" +
                          bound_worker_ + ")";
      Send(clients_, env.route, std::move(wrong_port));
    }
    return;
  }
  // Limits and logs go by the key's name; admission by the key itself.
  const Caller caller = CallerOf(env.user);
  const std::string& client = caller.name;
  if (zap_ && !zap_->Admits(kClientDomain, env.user)) {
    // Connected before a reload removed or replaced its key.
    Reply(env.route, *req, Status::FailedPrecondition("key \"" + client + "\" is no longer authorized"), "");
    return;
  }
  std::string group;
  if (auto* m = std::get_if<common::SubmitMsg>(&msg)) {
    OnSubmit(env.route, *req, client, *m, now);
  } else if (auto* m = std::get_if<common::StatusMsg>(&msg); m && m->brief) {
    if (!Reach(caller, m->group, "STATUS", env.route, *req, now, &group)) return;
    auto sum = core_.Summary(group);
    if (!sum) {
      Reply(env.route, *req, Status::NotFound("no group \"" + m->group + "\""), "");
    } else {
      Reply(env.route, *req, Status::Ok(), common::GroupSummaryJson(*sum, wall_));
    }
  } else if (auto* m = std::get_if<common::StatusMsg>(&msg)) {
    if (!Reach(caller, m->group, "STATUS", env.route, *req, now, &group)) return;
    if (Status s = ReadArchived(group, now); !s.ok()) {
      Reply(env.route, *req, s, "");
      return;
    }
    std::string body = ResultBody(group, m->cursor);
    // Decided before the call: its arguments may be evaluated in any order.
    Status found = body.empty() ? Status::NotFound("no group \"" + m->group + "\"") : Status::Ok();
    Reply(env.route, *req, found, std::move(body));
  } else if (auto* m = std::get_if<common::WaitMsg>(&msg)) {
    if (!Reach(caller, m->group, "WAIT", env.route, *req, now, &group)) return;
    OnWait(env.route, *req, client, group, now);
  } else if (auto* m = std::get_if<common::LogsMsg>(&msg)) {
    if (!Reach(caller, m->group, "LOGS", env.route, *req, now, &group)) return;
    std::string tail;
    Status s = ReadArchived(group, now);
    std::optional<AttemptRef> in_store;
    if (s.ok()) s = core_.Output(group, m->step, m->attempt, m->stream == "stderr", &tail, &in_store);
    if (s.ok() && in_store) s = ReadStoredOutput(*in_store, m->stream == "stderr", now, &tail);
    Reply(env.route, *req, s, std::move(tail));
  } else if (auto* m = std::get_if<common::CancelRequestMsg>(&msg)) {
    if (!Reach(caller, m->group, "CANCEL", env.route, *req, now, &group)) return;
    if (Status s = ReadArchived(group, now); !s.ok()) {
      Reply(env.route, *req, s, "");
      return;
    }
    Status s = m->step.empty() ? core_.CancelGroupById(group, now, &actions_, client)
                               : core_.CancelStepById(group, m->step, now, &actions_, client);
    LogInfo("cancel_requested").Kv("group", group).Kv("step", m->step).Kv("client", client)
        .Kv("result", s.ToString());
    Reply(env.route, *req, s, "");
  } else if (std::holds_alternative<common::GroupsMsg>(msg)) {
    std::vector<common::GroupSummary> list = core_.Groups();
    std::erase_if(list, [&](const common::GroupSummary& g) {
      const std::string* owner = core_.OwnerOf(g.id);
      return !owner || !MayReach(caller, *owner);
    });
    Reply(env.route, *req, Status::Ok(), common::GroupListJson(list, wall_));
  } else if (std::holds_alternative<common::WorkersMsg>(msg)) {
    std::vector<common::WorkerSummary> list;
    std::vector<WorkerView> views = core_.Workers();
    for (WorkerView& w : core_.LostWorkers(now)) views.push_back(std::move(w));
    for (WorkerView& w : views) {
      list.push_back({std::move(w.name), w.slots, w.running, std::move(w.agents), w.last_heartbeat,
                      std::move(w.version), std::move(w.state), w.since, std::move(w.reason)});
    }
    Reply(env.route, *req, Status::Ok(), common::WorkerListJson(list, wall_, now));
  } else if (auto* m = std::get_if<common::CordonMsg>(&msg)) {
    OnCordon(caller, env.route, *req, *m, now);
  } else if (std::holds_alternative<common::PingMsg>(msg)) {
    Reply(env.route, *req, Status::Ok(),
          common::PingJson({"leader", options_.name,
                            options_.advertised_client.empty() ? options_.client_endpoint
                                                               : options_.advertised_client,
                            options_.epoch,
                            std::chrono::duration_cast<std::chrono::milliseconds>(now - options_.started).count()}));
  } else {
    Reply(env.route, *req, Status::InvalidArgument("not a client request"), "");
  }
}

Caller Server::CallerOf(const std::string& user_id) const {
  Caller c;
  c.name = UserIdName(user_id);
  c.admin = zap_ && zap_->IsAdmin(user_id);
  return c;
}

bool Server::Reach(const Caller& caller, const std::string& named, std::string_view command,
                   const std::string& route, uint64_t req, Time now, std::string* group) {
  *group = ResolveGroup(caller, named, [&](std::string_view id) { return core_.OwnerOf(id) != nullptr; });
  const std::string* owner = core_.OwnerOf(*group);
  if (owner && MayReach(caller, *owner)) return true;
  // The answer is the same whether the group never was or is another's.
  uint64_t suppressed = 0;
  if (owner && refusal_log_.Allow(now, &suppressed)) {
    common::LogWarn("group_access_refused").Kv("client", caller.name).Kv("command", command).Kv("group", named)
        .Kv("suppressed", suppressed);
  }
  Reply(route, req, Status::NotFound("no group \"" + named + "\""), "");
  return false;
}

void Server::OnCordon(const Caller& caller, const std::string& route, uint64_t req, const common::CordonMsg& m,
                      Time now) {
  WorkerMode mode = WorkerMode::kReady;
  Status s;
  if (zap_ && !caller.admin) {
    // Cordoning every worker would stop every tenant's work.
    s = Status::FailedPrecondition("cordon, drain and uncordon need an admin key (--admin-clients); key \"" +
                                   caller.name + "\" is a client's");
  } else if (!ParseWorkerMode(m.mode, &mode)) {
    s = Status::InvalidArgument("mode: unknown \"" + m.mode + "\"");  // the codec admits only the three names
  } else {
    s = core_.Handle(SetWorkerMode{m.worker, mode, caller.name}, now, &actions_);
  }
  LogInfo("worker_mode_set").Kv("worker", m.worker).Kv("mode", m.mode).Kv("client", caller.name)
      .Kv("result", s.ToString());
  Reply(route, req, s, "");
}

void Server::OnSubmit(const std::string& route, uint64_t req, const std::string& client, const common::SubmitMsg& m,
                      Time now) {
  SubmitGroup e;
  // Refused up front while the store cannot be written: the group could be
  // accepted but never acknowledged.
  const std::string trouble = StoreTrouble();
  Status s = trouble.empty() ? Status::Ok() : Status::Unavailable(trouble);
  // The client's share is checked before its spec is parsed or scheduled.
  if (s.ok()) s = limits_.CheckSubmit(client);
  // The step limit is enforced while reading, which stops past it: a refused
  // huge group costs no more than an allowed one.
  if (s.ok()) s = common::ParseGroupSpecJson(m.spec, &e.spec, limits_.max_steps(), "--max-steps-per-group");
  std::string id;
  e.client = client;
  if (s.ok() && options_.store) e.spec_json = m.spec;
  // A spec under the id of a finished group: compared with that group's.
  if (s.ok() && !e.spec.id.empty()) s = ReadArchived(QualifiedGroupId(client, e.spec.id), now);
  bool attached = false;
  if (s.ok()) s = core_.Submit(std::move(e), now, &actions_, &id, &attached);
  if (!s.ok()) {
    LogInfo("group_refused").Kv("client", client).Kv("error", s.message());
    if (!trouble.empty()) {
      // Nothing was accepted, so nothing need be committed first; and the
      // held replies wait for the store.
      common::ReplyMsg refusal;
      refusal.req = req;
      refusal.code = s.code();
      refusal.error = s.message();
      common::SendMessage(clients_, route, refusal);
    } else {
      Reply(route, req, s, "");
    }
    return;
  }
  if (attached) {
    // Sent again by a client that lost our answer: the same group.
    LogInfo("group_resubmitted").Kv("group", id).Kv("client", client);
    Reply(route, req, s, common::SubmittedJson(id, /*existing=*/true));
    return;
  }
  limits_.Admitted(client, id);
  auto sum = core_.Summary(id);
  LogInfo("group_submitted").Kv("group", id).Kv("client", client).Kv("steps", sum ? sum->total : 0);
  // Accepted all the same: a worker offering the agent may join later.
  std::string warning;
  if (sum && sum->waiting.find("no live worker offers") != std::string::npos) {
    warning = "steps wait: " + sum->waiting + "; they start when such a worker joins";
  }
  Reply(route, req, s, common::SubmittedJson(id, false, warning));
}

void Server::OnWait(const std::string& route, uint64_t req, const std::string& client, const std::string& group,
                    Time now) {
  auto sum = core_.Summary(group);
  Status room = limits_.CheckWait(client);
  if (!sum) {
    Reply(route, req, Status::NotFound("no group \"" + group + "\""), "");
  } else if (sum->state != common::GroupState::kRunning) {
    Status s = ReadArchived(group, now);
    Reply(route, req, s, s.ok() ? ResultBody(group, 0) : "");
  } else if (waiter_count_ >= kMaxWaiters) {
    Reply(route, req,
          Status::Unavailable("too many clients are waiting (" + std::to_string(kMaxWaiters) + "); poll group \"" +
                              group + "\" with STATUS instead"),
          "");
  } else {
    // A client repeats its WAIT when it cannot tell whether this coordinator
    // holds it (it restarted, or the connection dropped): hold it once.
    std::vector<Waiter>& list = waiters_[group];
    for (const Waiter& w : list) {
      if (w.route == route && w.req == req) return;
    }
    if (!room.ok()) {
      if (list.empty()) waiters_.erase(group);
      uint64_t suppressed = 0;
      if (refusal_log_.Allow(now, &suppressed)) {
        common::LogWarn("wait_refused").Kv("client", client).Kv("group", group).Kv("error", room.message())
            .Kv("suppressed", suppressed);
      }
      Reply(route, req, room, "");
      return;
    }
    list.push_back({route, req, client});
    limits_.WaitHeld(client);
    ++waiter_count_;
  }
}

void Server::AnswerWaiters(const GroupFinished& f, Time now) {
  auto it = waiters_.find(f.group);
  if (it == waiters_.end()) return;
  // Archived already when a submission in the same turn needed its room.
  Status read = ReadArchived(f.group, now);
  std::string body = read.ok() ? ResultBody(f.group, 0) : "";
  // Empty only with --retention 0, when the group is already forgotten.
  Status found = !read.ok()     ? read
                 : body.empty() ? Status::NotFound("group \"" + f.group + "\" finished " +
                                                 std::string(common::GroupStateName(f.state)) +
                                                 " and is no longer retained")
                              : Status::Ok();
  for (const Waiter& w : it->second) {
    Reply(w.route, w.req, found, body);
    limits_.WaitsEnded(w.client, 1);
  }
  waiter_count_ -= it->second.size();
  waiters_.erase(it);
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
      if (at->second) limits_.WaitsEnded(w.client, 1);
      return at->second;
    });
    dropped += before - list.size();
    it = list.empty() ? waiters_.erase(it) : std::next(it);
  }
  waiter_count_ -= dropped;
  if (dropped > 0) LogInfo("waiters_gone").Kv("dropped", dropped).Kv("waiting", waiter_count_);
}

}  // namespace cohort::coordinator
