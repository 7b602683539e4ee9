// Rule 7 (fencing) and the worker table of the core: heartbeats and expiry,
// re-registration, and who may take a live worker's name.
#include "tests/unit/scheduler_harness.h"

namespace cohort::testing {
namespace {

using common::GroupState;
using common::StepState;
using coordinator::CancelAttempt;
using coordinator::Dispatch;

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

}  // namespace
}  // namespace cohort::testing
