// The state store on both engines, a real SQLite file in a temporary
// directory and a real PostgreSQL database of the test's own: records
// round-trip through a reopen, batches are all or nothing, a group stops
// once and keeps its errors in order, forgotten groups leave no rows,
// submissions are never given out twice, rows that contradict each other
// fail Load, and every file the store cannot use is refused with a message
// that says what to do.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <fstream>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include <catch2/catch.hpp>

#include "coordinator/sqlite_store.h"
#include "coordinator/store.h"
#include "coordinator/store_schema.h"
#include "tests/unit/store_test_util.h"
#include "tests/unit/temp_dir.h"

namespace cohort {
namespace {

using common::AttemptStatus;
using common::GroupState;
using common::Status;
using common::StepState;
using coordinator::AttemptEnded;
using coordinator::AttemptStarted;
using coordinator::CancelRequested;
using coordinator::ErrorAdded;
using coordinator::GroupAccepted;
using coordinator::GroupEnded;
using coordinator::GroupForgotten;
using coordinator::GroupStopped;
using coordinator::LoadedState;
using coordinator::Record;
using coordinator::SqliteStore;
using coordinator::StepEnded;
using coordinator::Store;
using coordinator::SyncMode;
using coordinator::WorkerModeSet;
using testing::Engine;
using testing::OpenOk;
using testing::TestDb;
using testing::TempDir;

// Everything stored, in one list: what Load restores in full, and each
// finished group it summarizes read with LoadGroup.
LoadedState LoadOk(Store* store) {
  LoadedState state;
  REQUIRE_OK(store->Load(&state));
  for (const coordinator::FinishedSummary& f : state.finished) {
    coordinator::LoadedGroup g;
    REQUIRE_OK(store->LoadGroup(f.submission, &g));
    state.groups.push_back(std::move(g));
  }
  std::sort(state.groups.begin(), state.groups.end(), [](const auto& a, const auto& b) {
    return a.accepted.submission < b.accepted.submission;
  });
  state.finished.clear();
  return state;
}

LoadedState Reopened(const TestDb& db) {
  auto store = db.Open();
  return LoadOk(store.get());
}

LoadedState Reopened(const std::string& dir) {
  auto store = OpenOk(dir);
  return LoadOk(store.get());
}

GroupAccepted Group(uint64_t submission, uint64_t steps = 3) {
  return {submission, "g" + std::to_string(submission), R"({"steps":[]})", "alice", 1700000000000, steps};
}

AttemptEnded Ended(uint64_t submission, uint32_t step, uint32_t attempt) {
  AttemptEnded e;
  e.submission = submission;
  e.step = step;
  e.attempt = attempt;
  e.ended_unix_ms = 1700000001000;
  e.started_unix_ms = 1700000000500;
  e.status = AttemptStatus::kSucceeded;
  e.exit_code = 0;
  e.stdout_tail = "ok\n";
  e.stdout_bytes = 3;
  return e;
}

ErrorAdded Error(uint64_t submission, uint32_t seq, std::string step_id = "a") {
  return {submission, seq, std::move(step_id), "error " + std::to_string(seq), 1700000002000 + seq};
}

// The round trip below commits every kind: a new one must be added there.
static_assert(std::variant_size_v<Record> == 10);

TEST_CASE("Store: every record kind round-trips through a reopen", "[unit][store]") {
  TestDb d(GENERATE(Engine::kSqlite, Engine::kPostgres));
  INFO(d.engine_name());
  GroupAccepted g = Group(7, 4);
  g.spec_json = R"({"id":"build","steps":[{"id":"a","shell":"echo \"é\""}]})";
  g.submitted_unix_ms = INT64_MIN;
  AttemptStarted started{7, 3, UINT32_MAX, "node1-1", INT64_MAX};
  AttemptEnded full;
  full.submission = 7;
  full.step = 3;
  full.attempt = UINT32_MAX;
  full.ended_unix_ms = -1;
  full.started_unix_ms = INT64_MIN;
  full.status = AttemptStatus::kTimedOut;
  full.exit_code = INT_MIN;
  full.signal = INT_MAX;
  full.timed_out = true;
  full.cancelled = true;
  full.error = "killed at its timeout";
  full.stdout_tail = std::string("\xff\xfe\0bin\x80\0", 8);  // not UTF-8, with NULs
  full.stderr_tail = std::string(70000, '\xc3');
  full.stdout_bytes = coordinator::kMaxStoredUnsigned;
  full.stderr_bytes = 0;
  AttemptStarted bare_start{7, 0, 1, "", 0};
  AttemptEnded bare;  // optionals absent, tails empty
  bare.submission = 7;
  bare.status = AttemptStatus::kWorkerLost;
  bare.attempt = 1;
  AttemptEnded started_zero = bare;  // 0 is a time, not "unknown"
  started_zero.step = 3;
  started_zero.started_unix_ms = 0;
  AttemptStarted running{7, 0, 2, "node2-1", 5};
  StepEnded step_end{7, 3, StepState::kFailed, "exit 1", 42};
  StepEnded pending_cancelled{7, 1, StepState::kCancelled, "", 43};
  CancelRequested whole{7, std::nullopt, "bob", 44};
  CancelRequested one{7, 2u, "", 45};
  GroupStopped stopped{7, GroupState::kCancelled, 46};
  ErrorAdded step_error{7, 0, "a", "exit 1\n\"quoted\" é", INT64_MIN};
  ErrorAdded deadline{7, 1, "", "the group's deadline passed", INT64_MAX};
  GroupEnded group_end{7, GroupState::kCancelled, 47};
  WorkerModeSet cordoned{"node1-1", "cordoned", "alice", INT64_MIN};
  WorkerModeSet draining{"nöde \"2\"", "draining", "", 48};
  {
    auto store = d.Open();
    REQUIRE_OK(store->Commit({g, started, full, bare_start, bare, running}));
    REQUIRE_OK(store->Commit({AttemptStarted{7, 3, 1, "node1-1", 6}, started_zero}));
    REQUIRE_OK(store->Commit({step_end, pending_cancelled, whole, one, stopped, step_error, deadline, group_end}));
    // A mode set again replaces the first; "ready" clears it.
    REQUIRE_OK(store->Commit({WorkerModeSet{"node1-1", "draining", "bob", 1}, cordoned, draining,
                              WorkerModeSet{"node3-1", "cordoned", "bob", 2}}));
    REQUIRE_OK(store->Commit({WorkerModeSet{"node3-1", "ready", "bob", 3}}));
  }
  LoadedState state = Reopened(d);
  CHECK(state.worker_modes == std::vector<WorkerModeSet>{cordoned, draining});
  REQUIRE(state.max_submission == 7);
  REQUIRE(state.groups.size() == 1);
  const coordinator::LoadedGroup& lg = state.groups[0];
  CHECK(lg.accepted == g);
  CHECK(lg.ended == group_end);
  CHECK(lg.stopped == stopped);
  CHECK(lg.errors == std::vector<ErrorAdded>{step_error, deadline});
  CHECK(lg.cancels == std::vector<CancelRequested>{whole, one});
  // Only steps 0, 1 and 3 have anything: step 2 (cancel asked) is still pending.
  REQUIRE(lg.steps.size() == 3);
  CHECK(lg.steps[0].step == 0);
  REQUIRE(lg.steps[0].attempts.size() == 2);
  CHECK(lg.steps[0].attempts[0].started == bare_start);
  CHECK(lg.steps[0].attempts[0].ended == bare);
  CHECK(lg.steps[0].attempts[1].started == running);
  CHECK_FALSE(lg.steps[0].attempts[1].ended);
  CHECK_FALSE(lg.steps[0].ended);
  CHECK(lg.steps[1].step == 1);
  CHECK(lg.steps[1].attempts.empty());
  CHECK(lg.steps[1].ended == pending_cancelled);
  CHECK(lg.steps[2].step == 3);
  REQUIRE(lg.steps[2].attempts.size() == 2);
  CHECK(lg.steps[2].attempts[0].ended == started_zero);
  CHECK(lg.steps[2].attempts[1].started == started);
  CHECK(lg.steps[2].attempts[1].ended == full);
  CHECK(lg.steps[2].ended == step_end);
}

