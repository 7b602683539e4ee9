// Rule 5 (fail-fast, ExceptionGroup, user cancels) and rule 6 (results) of the core.
#include "tests/unit/scheduler_harness.h"

namespace cohort::testing {
namespace {

using coordinator::BroadcastCancel;

TEST_CASE("seed scenario: step2 fails - step1 and step3 end cancelled - error names step2", "[core][failfast]") {
  Harness h;
  h.Join("w1", 4);
  REQUIRE(h.Submit(MakeGroup("g", 3)).ok());
  REQUIRE(h.Dispatches().size() == 3);
  auto d1 = h.DispatchOf("step1"), d2 = h.DispatchOf("step2"), d3 = h.DispatchOf("step3");

  h.Finish(d2, Exit(1));
  REQUIRE(h.Of<BroadcastCancel>().size() == 1);
  auto cancels = h.Of<CancelAttempt>();
  REQUIRE(cancels.size() == 2);
  CHECK(cancels[0].ref == d1.ref);
  CHECK(cancels[1].ref == d3.ref);
  // No result until every running sibling is confirmed stopped.
  CHECK_FALSE(h.GroupFinishedIn("g"));
  CHECK(h.State("g") == GroupState::kRunning);

  h.Finish(d1, Cancelled());
  CHECK_FALSE(h.GroupFinishedIn("g"));
  h.Finish(d3, Cancelled());
  CHECK(h.GroupFinishedIn("g"));

  auto r = *h.core.Result("g");
  CHECK(r.state == GroupState::kFailed);
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].step == "step2");
  CHECK(r.errors[0].error == "exited with code 1");
  REQUIRE(r.cause);
  CHECK(r.cause->step == "step2");
  CHECK(r.steps[0].state == StepState::kCancelled);
  CHECK(r.steps[1].state == StepState::kFailed);
  CHECK(r.steps[2].state == StepState::kCancelled);
  CHECK(r.steps[0].error.find("step2") != std::string::npos);
}

TEST_CASE("failures that arrive together are all reported: the first is the cause", "[core][failfast]") {
  Harness h;
  h.Join("w1", 4);
  REQUIRE(h.Submit(MakeGroup("g", 3)).ok());
  auto d1 = h.DispatchOf("step1"), d2 = h.DispatchOf("step2"), d3 = h.DispatchOf("step3");
  h.Finish(d1, Exit(2));
  // step3 failed on its own before the cancel reached it.
  h.Finish(d3, Exit(3));
  h.Finish(d2, Cancelled());
  auto r = *h.core.Result("g");
  CHECK(r.state == GroupState::kFailed);
  REQUIRE(r.errors.size() == 2);
  CHECK(r.errors[0].step == "step1");
  CHECK(r.errors[1].step == "step3");
  CHECK(r.cause->step == "step1");
  CHECK(r.steps[1].state == StepState::kCancelled);
}

TEST_CASE("fail-fast cancels pending steps without starting them and stops backoff", "[core][failfast]") {
  Harness h;
  h.Join("w1", 10);
  auto g = MakeGroup("g", 6);
  g.max_parallel = 2;
  g.steps[1].retry = common::RetryPolicy{};
  g.steps[1].retry->max_attempts = 3;
  g.steps[1].retry->backoff_s = 5;
  REQUIRE(h.Submit(g).ok());
  auto d1 = h.DispatchOf("step1"), d2 = h.DispatchOf("step2");
  h.Finish(d2, Exit(1));  // step2 goes into backoff, still holding its slot
  CHECK(h.Dispatches().empty());
  CHECK(h.Step("g", "step2").state == StepState::kRetrying);
  h.Finish(d1, Exit(9));  // step1 fails for good
  CHECK(h.Dispatches().empty());
  CHECK(h.GroupFinishedIn("g"));  // nothing was running: the result exists at once
  auto r = *h.core.Result("g");
  CHECK(r.state == GroupState::kFailed);
  CHECK(r.steps[1].state == StepState::kCancelled);
  CHECK(r.steps[1].attempts.size() == 1);
  for (int i = 2; i < 6; ++i) {
    CHECK(r.steps[i].state == StepState::kCancelled);
    CHECK(r.steps[i].attempts.empty());
  }
  // The backoff timer is gone: time passing starts nothing.
  h.Advance(60s);
  CHECK(h.Dispatches().empty());
}

