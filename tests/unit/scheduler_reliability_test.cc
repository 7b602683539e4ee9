// What keeps the core bounded and fair when things go wrong: at most
// max_groups groups and max_steps steps held, running and retained together
// (finished groups make room before their retention is over; running ones are
// never dropped), and no worker lost because the daemon itself was busy.
#include "tests/unit/scheduler_harness.h"

namespace cohort::testing {
namespace {

using common::Status;

SchedulerOptions Limits(size_t groups, size_t steps) {
  SchedulerOptions o = Quiet();
  o.max_groups = groups;
  o.max_steps = steps;
  return o;
}

TEST_CASE("a submit past the step limit is refused while running groups hold it", "[core][limits]") {
  Harness h(Limits(100, 10));
  REQUIRE(h.Submit(MakeGroup("a", 6)).ok());
  Status s = h.Submit(MakeGroup("b", 5));
  CHECK(s.code() == Status::Code::kUnavailable);
  CHECK(s.message().find("--max-steps") != std::string::npos);
  CHECK_FALSE(h.core.Summary("b"));
  CHECK(h.core.step_count() == 6);
  REQUIRE(h.Submit(MakeGroup("c", 4)).ok());  // exactly at the limit
  CHECK(h.core.step_count() == 10);
}

TEST_CASE("a group larger than the whole limit is refused at once", "[core][limits]") {
  Harness h(Limits(100, 10));
  Status s = h.Submit(MakeGroup("huge", 11));
  CHECK(s.code() == Status::Code::kUnavailable);
  CHECK(h.core.group_count() == 0);
}

TEST_CASE("finished groups are forgotten oldest first to make room, before their retention", "[core][limits]") {
  Harness h(Limits(3, 1000));
  h.Join("w", 10);
  for (std::string id : {"a", "b", "c"}) {
    REQUIRE(h.Submit(MakeGroup(id, 1)).ok());
    h.Finish(h.Dispatches().at(0), Exit(0));
    REQUIRE(h.GroupFinishedIn(id));
  }
  REQUIRE(h.Submit(MakeGroup("d", 1)).ok());  // "a" makes room
  CHECK_FALSE(h.core.Summary("a"));
  CHECK(h.core.Summary("b"));
  CHECK(h.core.group_count() == 3);
  REQUIRE(h.Submit(MakeGroup("e", 1)).ok());  // then "b"; "d" still runs
  CHECK_FALSE(h.core.Summary("b"));
  CHECK(h.core.Summary("c"));
  REQUIRE(h.Submit(MakeGroup("f", 1)).ok());  // then "c"
  CHECK(h.core.group_count() == 3);
  // Now d, e, f all run: nothing may be dropped.
  Status s = h.Submit(MakeGroup("g", 1));
  CHECK(s.code() == Status::Code::kUnavailable);
  CHECK(s.message().find("--max-groups") != std::string::npos);
  CHECK(h.core.Summary("d")->state == common::GroupState::kRunning);
}

TEST_CASE("retention and early forgetting together keep the count exact", "[core][limits]") {
  SchedulerOptions o = Limits(2, 1000);
  o.retention = 10s;
  Harness h(o);
  h.Join("w", 10);
  REQUIRE(h.Submit(MakeGroup("a", 2)).ok());
  for (const auto& d : h.Dispatches()) h.Finish(d, Exit(0));
  h.Advance(5s);
  REQUIRE(h.Submit(MakeGroup("b", 3)).ok());
  for (const auto& d : h.Dispatches()) h.Finish(d, Exit(0));
  CHECK(h.core.step_count() == 5);
  h.Advance(5s);  // "a" reaches its retention
  CHECK_FALSE(h.core.Summary("a"));
  CHECK(h.core.step_count() == 3);
  REQUIRE(h.Submit(MakeGroup("c", 1)).ok());  // room without forgetting "b"
  CHECK(h.core.Summary("b"));
  REQUIRE(h.Submit(MakeGroup("d", 1)).ok());  // "b" goes early
  CHECK_FALSE(h.core.Summary("b"));
  CHECK(h.core.step_count() == 2);
  h.Advance(10s);  // b's retention timer is gone with it: nothing breaks
  CHECK(h.core.group_count() == 2);
}

TEST_CASE("a grace after the daemon was busy delays expiries and never advances them", "[core][liveness]") {
  SchedulerOptions o;  // heartbeats matter here: 1 s x 3
  Harness h(o);
  h.Join("w", 1);
  REQUIRE(h.Submit(MakeGroup("g", 1)).ok());
  REQUIRE(h.Dispatches().size() == 1);
  h.Advance(2s);
  h.core.GraceWorkers(h.now + 5s);  // it could not hear the worker for a while
  h.Advance(2900ms);
  CHECK(h.Of<coordinator::WorkerExpired>().empty());
  h.Advance(2100ms);  // past the grace with no word: lost after all
  REQUIRE(h.Of<coordinator::WorkerExpired>().size() == 1);
  CHECK(h.Step("g", "step1").attempts.at(0).status == common::AttemptStatus::kWorkerLost);

  h.Join("v", 1);
  REQUIRE(h.core.Heartbeat("v", h.now).ok());
  h.core.GraceWorkers(h.now + 1s);  // shorter than its own expiry: kept
  h.Advance(2900ms);
  CHECK(h.Of<coordinator::WorkerExpired>().empty());
  h.Advance(100ms);
  CHECK(h.Of<coordinator::WorkerExpired>().size() == 1);
}

}  // namespace
}  // namespace cohort::testing