TEST_CASE("Store: many attempts in one batch round-trip whatever their text and bytes hold", "[unit][store]") {
  TestDb d(GENERATE(Engine::kSqlite, Engine::kPostgres));
  INFO(d.engine_name());
  // Quotes, backslashes, braces, commas, "NULL" and non-ASCII in text (the
  // PostgreSQL store writes these attempts as arrays); every byte value in
  // the tails.
  const std::vector<std::string> texts = {"", "NULL", "w\"1\\", "{a,b}", "é 組", "x\ny", " spaced "};
  std::string every_byte;
  for (int b = 0; b < 256; ++b) every_byte += static_cast<char>(b);
  std::vector<Record> started = {Group(1, 60)}, ended;
  for (uint32_t step = 0; step < 60; ++step) {
    const std::string& text = texts[step % texts.size()];
    started.emplace_back(AttemptStarted{1, step, 1, text, 1000 + step});
    AttemptEnded e = Ended(1, step, 1);
    e.error = text;
    e.stdout_tail = step % 2 ? every_byte : "";
    e.stderr_tail = step % 3 ? text : every_byte;
    if (step % 4 == 0) e.exit_code.reset();
    if (step % 5 == 0) e.started_unix_ms.reset();
    ended.emplace_back(e);
    ended.emplace_back(StepEnded{1, step, StepState::kCompleted, text, 2000 + step});
  }
  std::vector<Record> both = started;
  both.insert(both.end(), ended.begin(), ended.end());
  {
    auto store = d.Open();
    REQUIRE_OK(store->Commit(started));
    REQUIRE_OK(store->Commit(ended));
  }
  LoadedState state = Reopened(d);
  REQUIRE(state.groups.size() == 1);
  const coordinator::LoadedGroup& g = state.groups[0];
  REQUIRE(g.steps.size() == 60);
  for (uint32_t step = 0; step < 60; ++step) {
    INFO("step " << step);
    REQUIRE(g.steps[step].attempts.size() == 1);
    CHECK(g.steps[step].attempts[0].started == std::get<AttemptStarted>(started[step + 1]));
    CHECK(g.steps[step].attempts[0].ended == std::get<AttemptEnded>(ended[2 * step]));
    CHECK(g.steps[step].ended == std::get<StepEnded>(ended[2 * step + 1]));
  }
  // The same in one batch, on another group, and a batch whose last attempt
  // does not fit is refused naming that record, with nothing written.
  for (Record& r : both) {
    std::visit(
        [](auto& x) {
          if constexpr (requires { x.submission; }) x.submission = 2;
        },
        r);
  }
  auto store = d.Open();
  REQUIRE_OK(store->Commit(both));
  std::vector<Record> bad = {Group(3, 60)};
  for (uint32_t step = 0; step < 60; ++step) bad.emplace_back(AttemptStarted{3, step, 1, "w", 1});
  bad.emplace_back(Ended(3, 59, 2));
  Status s = store->Commit(bad);
  CHECK(s.code() == Status::Code::kFailedPrecondition);
  CHECK_THAT(s.message(), Catch::Contains("AttemptEnded submission=3 step=59 attempt=2 (record 62 of 62)") &&
                              Catch::Contains("nothing of the batch was written"));
  CHECK(d.Count("submissions WHERE submission = 3") == 0);
  CHECK(d.Count("attempts WHERE submission = 2") == 60);
}

