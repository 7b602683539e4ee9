// Rules 2 (concurrency and placement), 3 (deadlines) and 4 (retries) of the
// core, each driven by a fake clock. Workers and fencing are in
// scheduler_workers_test.cc, the event stream and cost in
// scheduler_events_test.cc.
#include <map>
#include <set>

#include "tests/unit/scheduler_harness.h"

namespace cohort::testing {
namespace {

TEST_CASE("at most max_parallel steps run - started in submission order", "[core][concurrency]") {
  Harness h;
  h.Join("w1", 10);
  auto g = MakeGroup("g", 5);
  g.max_parallel = 2;
  REQUIRE(h.Submit(g).ok());
  auto ds = h.Dispatches();
  REQUIRE(ds.size() == 2);
  CHECK(ds[0].spec.id == "step1");
  CHECK(ds[1].spec.id == "step2");
  h.Finish(ds[1], Exit(0));
  REQUIRE(h.Dispatches().size() == 1);
  CHECK(h.Dispatches()[0].spec.id == "step3");
  CHECK(h.Step("g", "step4").waiting == "max_parallel (2) reached");
}

TEST_CASE("a step holds its slot through retries and backoff", "[core][concurrency][retry]") {
  Harness h;
  h.Join("w1", 10);
  auto g = MakeGroup("g", 3);
  g.max_parallel = 1;
  g.retry.max_attempts = 2;
  g.retry.backoff_s = 1;
  REQUIRE(h.Submit(g).ok());
  auto d = h.DispatchOf("step1");
  h.Finish(d, Exit(1));
  CHECK(h.Dispatches().empty());  // step2 may not take step1's slot during backoff
  CHECK(h.core.NextDeadline() == h.now + 1s);
  h.Advance(999ms);
  CHECK(h.Dispatches().empty());
  h.Advance(1ms);
  REQUIRE(h.Dispatches().size() == 1);
  CHECK(h.Dispatches()[0].spec.id == "step1");
  CHECK(h.Dispatches()[0].ref.attempt == 2);
}

TEST_CASE("a worker never gets more attempts than its slots", "[core][concurrency]") {
  Harness h;
  h.Join("a", 1);
  h.Join("b", 2);
  REQUIRE(h.Submit(MakeGroup("g", 10)).ok());
  auto ds = h.Dispatches();
  REQUIRE(ds.size() == 3);
  std::map<std::string, int> per;
  for (auto& d : ds) per[d.worker]++;
  CHECK(per["a"] == 1);
  CHECK(per["b"] == 2);
  // Freeing a slot on a gives the next step to a.
  h.Finish(ds[0].worker == "a" ? ds[0] : (ds[1].worker == "a" ? ds[1] : ds[2]), Exit(0));
  REQUIRE(h.Dispatches().size() == 1);
  CHECK(h.Dispatches()[0].worker == "a");
  CHECK(h.Dispatches()[0].spec.id == "step4");
  auto workers = h.core.Workers();
  REQUIRE(workers.size() == 2);
  CHECK(workers[0].running == 1);
  CHECK(workers[1].running == 2);
}

TEST_CASE("a labelled step waits for a worker offering its agent label", "[core][placement]") {
  Harness h;
  h.Join("cpu", 4);
  auto g = MakeGroup("g", 3);
  g.steps[0].agent = "gpu";
  REQUIRE(h.Submit(g).ok());
  auto ds = h.Dispatches();
  REQUIRE(ds.size() == 2);  // the unlabelled ones go on without it
  CHECK(ds[0].spec.id == "step2");
  CHECK(h.Step("g", "step1").state == StepState::kPending);
  CHECK(h.Step("g", "step1").waiting == "no live worker offers agent \"gpu\"");
  h.Join("gpu1", 1, {"gpu"});
  REQUIRE(h.Dispatches().size() == 1);
  CHECK(h.Dispatches()[0].spec.id == "step1");
  CHECK(h.Dispatches()[0].worker == "gpu1");
}

TEST_CASE("a labelled step parked behind a busy labelled worker wakes when it frees", "[core][placement]") {
  Harness h;
  h.Join("gpu1", 1, {"gpu"});
  h.Join("cpu", 4);
  auto g = MakeGroup("g", 2);
  g.steps[0].agent = "gpu";
  g.steps[1].agent = "gpu";
  REQUIRE(h.Submit(g).ok());
  REQUIRE(h.Dispatches().size() == 1);
  auto d1 = h.Dispatches()[0];
  CHECK(d1.worker == "gpu1");
  CHECK(h.Step("g", "step2").waiting == "every worker offering agent \"gpu\" is busy");
  h.Finish(d1, Exit(0));
  REQUIRE(h.Dispatches().size() == 1);
  CHECK(h.Dispatches()[0].spec.id == "step2");
  CHECK(h.Dispatches()[0].worker == "gpu1");
}

TEST_CASE("groups waiting for a labelled worker are woken one per freed slot - oldest first", "[core][placement]") {
  Harness h;
  h.Join("cpu", 8);
  h.Join("gpu1", 1, {"gpu"});
  for (const char* id : {"a", "b", "c", "d"}) {
    auto g = MakeGroup(id, 1);
    g.steps[0].agent = "gpu";
    REQUIRE(h.Submit(g).ok());
  }
  REQUIRE(h.core.Result("a")->steps[0].state == StepState::kRunning);
  std::string previous = "a";
  uint64_t submission = 1;  // a, b, c, d were submitted in this order
  for (std::string next : {"b", "c", "d"}) {
    coordinator::Dispatch d;
    d.ref = {previous, 0, 1, submission++};
    d.worker = "gpu1";
    h.Finish(d, Exit(0));
    auto ds = h.Dispatches();
    REQUIRE(ds.size() == 1);
    CHECK(ds[0].ref.group == next);
    CHECK(ds[0].worker == "gpu1");
    previous = next;
  }
}

TEST_CASE("groups share workers round robin: a big group does not starve a small one", "[core][fairness]") {
  Harness h;
  h.Join("w1", 2);
  REQUIRE(h.Submit(MakeGroup("big", 100000)).ok());
  std::vector<Dispatch> running = h.Dispatches();
  REQUIRE(h.Submit(MakeGroup("small", 3)).ok());
  int small_started = 0;
  int dispatches = 0;
  while (small_started < 3 && dispatches < 100) {
    Dispatch d = running.front();
    running.erase(running.begin());
    h.Finish(d, Exit(0));
    for (auto& nd : h.Dispatches()) {
      ++dispatches;
      if (nd.ref.group == "small") ++small_started;
      running.push_back(nd);
    }
  }
  CHECK(small_started == 3);
  CHECK(dispatches <= 6);  // alternating turns: small's 3 steps within 6 dispatches
}

TEST_CASE("attempt timeout: the worker's report fails the step as timed out", "[core][deadline]") {
  Harness h;
  h.Join("w1", 1);
  auto g = MakeGroup("g", 1);
  g.steps[0].timeout_s = 5;
  REQUIRE(h.Submit(g).ok());
  auto d = h.DispatchOf("step1");
  REQUIRE(d.timeout);
  CHECK(*d.timeout == 5s);
  h.now += 5s;
  h.Finish(d, TimedOut());
  CHECK(h.State("g") == GroupState::kFailed);
  CHECK(h.Step("g", "step1").error == "timed out after 5s");
}

TEST_CASE("attempt timeout backstop: a worker silent past timeout + grace is declared lost", "[core][deadline]") {
  SchedulerOptions o = Quiet();
  o.backstop_grace = 10s;
  Harness h(o);
  h.Join("w1", 1);
  auto g = MakeGroup("g", 1);
  g.timeout_s = 5;
  REQUIRE(h.Submit(g).ok());
  auto d = h.DispatchOf("step1");
  CHECK(h.core.NextDeadline() == h.now + 15s);
  h.Advance(14s);
  CHECK(h.Of<coordinator::WorkerExpired>().empty());
  h.Advance(1s);
  auto expired = h.Of<coordinator::WorkerExpired>();
  REQUIRE(expired.size() == 1);
  CHECK(expired[0].worker == "w1");
  CHECK(expired[0].reason.find("no report of step \"step1\" attempt 1") != std::string::npos);
  // Its slot is not handed out again while the step may still run there:
  // the worker is gone from the table and the step waits for another.
  CHECK(h.core.Workers().empty());
  auto s = h.Step("g", "step1");
  CHECK(s.state == StepState::kRetrying);
  CHECK(s.attempts[0].status == common::AttemptStatus::kWorkerLost);
  // The worker comes back saying it still runs attempt 1: told to stop it;
  // attempt 2 goes to it afresh, and the late report of attempt 1 is fenced.
  coordinator::WorkerJoined back;
  back.name = "w1";
  back.slots = 1;
  back.running = {d.ref};
  h.out.clear();
  REQUIRE(h.core.Join(back, h.now, &h.out).ok());
  REQUIRE(h.Of<CancelAttempt>().size() == 1);
  CHECK(h.Of<CancelAttempt>()[0].ref == d.ref);
  CHECK(h.Dispatches().empty());  // its one slot still holds the old attempt, and its lease runs
  h.Finish(d, Exit(0));
  CHECK(h.core.stale_reports() >= 2);
  // The old attempt is over, so the slot is free and the lease need not be
  // waited out.
  CHECK(h.DispatchOf("step1").ref.attempt == 2);
}

TEST_CASE("a group deadline fails the group and cancels what remains", "[core][deadline]") {
  Harness h;
  h.Join("w1", 1);
  auto g = MakeGroup("g", 3);
  g.deadline_s = 10;
  g.on_failure = common::OnFailure::kContinue;  // the deadline cancels even then
  REQUIRE(h.Submit(g).ok());
  auto d = h.DispatchOf("step1");
  h.Advance(9s);
  CHECK(h.Of<CancelAttempt>().empty());
  h.Advance(1s);
  REQUIRE(h.Of<CancelAttempt>().size() == 1);
  h.Finish(d, Cancelled());
  CHECK(h.GroupFinishedIn("g"));
  auto r = *h.core.Result("g");
  CHECK(r.state == GroupState::kFailed);
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].step.empty());
  CHECK(r.errors[0].error == "group deadline of 10s exceeded");
  CHECK(r.cause->error == r.errors[0].error);
  for (auto& s : r.steps) CHECK(s.state == StepState::kCancelled);
}

