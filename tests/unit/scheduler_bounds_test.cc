// What the core holds must stay bounded by what is alive: labels nobody waits
// for or offers leave the placement indexes, and retry arithmetic stays finite
// however many attempts a step has had.
#include <optional>
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

TEST_CASE("a result page is bounded in steps and in bytes, and its cursor walks every step once",
          "[core][results][bounds]") {
  Harness h;
  h.Join("w", 100);
  common::GroupSpec g = MakeGroup("g", 50);
  g.on_failure = common::OnFailure::kContinue;
  REQUIRE(h.Submit(g).ok());
  for (const Dispatch& d : h.Dispatches()) {
    common::AttemptOutcome o = Exit(d.ref.step % 10 == 0 ? 1 : 0);
    o.stdout_tail = std::string(d.ref.step == 7 ? 5000 : 1000, 'o');
    h.Finish(d, o);
  }
  REQUIRE(h.State("g") == GroupState::kFailed);
  // 4,000 bytes: a step of 1,000 bytes of output costs about 1,800 with its
  // overheads, so at most two steps fit, and step8 (5,000 bytes) fits only
  // alone and without its output.
  std::vector<std::string> ids;
  std::optional<uint64_t> cursor = 0;
  int pages = 0;
  while (cursor) {
    auto page = h.core.ResultPage("g", *cursor, 3, 4000);
    REQUIRE(page);
    ++pages;
    REQUIRE_FALSE(page->steps.empty());
    CHECK(page->steps.size() <= 3);
    CHECK(page->steps_omitted == 50 - page->steps.size());
    CHECK(page->counts[static_cast<int>(StepState::kFailed)] == 5);
    CHECK(page->errors.size() + page->errors_omitted == 5);
    for (const auto& s : page->steps) {
      ids.push_back(s.id);
      INFO(s.id);
      CHECK(s.output_omitted == (s.id == "step8"));
      CHECK(s.attempts.back().stdout_tail.size() == (s.id == "step8" ? 0u : 1000u));
    }
    cursor = page->next_cursor;
  }
  CHECK(pages > 50 / 3);  // never more than 3 steps a page
  CHECK(pages < 50);      // nor one step a page: two fit the bytes
  REQUIRE(ids.size() == 50);
  for (int i = 0; i < 50; ++i) CHECK(ids[i] == "step" + std::to_string(i + 1));
  // Past the end: the summary, no steps, no next page.
  auto past = h.core.ResultPage("g", 50, 3, 4000);
  REQUIRE(past);
  CHECK(past->steps.empty());
  CHECK_FALSE(past->next_cursor);
  CHECK_FALSE(h.core.ResultPage("nope", 0, 3, 4000));
}

TEST_CASE("one attempt's output is read back whole, by number or the last", "[core][results]") {
  Harness h;
  h.Join("w", 1);
  common::GroupSpec g = MakeGroup("g", 1);
  g.retry.max_attempts = 2;
  g.retry.backoff_s = 0;
  REQUIRE(h.Submit(g).ok());
  common::AttemptOutcome first = Exit(1);
  first.stdout_tail = std::string("one\xff\0", 5);
  first.stderr_tail = "err1";
  h.Finish(h.Dispatches()[0], first);
  common::AttemptOutcome second = Exit(0);
  second.stdout_tail = "two";
  h.Finish(h.Dispatches()[0], second);
  std::string out;
  std::optional<coordinator::AttemptRef> in_store;
  REQUIRE(h.core.Output("g", "step1", 1, false, &out, &in_store).ok());
  CHECK_FALSE(in_store);
  CHECK(out == std::string("one\xff\0", 5));
  REQUIRE(h.core.Output("g", "step1", 1, true, &out, &in_store).ok());
  CHECK(out == "err1");
  REQUIRE(h.core.Output("g", "step1", 0, false, &out, &in_store).ok());
  CHECK(out == "two");
  CHECK(h.core.Output("g", "step1", 3, false, &out, &in_store).message() ==
        "step \"step1\" has run 2 attempt(s), not 3");
  CHECK(h.core.Output("g", "nope", 0, false, &out, &in_store).message() == "group \"g\" has no step \"nope\"");
  CHECK(h.core.Output("x", "step1", 0, false, &out, &in_store).code() == common::Status::Code::kNotFound);
}

TEST_CASE("a freed labelled slot is not spent waking a group that is stopping", "[core][placement][bounds]") {
  Harness h;
  h.Join("free", 1);  // keeps the placement loop going while the x worker is busy
  h.Join("x1", 1, {"x"});
  common::GroupSpec a = MakeGroup("a", 2);
  for (auto& st : a.steps) st.agent = "x";
  REQUIRE(h.Submit(a).ok());
  const Dispatch a1 = h.DispatchOf("step1");
  common::GroupSpec b = MakeGroup("b", 1);
  b.steps[0].agent = "x";
  REQUIRE(h.Submit(b).ok());  // parked behind "a" under x
  CHECK(h.Dispatches().empty());
  h.out.clear();
  REQUIRE(h.core.CancelGroupById("a", h.now, &h.out).ok());
  h.Finish(a1, Cancelled());
  // The x slot goes to "b", not to waking "a", which has nothing to place.
  REQUIRE(h.Dispatches().size() == 1);
  CHECK(h.Dispatches()[0].ref.group == "b");
}