TEST_CASE("on_failure=continue collects failures and cancels nothing", "[core][failfast]") {
  Harness h;
  h.Join("w1", 4);
  auto g = MakeGroup("g", 3);
  g.on_failure = common::OnFailure::kContinue;
  REQUIRE(h.Submit(g).ok());
  auto d1 = h.DispatchOf("step1"), d2 = h.DispatchOf("step2"), d3 = h.DispatchOf("step3");
  h.Finish(d1, Exit(1));
  CHECK(h.Of<CancelAttempt>().empty());
  CHECK(h.Of<BroadcastCancel>().empty());
  h.Finish(d2, Exit(0));
  h.Finish(d3, Exit(4));
  CHECK(h.GroupFinishedIn("g"));
  auto r = *h.core.Result("g");
  CHECK(r.state == GroupState::kFailed);
  CHECK(r.errors.size() == 2);
  CHECK(r.steps[1].state == StepState::kCompleted);
}

TEST_CASE("a user's cancel of the group stops everything and ends it cancelled", "[core][cancel]") {
  Harness h;
  h.Join("w1", 1);
  REQUIRE(h.Submit(MakeGroup("g", 3)).ok());
  auto d1 = h.DispatchOf("step1");
  h.out.clear();
  REQUIRE(h.core.CancelGroupById("g", h.now, &h.out).ok());
  REQUIRE(h.Of<BroadcastCancel>().size() == 1);
  REQUIRE(h.Of<CancelAttempt>().size() == 1);
  CHECK_FALSE(h.GroupFinishedIn("g"));
  h.Finish(d1, Cancelled());
  CHECK(h.GroupFinishedIn("g"));
  CHECK(h.Dispatches().empty());  // the freed slot starts nothing of the group
  auto r = *h.core.Result("g");
  CHECK(r.state == GroupState::kCancelled);
  CHECK(r.errors.empty());
  for (const auto& s : r.steps) CHECK(s.state == StepState::kCancelled);
  CHECK(r.steps[1].attempts.empty());
  // Cancelling a finished group is refused with a reason.
  auto again = h.core.CancelGroupById("g", h.now, &h.out);
  CHECK(again.code() == common::Status::Code::kFailedPrecondition);
  CHECK(h.core.CancelGroupById("nope", h.now, &h.out).code() == common::Status::Code::kNotFound);
}

TEST_CASE("a user's cancel of one step is not a failure: the group goes on", "[core][cancel]") {
  Harness h;
  h.Join("w1", 1);
  auto g = MakeGroup("g", 3);
  g.steps[0].retry = common::RetryPolicy{};
  g.steps[0].retry->max_attempts = 5;
  REQUIRE(h.Submit(g).ok());
  auto d1 = h.DispatchOf("step1");
  h.out.clear();
  REQUIRE(h.core.CancelStepById("g", "step1", h.now, &h.out).ok());
  REQUIRE(h.Of<CancelAttempt>().size() == 1);
  CHECK(h.Of<BroadcastCancel>().empty());
  h.Finish(d1, Cancelled());
  // Never retried although it has attempts left; the next step starts.
  CHECK(h.Step("g", "step1").state == StepState::kCancelled);
  CHECK(h.Step("g", "step1").attempts.size() == 1);
  auto d2 = h.DispatchOf("step2");
  h.out.clear();
  REQUIRE(h.core.CancelStepById("g", "step3", h.now, &h.out).ok());  // still pending
  CHECK(h.Step("g", "step3").state == StepState::kCancelled);
  h.Finish(d2, Exit(0));
  CHECK(h.Dispatches().empty());  // step3 never starts
  CHECK(h.GroupFinishedIn("g"));
  CHECK(h.State("g") == GroupState::kCompleted);
  CHECK(h.core.CancelStepById("g", "nope", h.now, &h.out).code() == common::Status::Code::kNotFound);
}

TEST_CASE("a cancel that is never confirmed is resent - then given up on", "[core][cancel]") {
  SchedulerOptions o = Quiet();
  o.cancel_resend = 1s;
  o.backstop_grace = 5s;
  Harness h(o);
  h.Join("w1", 2);
  REQUIRE(h.Submit(MakeGroup("g", 2)).ok());
  auto d2 = h.DispatchOf("step2");
  h.Finish(h.DispatchOf("step1"), Exit(1));
  REQUIRE(h.Of<CancelAttempt>().size() == 1);
  for (int i = 0; i < 4; ++i) {
    h.Advance(1s);
    REQUIRE(h.Of<CancelAttempt>().size() == 1);
    CHECK(h.Of<CancelAttempt>()[0].ref == d2.ref);
    CHECK_FALSE(h.GroupFinishedIn("g"));
  }
  h.Advance(1s);
  // Past the grace the worker is declared lost, which confirms the stop.
  REQUIRE(h.Of<coordinator::WorkerExpired>().size() == 1);
  CHECK(h.Of<coordinator::WorkerExpired>()[0].reason.find("did not confirm the cancel") != std::string::npos);
  CHECK(h.GroupFinishedIn("g"));
  auto s = h.Step("g", "step2");
  CHECK(s.state == StepState::kCancelled);
  CHECK(s.attempts[0].status == common::AttemptStatus::kWorkerLost);
}

