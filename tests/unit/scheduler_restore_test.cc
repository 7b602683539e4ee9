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
#include "coordinator/archived.h"
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
  Process(Store* store, common::Time boot, int64_t boot_unix_ms, size_t max_steps = SchedulerOptions{}.max_steps)
      : store(store), wall(boot, boot_unix_ms), core(WithMaxSteps(Journaled(boot, boot_unix_ms), max_steps)),
        now(boot) {}
  static SchedulerOptions WithMaxSteps(SchedulerOptions o, size_t max_steps) {
    o.max_steps = max_steps;
    return o;
  }

  int64_t WallMs() const { return wall.ToUnixMs(now); }
  // As the daemon answers STATUS: a finished group restored as a summary
  // is read back from the store first.
  std::optional<common::GroupResult> Result(const std::string& group) {
    common::Status s = coordinator::ReadArchived(store, &core, group, now);
    INFO(s.ToString());
    REQUIRE(s.ok());
    return core.Result(group);
  }
  std::string ResultJson(const std::string& group) {
    auto r = Result(group);
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
    common::Status s = core.Submit(coordinator::SubmitGroup{std::move(spec), json, ""}, now, &out);
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
  std::unique_ptr<Process> First(size_t max_steps = SchedulerOptions{}.max_steps) {
    return std::make_unique<Process>(store.get(), common::Time{}, kBootUnixMs, max_steps);
  }
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

// Group "g" of one step, run to completion on worker "w1".
void CompleteOneStep(Process* p) {
  p->Join("w1", 1);
  REQUIRE(p->Submit(R"({"id": "g", "steps": [{"id": "s", "shell": "true"}]})").ok());
  p->Finish(p->Of<Dispatch>().at(0), Exit(0));
}

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
  REQUIRE(p->Result("done")->state == GroupState::kFailed);
  const std::string before = p->ResultJson("done");

  auto q = r.After(*p, 5s);
  CHECK(q->ResultJson("done") == before);
  CHECK(q->Result("done")->errors.size() == 1);
}

TEST_CASE("a finished group comes back as a summary, and whole once read from the store", "[restore]") {
  Restart r;
  auto p = r.First();
  p->Join("w1", 4);
  const std::string spec = R"({"id": "done", "steps": [{"id": "ok", "shell": "true"}, {"id": "no", "shell": "true"}]})";
  REQUIRE(p->Submit(spec).ok());
  const std::vector<Dispatch> done = p->Of<Dispatch>();
  REQUIRE(p->Submit(R"({"id": "later", "steps": [{"id": "s", "shell": "sleep 9"}]})").ok());
  for (const Dispatch& d : done) p->Finish(d, Exit(0));
  const std::string before = p->ResultJson("done");

  auto q = r.After(*p, 5s);
  CHECK(q->core.ArchivedSubmission("done") == std::optional<uint64_t>(1));
  CHECK_FALSE(q->core.ArchivedSubmission("later"));
  CHECK_FALSE(q->core.Result("done"));  // not without the store
  auto sum = q->core.Summary("done");
  REQUIRE(sum);
  CHECK(sum->state == GroupState::kCompleted);
  CHECK(sum->total == 2);
  CHECK(sum->count(StepState::kCompleted) == 2);
  auto list = q->core.Groups();
  REQUIRE(list.size() == 2);
  CHECK(list[0].id == "done");  // submission order, whichever way each came back
  CHECK(list[1].id == "later");
  // Submitting the same spec again under its id needs the stored spec.
  common::GroupSpec again;
  REQUIRE(common::ParseGroupSpecJson(spec, &again).ok());
  CHECK(q->core.Submit(coordinator::SubmitGroup{again, spec, ""}, q->now, &q->out).code() ==
        common::Status::Code::kUnavailable);
  CHECK(q->core.journal_empty());

  CHECK(q->ResultJson("done") == before);
  CHECK_FALSE(q->core.ArchivedSubmission("done"));
  bool attached = false;
  REQUIRE(q->core.Submit(coordinator::SubmitGroup{again, spec, ""}, q->now, &q->out, nullptr, &attached).ok());
  CHECK(attached);
  // Read back, it is still forgotten an hour after it ended.
  q->Advance(59min);
  CHECK(q->core.Summary("done"));
  q->Advance(1min);
  CHECK_FALSE(q->core.Summary("done"));
}

TEST_CASE("a stored record that is not the archived group is refused", "[restore]") {
  Restart r;
  auto p = r.First();
  CompleteOneStep(p.get());
  auto q = r.After(*p, 1s);
  coordinator::LoadedGroup stored;
  REQUIRE(r.store->LoadGroup(1, &stored).ok());
  coordinator::LoadedGroup other = stored;
  other.accepted.submission = 2;
  CHECK(q->core.Hydrate(other, q->now).code() == common::Status::Code::kCorruption);
  other = stored;
  other.steps.clear();  // ended, yet no step did
  CHECK(q->core.Hydrate(other, q->now).code() == common::Status::Code::kCorruption);
  CHECK(q->core.ArchivedSubmission("g"));
  REQUIRE(q->core.Hydrate(stored, q->now).ok());
  CHECK(q->core.Hydrate(stored, q->now).code() == common::Status::Code::kCorruption);  // no longer archived
  CHECK(q->core.Result("g")->steps.at(0).state == StepState::kCompleted);
}

