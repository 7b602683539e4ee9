// The worker's lease (worker/worker_core.h): a worker that hears no
// acknowledgement from its coordinator for the lease stops its steps itself,
// in time for them to be dead when the lease ends, and reports them lost; an
// acknowledgement renews the lease from when the acknowledged message was
// sent, never from when the answer arrived. Fake clock, no sleeps.
#include <catch2/catch.hpp>

#include "tests/unit/worker_core_harness.h"

namespace cohort::testing::worker_core {
namespace {

// Registered under a lease of 20 s (kill grace 5 s: steps are stopped 6 s
// before it ends), the REGISTER acknowledged at `h.now`.
void WelcomeWithLease(Harness& h, uint32_t lease_ms = 20000) {
  h.Connect();
  const auto regs = h.Sent<common::RegisterMsg>();
  REQUIRE(regs.size() == 1);
  REQUIRE(regs[0].seq != 0);
  common::WelcomeMsg w;
  w.heartbeat_ms = 1000;
  w.liveness = 3;
  w.cancel_endpoint = "tcp://0.0.0.0:5702";
  w.lease_ms = lease_ms;
  w.ack = regs[0].seq;
  h.From(w);
}

// The HEARTBEAT the last call sent (one is expected).
common::HeartbeatMsg BeatSent(const Harness& h) {
  const auto beats = h.Sent<common::HeartbeatMsg>();
  REQUIRE(beats.size() == 1);
  REQUIRE(beats[0].seq != 0);
  return beats[0];
}

common::HeartbeatMsg Ack(uint64_t seq) {
  common::HeartbeatMsg m;
  m.ack = seq;
  return m;
}

TEST_CASE("a worker that hears no acknowledgement for its lease stops its steps and reports them lost",
          "[worker][lease]") {
  Harness h;
  WelcomeWithLease(h);
  const uint64_t key = h.Run("g", 0);
  REQUIRE(key != 0);
  CHECK(h.core.LeaseStopAt() == h.now + 14s);  // 20 s - kill grace 5 s - 1 s
  CHECK(h.core.NextDeadline() <= h.now + 14s);

  // Other messages from the coordinator (a CONFIRM, a RUN) do not renew it.
  h.Advance(13s);
  CHECK(h.Of<worker::CancelStep>().empty());
  h.From(common::ConfirmMsg{});
  h.Advance(1s);
  const auto cancels = h.Of<worker::CancelStep>();
  REQUIRE(cancels.size() == 1);
  CHECK(cancels[0].key == key);
  CHECK(h.Noticed("lease_expired"));
  // Asked once, not at every tick after.
  h.Advance(1s);
  CHECK(h.Of<worker::CancelStep>().empty());

  worker::RunResult r;
  r.key = key;
  r.kind = worker::RunResult::Kind::kSignaled;
  r.signal = 15;
  r.cancelled = true;
  r.start = r.end = h.now;
  h.out.clear();
  h.core.StepEnded(r, h.now, &h.out);
  const auto fin = h.Sent<common::FinishedMsg>();
  REQUIRE(fin.size() == 1);
  CHECK(fin[0].lost);
  CHECK_FALSE(fin[0].cancelled);
  CHECK(fin[0].error.find("lease") != std::string::npos);
}

TEST_CASE("an acknowledgement renews the lease from the acknowledged heartbeat's send time", "[worker][lease]") {
  Harness h;
  WelcomeWithLease(h);
  const common::Time welcomed = h.now;
  REQUIRE(h.Run("g", 0) != 0);
  h.Advance(1s);
  const common::HeartbeatMsg first = BeatSent(h);
  const common::Time first_sent = h.now;
  h.Advance(1s);
  const common::HeartbeatMsg second = BeatSent(h);

  // The first heartbeat's ack, arriving 10 s after it was sent, renews from
  // its send time.
  h.Advance(9s);
  h.From(Ack(first.seq));
  CHECK(h.core.LeaseStopAt() == first_sent + 14s);
  // An ack of nothing we sent, or of an older one, renews nothing.
  h.From(Ack(first.seq + 1000));
  CHECK(h.core.LeaseStopAt() == first_sent + 14s);
  h.From(Ack(first.seq));
  CHECK(h.core.LeaseStopAt() == first_sent + 14s);
  h.From(Ack(second.seq));
  CHECK(h.core.LeaseStopAt() == first_sent + 1s + 14s);
  CHECK(h.core.LeaseStopAt() > welcomed + 14s);
}

TEST_CASE("a RUN that arrives after the lease ran out is refused as lost, not run", "[worker][lease]") {
  Harness h;
  WelcomeWithLease(h);
  h.Advance(15s);
  h.From(Harness::RunOf("g", 0, 1));
  CHECK(h.Of<worker::StartStep>().empty());
  const auto fin = h.Sent<common::FinishedMsg>();
  REQUIRE(fin.size() == 1);
  CHECK(fin[0].lost);
  CHECK(h.Noticed("run_after_lease"));
}

TEST_CASE("without a lease from the coordinator, steps run on however long it is silent", "[worker][lease]") {
  Harness h;
  h.Connect();
  h.Welcome();
  REQUIRE(h.Run("g", 0) != 0);
  for (int i = 0; i < 600; ++i) {
    h.Advance(1s);
    REQUIRE(h.Of<worker::CancelStep>().empty());
  }
}

TEST_CASE("a worker holding steps under a lease registers again often enough to keep them", "[worker][lease]") {
  Harness h;  // reconnect backoff capped at 8 s
  WelcomeWithLease(h, 60000);
  REQUIRE(h.Run("g", 0) != 0);
  // The coordinator goes away: after liveness x heartbeat the worker
  // registers again, at intervals of at most lease / 8 (7.5 s).
  common::Time last = h.now;
  int registers = 0;
  for (int i = 0; i < 50; ++i) {
    h.Advance(1s);
    if (!h.Sent<common::RegisterMsg>().empty()) {
      CHECK(h.now - last <= 8s);
      last = h.now;
      ++registers;
    }
  }
  CHECK(registers >= 6);
}

TEST_CASE("a kill grace too long for the lease is warned about at the welcome", "[worker][lease]") {
  WorkerCoreOptions o = Options();
  o.kill_grace = 30s;
  Harness h(o);
  WelcomeWithLease(h, 20000);
  CHECK(h.Noticed("kill_grace_too_long_for_lease"));
  // The steps are then stopped at half the lease.
  REQUIRE(h.Run("g", 0) != 0);
  CHECK(h.core.LeaseStopAt() == h.now + 10s);
}

}  // namespace
}  // namespace cohort::testing::worker_core
