// A worker leaving gently (SIGTERM with a drain timeout): it says it is
// draining, lets its steps end and their results be confirmed, then shuts
// down; at the timeout it stops what is left. Fake clock, no sleeps.
#include <catch2/catch.hpp>

#include "tests/unit/worker_core_harness.h"

namespace cohort::testing::worker_core {
namespace {

void Drain(Harness& h, common::Duration timeout) {
  h.out.clear();
  h.core.Drain(h.now, timeout, &h.out);
}

TEST_CASE("a draining worker says so at once, finishes its steps, waits for their confirmation, then leaves",
          "[worker][drain]") {
  Harness h;
  h.Connect();
  h.Welcome();
  const uint64_t key = h.Run("g", 0);
  REQUIRE(key != 0);
  Drain(h, 60s);
  REQUIRE(h.core.draining());
  CHECK(h.Noticed("draining"));
  auto beats = h.Sent<common::HeartbeatMsg>();
  REQUIRE(beats.size() == 1);
  CHECK(beats[0].draining);
  REQUIRE(beats[0].running);
  CHECK(beats[0].running->size() == 1);
  CHECK_FALSE(h.core.stopping());
  // Every heartbeat says it too.
  h.Advance(1s);
  REQUIRE_FALSE(h.Sent<common::HeartbeatMsg>().empty());
  for (const auto& b : h.Sent<common::HeartbeatMsg>()) CHECK(b.draining);
  // A RUN that crossed the news still runs.
  const uint64_t late = h.Run("g", 1);
  CHECK(late != 0);
  h.End(key);
  h.End(late);
  h.Advance(1ms);
  CHECK_FALSE(h.core.stopping());  // two results not yet confirmed
  h.From(common::ConfirmMsg{{{"g", 0, 1, 1}, {"g", 1, 1, 1}}});
  h.Advance(1ms);
  CHECK(h.Noticed("drained"));
  CHECK(h.core.stopping());
  CHECK(h.Of<worker::CancelStep>().empty());
  REQUIRE(h.Of<worker::AwaitSteps>().size() == 1);
}

TEST_CASE("a drain that times out stops the steps still running", "[worker][drain]") {
  Harness h;
  h.Connect();
  h.Welcome(/*heartbeat_ms=*/60000);  // so only the drain can bound the deadline
  h.Advance(1s);                      // the heartbeat due from before the WELCOME
  const uint64_t key = h.Run("g", 0);
  Drain(h, 30s);
  CHECK(h.core.NextDeadline() == h.now + 30s);
  h.Advance(29s);
  CHECK_FALSE(h.core.stopping());
  h.Advance(1s);
  CHECK(h.Noticed("drain_timeout"));
  CHECK(h.core.stopping());
  auto cancels = h.Of<worker::CancelStep>();
  REQUIRE(cancels.size() == 1);
  CHECK(cancels[0].key == key);
}

TEST_CASE("an idle worker drains at once, and a REGISTER while draining says so", "[worker][drain]") {
  Harness h;
  h.Connect();
  Drain(h, 30s);
  CHECK(h.Noticed("drained"));
  CHECK(h.core.stopping());

  Harness busy;
  busy.Connect();
  busy.Welcome();
  busy.Run("g", 0);
  Drain(busy, 30s);
  busy.out.clear();
  busy.core.Connect(busy.now, &busy.out);  // reconnecting, e.g. to another coordinator
  auto regs = busy.Sent<common::RegisterMsg>();
  REQUIRE(regs.size() == 1);
  CHECK(regs[0].draining);
}

}  // namespace
}  // namespace cohort::testing::worker_core
