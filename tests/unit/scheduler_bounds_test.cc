// What the core holds must stay bounded by what is alive: labels nobody waits
// for or offers leave the placement indexes, and retry arithmetic stays finite
// however many attempts a step has had.
#include <string>
#include <vector>

#include "tests/unit/scheduler_harness.h"

namespace cohort::testing {
namespace {

TEST_CASE("labels no worker offers leave the placement indexes once their groups end", "[core][placement][bounds]") {
  SchedulerOptions o = Quiet();
  o.retention = 10s;
  Harness h(o);
  h.Join("plain", 1000);
  // One group per build, each with a step waiting for a label named after
  // its commit, which no worker offers; each is cancelled in the end.
  std::vector<Dispatch> running;
  for (int i = 0; i < 100; ++i) {
    common::GroupSpec g = MakeGroup("build-" + std::to_string(i), 2);
    g.steps[0].agent = "sha-" + std::to_string(i);
    REQUIRE(h.Submit(g).ok());
    for (const Dispatch& d : h.Dispatches()) running.push_back(d);
  }
  REQUIRE(running.size() == 100);
  CHECK(h.core.label_entries() == 100);  // each label waited for, once
  for (int i = 0; i < 100; ++i) {
    h.out.clear();
    REQUIRE(h.core.CancelGroupById("build-" + std::to_string(i), h.now, &h.out).ok());
  }
  for (const Dispatch& d : running) h.Finish(d, Cancelled());
  CHECK(h.State("build-99") == GroupState::kCancelled);
  CHECK(h.core.label_entries() == 0);
  h.Advance(20s);  // retention over: forgotten too
  CHECK(h.core.group_count() == 0);
  CHECK(h.core.label_entries() == 0);
}

TEST_CASE("a worker's labels leave the indexes when it is lost or joins again without them",
          "[core][placement][bounds]") {
  Harness h;
  h.Join("w1", 2, {"node-17", "gpu"});
  CHECK(h.core.label_entries() == 4);
  h.Join("w1", 2, {"gpu"});
  CHECK(h.core.label_entries() == 2);
  h.out.clear();
  REQUIRE(h.core.Lose("w1", "test", h.now, &h.out).ok());
  CHECK(h.core.label_entries() == 0);
}

TEST_CASE("no backoff stays no backoff however many attempts came before", "[core][retry][bounds]") {
  Harness h;
  h.Join("w", 1);
  common::GroupSpec g = MakeGroup("flaky", 1);
  g.retry.max_attempts = common::kMaxAttempts;
  g.retry.backoff_s = 0;
  g.retry.backoff_multiplier = 10;  // 10^309 overflows a double
  REQUIRE(h.Submit(g).ok());
  for (int64_t attempt = 1; attempt < common::kMaxAttempts; ++attempt) {
    auto ds = h.Dispatches();
    INFO("attempt " << attempt);
    REQUIRE(ds.size() == 1);  // the retry goes out at once
    h.Finish(ds[0], Exit(1));
  }
  REQUIRE(h.Dispatches().size() == 1);
  h.Finish(h.Dispatches()[0], Exit(1));
  CHECK(h.State("flaky") == GroupState::kFailed);
  CHECK(h.Step("flaky", "step1").attempts.size() == static_cast<size_t>(common::kMaxAttempts));
}

TEST_CASE("a long backoff grows to its cap and stays there, never past it", "[core][retry][bounds]") {
  Harness h;
  h.Join("w", 1);
  common::GroupSpec g = MakeGroup("slow", 1);
  g.retry.max_attempts = common::kMaxAttempts;
  g.retry.backoff_s = 1;
  g.retry.backoff_multiplier = 10;
  g.retry.max_backoff_s = 30;
  REQUIRE(h.Submit(g).ok());
  for (int64_t attempt = 1; attempt < g.retry.max_attempts; ++attempt) {
    auto ds = h.Dispatches();
    INFO("attempt " << attempt);
    REQUIRE(ds.size() == 1);
    h.Finish(ds[0], Exit(1));
    REQUIRE(h.core.NextDeadline());
    const common::Duration delay = *h.core.NextDeadline() - h.now;
    REQUIRE(delay == (attempt == 1 ? common::Duration(1s) : attempt == 2 ? common::Duration(10s) : 30s));
    h.Advance(delay);
  }
}

}  // namespace
}  // namespace cohort::testing
