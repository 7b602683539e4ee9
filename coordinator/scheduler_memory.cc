// What the Scheduler holds in memory and how it lets go: groups forgotten
// when their retention ends or room is needed, finished groups archived to
// the store (their details read back by Hydrate), and the output budget that
// moves running groups' finished output to the store. Bounded by
// SchedulerOptions::max_groups, max_steps and max_output_bytes.
#include "coordinator/scheduler.h"

namespace cohort::coordinator {

void Scheduler::Forget(Group* g) {
  ClearTimer(&g->retention_timer);
  Unpark(g);
  output_held_ -= g->output_bytes;
  Journal<GroupForgotten>(g->submission);
  steps_held_ -= g->steps.size();
  groups_by_seq_.erase(g->seq);
  groups_.erase(g->spec.id);  // destroys g
  while (!finished_seqs_.empty() && !groups_by_seq_.count(finished_seqs_.front())) finished_seqs_.pop_front();
}

void Scheduler::Archive(Group* g) {
  steps_held_ -= g->steps.size();
  output_held_ -= g->output_bytes;
  g->output_bytes = 0;
  g->archived = true;
  g->archived_steps = g->steps.size();
  g->index = {};  // its keys point into the spec's steps
  g->steps = {};
  std::string id = std::move(g->spec.id);
  g->spec = {};
  g->spec.id = std::move(id);
  g->errors = {};
  g->pending = {};
  g->retry_ready = {};
  g->active = {};
  g->backoff = {};
}

bool Scheduler::ArchiveForRoom(size_t steps) {
  // With a journal, every finished group is in the store: it stays
  // queryable without its details in memory.
  auto full = [&] { return steps_held_ + steps > options_.max_steps || output_held_ > options_.max_output_bytes; };
  while (options_.journal && full() && !detailed_seqs_.empty()) {
    auto it = groups_by_seq_.find(detailed_seqs_.front());
    detailed_seqs_.pop_front();
    if (it != groups_by_seq_.end() && !it->second->archived) Archive(it->second);
  }
  return !full();
}

void Scheduler::HoldOutput(Group* g, size_t bytes) {
  g->output_bytes += bytes;
  output_held_ += bytes;
  if (output_held_ <= options_.max_output_bytes) return;
  if (options_.journal) {
    ArchiveForRoom(0);
    if (output_held_ > options_.max_output_bytes && output_held_ >= next_eviction_at_) EvictRunningOutput();
    return;
  }
  // Without a store a finished group's output exists only here: it is
  // forgotten, as for --max-steps. Never the group being added to.
  while (output_held_ > options_.max_output_bytes && !finished_seqs_.empty() && finished_seqs_.front() != g->seq) {
    Forget(groups_by_seq_.at(finished_seqs_.front()));
  }
}

void Scheduler::EvictRunningOutput() {
  // A quarter of the budget freed at once, so that scans stay rare.
  const size_t goal = options_.max_output_bytes - options_.max_output_bytes / 4;
  next_eviction_at_ = 0;
  for (auto& [id, owned] : groups_) {
    Group* g = owned.get();
    if (g->finished || g->archived) continue;
    for (StepRt& st : g->steps) {
      if (output_held_ <= goal) return;
      if (st.output_in_store || !common::IsFinal(st.state)) continue;
      size_t freed = 0;
      for (common::AttemptRecord& a : st.attempts) {
        freed += a.stdout_tail.size() + a.stderr_tail.size();
        std::string().swap(a.stdout_tail);
        std::string().swap(a.stderr_tail);
      }
      st.output_in_store = true;
      g->output_bytes -= freed;
      output_held_ -= freed;
    }
  }
  // Short of the goal: what is left is not ours to let go of yet.
  next_eviction_at_ = output_held_ + options_.max_output_bytes / 4;
}

bool Scheduler::MakeRoom(size_t steps) {
  auto fits = [&] {
    return groups_.size() < options_.max_groups && steps_held_ + steps <= options_.max_steps &&
           output_held_ <= options_.max_output_bytes;
  };
  ArchiveForRoom(steps);
  // Forget() keeps the front of finished_seqs_ a group still held.
  while (!fits() && !finished_seqs_.empty()) Forget(groups_by_seq_.at(finished_seqs_.front()));
  return fits();
}

}  // namespace cohort::coordinator