TEST_CASE("Store: Load reads running groups in full and finished ones as summaries, and LoadGroup reads one",
          "[unit][store]") {
  TestDb d(GENERATE(Engine::kSqlite, Engine::kPostgres));
  INFO(d.engine_name());
  auto store = d.Open();
  // 1 finished (two steps completed, one failed), 2 running, 3 finished then forgotten.
  REQUIRE_OK(store->Commit({Group(1), Group(2), Group(3), AttemptStarted{1, 0, 1, "w", 10}, Ended(1, 0, 1),
                            StepEnded{1, 0, StepState::kCompleted, "", 11}, StepEnded{1, 1, StepState::kCompleted, "", 12},
                            StepEnded{1, 2, StepState::kFailed, "exit 1", 13}, Error(1, 0),
                            GroupEnded{1, GroupState::kFailed, 14}, AttemptStarted{2, 1, 1, "w", 15}}));
  REQUIRE_OK(store->Commit({StepEnded{3, 0, StepState::kCancelled, "", 16}, StepEnded{3, 1, StepState::kCancelled, "", 16},
                            StepEnded{3, 2, StepState::kCancelled, "", 16}, GroupEnded{3, GroupState::kCancelled, 17},
                            GroupForgotten{3}}));
  store.reset();
  store = d.Open();
  LoadedState state;
  REQUIRE_OK(store->Load(&state));
  CHECK(state.max_submission == 3);
  REQUIRE(state.groups.size() == 1);
  CHECK(state.groups[0].accepted == Group(2));
  REQUIRE(state.groups[0].steps.size() == 1);
  CHECK(state.groups[0].steps[0].attempts.at(0).started == AttemptStarted{2, 1, 1, "w", 15});
  REQUIRE(state.finished.size() == 1);
  const coordinator::FinishedSummary& f = state.finished[0];
  CHECK(f.submission == 1);
  CHECK(f.group_id == "g1");
  CHECK(f.client == "alice");
  CHECK(f.submitted_unix_ms == Group(1).submitted_unix_ms);
  CHECK(f.step_count == 3);
  CHECK(f.ended == GroupEnded{1, GroupState::kFailed, 14});
  CHECK(f.counts[static_cast<int>(StepState::kCompleted)] == 2);
  CHECK(f.counts[static_cast<int>(StepState::kFailed)] == 1);
  CHECK(f.counts[static_cast<int>(StepState::kCancelled)] == 0);

  coordinator::LoadedGroup one;
  REQUIRE_OK(store->LoadGroup(1, &one));
  CHECK(one.accepted == Group(1));
  CHECK(one.ended == GroupEnded{1, GroupState::kFailed, 14});
  CHECK(one.errors == std::vector<ErrorAdded>{Error(1, 0)});
  REQUIRE(one.steps.size() == 3);
  CHECK(one.steps[0].attempts.at(0).ended == Ended(1, 0, 1));
  CHECK(one.steps[2].ended == StepEnded{1, 2, StepState::kFailed, "exit 1", 13});
  coordinator::LoadedGroup running;
  REQUIRE_OK(store->LoadGroup(2, &running));
  CHECK(running == state.groups[0]);
  for (uint64_t gone : {uint64_t{3}, uint64_t{4}, uint64_t{0}, UINT64_MAX}) {
    INFO(gone);
    coordinator::LoadedGroup none;
    CHECK(store->LoadGroup(gone, &none).code() == Status::Code::kNotFound);
  }
}