TEST_CASE("with a store, a full core lets go of finished groups' details instead of forgetting them", "[restore]") {
  Restart r;
  auto p = r.First(/*max_steps=*/4);
  p->Join("w1", 4);
  REQUIRE(p->Submit(R"({"id": "a", "steps": [{"id": "1", "shell": "true"}, {"id": "2", "shell": "true"}]})").ok());
  for (const Dispatch& d : p->Of<Dispatch>()) p->Finish(d, Exit(0));
  REQUIRE(p->Submit(R"({"id": "b", "steps": [{"id": "1", "shell": "true"}, {"id": "2", "shell": "true"}]})").ok());
  const std::vector<Dispatch> b = p->Of<Dispatch>();
  const std::string a_before = p->ResultJson("a");
  CHECK_FALSE(p->core.ArchivedSubmission("a"));
  // Three more steps do not fit beside b's two and a's two: a is archived.
  REQUIRE(p->Submit(R"({"id": "c", "steps": [{"id": "1", "shell": "sleep 1"}]})").ok());
  CHECK(p->core.step_count() == 3);
  CHECK(p->core.ArchivedSubmission("a"));
  CHECK(p->core.Summary("a")->count(StepState::kCompleted) == 2);
  // Reading it back needs room too: there is none beside b and c (3 steps,
  // 1 free), so b cannot be let go of (it runs) and a cannot come back.
  coordinator::LoadedGroup stored;
  REQUIRE(r.store->LoadGroup(1, &stored).ok());
  CHECK(p->core.Hydrate(stored, p->now).code() == common::Status::Code::kUnavailable);
  CHECK(p->core.ArchivedSubmission("a"));
  for (const Dispatch& d : b) p->Finish(d, Exit(0));
  // b finished: it is let go of, and a comes back whole.
  CHECK(p->ResultJson("a") == a_before);
  CHECK(p->core.ArchivedSubmission("b"));
  CHECK(p->core.step_count() == 3);
}

TEST_CASE("without a store, a full core forgets its oldest finished group", "[restore]") {
  SchedulerOptions o = Quiet();
  o.max_steps = 2;
  Scheduler core(o);
  std::vector<Action> out;
  common::Time now{};
  coordinator::WorkerJoined w;
  w.name = "w1";
  w.slots = 2;
  REQUIRE(core.Join(w, now, &out).ok());
  common::GroupSpec a, b;
  REQUIRE(common::ParseGroupSpecJson(R"({"id": "a", "steps": [{"id": "1", "shell": "true"}]})", &a).ok());
  REQUIRE(common::ParseGroupSpecJson(R"({"id": "b", "steps": [{"id": "1", "shell": "true"}, {"id": "2", "shell": "true"}]})", &b).ok());
  REQUIRE(core.Submit(a, now, &out).ok());
  const Dispatch d = ActionsOf<Dispatch>(out).at(0);
  REQUIRE(core.Finished({d.ref, d.worker, Exit(0)}, now, &out).ok());
  REQUIRE(core.Submit(b, now, &out).ok());
  CHECK_FALSE(core.Summary("a"));
  CHECK_FALSE(core.ArchivedSubmission("a"));
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
  auto res = q->Result("build");
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
  auto res = q->Result("g");
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
  CHECK(q->Result("g")->steps[0].state == StepState::kRunning);
  q->Advance(1s);
  auto again = q->Of<Dispatch>();
  REQUIRE(again.size() == 1);
  CHECK(again[0].worker == "w2");
  CHECK(again[0].ref.attempt == 2);
  auto step = q->Result("g")->steps[0];
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
  CHECK_THAT(q->Result("g")->steps[0].attempts[0].error, Catch::Contains("no longer runs it"));
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
  auto res = q->Result("g");
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
  auto res = q->Result("g");
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
  CompleteOneStep(p.get());

  auto q = r.After(*p, 30min);
  REQUIRE(q->Result("g"));
  q->Advance(29min);
  CHECK(q->Result("g"));
  q->Advance(2min);
  CHECK(!q->Result("g"));
  LoadedState state;
  REQUIRE(r.store->Load(&state).ok());
  CHECK(state.groups.empty());
  CHECK(state.finished.empty());
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
  REQUIRE(!p->Result("build-42"));

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
  CHECK(q->Result("build-42")->state == GroupState::kRunning);
  CHECK(q->core.Workers().at(0).running == 1);
  q->Finish(fresh, Exit(0));
  CHECK(q->Result("build-42")->state == GroupState::kCompleted);
}

TEST_CASE("a refused event writes nothing to the journal", "[restore]") {
  Restart r;
  auto p = r.First();
  REQUIRE(p->Submit(R"({"id": "g", "steps": [{"id": "s", "shell": "true"}]})").ok());
  common::GroupSpec again;
  REQUIRE(common::ParseGroupSpecJson(R"({"id": "g", "steps": [{"id": "t", "shell": "true"}]})", &again).ok());
  CHECK(p->core.Submit(coordinator::SubmitGroup{again, "{}", ""}, p->now, &p->out).code() ==
        common::Status::Code::kAlreadyExists);
  CHECK(p->core.CancelStepById("g", "nope", p->now, &p->out, "bob").code() == common::Status::Code::kNotFound);
  CHECK(p->core.journal_empty());
  CHECK(p->core.CancelStepById("g", "s", p->now, &p->out, "bob").ok());
  CHECK(!p->core.journal_empty());
  p->Save();
  LoadedState state;
  REQUIRE(r.store->Load(&state).ok());
  CHECK(state.finished.size() == 1);
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
