#include "cli/group_waiter.h"

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <optional>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/display.h"
#include "cli/interrupt.h"
#include "common/result_json.h"

namespace cohort::cli {
namespace {

using common::Clock;
using common::Duration;
using common::Status;
using common::Time;
using Json = nlohmann::json;

// How often the loop looks at its clocks when nothing arrives.
constexpr Duration kTick = std::chrono::milliseconds(100);

std::string Seconds(Duration d) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1fs", common::DurationToSeconds(d));
  return text;
}

class GroupWaiter {
 public:
  GroupWaiter(Client& client, std::string group, const WaitSettings& settings)
      : client_(client),
        group_(std::move(group)),
        progress_(settings.progress),
        known_(settings.known),
        contact_(settings.known) {
    if (settings.cancel_on_interrupt) interrupts_.emplace();
  }

  Status Run(common::ReplyMsg* result, WaitOutcome* outcome);

 private:
  enum class Next { kWait, kDone };

  uint64_t Ask(common::Message request, Time now);
  void SendWait(Time now);
  Status Tick(Time now);
  void Heard(Time now);
  Next OnReply(common::ReplyMsg& reply, Time now, common::ReplyMsg* result, Status* error);
  Next OnPoll(const common::ReplyMsg& reply, Time now, Status* error);
  Next OnInterrupt(Time now);
  void OnCancelReply(const common::ReplyMsg& reply);
  Status Lost(Duration silent) const;
  Status Forgotten(const Status& said) const;
  std::string Prefix() const { return "while waiting for group " + group_ + ": "; }
  Status Prefixed(const Status& s) const { return Status::FromCode(s.code(), Prefix() + s.message()); }
  void Say(const std::string& text);
  void Draw(const std::string& line);
  void EndLine();