TEST_CASE("Store: LoadGroup refuses rows of a group that does not exist with Corruption", "[unit][store]") {
  TestDb d(GENERATE(Engine::kSqlite, Engine::kPostgres));
  INFO(d.engine_name());
  REQUIRE_OK(d.Open()->Commit({Group(1), Group(2), Error(1, 0)}));
  d.Exec("DELETE FROM submissions WHERE submission = 2;"
                                    " UPDATE group_errors SET submission = 2");
  auto store = d.Open();
  coordinator::LoadedGroup g;
  Status s = store->LoadGroup(2, &g);
  CHECK(s.code() == Status::Code::kCorruption);
  CHECK_THAT(s.message(), Catch::Contains("group_errors row (submission 2, seq 0) belongs to no group"));
}

TEST_CASE("Store: a new store is empty and Load replaces what it is given", "[unit][store]") {
  TestDb d(GENERATE(Engine::kSqlite, Engine::kPostgres));
  INFO(d.engine_name());
  LoadedState state;
  state.max_submission = 99;
  state.groups.emplace_back();
  auto store = d.Open();
  REQUIRE_OK(store->Load(&state));
  CHECK(state == LoadedState{});
  REQUIRE_OK(store->Commit({}));
}

TEST_CASE("Store: a batch that fails midway leaves nothing behind", "[unit][store]") {
  TestDb d(GENERATE(Engine::kSqlite, Engine::kPostgres));
  INFO(d.engine_name());
  auto store = d.Open();
  REQUIRE_OK(store->Commit({Group(1), AttemptStarted{1, 0, 1, "w", 1}}));
  const LoadedState before = LoadOk(store.get());

  SECTION("a record for an unknown submission") {
    Status s = store->Commit({Group(2), AttemptStarted{2, 0, 1, "w", 2}, Ended(1, 0, 1),
                              AttemptStarted{5, 0, 1, "w", 3}});
    CHECK(s.code() == Status::Code::kFailedPrecondition);
    CHECK_THAT(s.message(), Catch::Contains("AttemptStarted submission=5 step=0 attempt=1 (record 4 of 4)"));
    CHECK_THAT(s.message(), Catch::Contains("nothing of the batch was written"));
  }
  SECTION("a step past the group's step count") {
    Status s = store->Commit({Ended(1, 0, 1), StepEnded{1, 3, StepState::kCompleted, "", 4}});
    CHECK(s.code() == Status::Code::kFailedPrecondition);
    CHECK_THAT(s.message(), Catch::Contains("no such step"));
  }
  SECTION("an attempt ended twice, or never started") {
    CHECK(store->Commit({Ended(1, 0, 1), Ended(1, 0, 1)}).code() == Status::Code::kFailedPrecondition);
    CHECK(store->Commit({Ended(1, 1, 1)}).code() == Status::Code::kFailedPrecondition);
  }
  SECTION("the same attempt started twice") {
    Status s = store->Commit({AttemptStarted{1, 0, 1, "w", 9}});
    CHECK(s.code() == Status::Code::kFailedPrecondition);
    CHECK_THAT(s.message(), Catch::Contains(d.unique_word()));
  }
  SECTION("a record that can never be stored is refused before anything is written") {
    AttemptEnded running = Ended(1, 0, 1);
    running.status = AttemptStatus::kRunning;
    CHECK(store->Commit({Group(2), running}).code() == Status::Code::kInvalidArgument);
    CHECK(store->Commit({Group(0)}).code() == Status::Code::kInvalidArgument);
    GroupAccepted huge = Group(uint64_t{1} << 63);
    CHECK(store->Commit({huge}).code() == Status::Code::kInvalidArgument);
    CHECK(store->Commit({StepEnded{1, 0, StepState::kRunning, "", 1}}).code() ==
          Status::Code::kInvalidArgument);
  }
  CHECK(LoadOk(store.get()) == before);
  // Still usable, and submission 2 was not used up by the failed batch.
  REQUIRE_OK(store->Commit({Group(2), Ended(1, 0, 1)}));
  CHECK(LoadOk(store.get()).groups.size() == 2);
}