TEST_CASE("a step too big for a page alone keeps a bounded part of its error text", "[core][results][bounds]") {
  Harness h;
  h.Join("w", 1);
  common::GroupSpec g = MakeGroup("g", 1);
  g.retry.max_attempts = 3;
  g.retry.backoff_s = 0;
  REQUIRE(h.Submit(g).ok());
  for (int i = 0; i < 3; ++i) {
    common::AttemptOutcome o = Exit(1);
    o.error = std::string(100000, 'e');
    h.Finish(h.Dispatches().at(0), o);
  }
  auto page = h.core.ResultPage("g", 0, 10, 50000);
  REQUIRE(page);
  REQUIRE(page->steps.size() == 1);
  CHECK(page->steps[0].output_omitted);
  for (const auto& a : page->steps[0].attempts) CHECK(a.error.size() == 4096 + 6);
  CHECK(page->steps[0].error.size() == 4096 + 6);
}

// Runs a one-step group `id` whose step prints `bytes` on stdout.
void RunLoud(Harness& h, const std::string& id, size_t bytes) {
  REQUIRE(h.Submit(MakeGroup(id, 1)).ok());
  common::AttemptOutcome o = Exit(0);
  o.stdout_tail = std::string(bytes, 'o');
  h.Finish(h.Dispatches().at(0), o);
}

TEST_CASE("past the output budget finished groups leave memory for the store, oldest first",
          "[core][limits][bounds]") {
  SchedulerOptions o = Quiet();
  o.journal = true;
  o.max_output_bytes = 10000;
  Harness h(o);
  h.Join("w", 1);
  RunLoud(h, "a", 4000);
  RunLoud(h, "b", 4000);
  CHECK(h.core.output_bytes() == 8000);
  RunLoud(h, "c", 4000);  // 12,000: "a" goes to the store
  CHECK(h.core.output_bytes() == 8000);
  CHECK_FALSE(h.core.Result("a"));  // its details are in the store now
  REQUIRE(h.core.Summary("a"));
  CHECK(h.core.Summary("a")->state == GroupState::kCompleted);
  CHECK(h.core.Result("c"));
}

TEST_CASE("without a store, past the output budget the oldest finished groups are forgotten",
          "[core][limits][bounds]") {
  SchedulerOptions o = Quiet();
  o.max_output_bytes = 10000;
  Harness h(o);
  h.Join("w", 1);
  RunLoud(h, "a", 4000);
  RunLoud(h, "b", 4000);
  RunLoud(h, "c", 4000);
  CHECK_FALSE(h.core.Summary("a"));
  CHECK(h.core.Summary("b"));
  CHECK(h.core.output_bytes() == 8000);
}

TEST_CASE("without a store, while running groups alone hold more output than the budget, submissions are refused",
          "[core][limits][bounds]") {
  SchedulerOptions o = Quiet();
  o.max_output_bytes = 10000;
  Harness h(o);
  h.Join("w", 1);
  REQUIRE(h.Submit(MakeGroup("long", 2)).ok());
  common::AttemptOutcome loud = Exit(0);
  loud.stdout_tail = std::string(12000, 'o');
  h.Finish(h.Dispatches().at(0), loud);
  const Dispatch second = h.Dispatches().at(0);  // step2 of "long" runs on
  CHECK(h.core.output_bytes() == 12000);  // nowhere else to keep it
  common::Status s = h.Submit(MakeGroup("next", 1));
  CHECK(s.code() == common::Status::Code::kUnavailable);
  CHECK(s.message().find("--max-output-mb") != std::string::npos);
  CHECK(s.message().find("0 MiB of output held (0 now)") != std::string::npos);  // 10,000 and 12,000 bytes
  h.Finish(second, Exit(0));  // "long" ends: the next submit may forget it
  CHECK(h.Submit(MakeGroup("next", 1)).ok());
  CHECK_FALSE(h.core.Summary("long"));
  CHECK(h.core.output_bytes() == 0);
}

TEST_CASE("a running group past the output budget keeps its finished steps' output in the store only",
          "[core][limits][bounds]") {
  SchedulerOptions o = Quiet();
  o.journal = true;
  o.max_output_bytes = 10000;
  Harness h(o);
  h.Join("w", 1);
  REQUIRE(h.Submit(MakeGroup("long", 5)).ok());
  for (int i = 0; i < 3; ++i) {
    common::AttemptOutcome loud = Exit(0);
    loud.stdout_tail = std::string(4000, 'a' + i);
    h.Finish(h.Dispatches().at(0), loud);
  }
  // 12,000 bytes held by a running group: its oldest finished steps let go
  // of their output until a quarter of the budget is free.
  CHECK(h.core.output_bytes() <= 7500);
  CHECK(h.State("long") == GroupState::kRunning);
  auto page = h.core.ResultPage("long", 0, 10, 1 << 20);
  REQUIRE(page);
  CHECK(page->steps[0].output_omitted);
  CHECK(page->steps[0].attempts.back().stdout_tail.empty());
  CHECK_FALSE(page->steps[2].output_omitted);
  CHECK(page->steps[2].attempts.back().stdout_tail == std::string(4000, 'c'));
  // LOGS is told where to read it.
  std::string out;
  std::optional<coordinator::AttemptRef> in_store;
  REQUIRE(h.core.Output("long", "step1", 0, false, &out, &in_store).ok());
  REQUIRE(in_store);
  CHECK(in_store->step == 0);
  CHECK(in_store->attempt == 1);
  CHECK(in_store->submission == 1);
  REQUIRE(h.core.Output("long", "step3", 0, false, &out, &in_store).ok());
  CHECK_FALSE(in_store);
  CHECK(out == std::string(4000, 'c'));
}

}  // namespace
}  // namespace cohort::testing
