// WorkerCore's kept results: a FINISHED is kept from its first send until a
// CONFIRM names its attempt, sent again when unconfirmed, and bounded in
// count and bytes, the oldest going to disk before any is dropped.
#include <algorithm>

#include "worker/worker_core.h"
#include "worker/worker_core_internal.h"

namespace cohort::worker {

using common::Time;
using internal::Named;
using internal::Note;

void WorkerCore::SendFinished(common::FinishedMsg f, Time now, std::vector<Action>* out) {
  const size_t bytes = f.stdout_tail.size() + f.stderr_tail.size() + f.error.size();
  const AttemptKey key = KeyOf(f.id);
  const uint64_t seq = next_result_++;
  common::AttemptId id = f.id;
  unconfirmed_.emplace(seq,
                       Unconfirmed{std::move(id), std::make_shared<const common::Message>(std::move(f)), now, bytes});
  results_of_.emplace(key, seq);
  unconfirmed_bytes_ += bytes;
  SendResult(seq, now, out);
  KeepWithinBounds(out);
}

void WorkerCore::SendResult(uint64_t seq, Time now, std::vector<Action>* out) {
  Unconfirmed& u = unconfirmed_.at(seq);
  if (!u.msg) {
    if (!u.queued) {
      u.queued = true;
      spill_queue_.push_back(seq);
    }
    return;
  }
  u.sent_at = now;
  if (registered_) sends_.emplace_back(now, seq);
  out->emplace_back(std::in_place_type<SendToCoordinator>, u.msg);
}

void WorkerCore::FlushSpilled(Time now, std::vector<Action>* out) {
  if (!registered_ || spill_queue_.empty()) return;
  if (now >= spill_window_ + heartbeat()) {
    spill_window_ = now;
    spill_window_bytes_ = 0;
  }
  // At least one per window, however large.
  while (!spill_queue_.empty() && (spill_window_bytes_ == 0 || spill_window_bytes_ < options_.max_unconfirmed_bytes)) {
    const uint64_t seq = spill_queue_.front();
    spill_queue_.pop_front();
    auto it = unconfirmed_.find(seq);
    if (it == unconfirmed_.end() || !it->second.queued) continue;  // confirmed or dropped since
    Unconfirmed& u = it->second;
    u.queued = false;
    u.sent_at = now;
    sends_.emplace_back(now, seq);
    spill_window_bytes_ += std::max<size_t>(u.bytes, 1);
    out->emplace_back(std::in_place_type<SendSpilled>, seq);
  }
}

bool WorkerCore::ResendResults(const AttemptKey& key, Time now, std::vector<Action>* out) {
  auto [it, end] = results_of_.equal_range(key);
  if (it == end) return false;
  for (; it != end; ++it) SendResult(it->second, now, out);
  FlushSpilled(now, out);
  return true;
}

void WorkerCore::ResendDue(Time now, std::vector<Action>* out) {
  const auto every = heartbeat() * liveness_;
  size_t resent = 0;
  while (!sends_.empty() && now - sends_.front().first >= every) {
    const auto [at, seq] = sends_.front();
    sends_.pop_front();
    auto it = unconfirmed_.find(seq);
    if (it == unconfirmed_.end() || it->second.sent_at != at) continue;  // confirmed, or sent since
    SendResult(seq, now, out);
    ++resent;
  }
  if (resent > 0) {
    out->push_back(Note(Notice::Level::kDebug, "results_resent",
                        {{"resent", resent}, {"unconfirmed", unconfirmed_.size()}}));
  }
}

void WorkerCore::OnConfirm(const common::ConfirmMsg& c, std::vector<Action>* out) {
  for (const common::AttemptId& id : c.ids) {
    for (auto it = results_of_.find(KeyOf(id)); it != results_of_.end(); it = results_of_.find(KeyOf(id))) {
      ForgetResult(it->second, out);
    }
  }
}

void WorkerCore::KeepWithinBounds(std::vector<Action>* out) {
  // Every kept result is listed in REGISTER, wherever it is kept.
  while (unconfirmed_.size() > 1 && unconfirmed_.size() > options_.max_unconfirmed) {
    Drop(unconfirmed_.begin()->first, "count", out);
  }
  while (unconfirmed_bytes_ > options_.max_unconfirmed_bytes) {
    auto oldest = unconfirmed_.lower_bound(in_memory_from_);
    if (oldest == unconfirmed_.end() || std::next(oldest) == unconfirmed_.end()) break;  // the newest stays
    const uint64_t seq = oldest->first;
    const size_t bytes = oldest->second.bytes;
    if (!options_.spill || bytes > options_.max_spilled_bytes) {
      Drop(seq, "memory", out);
      continue;
    }
    // Room on disk is made by dropping the oldest there.
    while (spilled_bytes_ + bytes > options_.max_spilled_bytes && unconfirmed_.begin()->first < in_memory_from_) {
      Drop(unconfirmed_.begin()->first, "disk", out);
    }
    Spill(seq, out);
  }
}

void WorkerCore::Spill(uint64_t seq, std::vector<Action>* out) {
  Unconfirmed& u = unconfirmed_.at(seq);
  out->emplace_back(std::in_place_type<SpillResult>, SpillResult{seq, std::move(u.msg)});
  u.msg.reset();
  in_memory_from_ = seq + 1;
  unconfirmed_bytes_ -= u.bytes;
  spilled_bytes_ += u.bytes;
  ++spilled_;
}

void WorkerCore::Drop(uint64_t seq, const char* why, std::vector<Action>* out) {
  const Unconfirmed& u = unconfirmed_.at(seq);
  auto fields = Named(u.id, std::to_string(u.id.step));
  fields.emplace_back("bound", why);
  fields.emplace_back("unconfirmed", unconfirmed_.size());
  fields.emplace_back("unconfirmed-bytes", unconfirmed_bytes_);
  fields.emplace_back("spilled-bytes", spilled_bytes_);
  out->push_back(Note(Notice::Level::kWarn, "unconfirmed_dropped", std::move(fields)));
  ForgetResult(seq, out);
}

void WorkerCore::SpillFailed(uint64_t seq, const std::string& error, Time, std::vector<Action>* out) {
  auto it = unconfirmed_.find(seq);
  if (it == unconfirmed_.end()) return;
  auto fields = Named(it->second.id, std::to_string(it->second.id.step));
  fields.emplace_back("error", error);
  out->push_back(Note(Notice::Level::kWarn, "unconfirmed_spill_failed", std::move(fields)));
  ForgetResult(seq, out);
}

void WorkerCore::ForgetResult(uint64_t seq, std::vector<Action>* out) {
  auto it = unconfirmed_.find(seq);
  if (it == unconfirmed_.end()) return;
  auto [r, end] = results_of_.equal_range(KeyOf(it->second.id));
  while (r != end && r->second != seq) ++r;
  if (r != end) results_of_.erase(r);
  if (seq < in_memory_from_) {
    spilled_bytes_ -= it->second.bytes;
    --spilled_;
    out->emplace_back(std::in_place_type<DeleteSpilled>, seq);
  } else {
    unconfirmed_bytes_ -= it->second.bytes;
  }
  unconfirmed_.erase(it);
}

}  // namespace cohort::worker
