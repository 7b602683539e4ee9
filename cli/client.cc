#include "cli/client.h"

#include <cstdio>

#include "common/secure_options.h"
#include "common/transport.h"

namespace cohort::cli {

using common::Clock;
using common::Status;

namespace {

// A silent coordinator is left after this, when the next request goes out.
constexpr auto kSilentFor = std::chrono::seconds(2);
// A connection whose ZeroMQ handshake has not completed in this long is
// left at once: nothing sent on it was delivered.
constexpr auto kHandshakeWait = std::chrono::seconds(1);
// How soon a standby that knew no leader is asked again.
constexpr auto kStandbyRetry = std::chrono::milliseconds(500);
// Standby answers followed in a row before the client gives up on finding
// a leader (several takeovers in flight, or coordinators that disagree).
constexpr int kMaxRedirects = 8;
// Requests kept for sending again after a move.
constexpr size_t kMaxInFlight = 64;

}  // namespace

Client::Client(std::string endpoints, common::Duration timeout, const std::optional<common::PeerCurve>& curve)
    : endpoints_(common::SplitEndpoints(endpoints)),
      endpoint_(endpoints_.front()),
      timeout_(timeout),
      context_(1),
      socket_(context_, zmq::socket_type::dealer) {
  common::ConfigureSocket(socket_);
  if (curve) {
    curve_ = true;
    connect_error_ = common::MakeCurveClient(socket_, curve->own, curve->server_public);
    if (!connect_error_.ok()) return;
  }
  monitor_.emplace(context_, socket_);
  connect_error_ = common::ConnectSocket(socket_, endpoint_);
}

Status Client::Unreachable() const {
  if (!connect_error_.ok()) return connect_error_;
  using Outcome = common::HandshakeMonitor::Outcome;
  if (monitor_ && monitor_->outcome() == Outcome::kRefused) {
    return Status::Unavailable("the coordinator at " + endpoint_ + " refused your key (" + monitor_->detail() +
                               "): is your public key in its --authorized-clients directory?");
  }
  // Without keys of our own, a connection closed mid-handshake is no sign of
  // a CURVE server (that shows as a mismatch): the coordinator went away, and
  // the answer is the one for an unreachable coordinator below.
  const Outcome o = monitor_ ? monitor_->outcome() : Outcome::kNone;
  if (o == Outcome::kFailed || o == Outcome::kMismatch || (o == Outcome::kClosed && curve_)) {
    return Status::Unavailable("the handshake with the coordinator at " + endpoint_ + " failed (" +
                               monitor_->detail() + "): " +
                               (curve_ ? "is --coordinator-key the public key of the coordinator at this address?"
                                       : "does it require CURVE keys? see --coordinator-key"));
  }
  char secs[32];
  std::snprintf(secs, sizeof secs, "%g", common::DurationToSeconds(timeout_));
  if (!standby_said_.empty()) {
    return Status::Unavailable("no leading coordinator answered within " + std::string(secs) + "s; the last " +
                               "answer was: " + standby_said_);
  }
  if (endpoints_.size() > 1) {
    std::string all;
    for (const std::string& e : endpoints_) all += (all.empty() ? "" : ", ") + e;
    return Status::Unavailable("cannot reach any of the coordinators at " + all + ": no answer within " + secs +
                               "s (is cohort-coordinator running? see --coordinator)");
  }
  return Status::Unavailable("cannot reach the coordinator at " + endpoint_ + ": no answer within " + secs +
                             "s (is cohort-coordinator running? see --coordinator" +
                             (curve_ ? std::string("; is your public key in its --authorized-clients, and "
                                                   "--coordinator-key its key?)")
                                     : std::string("; does it require CURVE keys? see --coordinator-key)")));
}

uint64_t Client::Send(common::Message request) {
  uint64_t req = next_req_++;
  Repeat(req, std::move(request));
  return req;
}

void Client::Repeat(uint64_t req, common::Message request) {
  std::visit(
      [req](auto& m) {
        if constexpr (requires { m.req; }) m.req = req;
      },
      request);
  LeaveIfSilent();
  if (!unanswered_since_) unanswered_since_ = Clock::now();
  if (connect_error_.ok()) common::SendMessage(socket_, std::nullopt, request);
  in_flight_[req] = std::move(request);
  if (in_flight_.size() > kMaxInFlight) in_flight_.erase(in_flight_.begin());
}

void Client::LeaveIfSilent() {
  if (endpoints_.size() < 2 || !unanswered_since_ || Clock::now() - *unanswered_since_ < kSilentFor) return;
  MoveTo(endpoints_[(at_ + 1) % endpoints_.size()], !Reached());
}

bool Client::Reached() const { return monitor_ && monitor_->handshakes() > handshakes_at_move_; }

void Client::MoveTo(const std::string& endpoint, bool resend_all) {
  for (size_t i = 0; i < endpoints_.size(); ++i) {
    if (endpoints_[i] == endpoint) at_ = i;
  }
  try {
    socket_.disconnect(endpoint_);
  } catch (const zmq::error_t&) {
    // Not connected there (the connect failed): nothing to undo.
  }
  endpoint_ = endpoint;
  connect_error_ = common::ConnectSocket(socket_, endpoint_);
  moved_at_ = Clock::now();
  unanswered_since_ = moved_at_;
  if (monitor_) {
    monitor_->Drain();  // events of the endpoint left behind count for it, not for this one
    handshakes_at_move_ = monitor_->handshakes();
  }
  if (!connect_error_.ok()) return;
  for (auto it = in_flight_.begin(); it != in_flight_.end();) {
    // A submission that reached a coordinator may have been accepted there
    // before it fell silent: sent again it could run twice. It then ends
    // as unreachable, as with one coordinator; an explicit group id makes
    // the user's retry safe.
    if (!resend_all && std::holds_alternative<common::SubmitMsg>(it->second)) {
      it = in_flight_.erase(it);
      continue;
    }
    common::SendMessage(socket_, std::nullopt, it->second);
    ++it;
  }
}

void Client::MoveIfDown() {
  if (endpoints_.size() < 2 || !monitor_ || in_flight_.empty()) return;
  // Down: refused or dropped. Never up: nothing was delivered (a process
  // that is stopped still completes the TCP handshake, not ZeroMQ's).
  const bool down = monitor_->Down(endpoint_);
  const bool reached = Reached();
  if (down || (!reached && Clock::now() - moved_at_ > kHandshakeWait)) {
    MoveTo(endpoints_[(at_ + 1) % endpoints_.size()], !reached);
  }
}

bool Client::Follow(const common::ReplyMsg& reply) {
  standby_said_ = reply.error;
  if (reply.leader.empty() || reply.leader == endpoint_ || redirects_ >= kMaxRedirects) return false;
  ++redirects_;
  // A standby acts on nothing: every request it answered may go again.
  MoveTo(reply.leader, true);
  return true;
}

bool Client::Receive(uint64_t req, common::Duration wait, common::ReplyMsg* reply) {
  const common::Time until = Clock::now() + wait;
  common::Message msg;
  while (ReceiveAny(until - Clock::now(), &msg)) {
    auto* r = std::get_if<common::ReplyMsg>(&msg);
    if (r && r->req == req) {
      *reply = std::move(*r);
      return true;
    }
  }
  return false;
}

bool Client::ReceiveAny(common::Duration wait, common::Message* msg) {
  if (!connect_error_.ok()) return false;
  const common::Time until = Clock::now() + wait;
  common::Envelope env;
  while (true) {
    while (common::ReceiveEnvelope(socket_, false, &env)) {
      if (!common::DecodeEnvelope(env, msg).ok()) continue;
      auto* reply = std::get_if<common::ReplyMsg>(msg);
      if (reply && reply->code == Status::Code::kUnavailable && reply->error.starts_with("standby: ")) {
        // A standby: its answer is not the coordinator's. Ask the leader
        // it names; one that knows no leader yet is asked again later.
        if (Follow(*reply)) continue;
        if (reply->leader.empty()) {
          // It knows no leader yet (a takeover under way): ask again soon.
          if (!ask_standby_again_) ask_standby_again_ = Clock::now() + kStandbyRetry;
          continue;
        }
        if (endpoints_.size() > 1) continue;
      }
      unanswered_since_.reset();
      if (reply) {
        in_flight_.erase(reply->req);
        redirects_ = 0;
        standby_said_.clear();
      }
      return true;
    }
    common::Time now = Clock::now();
    if (now >= until) return false;
    zmq::pollitem_t items[2] = {{static_cast<void*>(socket_), 0, ZMQ_POLLIN, 0}};
    int count = 1;
    if (monitor_ && monitor_->pollable()) items[count++] = {monitor_->pollable(), 0, ZMQ_POLLIN, 0};
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(until - now) + std::chrono::milliseconds(1);
    // With several coordinators, a connection that never comes up is
    // noticed by the clock, not by an event.
    if (endpoints_.size() > 1 || ask_standby_again_) ms = std::min(ms, std::chrono::milliseconds(100));
    try {
      zmq::poll(items, count, ms);
    } catch (const zmq::error_t&) {
      return false;
    }
    // A refused key or a security mismatch fails again on every retry: say
    // so now rather than after the whole timeout.
    if (count > 1) monitor_->Drain();
    if (hopeless()) return false;
    MoveIfDown();
    if (ask_standby_again_ && Clock::now() >= *ask_standby_again_) {
      ask_standby_again_.reset();
      for (const auto& [req, request] : in_flight_) common::SendMessage(socket_, std::nullopt, request);
    }
  }
}

Status Client::Call(common::Message request, common::ReplyMsg* reply) {
  uint64_t req = Send(std::move(request));
  if (!Receive(req, timeout_, reply)) return Unreachable();
  return Status::Ok();
}

Status Client::CallRepeating(common::Message request, common::ReplyMsg* reply, int* sent) {
  int ignored = 0;
  int& sends = sent ? *sent : ignored;
  sends = 1;
  const uint64_t req = Send(request);
  const common::Time deadline = Clock::now() + timeout_;
  common::Duration every = std::chrono::seconds(2);
  while (true) {
    const common::Time now = Clock::now();
    if (now >= deadline || broken() || hopeless()) return Unreachable();
    if (Receive(req, std::min(every, deadline - now), reply)) return Status::Ok();
    if (Clock::now() >= deadline) return Unreachable();
    Repeat(req, request);
    ++sends;
    every *= 2;
  }
}

Status ReplyStatus(const common::ReplyMsg& reply) {
  if (reply.code == Status::Code::kOk) return Status::Ok();
  return Status::FromCode(reply.code, reply.error.empty() ? "the coordinator refused without a reason" : reply.error);
}

}  // namespace cohort::cli
