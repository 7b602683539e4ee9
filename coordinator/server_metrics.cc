// The coordinator's Prometheus metrics (docs/OPERATIONS.md, Monitoring):
// computed from the core's state when scraped, plus what the loop and the
// core have counted since the process started.
#include "coordinator/server.h"

#include <iterator>


namespace cohort::coordinator {

using common::Exposition;
using common::MetricType;
using common::Time;

void CoordinatorBuildMetrics(Exposition& e, bool leading, Time started, Time now) {
  common::AddProcessMetrics(e, started, now);
  common::AddGauge(e, "cohort_coordinator_leading",
        "1 while this coordinator leads (schedules), 0 while it stands by for another.", leading ? 1 : 0);
}

std::string Server::MetricsText(Time now) const {
  Exposition e;
  CoordinatorBuildMetrics(e, true, options_.started, now);
  common::AddGauge(e, "cohort_leader_epoch", "The leadership epoch (0: the only coordinator of its store).",
        static_cast<double>(options_.epoch));
  const CoreCounts c = core_.Counts();
  e.Declare("cohort_groups", MetricType::kGauge, "Groups held, by state (finished ones for their retention).")
      .IgnoreError();
  e.Add("cohort_groups", {{"state", "running"}}, c.groups_running).IgnoreError();
  e.Add("cohort_groups", {{"state", "finished"}}, c.groups_finished).IgnoreError();
  e.Declare("cohort_steps", MetricType::kGauge, "Steps of the groups held, by state.").IgnoreError();
  for (int s = 0; s < common::kStepStateCount; ++s) {
    e.Add("cohort_steps", {{"state", std::string(common::StepStateName(static_cast<common::StepState>(s)))}},
          c.steps[s])
        .IgnoreError();
  }
  e.Declare("cohort_steps_queued", MetricType::kGauge,
            "Steps of running groups waiting to start, by why they wait (no_eligible_worker: no live worker "
            "offers their agent, or none has joined).")
      .IgnoreError();
  for (int q = 0; q < kQueueCauseCount; ++q) {
    e.Add("cohort_steps_queued", {{"reason", std::string(QueueCauseName(static_cast<QueueCause>(q)))}}, c.queued[q])
        .IgnoreError();
  }
  static const char* kStates[] = {"ready", "cordoned", "draining", "drained", "left", "lost"};
  constexpr int kCount = std::size(kStates);
  size_t by_state[kCount] = {};
  auto count = [&](const std::vector<WorkerView>& views) {
    for (const WorkerView& w : views) {
      for (int i = 0; i < kCount; ++i) by_state[i] += w.state == kStates[i] ? 1 : 0;
    }
  };
  count(core_.Workers());
  count(core_.LostWorkers(now));
  e.Declare("cohort_workers", MetricType::kGauge,
            "Workers by state; those that left (said goodbye) or were lost (went silent) stay listed for an hour.")
      .IgnoreError();
  for (int i = 0; i < kCount; ++i) e.Add("cohort_workers", {{"state", kStates[i]}}, by_state[i]).IgnoreError();
  common::AddGauge(e, "cohort_slots", "Step slots the live workers offer.", static_cast<double>(c.slots));
  common::AddGauge(e, "cohort_slots_busy", "Step slots in use.", static_cast<double>(c.slots_busy));

  const CoreObservations& o = core_.observations();
  e.Declare("cohort_groups_ended_total", MetricType::kCounter, "Groups that ended since start, by final state.")
      .IgnoreError();
  for (auto s : {common::GroupState::kCompleted, common::GroupState::kFailed, common::GroupState::kCancelled}) {
    e.Add("cohort_groups_ended_total", {{"state", std::string(common::GroupStateName(s))}},
          o.groups_ended[static_cast<int>(s)])
        .IgnoreError();
  }
  e.Declare("cohort_retries_total", MetricType::kCounter, "Attempts retried since start, by how they failed.")
      .IgnoreError();
  e.Add("cohort_retries_total", {{"kind", "exit"}}, o.retries_exit).IgnoreError();
  e.Add("cohort_retries_total", {{"kind", "timeout"}}, o.retries_timeout).IgnoreError();
  e.Add("cohort_retries_total", {{"kind", "worker_lost"}}, o.retries_worker_lost).IgnoreError();
  e.Declare("cohort_dispatch_to_start_seconds", MetricType::kHistogram,
            "From sending a RUN to hearing the worker started it.")
      .IgnoreError();
  e.AddHistogram("cohort_dispatch_to_start_seconds", {}, o.dispatch_to_start).IgnoreError();
  e.Declare("cohort_step_run_seconds", MetricType::kHistogram, "How long attempts ran, started to ended.")
      .IgnoreError();
  e.AddHistogram("cohort_step_run_seconds", {}, o.run_time).IgnoreError();
  e.Declare("cohort_cancel_seconds", MetricType::kHistogram,
            "From asking a worker to stop an attempt to its report that the attempt is over.")
      .IgnoreError();
  e.AddHistogram("cohort_cancel_seconds", {}, o.cancel_latency).IgnoreError();
  e.Declare("cohort_bad_messages_total", MetricType::kCounter,
            "Messages dropped as malformed, unknown or unauthorized, by socket.")
      .IgnoreError();
  e.Add("cohort_bad_messages_total", {{"socket", "client"}}, bad_client_messages_).IgnoreError();
  e.Add("cohort_bad_messages_total", {{"socket", "worker"}}, bad_worker_messages_).IgnoreError();
  if (options_.store) {
    e.Declare("cohort_store_commit_seconds", MetricType::kHistogram,
              "Time to commit one loop turn's records to the store.")
        .IgnoreError();
    e.AddHistogram("cohort_store_commit_seconds", {}, commit_time_).IgnoreError();
    common::AddGauge(e, "cohort_store_refusing", "1 while the store cannot be written and submissions are refused.",
          StoreTrouble().empty() ? 0 : 1);
  }
  return e.Text();
}

}  // namespace cohort::coordinator