  Client& client_;
  const std::string group_;
  const bool progress_;
  const Time started_ = Clock::now();
  bool known_;    // the coordinator showed it had the group: accepted it, described it, or held our WAIT
  bool contact_;  // the coordinator has answered this client
  uint64_t wait_req_ = 0;
  // The coordinator would not hold our WAIT (its share for this client is
  // taken): the polls alone follow the group.
  bool polling_only_ = false;
  std::vector<uint64_t> result_reqs_;  // full STATUS requests, sent once a poll showed the group ended
  Time result_sent_{};
  bool poll_pending_ = false;
  Time poll_sent_{};
  Time next_poll_{};
  // When the oldest poll or fetch sent since the coordinator last spoke went
  // out. Not a WAIT: the coordinator answers it only when the group ends.
  std::optional<Time> unanswered_since_;
  Time wait_sign_{};                      // the WAIT last sent, or the last HEARTBEAT since: it is held
  std::optional<Duration> outage_;        // the last outage, once it ended
  bool outage_told_ = false;              // the user heard of the outage under way
  std::string line_;                      // the progress line on the terminal, "" when none
  std::optional<InterruptPipe> interrupts_;  // with cancel_on_interrupt
  int interrupted_ = 0;                   // Ctrl-Cs so far
  uint64_t cancel_req_ = 0;               // the CANCEL the first one sent, until answered
};

Status GroupWaiter::Run(common::ReplyMsg* result, WaitOutcome* outcome) {
  if (client_.broken()) return Prefixed(client_.Unreachable());
  Time now = Clock::now();
  wait_req_ = client_.Send(common::WaitMsg{0, group_});
  wait_sign_ = now;
  next_poll_ = now + kPollInterval;
  Status error;
  while (true) {
    if (interrupts_ && OnInterrupt(Clock::now()) == Next::kDone) {
      *outcome = WaitOutcome::kDetached;
      break;
    }
    if (error = Tick(Clock::now()); !error.ok()) break;
    common::Message msg;
    if (!client_.ReceiveAny(kTick, &msg)) {
      if (client_.hopeless()) {
        error = Prefixed(client_.Unreachable());
        break;
      }
      continue;
    }
    now = Clock::now();
    Heard(now);
    if (std::holds_alternative<common::HeartbeatMsg>(msg)) {
      // Sent only to a client holding a WAIT: ours is held, so the group was there.
      known_ = true;
      wait_sign_ = now;
    } else if (auto* reply = std::get_if<common::ReplyMsg>(&msg)) {
      if (OnReply(*reply, now, result, &error) == Next::kDone) break;
    }
  }
  EndLine();
  if (*outcome != WaitOutcome::kDetached && interrupted_ > 0) *outcome = WaitOutcome::kInterrupted;
  return error;
}

GroupWaiter::Next GroupWaiter::OnInterrupt(Time now) {
  const int seen = interrupts_->Take();
  if (seen == 0) return Next::kWait;
  interrupted_ += seen;
  if (interrupted_ >= 2) {
    Say("detached: group " + group_ + " goes on. `cohort wait " + group_ + "` follows it, `cohort cancel " +
        group_ + "` cancels it");
    return Next::kDone;
  }
  Say("cancelling group " + group_ + " and waiting for its steps to stop (Ctrl-C again to leave it running)");
  cancel_req_ = Ask(common::CancelRequestMsg{0, group_, ""}, now);
  return Next::kWait;
}

void GroupWaiter::OnCancelReply(const common::ReplyMsg& reply) {
  cancel_req_ = 0;
  const Status said = ReplyStatus(reply);
  // A group that ended meanwhile has nothing to cancel: its WAIT answers.
  if (said.ok() || said.code() == Status::Code::kFailedPrecondition) return;
  Say("the coordinator did not cancel group " + group_ + ": " + said.message());
}

uint64_t GroupWaiter::Ask(common::Message request, Time now) {
  if (!unanswered_since_) unanswered_since_ = now;
  return client_.Send(std::move(request));
}

void GroupWaiter::SendWait(Time now) {
  client_.Repeat(wait_req_, common::WaitMsg{0, group_});
  wait_sign_ = now;
}

Status GroupWaiter::Tick(Time now) {
  if (unanswered_since_) {
    const Duration silent = now - *unanswered_since_;
    if (silent > client_.timeout()) return Lost(silent);
    if (silent > kOutageGap && contact_ && !outage_told_) {
      Say("the coordinator at " + client_.endpoint() + " has not answered for " + Seconds(silent) +
          "; waiting for it to come back, " + Seconds(client_.timeout()) + " in all (--connect-timeout)");
      outage_told_ = true;
    }
  }
  // A coordinator that answers but shows no sign of holding our WAIT
  // restarted too fast to show an outage. While it is away, a repeat would
  // only queue behind the last one.
  const bool answering = !unanswered_since_ || now - *unanswered_since_ <= kOutageGap;
  if (answering && !polling_only_ && now - wait_sign_ > kWaitSilence) SendWait(now);
  // One poll at a time; another once it has gone unanswered for kOutageGap,
  // as it may have died with the connection it went out on.
  if (now >= next_poll_ && (!poll_pending_ || now - poll_sent_ > kOutageGap)) {
    Ask(common::StatusMsg{0, group_, true}, now);
    poll_pending_ = true;
    poll_sent_ = now;
    next_poll_ = now + kPollInterval;
  }
  return Status::Ok();
}

void GroupWaiter::Heard(Time now) {
  contact_ = true;
  const bool was_away = unanswered_since_ && now - *unanswered_since_ > kOutageGap;
  if (was_away) outage_ = now - *unanswered_since_;
  unanswered_since_.reset();
  if (!was_away) return;
  if (outage_told_) {
    Say("the coordinator at " + client_.endpoint() + " answers again after " + Seconds(*outage_) +
        "; waiting for group " + group_ + " again");
  }
  outage_told_ = false;
  // It may be a new coordinator process, which holds no WAIT of ours, nor
  // had our CANCEL.
  SendWait(now);
  if (cancel_req_) client_.Repeat(cancel_req_, common::CancelRequestMsg{0, group_, ""});
}

GroupWaiter::Next GroupWaiter::OnReply(common::ReplyMsg& reply, Time now, common::ReplyMsg* result,
                                       Status* error) {
  if (cancel_req_ && reply.req == cancel_req_) {
    OnCancelReply(reply);
    return Next::kWait;
  }
  const bool fetched = std::find(result_reqs_.begin(), result_reqs_.end(), reply.req) != result_reqs_.end();
  // A WAIT refused for want of room says to poll (docs/PROTOCOL.md, WAIT).
  if (reply.req == wait_req_ && reply.code == Status::Code::kUnavailable &&
      reply.error.find("with STATUS instead") != std::string::npos) {
    polling_only_ = true;
    return Next::kWait;
  }
  if (reply.req == wait_req_ || fetched) {
    // A group the coordinator had, unknown after it was away: it restarted.
    // Without an outage the coordinator's own answer stands (a finished group
    // it no longer retains, or a group that never was).
    if (reply.req == wait_req_ && reply.code == Status::Code::kNotFound && known_ && outage_) {
      *error = Forgotten(ReplyStatus(reply));
    } else {
      *result = std::move(reply);
    }
    return Next::kDone;
  }
  // Every other request of this wait is a poll; earlier reqs are not ours to answer.
  if (reply.req > wait_req_) return OnPoll(reply, now, error);
  return Next::kWait;
}

GroupWaiter::Next GroupWaiter::OnPoll(const common::ReplyMsg& reply, Time now, Status* error) {
  poll_pending_ = false;
  const Status said = ReplyStatus(reply);
  if (said.code() == Status::Code::kNotFound) {
    *error = Forgotten(said);
    return Next::kDone;
  }
  if (!said.ok()) {
    *error = Status::FailedPrecondition(Prefix() + said.message());
    return Next::kDone;
  }
  known_ = true;
  Json summary;
  std::string why;
  if (!common::ParseJsonBounded(reply.body, &summary, &why)) summary = Json();
  // A state that is not a string (a hostile or broken reply) counts as
  // running: value() would throw on it.
  const bool ended = summary.is_object() && summary.contains("state") && summary["state"].is_string() &&
                     summary["state"].get_ref<const std::string&>() != "running";
  if (!ended) {
    if (progress_) Draw(ProgressBar(summary, common::DurationToSeconds(now - started_)));
    return Next::kWait;
  }
  // It ended and our WAIT went unanswered (lost in a restart, and not yet
  // repeated): ask for the result itself.
  if (result_reqs_.empty() || now - result_sent_ > kOutageGap) {
    result_reqs_.push_back(Ask(common::StatusMsg{0, group_}, now));
    result_sent_ = now;
  }
  return Next::kWait;
}

Status GroupWaiter::Lost(Duration silent) const {
  // Before the first answer, or with keys the coordinator refuses, the
  // reason is the one any request would give.
  if (!contact_ || client_.hopeless()) return Prefixed(client_.Unreachable());
  return Status::Unavailable(Prefix() + "cannot reach the coordinator at " + client_.endpoint() +
                             ": it went away and has not answered for " + Seconds(silent) +
                             " (--connect-timeout " + Seconds(client_.timeout()) +
                             ", the longest outage a wait tolerates; is cohort-coordinator running?)");
}

Status GroupWaiter::Forgotten(const Status& said) const {
  if (!known_) return Status::NotFound(Prefix() + said.message() + " (the coordinator may have restarted and lost it)");
  const std::string away = outage_ ? " (it did not answer for " + Seconds(*outage_) + ")" : "";
  return Status::NotFound(Prefix() + "the coordinator at " + client_.endpoint() + " restarted" + away +
                          " and no longer knows the group (it says: " + said.message() +
                          "); submit it again if it must still run");
}

void GroupWaiter::Say(const std::string& text) {
  EndLine();
  std::cerr << "cohort: " << text << "\n" << std::flush;
}

void GroupWaiter::Draw(const std::string& line) {
  if (line == line_) return;
  std::cerr << "\r\033[K" << line << std::flush;
  line_ = line;
}

void GroupWaiter::EndLine() {
  if (progress_ && !line_.empty()) std::cerr << "\r\033[K" << std::flush;
  line_.clear();
}

}  // namespace

Status WaitForGroup(Client& client, const std::string& group, const WaitSettings& settings,
                    common::ReplyMsg* result, WaitOutcome* outcome) {
  WaitOutcome ignored = WaitOutcome::kEnded;
  WaitOutcome& how = outcome ? *outcome : ignored;
  how = WaitOutcome::kEnded;
  return GroupWaiter(client, group, settings).Run(result, &how);
}

}  // namespace cohort::cli