TEST_CASE("a cancel nobody asked for is a failure - not a quiet success", "[core][cancel]") {
  Harness h;
  h.Join("w1", 1);
  REQUIRE(h.Submit(MakeGroup("g", 1)).ok());
  auto d = h.DispatchOf("step1");
  auto odd = Cancelled();
  odd.error = "group was cancelled before this step started";
  h.Finish(d, odd);
  CHECK(h.State("g") == GroupState::kFailed);
  auto s = h.Step("g", "step1");
  CHECK(s.state == StepState::kFailed);
  CHECK(s.error.find("without a cancel from this coordinator") != std::string::npos);
}

TEST_CASE("results record each attempt: worker - times - exit code - output tails", "[core][results]") {
  Harness h;
  h.Join("w1", 1);
  auto g = MakeGroup("g", 1);
  g.retry.max_attempts = 2;
  g.retry.backoff_s = 0;
  REQUIRE(h.Submit(g).ok());
  auto d = h.DispatchOf("step1");
  h.now += 1s;
  h.out.clear();
  REQUIRE(h.core.Started({d.ref, "w1"}, h.now, &h.out).ok());
  h.now += 2s;
  auto fail = Exit(3);
  fail.stdout_tail = "out";
  fail.stderr_tail = "err";
  h.Finish(d, fail);
  auto d2 = h.DispatchOf("step1");
  CHECK(d2.ref.attempt == 2);
  CHECK(h.Step("g", "step1").state == StepState::kRunning);
  h.now += 1s;
  h.Finish(d2, Exit(0));
  auto r = *h.core.Result("g");
  CHECK(r.state == GroupState::kCompleted);
  const auto& s = r.steps[0];
  CHECK(s.state == StepState::kCompleted);
  REQUIRE(s.attempts.size() == 2);
  const auto& a = s.attempts[0];
  CHECK(a.attempt == 1);
  CHECK(a.worker == "w1");
  CHECK(a.dispatched_at == common::Time{});
  CHECK(a.started_at == common::Time{} + 1s);
  CHECK(a.finished_at == common::Time{} + 3s);
  CHECK(a.exit_code == 3);
  CHECK(a.status == common::AttemptStatus::kFailed);
  CHECK(a.stdout_tail == "out");
  CHECK(a.stderr_tail == "err");
  CHECK(s.attempts[1].status == common::AttemptStatus::kSucceeded);
  CHECK(r.finished_at == common::Time{} + 4s);
  auto sum = *h.core.Summary("g");
  CHECK(sum.count(StepState::kCompleted) == 1);
  CHECK(sum.total == 1);
}

TEST_CASE("a signal - a spawn error and a timeout are told apart in the error text", "[core][results]") {
  Harness h;
  h.Join("w1", 3);
  auto g = MakeGroup("g", 3);
  g.on_failure = common::OnFailure::kContinue;
  g.timeout_s = 2.5;
  REQUIRE(h.Submit(g).ok());
  auto d1 = h.DispatchOf("step1"), d2 = h.DispatchOf("step2"), d3 = h.DispatchOf("step3");
  CHECK(d1.timeout == std::chrono::duration_cast<common::Duration>(2500ms));
  common::AttemptOutcome sig;
  sig.signal = 9;
  h.Finish(d1, sig);
  common::AttemptOutcome spawn;
  spawn.exit_code = 127;
  spawn.error = "cannot start \"nosuch\": No such file or directory";
  h.Finish(d2, spawn);
  h.Finish(d3, TimedOut());
  auto r = *h.core.Result("g");
  CHECK(r.steps[0].error == "killed by signal 9 (SIGKILL)");
  CHECK(r.steps[1].error == spawn.error);
  CHECK(r.steps[2].error == "timed out after 2.5s");
  CHECK(r.steps[2].attempts[0].status == common::AttemptStatus::kTimedOut);
}

}  // namespace
}  // namespace cohort::testing
