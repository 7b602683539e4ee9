// The worker's Prometheus metrics (docs/OPERATIONS.md, Monitoring), computed
// from the loop's state when scraped.
#include "common/metrics.h"
#include "worker/worker_loop.h"

namespace cohort::worker {

using common::Exposition;
using common::MetricType;

std::string WorkerLoop::MetricsText(common::Time now) const {
  Exposition e;
  common::AddProcessMetrics(e, started_, now);
  common::AddGauge(e, "cohort_worker_registered", "1 while registered with a coordinator.", core_.registered() ? 1 : 0);
  common::AddGauge(e, "cohort_worker_draining", "1 while draining before it stops.", core_.draining() ? 1 : 0);
  common::AddGauge(e, "cohort_worker_slots", "Steps this worker runs at once at most.",
        static_cast<double>(core_.options().slots));
  common::AddGauge(e, "cohort_worker_steps_running", "Steps running now.", static_cast<double>(core_.running()));
  common::AddGauge(e, "cohort_worker_results_unconfirmed",
        "Results sent and not yet confirmed by the coordinator (kept until then).",
        static_cast<double>(core_.unconfirmed()));
  common::AddGauge(e, "cohort_worker_results_spilled_bytes", "Bytes of unconfirmed results kept on disk.",
        static_cast<double>(core_.spilled_bytes()));
  e.Declare("cohort_worker_steps_ended_total", MetricType::kCounter,
            "Steps that ended on this worker since start, by how (exit_0, exit_nonzero, signal, not_started, "
            "lost: reaped outside the runner).")
      .IgnoreError();
  e.Add("cohort_worker_steps_ended_total", {{"result", "exit_0"}}, ended_ok_).IgnoreError();
  e.Add("cohort_worker_steps_ended_total", {{"result", "exit_nonzero"}}, ended_exit_).IgnoreError();
  e.Add("cohort_worker_steps_ended_total", {{"result", "signal"}}, ended_signal_).IgnoreError();
  e.Add("cohort_worker_steps_ended_total", {{"result", "not_started"}}, ended_not_started_).IgnoreError();
  e.Add("cohort_worker_steps_ended_total", {{"result", "lost"}}, ended_lost_).IgnoreError();
  e.Declare("cohort_bad_messages_total", MetricType::kCounter,
            "Messages dropped as malformed or unknown, by socket.")
      .IgnoreError();
  e.Add("cohort_bad_messages_total", {{"socket", "coordinator"}}, bad_messages_).IgnoreError();
  return e.Text();
}

}  // namespace cohort::worker
