// The Server's store: the restore at start, the group commit of each loop
// turn's journal, and the outbox of messages that wait for it.
#include <poll.h>

#include <iterator>

#include "common/codec.h"
#include "coordinator/archived.h"
#include "coordinator/server.h"

namespace cohort::coordinator {

using common::LogError;
using common::LogInfo;
using common::LogWarn;
using common::Status;
using common::Time;

namespace {

// How often a commit that failed for want of space is tried again.
constexpr auto kStoreRetry = std::chrono::seconds(1);

}  // namespace

Status Server::Restore() {
  if (!options_.store) {
    LogWarn("store")
        .Kv("kind", "memory")
        .Kv("detail", "groups and results are kept in memory only: a restart forgets them and stops every step");
    return Status::Ok();
  }
  const Time started = common::Clock::now();
  LoadedState state;
  if (Status s = options_.store->Load(&state); !s.ok()) return s;
  const size_t groups = state.groups.size() + state.finished.size();
  size_t running = 0, steps = 0;
  for (const LoadedGroup& g : state.groups) {
    running += g.ended ? 0 : 1;
    steps += g.accepted.step_count;
  }
  for (const FinishedSummary& f : state.finished) steps += f.step_count;
  if (Status s = core_.Restore(state, common::Clock::now(), &actions_); !s.ok()) {
    return Status::Corruption(options_.store_description + ": " + s.message() +
                              "; move the state directory aside to start empty, or restore it from a backup");
  }
  // A client's share of running groups survives the restart with them.
  for (const LoadedGroup& g : state.groups) {
    if (!g.ended) limits_.Admitted(g.accepted.client, g.accepted.group_id);
  }
  state = LoadedState{};
  LogInfo("store")
      .Kv("kind", options_.store_description)
      .Kv("groups", groups)
      .Kv("running", running)
      .Kv("steps", steps)
      .Kv("unclaimed-attempts", core_.unclaimed_attempts())
      .Kv("load-ms", std::chrono::duration_cast<std::chrono::milliseconds>(common::Clock::now() - started).count());
  return Status::Ok();
}

void Server::Send(zmq::socket_t& socket, std::optional<std::string> route, common::Message msg) {
  if (!options_.store) {
    common::SendMessage(socket, route, msg);
    return;
  }
  outbox_.push_back({&socket, std::move(route), std::move(msg)});
}

void Server::ConfirmLater(const std::string& route, const common::AttemptId& id) {
  auto [at, fresh] = confirm_at_.try_emplace(route, confirms_.size());
  if (fresh) confirms_.emplace_back(route, std::vector<common::AttemptId>{});
  std::vector<common::AttemptId>& ids = confirms_[at->second].second;
  // A worker resends a result until it is confirmed: while the store is
  // full, the same one arrives again and again.
  if (store_error_ && std::find(ids.begin(), ids.end(), id) != ids.end()) return;
  ids.push_back(id);
}

std::string Server::StoreTrouble() const {
  if (!store_error_) return "";
  return "the coordinator cannot write its state store (" + store_error_->message() +
         "); nothing new is accepted until it can";
}

Status Server::CommitJournal(Time now) {
  if (store_failed_) return *store_failed_;
  // A pipelined commit in flight lands first: what follows is after it.
  if (Status s = SettleInFlight(now); !s.ok()) return s;
  core_.TakeJournal(&unsaved_);
  if (unsaved_.empty()) return Status::Ok();
  if (store_error_ && now < next_store_retry_) return *store_error_;
  const Time started = common::Clock::now();
  Status s = options_.store->Commit(unsaved_);
  commit_time_.Observe(common::DurationToSeconds(common::Clock::now() - started));
  if (!s.ok()) {
    CommitFailed(s, now);
    return s;
  }
  Committed();
  unsaved_.clear();
  return Status::Ok();
}

bool Server::CommitFailed(const Status& s, Time now) {
  if (options_.election && options_.election->deposed()) {
    LogError("deposed").Kv("epoch", options_.epoch).Kv("error", s.message()).Kv("unsaved-records", unsaved_.size());
    stepped_down_ = true;
    store_failed_ = s;
    return false;
  }
  if (s.code() != Status::Code::kUnavailable) {
    LogError("store_failed").Kv("store", options_.store_description).Kv("error", s.message());
    store_failed_ = s;
    return false;
  }
  uint64_t suppressed = 0;
  if (store_log_.Allow(now, &suppressed)) {
    LogError("store_full")
        .Kv("store", options_.store_description)
        .Kv("error", s.message())
        .Kv("held-records", unsaved_.size())
        .Kv("held-messages", outbox_.size())
        .Kv("suppressed", suppressed);
  }
  store_error_ = s;
  next_store_retry_ = now + kStoreRetry;
  return true;
}

void Server::Committed() {
  if (store_error_) LogInfo("store_recovered").Kv("records", unsaved_.size() + in_flight_records_.size());
  store_error_.reset();
  next_store_retry_ = Time::max();
}

// ---- Pipelined commits ---------------------------------------------------------
//
// With a store on another process, the loop does not wait for a commit: it
// starts one and goes on reading and deciding, and what the next turns
// write and say waits for the next commit. One commit is in flight at a
// time; when it lands, what waited for it is sent, and the next starts.
// Order holds: a message waits for every record journaled before it.

bool Server::FlushPipelined(Time now) {
  if (store_failed_) return false;
  core_.TakeJournal(&unsaved_);
  if (in_flight_) {
    // Nothing new to write: this turn's messages need only the batch in
    // flight, and leave with it.
    if (unsaved_.empty()) JoinInFlight();
    return true;
  }
  if (unsaved_.empty()) {
    if (!Leads()) {
      stepped_down_ = true;
      return false;
    }
    SendHeld();
    return true;
  }
  if (store_error_ && now < next_store_retry_) return true;
  return StartCommit(now);
}

bool Server::StartCommit(Time now) {
  Status s = options_.store->StartCommit(unsaved_);
  if (!s.ok()) return CommitFailed(s, now);
  in_flight_ = true;
  in_flight_since_ = now;
  in_flight_records_ = std::move(unsaved_);
  unsaved_.clear();
  in_flight_outbox_ = std::move(outbox_);
  outbox_.clear();
  in_flight_confirms_ = std::move(confirms_);
  confirms_.clear();
  confirm_at_.clear();
  // A store may have committed at once (a batch too long for one round
  // trip): its socket will not wake the loop for it.
  return PollCommit(now);
}

void Server::JoinInFlight() {
  std::move(outbox_.begin(), outbox_.end(), std::back_inserter(in_flight_outbox_));
  outbox_.clear();
  std::move(confirms_.begin(), confirms_.end(), std::back_inserter(in_flight_confirms_));
  confirms_.clear();
  confirm_at_.clear();
}

bool Server::PollCommit(Time now) {
  if (!in_flight_) return true;
  bool done = false;
  Status s = options_.store->FinishCommit(in_flight_records_, &done);
  if (!done) return true;
  in_flight_ = false;
  if (!s.ok()) {
    // Nothing of the batch was written: it and everything after it wait
    // again, in order, for the retry.
    in_flight_records_.insert(in_flight_records_.end(), std::make_move_iterator(unsaved_.begin()),
                              std::make_move_iterator(unsaved_.end()));
    unsaved_ = std::move(in_flight_records_);
    in_flight_records_.clear();
    in_flight_outbox_.insert(in_flight_outbox_.end(), std::make_move_iterator(outbox_.begin()),
                             std::make_move_iterator(outbox_.end()));
    outbox_ = std::move(in_flight_outbox_);
    in_flight_outbox_.clear();
    std::vector<std::pair<std::string, std::vector<common::AttemptId>>> later = std::move(confirms_);
    confirms_.clear();
    confirm_at_.clear();
    for (auto* list : {&in_flight_confirms_, &later}) {
      for (auto& [route, ids] : *list) {
        for (common::AttemptId& id : ids) ConfirmLater(route, id);
      }
    }
    in_flight_confirms_.clear();
    return CommitFailed(s, now);
  }
  commit_time_.Observe(common::DurationToSeconds(common::Clock::now() - in_flight_since_));
  Committed();
  in_flight_records_.clear();
  // The commit was fenced, but the process may have been paused since.
  if (!Leads()) {
    stepped_down_ = true;
    return false;
  }
  SendOutgoing(&in_flight_outbox_, &in_flight_confirms_);
  // RUNs that left well after their dispatch: the workers' lists wait, as
  // after a slow turn (NoteSendDelay).
  const Time sent = common::Clock::now();
  const auto beat = std::chrono::milliseconds(options_.heartbeat_ms);
  if (sent - in_flight_since_ > beat) lists_from_ = sent + beat * options_.liveness;
  // What gathered meanwhile goes at once.
  return FlushPipelined(now);
}

Status Server::SettleInFlight(Time now) {
  while (in_flight_) {
    pollfd p{options_.store->fd(), POLLIN, 0};
    ::poll(&p, 1, 100);
    if (!PollCommit(now)) return store_failed_ ? *store_failed_ : Status::FailedPrecondition("stepped down");
  }
  // A commit that failed for want of room is back in unsaved_: the caller's
  // retry schedule (next_store_retry_) decides when it goes again.
  return Status::Ok();
}

bool Server::Flush(Time now) {
  if (options_.store && options_.store->pipelined()) return FlushPipelined(now);
  if (options_.store) {
    Status s = CommitJournal(now);
    if (store_failed_) return false;
    if (!s.ok()) return true;  // everything waits for the commit
  }
  // The commit was fenced, but the process may have been paused since.
  if (!Leads()) {
    stepped_down_ = true;
    return false;
  }
  SendHeld();
  return true;
}

bool Server::Leads() const { return !options_.lease || options_.lease->Held(common::Clock::now()); }

bool Server::KeepLease(Time now) {
  if (!options_.election) return true;
  LeaderLease& lease = *options_.lease;
  if (now >= lease.NextRenewal()) {
    // The connection takes one thing at a time: a commit in flight first.
    if (!SettleInFlight(now).ok() && (store_failed_ || stepped_down_)) return false;
    const Time sent = common::Clock::now();
    Leader current;
    Status s = options_.election->Renew(lease.lease(), &current);
    if (s.ok()) {
      lease.Renewed(sent);
    } else if (options_.election->deposed()) {
      LogError("deposed").Kv("epoch", options_.epoch).Kv("leader", current.holder).Kv("leader-epoch",
                                                                                      current.epoch);
      stepped_down_ = true;
      return false;
    } else {
      lease.RenewFailed(now);
      uint64_t suppressed = 0;
      if (lease_log_.Allow(now, &suppressed)) {
        LogWarn("lease_renewal_failed")
            .Kv("error", s.message())
            .Kv("held-ms", std::chrono::duration_cast<std::chrono::milliseconds>(lease.held_until() - now).count())
            .Kv("suppressed", suppressed);
      }
    }
  }
  if (Leads()) return true;
  LogError("lease_lost")
      .Kv("epoch", options_.epoch)
      .Kv("detail", "the lease could not be renewed in time: stepping down, since a standby may lead now");
  stepped_down_ = true;
  return false;
}

void Server::Resign() {
  if (!options_.election || stepped_down_) return;
  if (!SettleInFlight(common::Clock::now()).ok() && (store_failed_ || stepped_down_)) return;
  if (Status s = options_.election->Resign(); !s.ok()) {
    LogWarn("resign_failed").Kv("error", s.message()).Kv("detail", "a standby takes over when the lease runs out");
  }
}

Status Server::ReadStoredOutput(const AttemptRef& ref, bool stderr, Time now, std::string* out) {
  if (!options_.store) return Status::NotFound("the output of that attempt is no longer kept");
  Status s = CommitJournal(now);
  std::string stdout_tail, stderr_tail;
  if (s.ok()) s = options_.store->LoadOutput(ref.submission, ref.step, ref.attempt, &stdout_tail, &stderr_tail);
  if (!s.ok()) {
    LogError("store_read_failed").Kv("group", ref.group).Kv("error", s.message());
    return Status::Unavailable("the coordinator cannot read that output from its state store now (" +
                               s.message() + "); ask again later");
  }
  *out = stderr ? std::move(stderr_tail) : std::move(stdout_tail);
  return Status::Ok();
}

Status Server::ReadArchived(std::string_view group, Time now) {
  if (!options_.store || !core_.ArchivedSubmission(group)) return Status::Ok();
  // The group may have ended in this very turn: its last records must be
  // in the store before it is read back.
  Status s = CommitJournal(now);
  if (!s.ok()) {
    return Status::Unavailable("the coordinator cannot read group \"" + std::string(group) +
                               "\" back from its state store now (" + s.message() + "); ask again later");
  }
  s = coordinator::ReadArchived(options_.store.get(), &core_, group, now);
  if (!s.ok()) {
    LogError("store_read_failed").Kv("group", group).Kv("error", s.message());
    const std::string why =
        "the coordinator cannot read group \"" + std::string(group) + "\" back from its state store: " + s.message();
    return s.code() == Status::Code::kUnavailable ? Status::Unavailable(why) : Status::IoError(why);
  }
  return s;
}

void Server::SendHeld() { SendOutgoing(&outbox_, &confirms_); confirm_at_.clear(); }

void Server::SendOutgoing(std::vector<Outgoing>* messages,
                          std::vector<std::pair<std::string, std::vector<common::AttemptId>>>* confirms) {
  std::vector<Outgoing> held;
  held.swap(*messages);
  for (Outgoing& o : held) common::SendMessage(*o.socket, o.route, o.msg);
  for (auto& [route, ids] : *confirms) {
    for (size_t at = 0; at < ids.size(); at += common::kMaxArgs) {
      common::ConfirmMsg confirm;
      const size_t end = std::min(ids.size(), at + common::kMaxArgs);
      confirm.ids.assign(std::make_move_iterator(ids.begin() + at), std::make_move_iterator(ids.begin() + end));
      common::SendMessage(workers_, route, confirm);
    }
  }
  confirms->clear();
}

}  // namespace cohort::coordinator
