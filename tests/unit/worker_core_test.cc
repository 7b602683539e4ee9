// The worker's decisions (worker/worker_core.h), driven by a fake clock:
// registration and its backoff, heartbeats and what they list, the
// coordinator's liveness, refused RUNs, cancels, REREGISTER and the shutdown
// order. Results and their confirmation are in worker_core_results_test.cc.
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "tests/unit/worker_core_harness.h"

namespace cohort::testing::worker_core {
namespace {

// Advances the clock in 100 ms ticks for `total` and returns the times (from
// the start) at which a REGISTER went out.
std::vector<common::Duration> RegisterTimes(Harness& h, common::Duration total) {
  std::vector<common::Duration> at;
  const common::Time start = h.now;
  while (h.now - start < total) {
    h.Advance(100ms);
    if (!h.Sent<common::RegisterMsg>().empty()) at.push_back(h.now - start);
  }
  return at;
}

TEST_CASE("an unanswered worker registers every heartbeat, then doubling up to the cap", "[worker]") {
  Harness h;
  h.Connect();
  REQUIRE(h.Sent<common::RegisterMsg>().size() == 1);
  const auto reg = h.Sent<common::RegisterMsg>()[0];
  CHECK(reg.name == "w1");
  CHECK(reg.slots == 2);
  CHECK(reg.kill_grace_ms == 5000);  // so that the coordinator waits long enough for a stop
  CHECK(h.core.NextDeadline() == h.now + 1s);
  using D = common::Duration;
  CHECK(RegisterTimes(h, 40s) == std::vector<D>{1s, 2s, 4s, 8s, 16s, 24s, 32s, 40s});
}

TEST_CASE("a welcome resets the registration backoff", "[worker]") {
  Harness h;
  h.Connect();
  RegisterTimes(h, 20s);  // backoff at its cap by now
  h.Welcome();
  CHECK(h.core.registered());
  // Silent for heartbeat x liveness: registering again, from one heartbeat.
  h.now += 3s;
  h.Advance(0s);
  CHECK(h.Noticed("coordinator_silent"));
  CHECK_FALSE(h.core.registered());
  const common::Time silent_at = h.now;
  auto times = RegisterTimes(h, 8s);
  // Then 1 s, 2 s, 4 s apart again, not 8 s.
  REQUIRE(times.size() >= 3);
  CHECK(times[times.size() - 1] - times[times.size() - 2] == 4s);
  CHECK(times[times.size() - 2] - times[times.size() - 3] == 2s);
  CHECK(h.now - silent_at == 8s);
}

TEST_CASE("a worker welcomed after a long outage heartbeats within one interval", "[worker]") {
  // While unregistered the next REGISTER may be up to max_reconnect_backoff
  // away; once welcomed, the coordinator expects a message every heartbeat
  // and would declare a silent worker lost after heartbeat x liveness.
  Harness h;
  h.Connect();
  RegisterTimes(h, 20s);  // backoff at its 8 s cap: the next REGISTER is seconds away
  h.now += 100ms;
  h.Welcome(500, 3);
  CHECK(h.core.NextDeadline() <= h.now + 500ms);
  size_t heartbeats = 0;
  for (int i = 0; i < 5; ++i) {
    h.Advance(100ms);
    heartbeats += h.Sent<common::HeartbeatMsg>().size();
  }
  CHECK(heartbeats == 1);
  CHECK(h.core.registered());
}

TEST_CASE("heartbeats list what the worker holds, every interval however busy it is", "[worker]") {
  // The coordinator learns from these lists that a RUN never arrived, so no
  // other message may stand in for them.
  Harness h;
  h.Connect();
  h.Welcome();
  const common::Time welcomed = h.now;
  const uint64_t running = h.Run("g", 0);
  h.End(h.Run("g", 1));  // its result is kept until a CONFIRM names it
  const std::vector<AttemptId> both = {{"g", 0, 1, 1}, {"g", 1, 1, 1}};
  std::vector<common::Time> beats;
  for (int i = 0; i < 50; ++i) {
    // Busy: every 100 ms a cancel of the finished attempt, which sends its
    // result again.
    h.From(common::CancelAttemptMsg{{"g", 1, 1, 1}, 0});
    REQUIRE(h.Sent<FinishedMsg>().size() == 1);
    h.Advance(100ms);
    for (const auto& beat : h.Sent<common::HeartbeatMsg>()) {
      REQUIRE(beat.running);
      CHECK(*beat.running == both);
      beats.push_back(h.now);
    }
  }
  REQUIRE(beats.size() >= 5);
  CHECK(beats.front() - welcomed <= 1s);
  for (size_t i = 1; i < beats.size(); ++i) CHECK(beats[i] - beats[i - 1] <= 1s);
  // A confirmed result is no longer listed; with nothing held the list is
  // empty, not absent.
  h.From(common::ConfirmMsg{{{"g", 1, 1, 1}}});
  h.Advance(1s);
  REQUIRE(h.Sent<common::HeartbeatMsg>().size() == 1);
  CHECK(h.Sent<common::HeartbeatMsg>()[0].running == std::vector<AttemptId>{{"g", 0, 1, 1}});
  h.End(running);
  h.From(common::ConfirmMsg{{{"g", 0, 1, 1}}});
  h.Advance(1s);
  REQUIRE(h.Sent<common::HeartbeatMsg>().size() == 1);
  CHECK(h.Sent<common::HeartbeatMsg>()[0].running == std::vector<AttemptId>{});
}

TEST_CASE("the coordinator's liveness is learned from its welcome", "[worker]") {
  Harness h;
  h.Connect();
  h.Welcome(200, 2);
  CHECK(h.core.heartbeat_ms() == 200);
  CHECK(h.core.liveness() == 2);
  CHECK(h.core.NextDeadline() == h.now + 200ms);  // the next heartbeat, at the interval just learned
  h.Advance(399ms);
  CHECK(h.core.registered());
  h.Advance(1ms);
  CHECK_FALSE(h.core.registered());
  CHECK(h.Noticed("coordinator_silent"));
}

TEST_CASE("any message from the coordinator keeps it alive", "[worker]") {
  Harness h;
  h.Connect();
  h.Welcome();
  for (int i = 0; i < 10; ++i) {
    h.Advance(2s);
    h.From(common::HeartbeatMsg{});
  }
  CHECK(h.core.registered());
  h.Advance(2999ms);
  CHECK(h.core.registered());
  h.Advance(1ms);
  CHECK_FALSE(h.core.registered());
}

TEST_CASE("the cancel endpoint is subscribed once, at the coordinator's host", "[worker]") {
  Harness h;
  h.Connect();
  h.Welcome();
  auto subs = h.Of<worker::Subscribe>();
  REQUIRE(subs.size() == 1);
  CHECK(subs[0].endpoint == "tcp://coord.example:5702");
  h.Welcome();
  CHECK(h.Of<worker::Subscribe>().empty());
  CHECK(worker::ReachableEndpoint("tcp://10.0.0.1:5702", "tcp://coord:5701") == "tcp://10.0.0.1:5702");
  CHECK(worker::ReachableEndpoint("tcp://*:5702", "tcp://coord:5701") == "tcp://coord:5702");
  CHECK(worker::ReachableEndpoint("ipc:///tmp/c", "tcp://coord:5701") == "ipc:///tmp/c");
}

TEST_CASE("a cancel stops an attempt held and does nothing for one unknown", "[worker]") {
  Harness h;
  h.Connect();
  h.Welcome();
  const uint64_t key = h.Run("g", 3, 2);
  h.From(common::CancelAttemptMsg{{"g", 3, 2, 1}, 0});
  auto cancels = h.Of<worker::CancelStep>();
  REQUIRE(cancels.size() == 1);
  CHECK(cancels[0].key == key);
  h.From(common::CancelAttemptMsg{{"g", 3, 1, 1}, 0});
  CHECK(h.out.empty());
}

TEST_CASE("a RUN past the slots is refused with a result, not run", "[worker]") {
  Harness h;
  h.Connect();
  h.Welcome();
  REQUIRE(h.Run("g", 0) != 0);
  REQUIRE(h.Run("g", 1) != 0);
  CHECK(h.Run("g", 2) == 0);
  auto f = h.Sent<FinishedMsg>();
  REQUIRE(f.size() == 1);
  CHECK(f[0].id == AttemptId{"g", 2, 1, 1});
  CHECK(f[0].error == "worker w1 refused the step: it already runs 2 steps, all of its 2 slots");
  CHECK_FALSE(f[0].cancelled);
  CHECK(h.Noticed("run_refused"));
  CHECK(h.core.unconfirmed() == 1);
}

TEST_CASE("a RUN for a group heard cancelled is refused as cancelled", "[worker]") {
  Harness h;
  h.Connect();
  h.Welcome();
  const uint64_t a = h.Run("g", 0);
  const uint64_t b = h.Run("other", 0);
  h.Broadcast("g");
  auto cancels = h.Of<worker::CancelStep>();
  REQUIRE(cancels.size() == 1);
  CHECK(cancels[0].key == a);
  CHECK(cancels[0].key != b);
  CHECK(h.Run("g", 1) == 0);
  auto f = h.Sent<FinishedMsg>();
  REQUIRE(f.size() == 1);
  CHECK(f[0].cancelled);
  CHECK(f[0].error == "group was cancelled before this step started");
  // A second welcome on the same registration keeps the memory.
  h.End(b);
  h.Welcome();
  CHECK(h.Run("g", 2) == 0);
  REQUIRE(h.Sent<FinishedMsg>().size() == 1);
  CHECK(h.Sent<FinishedMsg>()[0].cancelled);
}

TEST_CASE("a group id submitted again after a cancel runs: the cancel named the old submission", "[worker]") {
  Harness h;
  h.Connect();
  h.Welcome();
  const uint64_t old = h.Run("build", 0, 1, 1);
  h.Broadcast("build", 1);
  REQUIRE(h.Of<worker::CancelStep>().size() == 1);
  h.End(old);
  // The user submits "build" again: the coordinator's submission 2.
  const uint64_t fresh = h.Run("build", 0, 1, 2);
  CHECK(fresh != 0);
  CHECK(h.Sent<FinishedMsg>().empty());
  // A late copy of the old cancel stops nothing of the new group...
  h.Broadcast("build", 1);
  CHECK(h.Of<worker::CancelStep>().empty());
  // ... and a RUN of the old one racing its cancel is still refused.
  CHECK(h.Run("build", 1, 1, 1) == 0);
  REQUIRE(h.Sent<FinishedMsg>().size() == 1);
  CHECK(h.Sent<FinishedMsg>()[0].cancelled);
  CHECK(h.Sent<FinishedMsg>()[0].id == AttemptId{"build", 1, 1, 1});
}

TEST_CASE("an attempt still stopping does not block the same name in a new submission", "[worker]") {
  Harness h;
  h.Connect();
  h.Welcome();
  const uint64_t old = h.Run("build-42", 0, 1, 1);
  h.Broadcast("build-42", 1);  // its process takes a while to die
  const uint64_t fresh = h.Run("build-42", 0, 1, 2);
  CHECK(fresh != 0);
  CHECK_FALSE(h.Noticed("run_collision"));
  CHECK(h.core.running() == 2);
  h.End(old);
  REQUIRE(h.Sent<FinishedMsg>().size() == 1);
  CHECK(h.Sent<FinishedMsg>()[0].id == AttemptId{"build-42", 0, 1, 1});
  CHECK(h.core.running() == 1);
}

TEST_CASE("the memory of cancelled groups is bounded, oldest forgotten first", "[worker]") {
  Harness h;
  h.Connect();
  h.Welcome();
  for (int i = 0; i <= 10000; ++i) h.Broadcast("g" + std::to_string(i), i + 1);
  CHECK(h.Run("g0", 0, 1, 1) != 0);
  CHECK(h.Run("g1", 0, 1, 2) == 0);
  REQUIRE(h.Sent<FinishedMsg>().size() == 1);
  CHECK(h.Sent<FinishedMsg>()[0].cancelled);
}

TEST_CASE("a RUN with the id of an attempt still held is refused, the held one kept", "[worker]") {
  Harness h;
  h.Connect();
  h.Welcome();
  const uint64_t key = h.Run("g", 0, 1);
  CHECK(h.Run("g", 0, 1) == 0);
  auto f = h.Sent<FinishedMsg>();
  REQUIRE(f.size() == 1);
  CHECK(f[0].error == "worker w1 still runs an attempt with the same id from before a coordinator restart");
  CHECK(h.Noticed("run_collision"));
  CHECK(h.core.running() == 1);
  h.From(common::CancelAttemptMsg{{"g", 0, 1, 1}, 0});
  REQUIRE(h.Of<worker::CancelStep>().size() == 1);
  CHECK(h.Of<worker::CancelStep>()[0].key == key);
}

TEST_CASE("a step is started with the worker's variables, and reported started", "[worker]") {
  Harness h;
  h.Connect();
  h.Welcome();
  common::RunMsg run = Harness::RunOf("g", 4, 2);
  run.step_id = "build";
  run.env = {{"A", "1"}};
  run.cwd = "/tmp";
  run.timeout_ms = 1500;
  h.From(run);
  auto starts = h.Of<worker::StartStep>();
  REQUIRE(starts.size() == 1);
  const worker::RunRequest& r = starts[0].request;
  CHECK(r.shell == "true");
  CHECK(r.cwd == "/tmp");
  CHECK(r.timeout == common::Duration(1500ms));
  CHECK(r.env == worker::EnvVars{{"A", "1"}, {"COHORT_WORKER", "w1"}, {"COHORT_GROUP", "g"},
                                 {"COHORT_STEP", "build"}, {"COHORT_ATTEMPT", "2"}});
  CHECK(h.Sent<common::StartedMsg>().empty());  // not before it has started
  h.out.clear();
  h.core.StepStarted(r.key, h.now, &h.out);
  REQUIRE(h.Sent<common::StartedMsg>().size() == 1);
  CHECK(h.Sent<common::StartedMsg>()[0].id == AttemptId{"g", 4, 2, 1});
}

TEST_CASE("a step refused by the policy or not started fails with a result and frees its slot", "[worker]") {
  Harness h;
  h.Connect();
  h.Welcome();
  h.From(Harness::RunOf("g", 0, 1));
  uint64_t key = h.Of<worker::StartStep>().at(0).request.key;
  h.out.clear();
  h.core.StepNotStarted(key, worker::StartFailure::kRefusedByPolicy, "refused by the worker's policy: x", h.now,
                        &h.out);
  REQUIRE(h.Sent<FinishedMsg>().size() == 1);
  CHECK(h.Sent<FinishedMsg>()[0].error == "worker w1 refused by the worker's policy: x");
  CHECK(h.Noticed("step_refused"));
  h.From(Harness::RunOf("g", 1, 1));
  key = h.Of<worker::StartStep>().at(0).request.key;
  h.out.clear();
  h.core.StepNotStarted(key, worker::StartFailure::kStartFailed, "too many open files", h.now, &h.out);
  REQUIRE(h.Sent<FinishedMsg>().size() == 1);
  CHECK(h.Sent<FinishedMsg>()[0].error == "worker w1 could not start the step: too many open files");
  CHECK(h.Noticed("start_failed"));
  CHECK(h.core.running() == 0);
  CHECK(h.Sent<common::StartedMsg>().empty());
}

TEST_CASE("REREGISTER registers again at most once per heartbeat", "[worker]") {
  Harness h;
  h.Connect();  // registered at 0
  h.Welcome();
  h.now += 500ms;
  h.From(common::ReregisterMsg{"unknown worker", ""});
  CHECK_FALSE(h.core.registered());
  CHECK(h.Sent<common::RegisterMsg>().empty());
  h.now += 500ms;
  h.From(common::ReregisterMsg{"unknown worker", ""});
  CHECK(h.Sent<common::RegisterMsg>().size() == 1);
  h.now += 999ms;
  h.From(common::ReregisterMsg{"unknown worker", ""});
  CHECK(h.Sent<common::RegisterMsg>().empty());
}

TEST_CASE("shutting down stops the steps, and says goodbye only once they are dead", "[worker]") {
  Harness h;
  h.Connect();
  h.Welcome();
  const uint64_t a = h.Run("g", 0);
  const uint64_t b = h.Run("g", 1);
  h.out.clear();
  h.core.Shutdown(h.now, &h.out);
  std::vector<std::string> order;
  for (const Action& act : h.out) {
    if (auto* s = std::get_if<worker::SendToCoordinator>(&act)) {
      // Only a HEARTBEAT saying it takes nothing new may go before the steps
      // are dead; the BYE waits for StepsAwaited.
      auto* beat = std::get_if<common::HeartbeatMsg>(s->msg.get());
      order.push_back(beat && beat->draining ? "draining" : "send");
    } else if (auto* c = std::get_if<worker::CancelStep>(&act)) {
      order.push_back("cancel " + std::to_string(c->key == a ? 0 : c->key == b ? 1 : -1));
    } else if (auto* w = std::get_if<worker::AwaitSteps>(&act)) {
      CHECK(w->until == h.now + 7s);  // kill grace + 2 s
      order.push_back("await");
    }
  }
  CHECK(order == std::vector<std::string>{"draining", "cancel 0", "cancel 1", "await"});

  h.out.clear();
  h.core.StepsAwaited(/*all_stopped=*/true, h.now, &h.out);
  CHECK(h.Sent<common::ByeMsg>().size() == 1);

  // A step that outlived its SIGKILL (stuck in the kernel): no BYE, so the
  // coordinator waits out the lease before it runs the step elsewhere.
  h.out.clear();
  h.core.StepsAwaited(/*all_stopped=*/false, h.now, &h.out);
  CHECK(h.Sent<common::ByeMsg>().empty());
  CHECK(h.Noticed("steps_outlived_stop"));
}

TEST_CASE("a finished step is reported once, with its outcome", "[worker]") {
  Harness h;
  h.Connect();
  h.Welcome();
  const uint64_t key = h.Run("g");
  h.End(key, 3);
  auto f = h.Sent<FinishedMsg>();
  REQUIRE(f.size() == 1);
  CHECK(f[0].exit_code == 3);
  CHECK(h.Noticed("finished"));
  h.End(key, 3);
  CHECK(h.out.empty());
  CHECK(h.core.running() == 0);
}

}  // namespace
}  // namespace cohort::testing::worker_core