TEST_CASE("Store: a full disk rolls the batch back, and a commit after space returns succeeds", "[unit][store]") {
  TempDir d;
  std::unique_ptr<Store> store = OpenOk(d.path);
  auto* sqlite = static_cast<SqliteStore*>(store.get());
  REQUIRE_OK(store->Commit({Group(1, 100)}));
  const LoadedState before = LoadOk(store.get());
  REQUIRE_OK(sqlite->LimitSize(64 * 1024));

  std::vector<Record> batch = {Group(2, 100)};
  for (uint32_t step = 0; step < 100; ++step) {
    batch.emplace_back(AttemptStarted{1, step, 1, "w", 1});
    AttemptEnded e = Ended(1, step, 1);
    e.stdout_tail = std::string(4096, static_cast<char>('a' + step % 26));
    batch.emplace_back(e);
  }
  Status s = store->Commit(batch);
  INFO(s.ToString());
  CHECK(s.code() == Status::Code::kUnavailable);
  CHECK_THAT(s.message(), Catch::Contains("disk full") && Catch::Contains(sqlite->db_path()) &&
                              Catch::Contains("nothing of the batch was written"));
  CHECK(LoadOk(store.get()) == before);

  REQUIRE_OK(sqlite->LimitSize(0));
  REQUIRE_OK(store->Commit(batch));
  store.reset();
  LoadedState after = Reopened(d.path);
  REQUIRE(after.groups.size() == 2);
  CHECK(after.groups[0].steps.size() == 100);
  CHECK(after.groups[0].steps[99].attempts[0].ended->stdout_tail == std::string(4096, 'a' + 99 % 26));
}

TEST_CASE("Store: a forgotten group leaves no row behind", "[unit][store]") {
  TestDb d(GENERATE(Engine::kSqlite, Engine::kPostgres));
  INFO(d.engine_name());
  {
    auto store = d.Open();
    std::vector<Record> batch;
    for (uint64_t sub : {1, 2}) {
      batch.emplace_back(Group(sub));
      batch.emplace_back(AttemptStarted{sub, 0, 1, "w", 1});
      batch.emplace_back(Ended(sub, 0, 1));
      batch.emplace_back(StepEnded{sub, 0, StepState::kCompleted, "", 2});
      batch.emplace_back(CancelRequested{sub, std::nullopt, "bob", 3});
      batch.emplace_back(CancelRequested{sub, 1u, "bob", 4});
      batch.emplace_back(GroupStopped{sub, GroupState::kCancelled, 5});
      batch.emplace_back(Error(sub, 0));
      batch.emplace_back(Error(sub, 1, ""));
      batch.emplace_back(GroupEnded{sub, GroupState::kCancelled, 6});
    }
    REQUIRE_OK(store->Commit(batch));
    REQUIRE_OK(store->Commit({GroupForgotten{1}}));
    CHECK(store->Commit({GroupForgotten{1}}).code() == Status::Code::kFailedPrecondition);
    // Its rows are gone, its submission is not: it is not given out again.
    Status s = store->Commit({Group(1)});
    CHECK(s.code() == Status::Code::kFailedPrecondition);
    CHECK_THAT(s.message(), Catch::Contains("given out already"));
  }
    for (const char* table : {"submissions", "group_specs", "attempts", "step_ends", "cancels", "group_errors"}) {
    INFO(table);
    CHECK(d.Count(std::string(table) + " WHERE submission = 1") == 0);
    CHECK(d.Count(std::string(table) + " WHERE submission = 2") > 0);
  }
  LoadedState state = Reopened(d);
  REQUIRE(state.groups.size() == 1);
  CHECK(state.groups[0].accepted.submission == 2);
  CHECK(state.groups[0].errors.size() == 2);
  CHECK(state.max_submission == 2);
}

TEST_CASE("Store: a group stops once: a second GroupStopped, or one after its end, fails the whole batch",
          "[unit][store]") {
  TestDb d(GENERATE(Engine::kSqlite, Engine::kPostgres));
  INFO(d.engine_name());
  auto store = d.Open();
  const GroupStopped first{1, GroupState::kFailed, 10};
  REQUIRE_OK(store->Commit({Group(1), Group(2), first}));
  REQUIRE_OK(store->Commit({GroupEnded{2, GroupState::kCompleted, 11}}));
  const LoadedState before = LoadOk(store.get());
  REQUIRE(before.groups.size() == 2);
  CHECK(before.groups[0].stopped == first);
  CHECK_FALSE(before.groups[1].stopped);

  SECTION("stopped again in a later batch") {
    Status s = store->Commit({Error(1, 0), GroupStopped{1, GroupState::kCancelled, 12}});
    CHECK(s.code() == Status::Code::kFailedPrecondition);
    CHECK_THAT(s.message(), Catch::Contains("GroupStopped submission=1 (record 2 of 2)") &&
                                Catch::Contains("it is stopping or has ended already") &&
                                Catch::Contains("nothing of the batch was written"));
  }
  SECTION("stopped twice in one batch") {
    Status s = store->Commit({Group(3), GroupStopped{3, GroupState::kCancelled, 12},
                              GroupStopped{3, GroupState::kCancelled, 13}});
    CHECK(s.code() == Status::Code::kFailedPrecondition);
    CHECK_THAT(s.message(), Catch::Contains("GroupStopped submission=3 (record 3 of 3)"));
  }
  SECTION("stopped after it ended") {
    CHECK(store->Commit({GroupStopped{2, GroupState::kFailed, 12}}).code() == Status::Code::kFailedPrecondition);
  }
  SECTION("an unknown group") {
    CHECK(store->Commit({GroupStopped{9, GroupState::kFailed, 12}}).code() == Status::Code::kFailedPrecondition);
  }
  // The first stop, and the state it chose, stand; nothing else was kept.
  CHECK(LoadOk(store.get()) == before);
  store.reset();
  CHECK(Reopened(d) == before);
}

