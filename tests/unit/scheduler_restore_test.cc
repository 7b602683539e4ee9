// The core's journal and its restore, through a real SQLite store in a
// temporary directory: a core runs and commits its journal as the daemon
// does, a second core (the restarted coordinator, with another monotonic
// clock) is restored from what was committed, and both are driven with a
// fake clock. Timers that passed during the downtime, the reattach of
// running attempts, the window running out, and submission identity.
#include <memory>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "common/result_json.h"
#include "coordinator/sqlite_store.h"
#include "tests/unit/scheduler_harness.h"
#include "tests/unit/temp_dir.h"

namespace cohort::testing {
namespace {

using coordinator::LoadedState;
using coordinator::Record;
using coordinator::SqliteStore;
using coordinator::Store;
using coordinator::SyncMode;

// The wall clock at the fake clock's zero in the first process.
constexpr int64_t kBootUnixMs = 1'800'000'000'000;

SchedulerOptions Journaled(common::Time steady_zero, int64_t unix_ms_at_zero) {
  SchedulerOptions o = Quiet();
  o.journal = true;
  o.wall = common::WallClock(steady_zero, unix_ms_at_zero);
  o.worker_lease = 60s;
  o.retention = 1h;
  return o;
}

// One coordinator process: a core with the fake clock, committing its
// journal to the store after every call, as the daemon does once per turn.
struct Process {
  Process(Store* store, common::Time boot, int64_t boot_unix_ms)
      : store(store), wall(boot, boot_unix_ms), core(Journaled(boot, boot_unix_ms)), now(boot) {}

  int64_t WallMs() const { return wall.ToUnixMs(now); }
  std::string ResultJson(const std::string& group) const {
    auto r = core.Result(group);
    REQUIRE(r);
    return common::GroupResultJson(*r, wall);
  }

  void Save() {
    std::vector<Record> journal;
    core.TakeJournal(&journal);
    common::Status s = store->Commit(journal);
    INFO(s.ToString());
    REQUIRE(s.ok());
  }
  common::Status Submit(const std::string& json) {
    out.clear();
    common::GroupSpec spec;
    REQUIRE(common::ParseGroupSpecJson(json, &spec).ok());
    common::Status s = core.Submit(coordinator::SubmitGroup{std::move(spec), json, "alice"}, now, &out);
    Save();
    return s;
  }
  void Join(const std::string& name, int slots, std::vector<AttemptRef> running = {}) {
    out.clear();
    coordinator::WorkerJoined j;
    j.name = name;
    j.slots = slots;
    j.running = std::move(running);
    REQUIRE(core.Join(j, now, &out).ok());
    Save();
  }
  void Finish(const Dispatch& d, common::AttemptOutcome o) {
    out.clear();
    REQUIRE(core.Finished({d.ref, d.worker, std::move(o)}, now, &out).ok());
    Save();
  }
  void Advance(common::Duration d) {
    now += d;
    out.clear();
    core.Tick(now, &out);
    Save();
  }
  template <typename T>
  std::vector<T> Of() const {
    return ActionsOf<T>(out);
  }

  Store* store;
  common::WallClock wall;
  Scheduler core;
  common::Time now;
  std::vector<Action> out;
};

struct Restart {
  TempDir dir;
  std::unique_ptr<Store> store = Open();

  std::unique_ptr<Store> Open() {
    std::unique_ptr<Store> s;
    REQUIRE(SqliteStore::Open(dir.path + "/state", SyncMode::kNormal, &s).ok());
    return s;
  }
  // The first process: the fake clock starts at zero.
  std::unique_ptr<Process> First() { return std::make_unique<Process>(store.get(), common::Time{}, kBootUnixMs); }
  // A later process, started `down` after `before` stopped: its monotonic
  // clock has nothing to do with the first one's, only the wall clock goes on.
  std::unique_ptr<Process> After(const Process& before, common::Duration down) {
    const int64_t unix_now = before.WallMs() + std::chrono::duration_cast<std::chrono::milliseconds>(down).count();
    store.reset();  // the first process is gone: its lock goes with it
    store = Open();
    auto p = std::make_unique<Process>(store.get(), common::Time{} + 1000h, unix_now);
    LoadedState state;
    REQUIRE(store->Load(&state).ok());
    common::Status s = p->core.Restore(state, p->now, &p->out);
    INFO(s.ToString());
    REQUIRE(s.ok());
    return p;
  }
};

AttemptRef RefOf(const Dispatch& d) { return d.ref; }

const std::string kThree = R"({"id": "build", "steps": [
    {"id": "a", "shell": "true"},
    {"id": "b", "shell": "false", "retry": {"max_attempts": 3, "backoff_s": 10}},
    {"id": "c", "shell": "sleep 5"}]})";

}  // namespace

