// Rule 7 (fencing) and the worker table of the core: heartbeats and expiry,
// re-registration, and who may take a live worker's name.
#include "tests/unit/scheduler_harness.h"

namespace cohort::testing {
namespace {

TEST_CASE("a worker missing its heartbeats is declared lost, and its steps run elsewhere after its lease",
          "[core][workers]") {
  SchedulerOptions o;
  o.heartbeat_interval = 1s;
  o.liveness = 3;
  o.worker_lease = 10s;
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
  CHECK(h.core.Heartbeat(d.worker, h.now).code() == common::Status::Code::kNotFound);
  // Its step may still run there until the worker's lease, counted from its
  // last message (at 2 s), has run out: not run elsewhere before.
  CHECK(h.Dispatches().empty());
  CHECK(h.Step("g", "step1").state == StepState::kRetrying);
  while (h.now < common::Time{} + 12s) {
    h.now += 1s;
    REQUIRE(h.core.Heartbeat(other, h.now).ok());
    h.out.clear();
    h.core.Tick(h.now, &h.out);
    if (h.now < common::Time{} + 12s) REQUIRE(h.Dispatches().empty());
  }
  REQUIRE(h.Dispatches().size() == 1);
  CHECK(h.Dispatches()[0].worker == other);
}

TEST_CASE("a lost worker's steps wait for its lease unless it comes back without them", "[core][workers][lease]") {
  SchedulerOptions o;
  o.heartbeat_interval = 1s;
  o.liveness = 3;
  o.worker_lease = 60s;
  Harness h(o);
  coordinator::WorkerJoined a;
  a.name = "a";
  a.slots = 2;
  a.instance = 7;
  h.out.clear();
  REQUIRE(h.core.Join(a, h.now, &h.out).ok());
  REQUIRE(h.Submit(MakeGroup("g", 2)).ok());
  const auto d1 = h.DispatchOf("step1");
  const auto d2 = h.DispatchOf("step2");
  h.Join("b", 2);
  h.out.clear();
  REQUIRE(h.core.Lose("a", "no heartbeat", h.now, &h.out).ok());
  CHECK(h.Dispatches().empty());

  SECTION("the same process back, still running one: the other runs again, the listed one waits") {
    coordinator::WorkerJoined back = a;
    back.running = {d1.ref};
    h.out.clear();
    REQUIRE(h.core.Join(back, h.now, &h.out).ok());
    CHECK(h.Of<CancelAttempt>().size() == 1);
    REQUIRE(h.Dispatches().size() == 1);
    CHECK(h.Dispatches()[0].ref.step == d2.ref.step);
    // Its report that the listed one is over releases that one too.
    h.Finish(d1, Exit(143));
    REQUIRE(h.Dispatches().size() == 1);
    CHECK(h.Dispatches()[0].ref.step == d1.ref.step);
  }
  SECTION("a new process under the name: the old one is gone, both run again at once") {
    coordinator::WorkerJoined reborn = a;
    reborn.instance = 8;
    h.out.clear();
    REQUIRE(h.core.Join(reborn, h.now, &h.out).ok());
    CHECK(h.Dispatches().size() == 2);
  }
  SECTION("a BYE says the steps are dead: no wait") {
    coordinator::WorkerJoined c;
    c.name = "c";
    c.slots = 1;
    h.out.clear();
    REQUIRE(h.core.Join(c, h.now, &h.out).ok());
    h.out.clear();
    REQUIRE(h.core.Lose("b", "worker shut down", h.now, &h.out, /*steps_stopped=*/true).ok());
    CHECK(h.Dispatches().empty());  // b held nothing; a's steps still wait
  }
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
  REQUIRE(h.core.Lose(d1.worker, "timeout", h.now, &h.out, /*steps_stopped=*/true).ok());
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


coordinator::WorkerJoined Joining(std::string name, uint64_t instance, std::string user_id = "") {
  coordinator::WorkerJoined j;
  j.name = std::move(name);
  j.slots = 1;
  j.instance = instance;
  j.user_id = std::move(user_id);
  return j;
}

TEST_CASE("a live worker's name is refused to another instance from another connection", "[core][workers]") {
  Harness h;
  REQUIRE(h.core.Handle(Joining("w", 7), h.now, &h.out).ok());
  REQUIRE(h.Submit(MakeGroup("g", 1)).ok());
  const Dispatch d = h.DispatchOf("step1");
  h.out.clear();
  CHECK(h.core.Handle(Joining("w", 8), h.now, &h.out).code() == common::Status::Code::kAlreadyExists);
  // An instance of 0 (none given) matches no live one.
  CHECK(h.core.Handle(Joining("w", 0), h.now, &h.out).message() ==
        "worker name \"w\" is in use by another live worker");
  CHECK(h.out.empty());
  CHECK(h.Step("g", "step1").state == StepState::kRunning);
  // The same instance is the same process coming back on a new connection.
  auto back = Joining("w", 7);
  back.running = {d.ref};
  REQUIRE(h.core.Handle(back, h.now, &h.out).ok());
  CHECK(h.out.empty());
  // On the connection it registered on, it is the same worker whatever it says.
  auto again = Joining("w", 9);
  again.same_connection = true;
  again.running = {d.ref};
  REQUIRE(h.core.Handle(again, h.now, &h.out).ok());
  CHECK(h.out.empty());
  CHECK(h.Step("g", "step1").state == StepState::kRunning);
  CHECK(h.Step("g", "step1").attempts.size() == 1);
  // Once it is gone, the name is free for anyone.
  REQUIRE(h.core.Handle(coordinator::WorkerLost{"w", "bye"}, h.now, &h.out).ok());
  CHECK(h.core.Handle(Joining("w", 10), h.now, &h.out).ok());
}

TEST_CASE("a live worker that gave no instance can be taken over by a new connection", "[core][workers]") {
  Harness h;
  REQUIRE(h.core.Handle(Joining("w", 0), h.now, &h.out).ok());
  CHECK(h.core.Handle(Joining("w", 5), h.now, &h.out).ok());
  CHECK(h.core.Handle(Joining("w", 6), h.now, &h.out).code() == common::Status::Code::kAlreadyExists);
}

TEST_CASE("with CURVE a live worker's name is refused to another key", "[core][workers]") {
  Harness h;
  REQUIRE(h.core.Handle(Joining("w", 7, "alice|KEY1"), h.now, &h.out).ok());
  CHECK(h.core.Handle(Joining("w", 7, "mallory|KEY2"), h.now, &h.out).code() ==
        common::Status::Code::kAlreadyExists);
  CHECK(h.core.Handle(Joining("w", 0, "mallory|KEY2"), h.now, &h.out).code() ==
        common::Status::Code::kAlreadyExists);
  REQUIRE(h.core.Workers().size() == 1);
  CHECK(h.core.Workers()[0].user_id == "alice|KEY1");
  CHECK(h.core.Handle(Joining("w", 7, "alice|KEY1"), h.now, &h.out).ok());
  // A live worker that gave no instance still keeps its name from other keys.
  REQUIRE(h.core.Handle(Joining("v", 0, "bob|KEY3"), h.now, &h.out).ok());
  CHECK(h.core.Handle(Joining("v", 0, "mallory|KEY2"), h.now, &h.out).code() ==
        common::Status::Code::kAlreadyExists);
}

TEST_CASE("a stalled loop gives every worker its stall plus a full window, through Handle", "[core][liveness]") {
  SchedulerOptions o;  // heartbeats matter here: 1 s x 3
  Harness h(o);
  h.Join("w", 1);
  h.Advance(2s);
  REQUIRE(h.core.Handle(coordinator::LoopStalled{4s}, h.now, &h.out).ok());
  CHECK(h.out.empty());
  h.Advance(6900ms);  // 2 s + 4 s + 3 s is 9 s from the join
  CHECK(h.Of<coordinator::WorkerExpired>().empty());
  h.Advance(100ms);
  CHECK(h.Of<coordinator::WorkerExpired>().size() == 1);
}

TEST_CASE("with worker messages unread, timers that judge workers wait a window and the rest fire on time",
          "[core][liveness]") {
  SchedulerOptions o;  // heartbeats matter here: 1 s x 3
  Harness h(o);
  h.Join("w", 2);
  common::GroupSpec g = MakeGroup("g", 2);
  g.deadline_s = 2;
  g.steps[1].timeout_s = 1;  // backstop at 1 s + the 30 s grace
  REQUIRE(h.Submit(g).ok());
  REQUIRE(h.Dispatches().size() == 2);
  auto tick_unread = [&](common::Duration d) {
    h.now += d;
    h.out.clear();
    h.core.Tick(h.now, &h.out, /*workers_unread=*/true);
  };
  // The group deadline fires on time, however many worker messages wait.
  tick_unread(2s);
  CHECK(h.Of<CancelAttempt>().size() == 2);
  CHECK(h.Step("g", "step1").state == StepState::kRunning);  // stopping: cancels sent
  // The worker's expiry (due at 3 s) waits while its messages may be unread...
  tick_unread(1s);
  CHECK(h.Of<coordinator::WorkerExpired>().empty());
  tick_unread(2900ms);
  CHECK(h.Of<coordinator::WorkerExpired>().empty());
  // ...but not longer than one more window.
  tick_unread(100ms);
  CHECK(h.Of<coordinator::WorkerExpired>().size() == 1);
}

TEST_CASE("a worker expiry held for unread messages fires as soon as they are read", "[core][liveness]") {
  SchedulerOptions o;
  Harness h(o);
  h.Join("w", 1);
  h.now += 3500ms;
  h.out.clear();
  h.core.Tick(h.now, &h.out, /*workers_unread=*/true);
  CHECK(h.Of<coordinator::WorkerExpired>().empty());
  REQUIRE(h.core.NextDeadline());
  CHECK(*h.core.NextDeadline() <= h.now);  // still due: the loop comes back at once
  // Read to the end, and nothing from the worker among them.
  h.out.clear();
  h.core.Tick(h.now, &h.out);
  CHECK(h.Of<coordinator::WorkerExpired>().size() == 1);
}

TEST_CASE("a worker whose kill grace is longer than the backstop grace gets its own to stop a step",
          "[core][workers][grace]") {
  SchedulerOptions o = Quiet();
  o.backstop_grace = 30s;
  Harness h(o);
  coordinator::WorkerJoined j;
  j.name = "patient";
  j.slots = 2;
  j.kill_grace = 60s;  // SIGTERM, 60 s, SIGKILL, up to 10 s more, then the report
  REQUIRE(h.core.Join(j, h.now, &h.out).ok());
  common::GroupSpec g = MakeGroup("g", 2);
  g.steps[0].timeout_s = 1;
  REQUIRE(h.Submit(g).ok());
  REQUIRE(h.Dispatches().size() == 2);
  SECTION("a timed-out step's report") {
    h.Advance(1s + 30s + 1s);  // past the backstop grace alone
    CHECK(h.Of<coordinator::WorkerExpired>().empty());
    h.Advance(1s + 60s + 10s + 1s - 32s - 1ms);
    CHECK(h.Of<coordinator::WorkerExpired>().empty());
    h.Advance(1ms);
    REQUIRE(h.Of<coordinator::WorkerExpired>().size() == 1);
    CHECK(h.Of<coordinator::WorkerExpired>()[0].reason.find("within its timeout plus 71s") != std::string::npos);
  }
  SECTION("a cancel's confirmation") {
    h.out.clear();
    REQUIRE(h.core.CancelGroupById("g", h.now, &h.out).ok());
    h.Advance(40s);
    CHECK(h.Of<coordinator::WorkerExpired>().empty());
    for (int i = 0; i < 40 && h.Of<coordinator::WorkerExpired>().empty(); ++i) h.Advance(1s);
    REQUIRE(h.Of<coordinator::WorkerExpired>().size() == 1);
    CHECK(h.now == common::Time{} + 71s);
  }
}

TEST_CASE("a worker that gives no kill grace, or a short one, gets the backstop grace", "[core][workers][grace]") {
  SchedulerOptions o = Quiet();
  o.backstop_grace = 30s;
  Harness h(o);
  coordinator::WorkerJoined j;
  j.name = "quick";
  j.slots = 1;
  j.kill_grace = 5s;
  REQUIRE(h.core.Join(j, h.now, &h.out).ok());
  common::GroupSpec g = MakeGroup("g", 1);
  g.steps[0].timeout_s = 1;
  REQUIRE(h.Submit(g).ok());
  h.Advance(31s - 1ms);
  CHECK(h.Of<coordinator::WorkerExpired>().empty());
  h.Advance(1ms);
  CHECK(h.Of<coordinator::WorkerExpired>().size() == 1);
}

TEST_CASE("an unconfirmed cancel waits for unread worker messages before its worker is lost", "[core][liveness]") {
  SchedulerOptions o;  // heartbeats matter here: 1 s x 3
  o.backstop_grace = 30s;
  Harness h(o);
  h.Join("w", 1);
  REQUIRE(h.Submit(MakeGroup("g", 1)).ok());
  REQUIRE(h.Dispatches().size() == 1);
  h.out.clear();
  REQUIRE(h.core.CancelGroupById("g", h.now, &h.out).ok());
  // The worker heartbeats, but its confirmation may be queued unread.
  auto tick_unread = [&](common::Duration d) {
    h.now += d;
    REQUIRE(h.core.Heartbeat("w", h.now).ok());
    h.out.clear();
    h.core.Tick(h.now, &h.out, /*workers_unread=*/true);
  };
  for (int i = 0; i < 32; ++i) tick_unread(1s);
  CHECK(h.Of<coordinator::WorkerExpired>().empty());  // 32 s: past the grace, within a window more
  tick_unread(1s);
  CHECK(h.Of<coordinator::WorkerExpired>().size() == 1);
}

}  // namespace
}  // namespace cohort::testing
