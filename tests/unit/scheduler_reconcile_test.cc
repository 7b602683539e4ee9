// Reconciling the attempts a worker says it holds, in its heartbeats: a RUN
// that never arrived (ZeroMQ drops one silently at the high-water mark) is
// lost once the grace has passed, and an attempt that is no longer current
// is told to stop; what the worker keeps of attempts already over (results
// not yet confirmed) changes nothing.
#include "tests/unit/scheduler_harness.h"

namespace cohort::testing {
namespace {

using common::AttemptStatus;
using coordinator::WorkerHeartbeat;
using Refs = std::vector<AttemptRef>;

// Heartbeats every second, lost after three.
SchedulerOptions Beating() {
  SchedulerOptions o;
  o.heartbeat_interval = 1s;
  o.liveness = 3;
  return o;
}

// A HEARTBEAT from `worker` listing `holding` at h.now; its actions in h.out.
void Beat(Harness& h, const std::string& worker, const Refs& holding) {
  h.out.clear();
  REQUIRE(h.core.Handle(WorkerHeartbeat{worker, holding}, h.now, &h.out).ok());
}

int64_t RunningOn(const Harness& h, const std::string& worker) {
  for (const auto& w : h.core.Workers()) {
    if (w.name == worker) return w.running;
  }
  FAIL("no worker " << worker);
  return -1;
}

TEST_CASE("a RUN its worker never lists is lost after the grace and retried", "[core][reconcile]") {
  Harness h(Beating());
  h.Join("a", 1);
  REQUIRE(h.Submit(MakeGroup("g", 1)).ok());
  const Dispatch d1 = h.DispatchOf("step1");
  REQUIRE(d1.worker == "a");
  // Within heartbeat x liveness of the dispatch the RUN may still be on its
  // way: a list without it changes nothing.
  for (auto at : {1000ms, 2000ms, 2999ms}) {
    h.now = common::Time{} + at;
    Beat(h, "a", {});
    CHECK(h.out.empty());
    CHECK(h.Step("g", "step1").attempts.size() == 1);
  }
  // Past the grace: a message that says nothing of what the worker holds
  // changes nothing either ...
  h.now = common::Time{} + 3s;
  REQUIRE(h.core.Heartbeat("a", h.now).ok());
  REQUIRE(h.core.Handle(WorkerHeartbeat{"a", std::nullopt}, h.now, &h.out).ok());
  CHECK(h.out.empty());
  // ... but a list without it says its RUN never arrived.
  Beat(h, "a", {});
  REQUIRE(h.Dispatches().size() == 1);
  const Dispatch d2 = h.Dispatches()[0];
  CHECK(d2.ref.attempt == 2);
  CHECK(d2.worker == "a");  // the worker is fine: it takes the retry
  CHECK(h.Of<coordinator::WorkerExpired>().empty());
  auto s = h.Step("g", "step1");
  CHECK(s.state == StepState::kRunning);
  REQUIRE(s.attempts.size() == 2);
  CHECK(s.attempts[0].status == AttemptStatus::kWorkerLost);
  CHECK(s.attempts[0].error == "worker \"a\" does not hold it: its RUN never arrived");
  // The retry is listed, and runs to the end.
  h.now += 5s;
  Beat(h, "a", {d2.ref});
  CHECK(h.out.empty());
  h.Finish(d2, Exit(0));
  CHECK(h.State("g") == GroupState::kCompleted);
}

TEST_CASE("a RUN that never arrived is retried long before its backstop, and its worker kept",
          "[core][reconcile]") {
  // Without the list, the backstop (timeout + grace) would have declared
  // the worker lost, though only one message to it went missing.
  Harness h(Beating());
  h.Join("a", 1);
  auto g = MakeGroup("g", 1);
  g.steps[0].timeout_s = 10;
  REQUIRE(h.Submit(g).ok());
  h.now += 3s;
  Beat(h, "a", {});
  const Dispatch retry = h.DispatchOf("step1");
  CHECK(retry.ref.attempt == 2);
  // Past where the first attempt's backstop was due, the worker runs the
  // retry and is still there.
  for (int i = 0; i < 60; ++i) {
    h.now += 1s;
    Beat(h, "a", {retry.ref});
    if (i == 20) h.Finish(retry, Exit(0));
    h.Advance(0s);
    REQUIRE(h.Of<coordinator::WorkerExpired>().empty());
  }
  CHECK(h.State("g") == GroupState::kCompleted);
  CHECK(h.Step("g", "step1").attempts.size() == 2);
}

TEST_CASE("a listed attempt is kept, and each unlisted one waits for its own grace", "[core][reconcile]") {
  Harness h(Beating());
  h.Join("a", 3);
  REQUIRE(h.Submit(MakeGroup("g", 2)).ok());
  const Dispatch d1 = h.DispatchOf("step1");
  h.now += 2s;
  REQUIRE(h.Submit(MakeGroup("late", 1)).ok());
  const Dispatch d3 = h.DispatchOf("step1");
  // At 3 s: step1 is listed, step2 (dispatched at 0) is not, late's step1
  // (dispatched at 2 s) is not either but is still within its grace.
  h.now += 1s;
  Beat(h, "a", {d1.ref});
  CHECK(h.Step("g", "step1").attempts.size() == 1);
  CHECK(h.Step("g", "step2").attempts.size() == 2);
  CHECK(h.Step("g", "step2").attempts[0].status == AttemptStatus::kWorkerLost);
  CHECK(h.Step("late", "step1").attempts.size() == 1);
  REQUIRE(h.Dispatches().size() == 1);
  const Dispatch retry = h.Dispatches()[0];
  CHECK(retry.ref.group == "g");
  // At 5 s late's step1 is due too.
  h.now += 2s;
  Beat(h, "a", {d1.ref, retry.ref});
  CHECK(h.Step("late", "step1").attempts.size() == 2);
  CHECK(h.Step("g", "step1").attempts.size() == 1);
  CHECK(d3.ref.group == "late");
}

TEST_CASE("a listed attempt that is not current is told to stop and holds its slot until it ends",
          "[core][reconcile]") {
  Harness h(Beating());
  h.Join("a", 1);
  REQUIRE(h.Submit(MakeGroup("g", 1)).ok());
  const Dispatch d1 = h.DispatchOf("step1");
  h.now += 3s;
  Beat(h, "a", {});  // lost: its RUN seemed never to arrive
  const Dispatch d2 = h.DispatchOf("step1");
  REQUIRE(d2.ref.attempt == 2);
  CHECK(RunningOn(h, "a") == 1);
  // The first RUN arrives after all, late: the worker runs both.
  h.now += 1s;
  Beat(h, "a", {d1.ref, d2.ref});
  REQUIRE(h.Of<CancelAttempt>().size() == 1);
  CHECK(h.Of<CancelAttempt>()[0].ref == d1.ref);
  CHECK(h.Of<CancelAttempt>()[0].worker == "a");
  CHECK(RunningOn(h, "a") == 2);  // its slot stays taken while it runs
  // Listed again: the cancel is sent again (it may have been dropped too);
  // the slot is counted once.
  h.now += 1s;
  Beat(h, "a", {d1.ref, d2.ref});
  CHECK(h.Of<CancelAttempt>().size() == 1);
  CHECK(RunningOn(h, "a") == 2);
  // It stops; its FINISHED frees the slot. Until CONFIRM reaches the
  // worker it lists what it keeps of it, which is not stopped again.
  h.Finish(d1, Cancelled());
  CHECK(RunningOn(h, "a") == 1);
  Beat(h, "a", {d2.ref, d1.ref});
  CHECK(h.Of<CancelAttempt>().empty());
  CHECK(RunningOn(h, "a") == 1);
  CHECK(h.Step("g", "step1").attempts.size() == 2);
  h.Finish(d2, Exit(0));
  CHECK(h.State("g") == GroupState::kCompleted);
}

TEST_CASE("results a worker keeps until CONFIRM are not taken for stale attempts", "[core][reconcile]") {
  Harness h(Beating());
  h.Join("a", 2);
  REQUIRE(h.Submit(MakeGroup("g", 3)).ok());
  const Dispatch d1 = h.DispatchOf("step1"), d2 = h.DispatchOf("step2");
  h.Finish(d1, Exit(0));
  const Dispatch d3 = h.DispatchOf("step3");
  h.Finish(d2, Exit(1));  // failed: the group stops, step3 is being cancelled
  h.now += 5s;
  // The worker still keeps both results, and runs step3.
  Beat(h, "a", {d3.ref, d1.ref, d2.ref});
  CHECK(h.Of<CancelAttempt>().empty());
  CHECK(h.Of<Dispatch>().empty());
  CHECK(RunningOn(h, "a") == 1);
}

TEST_CASE("a stale attempt its worker no longer lists frees its slot", "[core][reconcile]") {
  Harness h(Beating());
  h.Join("a", 1);
  REQUIRE(h.Submit(MakeGroup("g", 1)).ok());
  const Dispatch d1 = h.DispatchOf("step1");
  // It comes back from an outage listing an attempt of a group long gone.
  coordinator::WorkerJoined back;
  back.name = "a";
  back.slots = 1;
  back.running = {d1.ref, {"gone", 0, 1, 99}};
  h.out.clear();
  REQUIRE(h.core.Join(back, h.now, &h.out).ok());
  REQUIRE(h.Of<CancelAttempt>().size() == 1);
  CHECK(RunningOn(h, "a") == 2);
  // Its result was dropped (the worker's bound on kept results): the next
  // list no longer names it, so nothing holds the slot any more.
  h.now += 1s;
  Beat(h, "a", {d1.ref});
  CHECK(RunningOn(h, "a") == 1);
  h.Finish(d1, Exit(0));
  CHECK(RunningOn(h, "a") == 0);
}

}  // namespace
}  // namespace cohort::testing