TEST_CASE("a restored group reads back exactly as it was", "[restore]") {
  Restart r;
  auto p = r.First();
  p->Join("w1", 4);
  REQUIRE(p->Submit(R"({"id": "done", "on_failure": "continue", "steps": [
      {"id": "ok", "shell": "true"}, {"id": "bad", "shell": "false"}]})").ok());
  auto ds = p->Of<Dispatch>();
  REQUIRE(ds.size() == 2);
  p->now += 2s;
  common::AttemptOutcome printed = Exit(0);
  printed.stdout_tail = "hello\n";
  printed.stdout_bytes = 6;
  p->Finish(ds[0], printed);
  common::AttemptOutcome failed = Exit(3);
  failed.stderr_tail = std::string("bin\xff\0ary", 8);
  p->Finish(ds[1], failed);
  REQUIRE(p->core.Result("done")->state == GroupState::kFailed);
  const std::string before = p->ResultJson("done");

  auto q = r.After(*p, 5s);
  CHECK(q->ResultJson("done") == before);
  CHECK(q->core.Result("done")->errors.size() == 1);
}

TEST_CASE("a running group comes back with its steps where they were", "[restore]") {
  Restart r;
  auto p = r.First();
  p->Join("w1", 4);
  REQUIRE(p->Submit(kThree).ok());
  auto ds = p->Of<Dispatch>();
  REQUIRE(ds.size() == 3);
  p->Finish(ds[0], Exit(0));
  p->Finish(ds[1], Exit(1));  // b: attempt 1 failed, backoff 10 s

  auto q = r.After(*p, 4s);
  auto res = q->core.Result("build");
  REQUIRE(res);
  CHECK(res->state == GroupState::kRunning);
  CHECK(res->steps[0].state == StepState::kCompleted);
  CHECK(res->steps[1].state == StepState::kRetrying);
  CHECK(res->steps[2].state == StepState::kRunning);
  CHECK(q->core.unclaimed_attempts() == 1);
  // The backoff goes on from the attempt's end: 6 s are left of it.
  REQUIRE(q->core.NextDeadline());
  CHECK(*q->core.NextDeadline() - q->now == 6s);
}

TEST_CASE("a worker that registers again keeps its restored attempt, and its result counts", "[restore]") {
  Restart r;
  auto p = r.First();
  p->Join("w1", 4);
  REQUIRE(p->Submit(R"({"id": "g", "steps": [{"id": "s", "shell": "sleep 5"}]})").ok());
  const Dispatch d = p->Of<Dispatch>().at(0);

  auto q = r.After(*p, 1s);
  q->Join("w1", 4, {RefOf(d)});
  CHECK(q->Of<Dispatch>().empty());
  CHECK(q->Of<CancelAttempt>().empty());
  CHECK(q->core.unclaimed_attempts() == 0);
  CHECK(q->core.Workers().at(0).running == 1);
  q->now += 4s;
  q->Finish(d, Exit(0));
  auto res = q->core.Result("g");
  CHECK(res->state == GroupState::kCompleted);
  CHECK(res->steps[0].attempts.size() == 1);
  // Nothing is left to time out: the window was closed by the claim.
  q->Advance(1h + 61s);
  CHECK(q->Of<Dispatch>().empty());
}

TEST_CASE("an attempt nobody claims within the reattach window is lost and runs again", "[restore]") {
  Restart r;
  auto p = r.First();
  p->Join("w1", 1);
  REQUIRE(p->Submit(R"({"id": "g", "steps": [{"id": "s", "shell": "sleep 5"}]})").ok());

  auto q = r.After(*p, 1s);
  q->Join("w2", 1);
  CHECK(q->Of<Dispatch>().empty());  // still w1's, for all we know
  q->Advance(59s);
  CHECK(q->core.Result("g")->steps[0].state == StepState::kRunning);
  q->Advance(1s);
  auto again = q->Of<Dispatch>();
  REQUIRE(again.size() == 1);
  CHECK(again[0].worker == "w2");
  CHECK(again[0].ref.attempt == 2);
  auto step = q->core.Result("g")->steps[0];
  CHECK(step.attempts[0].status == common::AttemptStatus::kWorkerLost);
  CHECK_THAT(step.attempts[0].error, Catch::Contains("did not register again within 60s"));
}

