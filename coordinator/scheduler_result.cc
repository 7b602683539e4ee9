// Read-only views of the Scheduler's state: results, summaries, workers.
#include <algorithm>

#include "coordinator/scheduler.h"

namespace cohort::coordinator {

using common::StepState;

std::optional<common::GroupResult> Scheduler::Result(std::string_view id, size_t max_steps) const {
  const Group* g = FindGroup(id);
  if (!g || g->archived) return std::nullopt;
  const size_t n = g->steps.size();
  std::vector<bool> shown;
  if (n > max_steps) {
    // Failures, cancels and what is still running matter more than the
    // thousands that completed: pick those first, then fill with the rest.
    shown.assign(n, false);
    size_t picked = 0;
    for (uint32_t i = 0; i < n && picked < max_steps; ++i) {
      if (g->steps[i].state != StepState::kCompleted) shown[i] = true, ++picked;
    }
    for (uint32_t i = 0; i < n && picked < max_steps; ++i) {
      if (!shown[i]) shown[i] = true, ++picked;
    }
  }
  common::GroupResult r;
  r.id = g->spec.id;
  r.submission = g->submission;
  r.state = g->state;
  r.errors = g->errors;
  if (!r.errors.empty()) r.cause = r.errors.front();
  r.submitted_at = g->submitted_at;
  r.finished_at = g->finished_at;
  for (int k = 0; k < common::kStepStateCount; ++k) r.counts[k] = g->counts[k];
  r.steps.reserve(std::min(n, max_steps));
  for (uint32_t i = 0; i < n; ++i) {
    if (!shown.empty() && !shown[i]) {
      ++r.steps_omitted;
      continue;
    }
    const StepRt& st = g->steps[i];
    common::StepResult s;
    s.id = g->spec.steps[i].id;
    s.state = st.state;
    if (st.state == StepState::kFailed || st.state == StepState::kCancelled) s.error = st.error;
    if (st.state == StepState::kPending) s.waiting = WaitingReason(*g, i);
    s.attempts = st.attempts;
    r.steps.push_back(std::move(s));
  }
  return r;
}

std::optional<common::GroupSummary> Scheduler::Summary(std::string_view id) const {
  const Group* g = FindGroup(id);
  if (!g) return std::nullopt;
  common::GroupSummary s;
  s.id = g->spec.id;
  s.submission = g->submission;
  s.state = g->state;
  s.total = g->total();
  for (int k = 0; k < common::kStepStateCount; ++k) s.counts[k] = g->counts[k];
  s.submitted_at = g->submitted_at;
  s.finished_at = g->finished_at;
  return s;
}

std::vector<common::GroupSummary> Scheduler::Groups() const {
  std::vector<const Group*> ordered;
  ordered.reserve(groups_.size());
  for (const auto& [id, g] : groups_) ordered.push_back(g.get());
  std::sort(ordered.begin(), ordered.end(), [](const Group* a, const Group* b) { return a->submission < b->submission; });
  std::vector<common::GroupSummary> out;
  out.reserve(ordered.size());
  for (const Group* g : ordered) out.push_back(*Summary(g->spec.id));
  return out;
}

std::vector<WorkerView> Scheduler::Workers() const {
  std::vector<WorkerView> out;
  for (const auto& [name, w] : workers_) {
    out.push_back({w->name, w->slots, w->running, w->agents, w->last_heartbeat, w->user_id});
  }
  return out;
}

}  // namespace cohort::coordinator
