// The worker core's results (worker/worker_core.h), driven by a fake clock:
// each FINISHED is kept until a CONFIRM names it, sent again after a
// reconnect, on a cancel and every liveness x heartbeat, bounded in number
// and bytes, and told apart from a result of another submission of the
// same group id.
#include <string>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "tests/unit/worker_core_harness.h"

namespace cohort::testing::worker_core {
namespace {

TEST_CASE("a coordinator that comes back gets what runs and every unconfirmed result again", "[worker]") {
  Harness h;
  h.Connect();
  h.Welcome();
  const uint64_t running = h.Run("g", 0);
  REQUIRE(running != 0);
  h.End(h.Run("g", 1));
  REQUIRE(h.Sent<FinishedMsg>().size() == 1);
  h.Broadcast("gone", 2);
  h.Advance(3s);  // silent
  REQUIRE_FALSE(h.core.registered());
  h.Advance(1s);
  auto regs = h.Sent<common::RegisterMsg>();
  REQUIRE(regs.size() == 1);
  CHECK(regs[0].running == std::vector<AttemptId>{{"g", 0, 1, 1}, {"g", 1, 1, 1}});
  h.Welcome();
  auto again = h.Sent<FinishedMsg>();
  REQUIRE(again.size() == 1);
  CHECK(again[0].id == AttemptId{"g", 1, 1, 1});
  CHECK(h.Noticed("registered"));
  // The cancel seen before is forgotten: it guarded one registration only.
  h.From(Harness::RunOf("gone", 0, 1, 2));
  CHECK(h.Of<worker::StartStep>().size() == 1);
}

TEST_CASE("a result is held until a CONFIRM names it, and resent on cancel", "[worker]") {
  Harness h;
  h.Connect();
  h.Welcome();
  h.End(h.Run("g"), 0, "out");
  REQUIRE(h.core.unconfirmed() == 1);
  CHECK(h.core.unconfirmed_bytes() == 3);
  // A cancel for the finished attempt: the report may have been lost.
  h.From(common::CancelAttemptMsg{{"g", 0, 1, 1}, 0});
  REQUIRE(h.Sent<FinishedMsg>().size() == 1);
  CHECK(h.Of<worker::CancelStep>().empty());
  // Neither an outage nor a long wait while registered forgets it.
  h.From(common::ReregisterMsg{"unknown worker", ""});
  h.Advance(100s);
  CHECK(h.core.unconfirmed() == 1);
  h.Welcome();
  REQUIRE(h.Sent<FinishedMsg>().size() == 1);
  for (int i = 0; i < 60; ++i) {
    h.Advance(1s);
    h.From(common::HeartbeatMsg{});
  }
  CHECK(h.core.unconfirmed() == 1);
  // The same name in another submission is another attempt.
  h.From(common::ConfirmMsg{{{"g", 0, 1, 2}}});
  CHECK(h.core.unconfirmed() == 1);
  h.From(common::ConfirmMsg{{{"never-ran", 0, 1, 9}, {"g", 0, 1, 1}}});
  CHECK(h.out.empty());
  CHECK(h.core.unconfirmed() == 0);
  CHECK(h.core.unconfirmed_bytes() == 0);
  h.From(common::CancelAttemptMsg{{"g", 0, 1, 1}, 0});
  CHECK(h.out.empty());
  h.Advance(10s);
  CHECK(h.Sent<FinishedMsg>().empty());
}

TEST_CASE("an unconfirmed result is sent again every liveness x heartbeat while registered", "[worker]") {
  Harness h;
  h.Connect();
  h.Welcome();  // 1000 ms x 3
  const common::Time start = h.now;
  std::vector<std::pair<int64_t, uint32_t>> sent;  // (ms since start, step) of each FINISHED
  auto note = [&] {
    for (const FinishedMsg& f : h.Sent<FinishedMsg>()) {
      sent.emplace_back(std::chrono::duration_cast<std::chrono::milliseconds>(h.now - start).count(), f.id.step);
    }
  };
  h.End(h.Run("g", 0));
  note();
  h.now += 1s;
  h.End(h.Run("g", 1));
  note();
  CHECK(h.core.NextDeadline() <= start + 3s);
  while (h.now - start < 12s) {
    h.Advance(100ms);
    note();
    if (h.now - start == 4500ms) {
      h.From(common::CancelAttemptMsg{{"g", 0, 1, 1}, 0});  // sent now, so next at 7.5 s
      note();
    }
    if (h.now - start == 8s) {
      h.From(common::ConfirmMsg{{{"g", 1, 1, 1}}});
      note();
    }
    h.From(common::HeartbeatMsg{});
  }
  using Sends = std::vector<std::pair<int64_t, uint32_t>>;
  CHECK(sent == Sends{{0, 0}, {1000, 1}, {3000, 0}, {4000, 1}, {4500, 0}, {7000, 1}, {7500, 0}, {10500, 0}});
}

TEST_CASE("unconfirmed results are bounded in number: the oldest is dropped, with a warning", "[worker]") {
  WorkerCoreOptions o = Options();
  o.max_unconfirmed = 3;
  Harness h(o);
  h.Connect();
  h.Welcome();
  for (uint32_t step = 0; step < 3; ++step) h.End(h.Run("g", step));
  CHECK(h.core.unconfirmed() == 3);
  CHECK_FALSE(h.Noticed("unconfirmed_dropped"));
  h.End(h.Run("g", 3));
  CHECK(h.Sent<FinishedMsg>().size() == 1);  // the new result goes out
  CHECK(h.core.unconfirmed() == 3);
  const worker::Notice* dropped = h.NoticeOf("unconfirmed_dropped");
  REQUIRE(dropped != nullptr);
  CHECK(dropped->level == worker::Notice::Level::kWarn);
  using Fields = std::vector<worker::NoticeField>;
  CHECK(dropped->fields == Fields{{"group", "g"},          {"submission", 1},          {"step", "0"},
                                  {"attempt", 1},          {"bound", "count"},         {"unconfirmed", 4},
                                  {"unconfirmed-bytes", 0}, {"spilled-bytes", 0}});
  // Dropped: not sent on a cancel, not listed when registering again.
  h.From(common::CancelAttemptMsg{{"g", 0, 1, 1}, 0});
  CHECK(h.out.empty());
  h.now += 1s;
  h.From(common::ReregisterMsg{"unknown worker", ""});
  REQUIRE(h.Sent<common::RegisterMsg>().size() == 1);
  CHECK(h.Sent<common::RegisterMsg>()[0].running == std::vector<AttemptId>{{"g", 1, 1, 1}, {"g", 2, 1, 1},
                                                                           {"g", 3, 1, 1}});
}

TEST_CASE("unconfirmed results are bounded in bytes, the newest always kept", "[worker]") {
  WorkerCoreOptions o = Options();
  o.max_unconfirmed_bytes = 10;
  Harness h(o);
  h.Connect();
  h.Welcome();
  h.End(h.Run("g", 0), 0, "abcdef");
  h.End(h.Run("g", 1), 0, "ghijkl");
  CHECK(h.Noticed("unconfirmed_dropped"));
  CHECK(h.core.unconfirmed() == 1);
  CHECK(h.core.unconfirmed_bytes() == 6);
  h.End(h.Run("g", 2), 0, std::string(20, 'x'));
  CHECK(h.core.unconfirmed() == 1);
  CHECK(h.core.unconfirmed_bytes() == 20);
  h.From(common::CancelAttemptMsg{{"g", 2, 1, 1}, 0});
  CHECK(h.Sent<FinishedMsg>().size() == 1);
}

TEST_CASE("a RUN of an attempt whose result is kept is answered with that result, not run again", "[worker]") {
  Harness h;
  h.Connect();
  h.Welcome();
  h.End(h.Run("g", 0, 1, 1), 3);
  CHECK(h.Run("g", 0, 1, 1) == 0);
  REQUIRE(h.Sent<FinishedMsg>().size() == 1);
  CHECK(h.Sent<FinishedMsg>()[0].exit_code == 3);
  CHECK(h.Noticed("run_repeated"));
  CHECK(h.core.unconfirmed() == 1);
  CHECK(h.core.running() == 0);
}

TEST_CASE("a result of an earlier submission is never taken for the new attempt of the same name", "[worker]") {
  Harness h;
  h.Connect();
  h.Welcome();
  h.End(h.Run("build-42", 0, 1, 1));
  REQUIRE(h.core.unconfirmed() == 1);
  // "build-42" is submitted again, and its step 0 attempt 1 lands here.
  const uint64_t fresh = h.Run("build-42", 0, 1, 2);
  REQUIRE(fresh != 0);
  CHECK(h.Sent<FinishedMsg>().empty());
  // A cancel of the old attempt gets the old result again, and stops nothing.
  h.From(common::CancelAttemptMsg{{"build-42", 0, 1, 1}, 0});
  CHECK(h.Of<worker::CancelStep>().empty());
  REQUIRE(h.Sent<FinishedMsg>().size() == 1);
  CHECK(h.Sent<FinishedMsg>()[0].id == AttemptId{"build-42", 0, 1, 1});
  h.From(common::CancelAttemptMsg{{"build-42", 0, 1, 2}, 0});
  REQUIRE(h.Of<worker::CancelStep>().size() == 1);
  CHECK(h.Of<worker::CancelStep>()[0].key == fresh);
  h.End(fresh, 3);
  REQUIRE(h.Sent<FinishedMsg>().size() == 1);
  CHECK(h.Sent<FinishedMsg>()[0].id == AttemptId{"build-42", 0, 1, 2});
  CHECK(h.Sent<FinishedMsg>()[0].exit_code == 3);
}

}  // namespace
}  // namespace cohort::testing::worker_core
