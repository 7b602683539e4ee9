// Worker states in the core: cordon, drain and ready set by an operator, a
// worker leaving of its own accord, and lost workers kept on the list.
#include "tests/unit/scheduler_harness.h"

namespace cohort::testing {
namespace {

using coordinator::SetWorkerMode;
using coordinator::WorkerMode;

common::Status SetMode(Harness& h, const std::string& worker, WorkerMode mode) {
  h.out.clear();
  return h.core.Handle(SetWorkerMode{worker, mode, "alice"}, h.now, &h.out);
}

coordinator::WorkerView ViewOf(const Harness& h, const std::string& name) {
  for (const auto& w : h.core.Workers()) {
    if (w.name == name) return w;
  }
  FAIL("no live worker " << name);
  return {};
}

TEST_CASE("a cordoned worker keeps its steps and gets no new one until uncordoned", "[core][workers][cordon]") {
  Harness h;
  h.now += 10s;
  h.Join("a", 2);
  CHECK(ViewOf(h, "a").since == common::Time{} + 10s);  // ready since it joined
  REQUIRE(h.Submit(MakeGroup("g", 3)).ok());
  REQUIRE(h.Dispatches().size() == 2);
  const auto first = h.Dispatches()[0];
  h.now += 1s;
  REQUIRE(SetMode(h, "a", WorkerMode::kCordoned).ok());
  CHECK(h.out.empty());  // nothing running is touched
  auto v = ViewOf(h, "a");
  CHECK(v.state == "cordoned");
  CHECK(v.reason == "by alice");
  CHECK(v.since == common::Time{} + 11s);
  // A slot frees: the third step waits, and says why.
  h.Finish(first, Exit(0));
  CHECK(h.Dispatches().empty());
  CHECK(h.Step("g", "step3").state == StepState::kPending);
  CHECK(h.Step("g", "step3").waiting == "every worker slot is busy (1 cordoned or draining)");
  CHECK(h.core.Counts().workers_unplaceable == 1);
  // Uncordoned, the free slot takes it at once.
  REQUIRE(SetMode(h, "a", WorkerMode::kReady).ok());
  REQUIRE(h.Dispatches().size() == 1);
  CHECK(h.Dispatches()[0].spec.id == "step3");
  CHECK(ViewOf(h, "a").state == "ready");
  CHECK(ViewOf(h, "a").since == common::Time{} + 10s);
  CHECK(h.core.Counts().workers_unplaceable == 0);
}

TEST_CASE("steps wait for a cordoned worker's slots to be freed by other workers", "[core][workers][cordon]") {
  Harness h;
  h.Join("a", 1);
  h.Join("b", 1);
  REQUIRE(SetMode(h, "a", WorkerMode::kCordoned).ok());
  REQUIRE(h.Submit(MakeGroup("g", 2)).ok());
  REQUIRE(h.Dispatches().size() == 1);
  CHECK(h.Dispatches()[0].worker == "b");
  CHECK(h.Step("g", "step2").state == StepState::kPending);
}

TEST_CASE("draining shows drained once nothing runs, and a mode outlives the worker's restart",
          "[core][workers][cordon]") {
  Harness h;
  h.Join("a", 1);
  REQUIRE(h.Submit(MakeGroup("g", 2)).ok());
  const auto d = h.DispatchOf("step1");
  REQUIRE(SetMode(h, "a", WorkerMode::kDraining).ok());
  CHECK(ViewOf(h, "a").state == "draining");
  h.Finish(d, Exit(0));
  CHECK(h.Dispatches().empty());
  CHECK(ViewOf(h, "a").state == "drained");
  // The worker restarts (a new process under the same name): still drained,
  // still offered nothing.
  h.out.clear();
  REQUIRE(h.core.Lose("a", "restarting", h.now, &h.out, /*steps_stopped=*/true).ok());
  h.Join("a", 1);
  CHECK(h.Dispatches().empty());
  CHECK(ViewOf(h, "a").state == "drained");
  REQUIRE(SetMode(h, "a", WorkerMode::kReady).ok());
  CHECK(h.DispatchOf("step2").worker == "a");
}

TEST_CASE("a worker that says it is draining is offered nothing new", "[core][workers][cordon]") {
  Harness h;
  h.Join("a", 2);
  h.Join("b", 2);
  REQUIRE(h.Submit(MakeGroup("g", 1)).ok());
  const auto d = h.DispatchOf("step1");
  const std::string leaving = d.worker, staying = d.worker == "a" ? "b" : "a";
  h.now += 1s;
  coordinator::WorkerHeartbeat beat;
  beat.name = leaving;
  beat.draining = true;
  h.out.clear();
  REQUIRE(h.core.Heartbeat(beat, h.now, &h.out).ok());
  auto v = ViewOf(h, leaving);
  CHECK(v.state == "draining");
  CHECK(v.reason == "the worker is stopping");
  CHECK(v.since == common::Time{} + 1s);
  REQUIRE(h.Submit(MakeGroup("g2", 3)).ok());
  for (const auto& x : h.Dispatches()) CHECK(x.worker == staying);
  CHECK(h.Dispatches().size() == 2);
  // An operator's uncordon does not override a worker that is leaving.
  REQUIRE(SetMode(h, leaving, WorkerMode::kReady).ok());
  CHECK(h.Dispatches().empty());
}

TEST_CASE("a lost worker stays listed for a while, then is forgotten", "[core][workers]") {
  SchedulerOptions o = Quiet();
  o.lost_listed_for = 10min;
  Harness h(o);
  coordinator::WorkerJoined j;
  j.name = "a";
  j.slots = 4;
  j.version = "9.9.9";
  REQUIRE(h.core.Join(j, h.now, &h.out).ok());
  h.now += 1min;
  h.out.clear();
  REQUIRE(h.core.Lose("a", "no heartbeat for 3s", h.now, &h.out).ok());
  CHECK(h.core.Workers().empty());
  auto lost = h.core.LostWorkers(h.now + 1s);
  REQUIRE(lost.size() == 1);
  CHECK(lost[0].state == "lost");
  CHECK(lost[0].version == "9.9.9");
  CHECK(lost[0].reason == "no heartbeat for 3s");
  CHECK(lost[0].since == common::Time{} + 1min);
  CHECK(h.core.LostWorkers(h.now + 10min).empty());
  // A cordon may be set on it while it is away, and holds when it returns.
  REQUIRE(SetMode(h, "a", WorkerMode::kCordoned).ok());
  REQUIRE(h.core.Join(j, h.now, &h.out).ok());
  CHECK(h.core.LostWorkers(h.now).empty());
  CHECK(ViewOf(h, "a").state == "cordoned");
  CHECK(SetMode(h, "nobody", WorkerMode::kCordoned).code() == common::Status::Code::kNotFound);
}

TEST_CASE("modes are journaled and a restored core keeps them", "[core][workers][cordon][restore]") {
  SchedulerOptions o = Quiet();
  o.journal = true;
  Harness h(o);
  h.Join("a", 1);
  REQUIRE(SetMode(h, "a", WorkerMode::kCordoned).ok());
  REQUIRE(SetMode(h, "a", WorkerMode::kCordoned).ok());  // no change: nothing journaled
  std::vector<coordinator::Record> journal;
  h.core.TakeJournal(&journal);
  REQUIRE(journal.size() == 1);
  const auto& set = std::get<coordinator::WorkerModeSet>(journal[0]);
  CHECK(set.worker == "a");
  CHECK(set.mode == "cordoned");
  CHECK(set.who == "alice");
  REQUIRE(SetMode(h, "a", WorkerMode::kReady).ok());
  journal.clear();
  h.core.TakeJournal(&journal);
  REQUIRE(journal.size() == 1);
  CHECK(std::get<coordinator::WorkerModeSet>(journal[0]).mode == "ready");

  coordinator::LoadedState state;
  state.worker_modes = {{"a", "draining", "bob", 0}, {"b", "cordoned", "carol", 0}};
  Harness restored(o);
  REQUIRE(restored.core.Restore(state, restored.now, &restored.out).ok());
  restored.Join("a", 1);
  restored.Join("b", 1);
  restored.Join("c", 1);
  REQUIRE(restored.Submit(MakeGroup("g", 2)).ok());
  REQUIRE(restored.Dispatches().size() == 1);
  CHECK(restored.Dispatches()[0].worker == "c");
  CHECK(ViewOf(restored, "a").state == "drained");
  CHECK(ViewOf(restored, "b").reason == "by carol");
  // A restored mode can be cleared before its worker is back.
  REQUIRE(SetMode(restored, "d", WorkerMode::kReady).code() == common::Status::Code::kNotFound);
}

TEST_CASE("the lost list is bounded", "[core][workers]") {
  Harness h;
  for (size_t i = 0; i < Scheduler::kMaxLostWorkers + 5; ++i) {
    const std::string name = "w" + std::to_string(i);
    h.Join(name, 1);
    h.now += 1ms;
    h.out.clear();
    REQUIRE(h.core.Lose(name, "gone", h.now, &h.out).ok());
  }
  auto lost = h.core.LostWorkers(h.now);
  CHECK(lost.size() == Scheduler::kMaxLostWorkers);
  CHECK(lost.front().name == "w" + std::to_string(Scheduler::kMaxLostWorkers + 4));  // newest first
}

}  // namespace
}  // namespace cohort::testing

