// Read-only views of the Scheduler's state: results, summaries, workers.
#include <algorithm>

#include "coordinator/scheduler.h"
#include "coordinator/scheduler_text.h"

namespace cohort::coordinator {

using common::Status;
using common::StepState;
using internal::Quote;

namespace {

// Everything of a result but its steps and errors.
common::GroupResult ResultHeader(const internal::Group& g) {
  common::GroupResult r;
  r.id = g.spec.id;
  r.submission = g.submission;
  r.state = g.state;
  if (!g.errors.empty()) r.cause = g.errors.front();
  r.submitted_at = g.submitted_at;
  r.finished_at = g.finished_at;
  for (int k = 0; k < common::kStepStateCount; ++k) r.counts[k] = g.counts[k];
  return r;
}

}  // namespace

std::optional<common::GroupResult> Scheduler::Result(std::string_view id) const {
  const Group* g = FindGroup(id);
  if (!g || g->archived) return std::nullopt;
  const size_t n = g->steps.size();
  common::GroupResult r = ResultHeader(*g);
  r.errors = g->errors;
  r.steps.reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
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

namespace {

// What a step or an error adds to a page, in bytes of text before JSON
// escaping, plus room for the fields around it.
constexpr size_t kStepOverhead = 512;
constexpr size_t kAttemptOverhead = 256;

common::AttemptRecord WithoutOutput(const common::AttemptRecord& a) {
  common::AttemptRecord c;
  c.attempt = a.attempt;
  c.worker = a.worker;
  c.dispatched_at = a.dispatched_at;
  c.started_at = a.started_at;
  c.finished_at = a.finished_at;
  c.status = a.status;
  c.exit_code = a.exit_code;
  c.signal = a.signal;
  c.error = a.error;
  return c;
}

// Error text kept of a step too big for a page alone: 1,000 attempts of it
// still fit one message, escaped.
constexpr size_t kClippedErrorBytes = 4096;

void Clip(std::string* text) {
  if (text->size() <= kClippedErrorBytes) return;
  text->resize(kClippedErrorBytes);
  text->append(" [...]");
}

size_t ErrorCost(const common::GroupError& e) { return e.step.size() + e.error.size() + 64; }

size_t StepCost(const common::StepSpec& spec, const internal::StepRt& st, bool with_output) {
  size_t cost = kStepOverhead + spec.id.size() + st.error.size();
  for (const common::AttemptRecord& a : st.attempts) cost += kAttemptOverhead + a.worker.size() + a.error.size();
  if (with_output && !st.attempts.empty()) {
    cost += st.attempts.back().stdout_tail.size() + st.attempts.back().stderr_tail.size();
  }
  return cost;
}

}  // namespace

std::optional<common::GroupResult> Scheduler::ResultPage(std::string_view id, uint64_t from, size_t max_steps,
                                                         size_t max_bytes) const {
  const Group* g = FindGroup(id);
  if (!g || g->archived) return std::nullopt;
  common::GroupResult r = ResultHeader(*g);
  size_t used = 0;
  for (const common::GroupError& e : g->errors) {
    if (used + ErrorCost(e) > max_bytes / 4) {
      ++r.errors_omitted;
      continue;
    }
    used += ErrorCost(e);
    r.errors.push_back(e);
  }
  const size_t n = g->steps.size();
  uint64_t i = std::min<uint64_t>(from, n);
  for (; i < n && r.steps.size() < std::max<size_t>(max_steps, 1); ++i) {
    const StepRt& st = g->steps[i];
    const common::StepSpec& spec = g->spec.steps[i];
    size_t cost = StepCost(spec, st, true);
    bool with_output = true;
    if (used + cost > max_bytes) {
      if (!r.steps.empty()) break;
      // Alone on its page and still too big: without its output.
      with_output = false;
      cost = StepCost(spec, st, false);
    }
    used += cost;
    common::StepResult s;
    s.id = spec.id;
    s.state = st.state;
    if (st.state == StepState::kFailed || st.state == StepState::kCancelled) s.error = st.error;
    if (st.state == StepState::kPending) s.waiting = WaitingReason(*g, static_cast<uint32_t>(i));
    // Only the last attempt's output is shown: the earlier ones' are not
    // copied at all.
    s.attempts.reserve(st.attempts.size());
    for (size_t a = 0; a < st.attempts.size(); ++a) {
      const bool shown = with_output && a + 1 == st.attempts.size();
      s.attempts.push_back(WithoutOutput(st.attempts[a]));
      if (!with_output) Clip(&s.attempts.back().error);
      if (shown) {
        s.attempts.back().stdout_tail = st.attempts[a].stdout_tail;
        s.attempts.back().stderr_tail = st.attempts[a].stderr_tail;
      }
    }
    s.output_omitted = (!with_output || st.output_in_store) && !st.attempts.empty();
    if (!with_output) Clip(&s.error);
    r.steps.push_back(std::move(s));
  }
  r.steps_omitted = n - r.steps.size();
  if (i < n) r.next_cursor = i;
  return r;
}

Status Scheduler::Output(std::string_view id, std::string_view step_id, uint32_t attempt, bool stderr,
                         std::string* out, std::optional<AttemptRef>* in_store) const {
  in_store->reset();
  const Group* g = FindGroup(id);
  if (!g || g->archived) return Status::NotFound("no group " + Quote(id));
  auto it = g->index.find(step_id);
  if (it == g->index.end()) return Status::NotFound("group " + Quote(id) + " has no step " + Quote(step_id));
  const StepRt& st = g->steps[it->second];
  if (st.attempts.empty()) return Status::NotFound("step " + Quote(step_id) + " has not run yet");
  if (attempt > st.attempts.size()) {
    return Status::NotFound("step " + Quote(step_id) + " has run " + std::to_string(st.attempts.size()) +
                            " attempt(s), not " + std::to_string(attempt));
  }
  const common::AttemptRecord& a = attempt == 0 ? st.attempts.back() : st.attempts[attempt - 1];
  if (st.output_in_store) {
    out->clear();
    *in_store = AttemptRef{g->spec.id, it->second, a.attempt, g->submission};
    return Status::Ok();
  }
  *out = stderr ? a.stderr_tail : a.stdout_tail;
  return Status::Ok();
}

const std::string* Scheduler::OwnerOf(std::string_view id) const {
  const Group* g = FindGroup(id);
  return g ? &g->client : nullptr;
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
  // The step at the head of each agent's queue waits for the same reason as
  // those behind it.
  constexpr size_t kMaxReasons = 3;
  size_t reasons = 0;
  for (const auto& [agent, queue] : g->pending) {
    if (queue.empty() || reasons == kMaxReasons) continue;
    std::string why = WaitingReason(*g, queue.front());
    if (why.empty() || s.waiting.find(why) != std::string::npos) continue;
    if (!s.waiting.empty()) s.waiting += "; ";
    s.waiting += why;
    ++reasons;
  }
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

}  // namespace cohort::coordinator