TEST_CASE("Store: a worker mode without a worker, or with an unknown mode, is refused before anything is written",
          "[unit][store]") {
  TestDb d(GENERATE(Engine::kSqlite, Engine::kPostgres));
  INFO(d.engine_name());
  {
    auto store = d.Open();
    Status s = store->Commit({WorkerModeSet{"w1", "cordoned", "", 1}, WorkerModeSet{"", "cordoned", "", 2}});
    CHECK(s.code() == Status::Code::kInvalidArgument);
    CHECK_THAT(s.message(), Catch::Contains("needs a worker name"));
    s = store->Commit({WorkerModeSet{"w1", "drained", "", 1}});
    CHECK(s.code() == Status::Code::kInvalidArgument);
    CHECK_THAT(s.message(), Catch::Contains("\"drained\" is not cordoned, draining or ready"));
  }
  CHECK(Reopened(d).worker_modes.empty());
}

TEST_CASE("Store: a GroupStopped neither cancelled nor failed is refused before anything is written",
          "[unit][store]") {
  TestDb d(GENERATE(Engine::kSqlite, Engine::kPostgres));
  INFO(d.engine_name());
  auto store = d.Open();
  REQUIRE_OK(store->Commit({Group(1)}));
  const LoadedState before = LoadOk(store.get());
  for (GroupState state : {GroupState::kRunning, GroupState::kCompleted}) {
    Status s = store->Commit({Group(2), GroupStopped{1, state, 5}});
    CHECK(s.code() == Status::Code::kInvalidArgument);
    CHECK_THAT(s.message(), Catch::StartsWith("GroupStopped submission=1: ") &&
                                Catch::Contains(std::string(common::GroupStateName(state))));
  }
  CHECK(store->Commit({GroupStopped{0, GroupState::kFailed, 5}}).code() == Status::Code::kInvalidArgument);
  CHECK(LoadOk(store.get()) == before);
  REQUIRE_OK(store->Commit({Group(2), GroupStopped{1, GroupState::kCancelled, 5}}));
}

TEST_CASE("Store: errors come back in seq order, and a seq the group has already is refused", "[unit][store]") {
  TestDb d(GENERATE(Engine::kSqlite, Engine::kPostgres));
  INFO(d.engine_name());
  {
    auto store = d.Open();
    // Interleaved with another group's, and over several batches.
    REQUIRE_OK(store->Commit({Group(1), Group(2), Error(1, 0), Error(2, 0, "")}));
    REQUIRE_OK(store->Commit({Error(1, 1, "b")}));
    REQUIRE_OK(store->Commit({Error(2, 1), Error(1, 2, "")}));

    Status s = store->Commit({Error(1, 3), Error(1, 1, "c")});
    CHECK(s.code() == Status::Code::kFailedPrecondition);
    CHECK_THAT(s.message(), Catch::StartsWith("ErrorAdded submission=1 ") &&
                                Catch::Contains("(record 2 of 2)") && Catch::Contains(d.unique_word()));
    s = store->Commit({Error(5, 0)});
    CHECK(s.code() == Status::Code::kFailedPrecondition);
    CHECK_THAT(s.message(), Catch::Contains("no such group"));
  }
  LoadedState state = Reopened(d);
  REQUIRE(state.groups.size() == 2);
  CHECK(state.groups[0].errors == std::vector<ErrorAdded>{Error(1, 0), Error(1, 1, "b"), Error(1, 2, "")});
  CHECK(state.groups[1].errors == std::vector<ErrorAdded>{Error(2, 0, ""), Error(2, 1)});
  CHECK_FALSE(state.groups[1].stopped);
}