namespace cohort::testing {
namespace {

TEST_CASE("observations: a cancel's latency counts from its first request, retries and ends by kind", "[core][metrics]") {
  Harness h;
  h.Join("a", 2);
  REQUIRE(h.Submit(MakeGroup("g", 2)).ok());
  const auto s1 = h.DispatchOf("step1"), s2 = h.DispatchOf("step2");
  h.now += 1s;
  h.out.clear();
  REQUIRE(h.core.CancelStepById("g", "step1", h.now, &h.out).ok());
  // step2 fails 3 s later: the group stops and asks step1 to stop again.
  h.now += 3s;
  h.Finish(s2, Exit(1));
  h.now += 1s;
  h.Finish(s1, Cancelled());
  const coordinator::CoreObservations& o = h.core.observations();
  CHECK(o.cancel_latency.count() == 1);
  CHECK(o.cancel_latency.sum() == Approx(4.0));  // from the user's cancel, not the group's
  CHECK(o.run_time.count() == 2);
  CHECK(o.groups_ended[static_cast<int>(common::GroupState::kFailed)] == 1);
  CHECK(o.retries_exit + o.retries_timeout + o.retries_worker_lost == 0);
  CHECK(h.core.Counts().steps[static_cast<int>(StepState::kFailed)] == 1);
}

}  // namespace
}  // namespace cohort::testing