TEST_CASE("retries back off exponentially up to max_backoff_s", "[core][retry]") {
  Harness h;
  h.Join("w1", 1);
  auto g = MakeGroup("g", 1);
  g.retry.max_attempts = 4;
  g.retry.backoff_s = 1;
  g.retry.backoff_multiplier = 3;
  g.retry.max_backoff_s = 5;
  REQUIRE(h.Submit(g).ok());
  std::vector<common::Duration> waits;
  for (int attempt = 1; attempt <= 4; ++attempt) {
    auto d = h.DispatchOf("step1");
    CHECK(d.ref.attempt == static_cast<uint32_t>(attempt));
    h.Finish(d, Exit(1));
    if (attempt < 4) {
      REQUIRE(h.core.NextDeadline());
      waits.push_back(*h.core.NextDeadline() - h.now);
      h.Advance(*h.core.NextDeadline() - h.now);
    }
  }
  CHECK(waits == std::vector<common::Duration>{1s, 3s, 5s});
  auto s = h.Step("g", "step1");
  CHECK(s.state == StepState::kFailed);
  CHECK(s.attempts.size() == 4);
}

TEST_CASE("retry_on chooses which failures retry", "[core][retry]") {
  Harness h;
  h.Join("w1", 2);
  auto g = MakeGroup("g", 2);
  g.on_failure = common::OnFailure::kContinue;
  g.retry.max_attempts = 3;
  g.retry.backoff_s = 0;
  g.retry.retry_on = static_cast<uint8_t>(common::FailureKind::kTimeout);
  g.retry.retry_on_given = true;
  REQUIRE(h.Submit(g).ok());
  auto d1 = h.DispatchOf("step1"), d2 = h.DispatchOf("step2");
  h.Finish(d1, Exit(1));  // an exit failure: not retried
  CHECK(h.Step("g", "step1").state == StepState::kFailed);
  h.Finish(d2, TimedOut());  // a timeout: retried at once (backoff 0)
  REQUIRE(h.Dispatches().size() == 1);
  CHECK(h.Dispatches()[0].ref.attempt == 2);
}