TEST_CASE("Store: rows that contradict each other fail Load with Corruption, naming the row", "[unit][store]") {
  struct Damage {
    const char* sql;    // what a hand edit in sqlite3 did (foreign keys are off there by default)
    const char* named;  // in the refusal
  };
  const Damage cases[] = {
      {"UPDATE submissions SET stop_state = 'paused'", "submissions row 1 has stop_state \"paused\""},
      {"UPDATE submissions SET stop_state = 'completed'", "submissions row 1 has stop_state \"completed\""},
      {"UPDATE submissions SET stopped_unix_ms = NULL", "submissions row 1 has stop_state \"failed\" but no time"},
      {"UPDATE group_errors SET seq = -1", "group_errors row (submission 1, seq -1) has a seq"},
      {"UPDATE submissions SET end_state = 'paused', ended_unix_ms = 9",
       "submissions row 1 has end_state \"paused\""},
      {"UPDATE submissions SET end_state = 'failed'", "submissions row 1 has end_state \"failed\" but no time"},
      {"INSERT INTO step_ends VALUES (1, 0, 'running', '', 7);"
       " UPDATE submissions SET end_state = 'failed', ended_unix_ms = 9",
       "step_ends of submission 1 have state \"running\""},
  };
  const Engine engine = GENERATE(Engine::kSqlite, Engine::kPostgres);
  for (const Damage& damage : cases) {
    INFO(damage.sql);
    TestDb d(engine);
    INFO(d.engine_name());
    REQUIRE_OK(d.Open()->Commit({Group(1), GroupStopped{1, GroupState::kFailed, 5}, Error(1, 0)}));
    d.Exec(damage.sql);
    auto store = d.Open();
    LoadedState state;
    Status s = store->Load(&state);
    CHECK(s.code() == Status::Code::kCorruption);
    CHECK_THAT(s.message(), Catch::Contains(damage.named));
    CHECK(state == LoadedState{});
  }
}

TEST_CASE("Store: a submission is never given out twice, across forgetting and reopening", "[unit][store]") {
  TestDb d(GENERATE(Engine::kSqlite, Engine::kPostgres));
  INFO(d.engine_name());
  {
    auto store = d.Open();
    REQUIRE_OK(store->Commit({Group(1), Group(2), Group(3)}));
    REQUIRE_OK(store->Commit({GroupForgotten{3}, GroupForgotten{2}}));
    CHECK(LoadOk(store.get()).max_submission == 3);
  }
  auto store = d.Open();
  LoadedState state = LoadOk(store.get());
  CHECK(state.max_submission == 3);
  CHECK(state.groups.size() == 1);
  for (uint64_t reused : {1, 2, 3}) {
    Status s = store->Commit({Group(reused)});
    CHECK(s.code() == Status::Code::kFailedPrecondition);
    CHECK_THAT(s.message(), Catch::Contains("given out already"));
  }
  REQUIRE_OK(store->Commit({Group(10)}));
  CHECK(store->Commit({Group(9)}).code() == Status::Code::kFailedPrecondition);
  CHECK(LoadOk(store.get()).max_submission == 10);
}

TEST_CASE("Store: a second store on the same directory is refused while the first is open", "[unit][store]") {
  TempDir d;
  auto first = OpenOk(d.path);
  std::unique_ptr<Store> second;
  Status s = SqliteStore::Open(d.path, SyncMode::kNormal, &second);
  CHECK(s.code() == Status::Code::kFailedPrecondition);
  CHECK_THAT(s.message(), Catch::Contains(d.path + "/lock") &&
                              Catch::Contains("(pid " + std::to_string(::getpid()) + ")") &&
                              Catch::Contains("--state-dir"));
  CHECK_FALSE(second);
  first.reset();
  OpenOk(d.path);
}

TEST_CASE("Store: a database from a newer cohort-coordinator is refused", "[unit][store]") {
  TestDb d(GENERATE(Engine::kSqlite, Engine::kPostgres));
  INFO(d.engine_name());
  REQUIRE_OK(d.Open()->Commit({Group(1)}));
  d.Exec("UPDATE schema_version SET version = 99");
  std::unique_ptr<Store> store;
  Status s = d.TryOpen(&store);
  CHECK(s.code() == Status::Code::kFailedPrecondition);
  CHECK_THAT(s.message(), Catch::Contains(d.where() + ": schema version 99 is newer than this "
                                          "cohort-coordinator supports (" +
                                          std::to_string(coordinator::schema::SupportedVersion()) +
                                          "): upgrade cohort-coordinator, or ") &&
                              Catch::Contains(d.engine() == Engine::kSqlite ? "start with another --state-dir"
                                                                            : "give --store another database"));
  CHECK_FALSE(store);
  // Refused, not touched: the version is still 99.
  CHECK(d.Count("schema_version WHERE version = 99") == 1);
}