TEST_CASE("a worker that comes back without its restored attempt loses it at once", "[restore]") {
  Restart r;
  auto p = r.First();
  p->Join("w1", 1);
  REQUIRE(p->Submit(R"({"id": "g", "steps": [{"id": "s", "shell": "sleep 5"}]})").ok());

  auto q = r.After(*p, 1s);
  q->Join("w1", 1, {});
  auto again = q->Of<Dispatch>();
  REQUIRE(again.size() == 1);
  CHECK(again[0].ref.attempt == 2);
  CHECK_THAT(q->core.Result("g")->steps[0].attempts[0].error, Catch::Contains("no longer runs it"));
}

TEST_CASE("a deadline that passed while the coordinator was down fires at once", "[restore]") {
  Restart r;
  auto p = r.First();
  p->Join("w1", 1);
  REQUIRE(p->Submit(R"({"id": "g", "deadline_s": 10, "steps": [{"id": "s", "shell": "sleep 60"}]})").ok());
  const Dispatch d = p->Of<Dispatch>().at(0);

  auto q = r.After(*p, 20s);
  REQUIRE(q->core.NextDeadline());
  CHECK(*q->core.NextDeadline() <= q->now);
  q->Advance(0s);
  // Stopping: the running attempt is cancelled once its worker claims it.
  q->Join("w1", 1, {RefOf(d)});
  auto cancels = q->Of<CancelAttempt>();
  REQUIRE(cancels.size() == 1);
  CHECK(cancels[0].ref == d.ref);
  q->Finish(d, Cancelled());
  auto res = q->core.Result("g");
  CHECK(res->state == GroupState::kFailed);
  REQUIRE(res->errors.size() == 1);
  CHECK_THAT(res->errors[0].error, Catch::Contains("deadline"));
}

TEST_CASE("a group that was stopping goes on stopping after a restart", "[restore]") {
  Restart r;
  auto p = r.First();
  p->Join("w1", 2);
  REQUIRE(p->Submit(R"({"id": "g", "steps": [{"id": "a", "shell": "false"}, {"id": "b", "shell": "sleep 60"}]})").ok());
  auto ds = p->Of<Dispatch>();
  p->Finish(ds[0], Exit(1));  // fails for good: b is being cancelled
  REQUIRE(!p->Of<CancelAttempt>().empty());

  auto q = r.After(*p, 1s);
  q->Join("w1", 2, {RefOf(ds[1])});
  REQUIRE(q->Of<CancelAttempt>().size() == 1);
  q->Finish(ds[1], Cancelled());
  auto res = q->core.Result("g");
  CHECK(res->state == GroupState::kFailed);
  CHECK(res->steps[1].state == StepState::kCancelled);
  CHECK_THAT(res->steps[1].error, Catch::Contains("step \"a\" failed"));
  REQUIRE(res->errors.size() == 1);
  CHECK(res->errors[0].step == "a");
}

TEST_CASE("a finished group is kept for its retention counted from its end, then leaves the store",
          "[restore]") {
  Restart r;
  auto p = r.First();
  p->Join("w1", 1);
  REQUIRE(p->Submit(R"({"id": "g", "steps": [{"id": "s", "shell": "true"}]})").ok());
  p->Finish(p->Of<Dispatch>().at(0), Exit(0));

  auto q = r.After(*p, 30min);
  REQUIRE(q->core.Result("g"));
  q->Advance(29min);
  CHECK(q->core.Result("g"));
  q->Advance(2min);
  CHECK(!q->core.Result("g"));
  LoadedState state;
  REQUIRE(r.store->Load(&state).ok());
  CHECK(state.groups.empty());
  CHECK(state.max_submission == 1);
}

TEST_CASE("a group id submitted again after a restart is a new submission, and the old one's reports are stale",
          "[restore]") {
  Restart r;
  auto p = r.First();
  p->Join("w1", 1);
  REQUIRE(p->Submit(R"({"id": "build-42", "steps": [{"id": "s", "shell": "true"}]})").ok());
  const Dispatch old = p->Of<Dispatch>().at(0);
  p->Finish(old, Exit(0));
  p->Advance(2h);  // retention over: forgotten
  REQUIRE(!p->core.Result("build-42"));

  auto q = r.After(*p, 1s);
  q->Join("w1", 1);
  REQUIRE(q->Submit(R"({"id": "build-42", "steps": [{"id": "s", "shell": "true"}]})").ok());
  const Dispatch fresh = q->Of<Dispatch>().at(0);
  CHECK(fresh.ref.group == old.ref.group);
  CHECK(fresh.ref.step == old.ref.step);
  CHECK(fresh.ref.attempt == old.ref.attempt);
  CHECK(fresh.ref.submission > old.ref.submission);
  // The old FINISHED arrives now: it does not count for the new attempt.
  q->Finish(old, Exit(0));
  CHECK(q->core.Result("build-42")->state == GroupState::kRunning);
  CHECK(q->core.Workers().at(0).running == 1);
  q->Finish(fresh, Exit(0));
  CHECK(q->core.Result("build-42")->state == GroupState::kCompleted);
}

