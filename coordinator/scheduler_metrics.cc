// The Scheduler counted: what it holds now (Counts) and what it has seen
// (CoreObservations), for the daemon's status line and metrics.
#include <algorithm>

#include "coordinator/scheduler.h"

namespace cohort::coordinator {

namespace {

// Run times span seconds to days; a scrape should still tell a 2 min step
// from a 20 min one.
std::vector<double> RunTimeBounds() { return {0.1, 1, 5, 15, 60, 300, 900, 1800, 3600, 4 * 3600, 24 * 3600}; }

}  // namespace

CoreObservations::CoreObservations()
    : dispatch_to_start(common::Histogram::DefaultSecondsBounds()),
      run_time(RunTimeBounds()),
      cancel_latency(common::Histogram::DefaultSecondsBounds()) {}

std::string_view QueueCauseName(QueueCause cause) {
  switch (cause) {
    case QueueCause::kMaxParallel: return "max_parallel";
    case QueueCause::kNoEligibleWorker: return "no_eligible_worker";
    case QueueCause::kNoFreeSlot: return "no_free_slot";
    case QueueCause::kBehindOtherGroups: return "behind_other_groups";
    case QueueCause::kBackoff: return "backoff";
  }
  return "behind_other_groups";
}

CoreCounts Scheduler::Counts() const {
  CoreCounts c;
  for (const auto& [id, g] : groups_) {
    ++(g->finished ? c.groups_finished : c.groups_running);
    for (int s = 0; s < common::kStepStateCount; ++s) c.steps[s] += g->counts[s];
    if (g->finished || g->stopping) continue;
    c.queued[static_cast<int>(QueueCause::kBackoff)] += g->backoff.size();
    const size_t retrying = g->count(common::StepState::kRetrying);
    const size_t waiting = g->count(common::StepState::kPending) + (retrying - std::min(retrying, g->backoff.size()));
    if (waiting == 0) continue;
    // The label its first queued step needs; entries may be stale, which
    // only makes the cause approximate.
    const std::string* agent = nullptr;
    for (const auto* queue : {&g->retry_ready, &g->pending}) {
      for (const auto& [label, steps] : *queue) {
        if (!agent && !steps.empty()) agent = &label;
      }
    }
    static const std::string kAny;
    c.queued[static_cast<int>(CauseOf(*g, agent ? *agent : kAny))] += waiting;
  }
  c.workers = workers_.size();
  c.workers_unplaceable = unplaceable_;
  for (const auto& [name, w] : workers_) {
    c.slots += w->slots;
    c.slots_busy += std::min(w->running, w->slots);
  }
  return c;
}

}  // namespace cohort::coordinator