TEST_CASE("Store: an older schema is brought up to date, keeping what it holds", "[unit][store]") {
  TestDb d(GENERATE(Engine::kSqlite, Engine::kPostgres));
  INFO(d.engine_name());
  REQUIRE_OK(d.Open()->Commit({Group(1), AttemptStarted{1, 0, 1, "w", 1}}));
  // Back to version 1 as it was released: without the leadership and
  // worker_modes tables.
  d.Exec(std::string("DROP TABLE leadership; DROP TABLE worker_modes; UPDATE schema_version SET version = 1") +
         (d.engine() == Engine::kPostgres ? "; ALTER TABLE attempts RESET (fillfactor)" : ""));
  auto store = d.Open();
  CHECK(d.Count("schema_version WHERE version = " + std::to_string(coordinator::schema::SupportedVersion())) == 1);
  CHECK(d.Count("leadership") == 0);
  CHECK(d.Count("worker_modes") == 0);  // version 4
  if (d.engine() == Engine::kPostgres) {
    // Room on the attempts' pages for their second write (version 3).
    CHECK(d.Count("pg_class WHERE relname = 'attempts' AND 'fillfactor=50' = ANY (reloptions)") == 1);
  }
  LoadedState state = LoadOk(store.get());
  REQUIRE(state.groups.size() == 1);
  CHECK(state.groups[0].steps.at(0).attempts.at(0).started == AttemptStarted{1, 0, 1, "w", 1});
}

TEST_CASE("Store: another program's database is refused, never written to", "[unit][store]") {
  TestDb d(GENERATE(Engine::kSqlite, Engine::kPostgres));
  INFO(d.engine_name());
  d.Exec("CREATE TABLE notes (body TEXT)");
  std::unique_ptr<Store> store;
  Status s = d.TryOpen(&store);
  CHECK(s.code() == Status::Code::kCorruption);
  CHECK_THAT(s.message(), Catch::Contains(d.where() + " is not a cohort state database") && Catch::Contains("notes"));
  CHECK_FALSE(store);
  CHECK(d.Count("notes") == 0);
}

TEST_CASE("Store: a damaged file is refused, never replaced by an empty state", "[unit][store]") {
  TempDir d;
  const std::string db = d.path + "/cohort.db";
  REQUIRE_OK(OpenOk(d.path)->Commit({Group(1)}));
  std::ofstream(db, std::ios::binary | std::ios::trunc) << std::string(8192, 'x');
  std::unique_ptr<Store> store;
  Status s = SqliteStore::Open(d.path, SyncMode::kNormal, &store);
  CHECK(s.code() == Status::Code::kCorruption);
  CHECK_THAT(s.message(), Catch::StartsWith(db + " is not a cohort state database or is damaged") &&
                              Catch::EndsWith("restore it from a backup (docs/OPERATIONS.md) or move it away"));
}

TEST_CASE("Store: a state directory that cannot be made or written is refused, naming it", "[unit][store]") {
  TempDir d;
  // A path under a regular file fails for root too.
  std::ofstream(d.path + "/file") << "x";
  std::unique_ptr<Store> store;
  Status s = SqliteStore::Open(d.path + "/file/sub", SyncMode::kNormal, &store);
  CHECK(s.code() == Status::Code::kFailedPrecondition);
  CHECK_THAT(s.message(), Catch::Contains(d.path + "/file/sub"));
  s = SqliteStore::Open(d.path + "/file", SyncMode::kNormal, &store);
  CHECK(s.code() == Status::Code::kFailedPrecondition);
  CHECK_THAT(s.message(), Catch::Contains("is not a directory"));
  if (::geteuid() != 0) {  // root writes through mode bits: only this part needs a normal user
    REQUIRE(::mkdir((d.path + "/ro").c_str(), 0500) == 0);
    s = SqliteStore::Open(d.path + "/ro", SyncMode::kNormal, &store);
    CHECK(s.code() == Status::Code::kFailedPrecondition);
    CHECK_THAT(s.message(), Catch::Contains(d.path + "/ro"));
  }
  CHECK_FALSE(store);
}

TEST_CASE("Store: a new state directory and database are private to their owner", "[unit][store]") {
  TempDir d;
  OpenOk(d.path + "/state");
  struct stat st;
  REQUIRE(::stat((d.path + "/state").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);
  // Specs and output tails may hold secrets.
  REQUIRE(::stat((d.path + "/state/cohort.db").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
}

TEST_CASE("Store: both sync modes open, commit and read back", "[unit][store]") {
  TempDir d;
  for (SyncMode mode : {SyncMode::kNormal, SyncMode::kFull}) {
    auto store = OpenOk(d.path, mode);
    uint64_t next = LoadOk(store.get()).max_submission + 1;
    REQUIRE_OK(store->Commit({Group(next), AttemptStarted{next, 0, 1, "w", 1}}));
  }
  CHECK(Reopened(d.path).groups.size() == 2);
}

}  // namespace
}  // namespace cohort