TEST_CASE("a refused event writes nothing to the journal", "[restore]") {
  Restart r;
  auto p = r.First();
  REQUIRE(p->Submit(R"({"id": "g", "steps": [{"id": "s", "shell": "true"}]})").ok());
  common::GroupSpec again;
  REQUIRE(common::ParseGroupSpecJson(R"({"id": "g", "steps": [{"id": "t", "shell": "true"}]})", &again).ok());
  CHECK(p->core.Submit(coordinator::SubmitGroup{again, "{}", "bob"}, p->now, &p->out).code() ==
        common::Status::Code::kAlreadyExists);
  CHECK(p->core.CancelStepById("g", "nope", p->now, &p->out, "bob").code() == common::Status::Code::kNotFound);
  CHECK(p->core.journal_empty());
  CHECK(p->core.CancelStepById("g", "s", p->now, &p->out, "bob").ok());
  CHECK(!p->core.journal_empty());
  p->Save();
  LoadedState state;
  REQUIRE(r.store->Load(&state).ok());
  CHECK(state.groups.size() == 1);
}

TEST_CASE("a stored spec that no longer parses is refused and nothing is restored", "[restore]") {
  LoadedState state;
  coordinator::LoadedGroup good, bad;
  good.accepted = {1, "ok", R"({"steps": [{"id": "s", "shell": "true"}]})", "", kBootUnixMs, 1};
  bad.accepted = {2, "broken", R"({"steps": [{"id": "s"}]})", "", kBootUnixMs, 1};
  state.groups = {good, bad};
  state.max_submission = 2;
  Scheduler core(Journaled(common::Time{}, kBootUnixMs));
  std::vector<Action> out;
  common::Status s = core.Restore(state, common::Time{}, &out);
  CHECK(s.code() == common::Status::Code::kCorruption);
  CHECK_THAT(s.message(), Catch::Contains("stored group \"broken\" (submission 2)"));
  CHECK(core.group_count() == 0);
}

}  // namespace cohort::testing

namespace cohort::testing {

TEST_CASE("a store whose rows contradict what the core relies on is refused, never half restored", "[restore]") {
  coordinator::LoadedGroup g;
  g.accepted = {1, "g", R"({"steps": [{"id": "a", "shell": "true"}, {"id": "b", "shell": "true"}]})", "",
                kBootUnixMs, 2};
  coordinator::LoadedStep running;
  running.step = 0;
  running.attempts.push_back({{1, 0, 1, "w1", kBootUnixMs}, std::nullopt});
  auto refused = [](const coordinator::LoadedGroup& bad, const std::string& why) {
    LoadedState state;
    state.groups = {bad};
    state.max_submission = 1;
    Scheduler core(Journaled(common::Time{}, kBootUnixMs));
    std::vector<Action> out;
    common::Status s = core.Restore(state, common::Time{}, &out);
    INFO(s.ToString());
    CHECK(s.code() == common::Status::Code::kCorruption);
    CHECK_THAT(s.message(), Catch::Contains(why));
    CHECK(core.group_count() == 0);
  };
  SECTION("an ended group with a step that never ended") {
    coordinator::LoadedGroup bad = g;
    bad.steps = {running};
    bad.ended = coordinator::GroupEnded{1, GroupState::kCompleted, kBootUnixMs};
    refused(bad, "the group ended but 2 of its steps did not");
  }
  SECTION("a gap in the error list") {
    coordinator::LoadedGroup bad = g;
    bad.errors = {{1, 1, "a", "boom", kBootUnixMs}};
    refused(bad, "errors are not numbered");
  }
  SECTION("a step listed twice") {
    coordinator::LoadedGroup bad = g;
    bad.steps = {running, running};
    refused(bad, "listed twice");
  }
  SECTION("an attempt numbered out of order") {
    coordinator::LoadedGroup bad = g;
    bad.steps = {running};
    bad.steps[0].attempts[0].started.attempt = 2;
    refused(bad, "has attempt 2 where 1 was expected");
  }
}

}  // namespace cohort::testing