TEST_CASE("jitter comes from the seeded source: same seed - same delays - within bounds", "[core][retry]") {
  auto delays = [](uint64_t seed) {
    SchedulerOptions o = Quiet();
    o.seed = seed;
    Harness h(o);
    h.Join("w1", 1);
    auto g = MakeGroup("g", 1);
    g.retry.max_attempts = 6;
    g.retry.backoff_s = 10;
    g.retry.backoff_multiplier = 1;
    g.retry.jitter = 0.5;
    REQUIRE(h.Submit(g).ok());
    std::vector<common::Duration> out;
    for (int i = 0; i < 5; ++i) {
      h.Finish(h.DispatchOf("step1"), Exit(1));
      common::Duration wait = *h.core.NextDeadline() - h.now;
      CHECK(wait >= 5s);
      CHECK(wait <= 15s);
      out.push_back(wait);
      h.Advance(wait);
    }
    return out;
  };
  auto a = delays(7), b = delays(7), c = delays(8);
  CHECK(a == b);
  CHECK(a != c);
  CHECK(std::set<common::Duration>(a.begin(), a.end()).size() > 1);
}

TEST_CASE("an attempt lost with its worker is retried elsewhere - up to 3 attempts", "[core][retry][workers]") {
  Harness h;
  h.Join("a", 1);
  REQUIRE(h.Submit(MakeGroup("g", 1)).ok());  // max_attempts defaults to 1
  auto d = h.DispatchOf("step1");
  CHECK(d.worker == "a");
  h.Join("b", 1);
  h.out.clear();
  // Each worker said BYE once its steps were dead: no lease to wait out.
  REQUIRE(h.core.Lose("a", "connection reset", h.now, &h.out, /*steps_stopped=*/true).ok());
  auto d2 = h.DispatchOf("step1");
  CHECK(d2.worker == "b");
  CHECK(d2.ref.attempt == 2);
  h.Join("c", 1);
  h.out.clear();
  REQUIRE(h.core.Lose("b", "gone", h.now, &h.out, true).ok());
  auto d3 = h.DispatchOf("step1");
  CHECK(d3.worker == "c");
  h.out.clear();
  REQUIRE(h.core.Lose("c", "gone", h.now, &h.out, true).ok());
  CHECK(h.Dispatches().empty());
  auto s = h.Step("g", "step1");
  CHECK(s.state == StepState::kFailed);
  CHECK(s.attempts.size() == 3);
  CHECK(s.attempts[0].status == common::AttemptStatus::kWorkerLost);
  CHECK(s.error == "worker \"c\" lost: gone");
}

TEST_CASE("retry_on without worker_lost turns a lost worker into a failure", "[core][retry][workers]") {
  Harness h;
  h.Join("a", 1);
  h.Join("b", 1);
  auto g = MakeGroup("g", 1);
  g.retry.retry_on = static_cast<uint8_t>(common::FailureKind::kExit);
  g.retry.retry_on_given = true;
  REQUIRE(h.Submit(g).ok());
  auto d = h.DispatchOf("step1");
  h.out.clear();
  REQUIRE(h.core.Lose(d.worker, "gone", h.now, &h.out).ok());
  CHECK(h.Dispatches().empty());
  CHECK(h.State("g") == GroupState::kFailed);
}

}  // namespace
}  // namespace cohort::testing
