// Rules 2 (concurrency and placement), 3 (deadlines), 4 (retries), 7 (fencing)
// and 8 (cost) of the core, each driven by a fake clock.
#include <map>
#include <set>

#include "tests/unit/scheduler_harness.h"

namespace cohort::testing {
namespace {

using common::GroupState;
using common::StepState;
using coordinator::CancelAttempt;
using coordinator::Dispatch;

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
  for (std::string next : {"b", "c", "d"}) {
    coordinator::Dispatch d;
    d.ref = {previous, 0, 1};
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
  CHECK(h.Dispatches().empty());  // its one slot still holds the old attempt
  h.Finish(d, Exit(0));
  CHECK(h.core.stale_reports() >= 2);
  CHECK(h.DispatchOf("step1").ref.attempt == 2);  // the slot is free once the old one is over
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
  REQUIRE(h.core.Lose("a", "connection reset", h.now, &h.out).ok());
  auto d2 = h.DispatchOf("step1");
  CHECK(d2.worker == "b");
  CHECK(d2.ref.attempt == 2);
  h.Join("c", 1);
  h.out.clear();
  REQUIRE(h.core.Lose("b", "gone", h.now, &h.out).ok());
  auto d3 = h.DispatchOf("step1");
  CHECK(d3.worker == "c");
  h.out.clear();
  REQUIRE(h.core.Lose("c", "gone", h.now, &h.out).ok());
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

TEST_CASE("a worker missing its heartbeats is declared lost", "[core][workers]") {
  SchedulerOptions o;
  o.heartbeat_interval = 1s;
  o.liveness = 3;
  Harness h(o);
  h.Join("a", 1);
  h.Join("b", 1);
  REQUIRE(h.Submit(MakeGroup("g", 1)).ok());
  auto d = h.DispatchOf("step1");
  std::string other = d.worker == "a" ? "b" : "a";
  for (int i = 0; i < 5; ++i) {
    h.now += 1s;
    REQUIRE(h.core.Heartbeat(other, h.now).ok());
    if (i < 2) REQUIRE(h.core.Heartbeat(d.worker, h.now).ok());
    h.out.clear();
    h.core.Tick(h.now, &h.out);
    if (!h.Of<coordinator::WorkerExpired>().empty()) break;
  }
  auto expired = h.Of<coordinator::WorkerExpired>();
  REQUIRE(expired.size() == 1);
  CHECK(expired[0].worker == d.worker);
  CHECK(h.now == common::Time{} + 5s);  // last heartbeat at 2s + 3 x 1s
  REQUIRE(h.Dispatches().size() == 1);
  CHECK(h.Dispatches()[0].worker == other);
  CHECK(h.core.Heartbeat(d.worker, h.now).code() == common::Status::Code::kNotFound);
}

// The loop sleeps until NextDeadline; heartbeats do not move the expiry
// timer, it re-arms itself from the last heartbeat when it fires. A worker
// heard from often must never expire, and one that falls silent must expire
// exactly one window after its last message, when the loop next wakes.
TEST_CASE("worker expiry follows the last heartbeat when driven by NextDeadline", "[core][workers]") {
  SchedulerOptions o;
  o.heartbeat_interval = 1s;
  o.liveness = 3;
  Harness h(o);
  h.Join("a", 1);
  const common::Time joined = h.now;
  // Messages every 250 ms for 10 s: the timer fires at 3 s, 6 s, 9 s and
  // each time finds a newer heartbeat.
  for (int i = 1; i <= 40; ++i) {
    common::Time next = joined + i * 250ms;
    while (auto d = h.core.NextDeadline()) {
      if (*d > next) break;
      h.now = *d;
      h.out.clear();
      h.core.Tick(h.now, &h.out);
      REQUIRE(h.Of<coordinator::WorkerExpired>().empty());
    }
    h.now = next;
    REQUIRE(h.core.Heartbeat("a", h.now).ok());
  }
  const common::Time last = h.now;
  std::vector<common::Time> wakes;
  while (auto d = h.core.NextDeadline()) {
    h.now = *d;
    wakes.push_back(h.now);
    h.out.clear();
    h.core.Tick(h.now, &h.out);
    if (!h.Of<coordinator::WorkerExpired>().empty()) break;
    REQUIRE(wakes.size() < 10);
  }
  REQUIRE(h.Of<coordinator::WorkerExpired>().size() == 1);
  CHECK(h.now == last + 3s);
  CHECK(wakes.size() <= 2);  // the stale timer re-arms once, then expires
}

TEST_CASE("fencing: a lost worker that comes back is told to stop its stale attempt", "[core][fencing]") {
  Harness h;
  h.Join("a", 1);
  h.Join("b", 1);
  auto g = MakeGroup("g", 1);
  REQUIRE(h.Submit(g).ok());
  auto d1 = h.DispatchOf("step1");
  h.out.clear();
  REQUIRE(h.core.Lose(d1.worker, "timeout", h.now, &h.out).ok());
  auto d2 = h.DispatchOf("step1");
  // The lost worker returns and says it still runs attempt 1.
  coordinator::WorkerJoined back;
  back.name = d1.worker;
  back.slots = 1;
  back.running = {d1.ref};
  h.out.clear();
  REQUIRE(h.core.Join(back, h.now, &h.out).ok());
  REQUIRE(h.Of<CancelAttempt>().size() == 1);
  CHECK(h.Of<CancelAttempt>()[0].ref == d1.ref);
  CHECK(h.Of<CancelAttempt>()[0].worker == d1.worker);
  // Its late reports are ignored; a stale start is told to stop.
  h.out.clear();
  REQUIRE(h.core.Started({d1.ref, d1.worker}, h.now, &h.out).ok());
  CHECK(h.Of<CancelAttempt>().size() == 1);
  h.Finish(d1, Exit(1));
  CHECK(h.Step("g", "step1").state == StepState::kRunning);
  h.Finish(d2, Exit(0));
  CHECK(h.GroupFinishedIn("g"));
  auto s = h.Step("g", "step1");
  CHECK(s.state == StepState::kCompleted);
  CHECK(s.attempts.size() == 2);
  CHECK(h.core.stale_reports() >= 2);
  // A second report of the final attempt changes nothing: one final result.
  h.Finish(d2, Exit(1));
  CHECK(h.State("g") == GroupState::kCompleted);
}

TEST_CASE("a worker that re-registers without an attempt it held loses that attempt", "[core][workers]") {
  Harness h;
  h.Join("a", 2);
  REQUIRE(h.Submit(MakeGroup("g", 2)).ok());
  auto d1 = h.DispatchOf("step1"), d2 = h.DispatchOf("step2");
  coordinator::WorkerJoined back;
  back.name = "a";
  back.slots = 2;
  back.running = {d2.ref};  // it restarted: step1's process is gone
  h.out.clear();
  REQUIRE(h.core.Join(back, h.now, &h.out).ok());
  auto redo = h.DispatchOf("step1");
  CHECK(redo.ref.attempt == 2);
  CHECK(h.Step("g", "step1").attempts[0].status == common::AttemptStatus::kWorkerLost);
  CHECK(h.Step("g", "step2").attempts.size() == 1);
}

TEST_CASE("a repeated REGISTER on the same connection loses nothing", "[core][workers]") {
  Harness h;
  h.Join("a", 1);
  REQUIRE(h.Submit(MakeGroup("g", 1)).ok());
  auto d = h.DispatchOf("step1");
  // The worker sent REGISTER again before it saw the RUN: its list is empty.
  coordinator::WorkerJoined again;
  again.name = "a";
  again.slots = 1;
  again.same_connection = true;
  for (int i = 0; i < 4; ++i) {
    h.out.clear();
    REQUIRE(h.core.Join(again, h.now, &h.out).ok());
    CHECK(h.Dispatches().empty());
  }
  CHECK(h.Step("g", "step1").attempts.size() == 1);
  h.Finish(d, Exit(0));
  CHECK(h.State("g") == GroupState::kCompleted);
}

TEST_CASE("events from strangers and bad submissions are refused and change nothing", "[core]") {
  Harness h;
  CHECK(h.core.Heartbeat("ghost", h.now).code() == common::Status::Code::kNotFound);
  CHECK(h.core.Lose("ghost", "x", h.now, &h.out).code() == common::Status::Code::kNotFound);
  coordinator::WorkerJoined bad;
  bad.name = "w";
  bad.slots = 0;
  CHECK(h.core.Join(bad, h.now, &h.out).code() == common::Status::Code::kInvalidArgument);
  common::GroupSpec empty;
  auto s = h.Submit(empty);
  CHECK(s.code() == common::Status::Code::kInvalidArgument);
  CHECK(s.message().find("steps") != std::string::npos);
  REQUIRE(h.Submit(MakeGroup("g", 1)).ok());
  CHECK(h.Submit(MakeGroup("g", 1)).code() == common::Status::Code::kAlreadyExists);
  CHECK(h.core.group_count() == 1);
  // A report about a group nobody knows is fenced, not a crash.
  h.out.clear();
  coordinator::StepFinished stray;
  stray.ref = {"nope", 7, 1};
  stray.worker = "w";
  stray.outcome = Exit(0);
  REQUIRE(h.core.Finished(stray, h.now, &h.out).ok());
  stray.ref = {"g", 99, 1};
  REQUIRE(h.core.Finished(stray, h.now, &h.out).ok());
  CHECK(h.core.stale_reports() == 2);
}

TEST_CASE("groups without an id get one: finished groups are forgotten after retention", "[core]") {
  SchedulerOptions o = Quiet();
  o.retention = 60s;
  Harness h(o);
  h.Join("w", 1);
  auto g = MakeGroup("", 1);
  std::string id;
  h.out.clear();
  REQUIRE(h.core.Submit(g, h.now, &h.out, &id).ok());
  CHECK_FALSE(id.empty());
  h.Finish(h.DispatchOf("step1"), Exit(0));
  CHECK(h.GroupFinishedIn(id));
  h.Advance(59s);
  CHECK(h.core.Result(id));
  h.Advance(1s);
  CHECK_FALSE(h.core.Result(id));
  CHECK(h.core.group_count() == 0);
}

TEST_CASE("the event stream decides everything: the same events give the same actions", "[core]") {
  auto run = [] {
    SchedulerOptions o = Quiet();
    o.seed = 42;
    Harness h(o);
    std::vector<std::string> log;
    auto record = [&] {
      for (auto& a : h.out) {
        if (auto* d = std::get_if<Dispatch>(&a)) {
          log.push_back(d->ref.group + "/" + std::to_string(d->ref.step) + "#" +
                        std::to_string(d->ref.attempt) + "@" + d->worker);
        }
      }
    };
    h.Join("a", 2);
    h.Join("b", 3);
    auto g = MakeGroup("x", 20);
    g.retry.max_attempts = 3;
    g.retry.jitter = 0.3;
    REQUIRE(h.Submit(g).ok());
    record();
    REQUIRE(h.Submit(MakeGroup("y", 5)).ok());
    record();
    for (int round = 0; round < 200 && h.core.Result("x")->state == GroupState::kRunning; ++round) {
      auto x = *h.core.Result("x");
      auto y = *h.core.Result("y");
      for (const auto* r : {&x, &y}) {
        for (uint32_t i = 0; i < r->steps.size(); ++i) {
          const auto& s = r->steps[i];
          if (s.state != StepState::kRunning) continue;
          const auto& a = s.attempts.back();
          h.out.clear();
          h.core.Finished({{r->id, i, a.attempt}, a.worker, Exit((i + a.attempt) % 3 == 0 ? 1 : 0)}, h.now,
                          &h.out);
          record();
        }
      }
      h.Advance(1s);
      record();
    }
    return log;
  };
  auto first = run();
  CHECK(first.size() > 25);
  CHECK(first == run());
}

TEST_CASE("Handle() feeds journaled events exactly as the direct calls do", "[core]") {
  // Two cores: one driven by the typed calls, one by Event values (what a
  // journal would replay). Their actions must match one for one.
  auto describe = [](const std::vector<Action>& out) {
    std::string s;
    for (const Action& a : out) {
      if (auto* d = std::get_if<Dispatch>(&a)) s += "D" + d->ref.group + std::to_string(d->ref.step) + d->worker;
      if (auto* c = std::get_if<CancelAttempt>(&a)) s += "C" + std::to_string(c->ref.step);
      if (std::holds_alternative<coordinator::BroadcastCancel>(a)) s += "B";
      if (auto* f = std::get_if<coordinator::GroupFinished>(&a)) s += "F" + f->group;
    }
    return s;
  };
  Harness direct, replayed;
  std::vector<Action> out;
  auto both = [&](auto call, coordinator::Event event) {
    direct.out.clear();
    out.clear();
    REQUIRE(call().ok());
    REQUIRE(replayed.core.Handle(std::move(event), replayed.now, &out).ok());
    CHECK(describe(direct.out) == describe(out));
  };
  coordinator::WorkerJoined w;
  w.name = "w1";
  w.slots = 2;
  both([&] { return direct.core.Join(w, direct.now, &direct.out); }, w);
  both([&] { return direct.core.Submit(MakeGroup("g", 3), direct.now, &direct.out); },
       coordinator::SubmitGroup{MakeGroup("g", 3)});
  coordinator::StepFinished failed{{"g", 0, 1}, "w1", Exit(1)};
  both([&] { return direct.core.Finished(failed, direct.now, &direct.out); }, failed);
  coordinator::StepFinished stopped{{"g", 1, 1}, "w1", Cancelled()};
  both([&] { return direct.core.Finished(stopped, direct.now, &direct.out); }, stopped);
  CHECK(replayed.State("g") == GroupState::kFailed);
  CHECK(describe(out) == "Fg");
  both([&] { return direct.core.Heartbeat("w1", direct.now); }, coordinator::WorkerHeartbeat{"w1"});
  both([&] { return direct.core.Lose("w1", "bye", direct.now, &direct.out); }, coordinator::WorkerLost{"w1", "bye"});
  CHECK(replayed.core.Workers().empty());
}

TEST_CASE("scale: 200000 steps and 2000 small groups run to completion", "[core][cost]") {
  Harness h;
  h.Join("w1", 64);
  h.Join("w2", 64);
  REQUIRE(h.Submit(MakeGroup("big", 200000)).ok());
  for (int i = 0; i < 2000; ++i) REQUIRE(h.Submit(MakeGroup("s" + std::to_string(i), 3)).ok());
  // Play the workers: finish the oldest running attempt, collect new dispatches.
  std::deque<Dispatch> running;
  std::vector<Action> out;
  h.out.clear();
  // Every dispatch so far came from the submits; gather them from the results.
  for (const auto& sum : h.core.Groups()) {
    auto r = h.core.Result(sum.id);
    for (uint32_t i = 0; i < r->steps.size(); ++i) {
      if (r->steps[i].state == StepState::kRunning) {
        const auto& a = r->steps[i].attempts.back();
        running.push_back({{sum.id, i, a.attempt}, a.worker, std::nullopt, {}});
      }
    }
  }
  REQUIRE(running.size() == 128);
  size_t finished = 0;
  while (!running.empty()) {
    Dispatch d = running.front();
    running.pop_front();
    out.clear();
    REQUIRE(h.core.Finished({d.ref, d.worker, Exit(0)}, h.now, &out).ok());
    for (auto& a : out) {
      if (auto* nd = std::get_if<Dispatch>(&a)) running.push_back(*nd);
      if (std::holds_alternative<coordinator::GroupFinished>(a)) ++finished;
    }
  }
  CHECK(finished == 2001);
  CHECK(h.core.Summary("big")->count(StepState::kCompleted) == 200000);
  CHECK(h.core.Summary("big")->state == GroupState::kCompleted);
}

TEST_CASE("a dispatch holds its own step: actions stay valid after the group is forgotten", "[core]") {
  SchedulerOptions o = Quiet();
  o.retention = 1s;
  Harness h(o);
  h.Join("w", 1);
  common::GroupSpec g;
  g.id = "g";
  common::StepSpec step;
  step.id = "s";
  step.argv = {"echo", std::string(100, 'x')};
  step.env = {{"K", "V"}};
  step.cwd = "/tmp";
  g.steps.push_back(step);
  REQUIRE(h.Submit(g).ok());
  const std::vector<Action> kept = h.out;
  h.Finish(h.DispatchOf("s"), Exit(0));
  h.Advance(2s);
  REQUIRE(h.core.group_count() == 0);
  const auto* d = std::get_if<Dispatch>(&kept.at(0));
  REQUIRE(d);
  CHECK(d->spec.id == "s");
  CHECK(d->spec.argv == step.argv);
  CHECK(d->spec.env == step.env);
  CHECK(d->spec.cwd == "/tmp");
}


}  // namespace
}  // namespace cohort::testing
