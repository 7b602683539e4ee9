// A worker among several coordinators sharing a database: it obeys the
// highest leadership epoch it has heard and ignores a former leader's RUN,
// CANCEL and acknowledgements; it moves to the leader a standby names, and
// on to the next coordinator in its list when the one it dials stays
// silent. Fake clock, no sleeps.
#include <catch2/catch.hpp>

#include "tests/unit/worker_core_harness.h"

namespace cohort::testing::worker_core {
namespace {

WorkerCoreOptions ThreeCoordinators() {
  WorkerCoreOptions o = Options();
  o.coordinators = {"tcp://a:5701", "tcp://b:5701", "tcp://c:5701"};
  o.coordinator = "tcp://a:5701,tcp://b:5701,tcp://c:5701";
  return o;
}

void WelcomeFrom(Harness& h, uint64_t epoch) {
  common::WelcomeMsg w;
  w.heartbeat_ms = 1000;
  w.liveness = 3;
  w.cancel_endpoint = "tcp://0.0.0.0:5702";
  w.epoch = epoch;
  h.From(w);
}

TEST_CASE("a worker ignores RUN and CANCEL from a leader older than one it has heard", "[worker][leader]") {
  Harness h;
  h.Connect();
  WelcomeFrom(h, 7);
  CHECK(h.core.epoch() == 7);
  common::RunMsg run = Harness::RunOf("g", 0, 1);
  run.epoch = 7;
  h.From(run);
  REQUIRE(h.Of<worker::StartStep>().size() == 1);
  const uint64_t key = h.Of<worker::StartStep>()[0].request.key;
  h.out.clear();
  h.core.StepStarted(key, h.now, &h.out);

  // A new leader's heartbeat raises the epoch; the old one is ignored from then on.
  common::HeartbeatMsg beat;
  beat.epoch = 8;
  h.From(beat);
  CHECK(h.core.epoch() == 8);
  CHECK(h.Noticed("new_leader"));

  common::CancelAttemptMsg stale_cancel{{"g", 0, 1, 1}, 7};
  h.From(stale_cancel);
  CHECK(h.Of<worker::CancelStep>().empty());
  CHECK(h.Noticed("ignored_former_leader"));
  common::RunMsg stale_run = Harness::RunOf("g", 1, 1);
  stale_run.epoch = 7;
  h.From(stale_run);
  CHECK(h.Of<worker::StartStep>().empty());
  h.out.clear();
  h.core.OnBroadcast(common::CancelGroupMsg{"g", 1, 7}, h.now, &h.out);
  CHECK(h.Of<worker::CancelStep>().empty());

  // The current leader's cancel is obeyed, and so is one from a coordinator
  // that leads alone (no epoch).
  h.From(common::CancelAttemptMsg{{"g", 0, 1, 1}, 8});
  REQUIRE(h.Of<worker::CancelStep>().size() == 1);
  CHECK(h.Of<worker::CancelStep>()[0].key == key);
  h.From(common::CancelAttemptMsg{{"g", 0, 1, 1}, 0});
  CHECK(h.Of<worker::CancelStep>().size() == 1);
}

TEST_CASE("a former leader's acknowledgement does not renew the worker's lease", "[worker][leader]") {
  Harness h;
  h.Connect();
  const auto regs = h.Sent<common::RegisterMsg>();
  REQUIRE(regs.size() == 1);
  common::WelcomeMsg w;
  w.heartbeat_ms = 1000;
  w.liveness = 3;
  w.cancel_endpoint = "tcp://0.0.0.0:5702";
  w.lease_ms = 20000;
  w.ack = regs[0].seq;
  w.epoch = 3;
  h.From(w);
  REQUIRE(h.Run("g", 0) != 0);
  const common::Time stop_at = h.core.LeaseStopAt();
  h.Advance(1s);
  const auto beats = h.Sent<common::HeartbeatMsg>();
  REQUIRE(beats.size() == 1);
  common::HeartbeatMsg new_leader;
  new_leader.epoch = 4;
  h.From(new_leader);
  common::HeartbeatMsg old_ack;
  old_ack.ack = beats[0].seq;
  old_ack.epoch = 3;
  h.From(old_ack);
  CHECK(h.core.LeaseStopAt() == stop_at);
}

TEST_CASE("a standby's answer moves the worker to the leader it names", "[worker][leader]") {
  Harness h(ThreeCoordinators());
  CHECK(h.core.endpoint() == "tcp://a:5701");
  h.Connect();
  h.From(common::ReregisterMsg{"standby: coordinator a does not lead; the leader is c at tcp://c:5700 (epoch 2)",
                               "tcp://c:5701"});
  CHECK(h.Of<worker::Dial>().size() == 1);
  CHECK(h.core.endpoint() == "tcp://c:5701");
  CHECK(h.Noticed("coordinator_moved"));
  // The loop dials and connects again: REGISTER goes to the leader.
  h.Connect();
  CHECK(h.Sent<common::RegisterMsg>().size() == 1);
  WelcomeFrom(h, 2);
  // Its cancel endpoint is subscribed on the leader's host.
  const auto subs = h.Of<worker::Subscribe>();
  REQUIRE(subs.size() == 1);
  CHECK(subs[0].endpoint == "tcp://c:5702");
}

TEST_CASE("a silent coordinator is left for the next in the list, one liveness period at a time",
          "[worker][leader]") {
  Harness h(ThreeCoordinators());
  h.Connect();
  WelcomeFrom(h, 1);
  // Silent for liveness x heartbeat: unregistered, then on to b.
  h.Advance(3s);
  CHECK(h.Noticed("coordinator_silent"));
  CHECK(h.Of<worker::Dial>().size() == 1);
  CHECK(h.core.endpoint() == "tcp://b:5701");
  h.Connect();
  // b does not answer either: c, after another period and not before.
  h.Advance(2900ms);
  CHECK(h.Of<worker::Dial>().empty());
  h.Advance(100ms);
  CHECK(h.Of<worker::Dial>().size() == 1);
  CHECK(h.core.endpoint() == "tcp://c:5701");
  h.Connect();
  h.Advance(3s);
  CHECK(h.Of<worker::Dial>().size() == 1);
  CHECK(h.core.endpoint() == "tcp://a:5701");
}

TEST_CASE("with one coordinator a worker never moves, and a standby's answer without a leader is waited out",
          "[worker][leader]") {
  Harness h;
  h.Connect();
  h.From(common::ReregisterMsg{"standby: coordinator a does not lead; no coordinator leads at the moment", ""});
  CHECK(h.Of<worker::Dial>().empty());
  h.Advance(30s);
  CHECK(h.Of<worker::Dial>().empty());
  CHECK(h.core.endpoint() == "tcp://coord.example:5701");
}

}  // namespace
}  // namespace cohort::testing::worker_core
