// The state store on real SQLite files in a temporary directory: records
// round-trip through a reopen, batches are all or nothing, forgotten groups
// leave no rows, submissions are never given out twice, and every file the
// store cannot use is refused with a message that says what to do.
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cstdint>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "coordinator/sqlite_store.h"
#include "coordinator/store.h"
#include "coordinator/store_schema.h"
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
using coordinator::GroupAccepted;
using coordinator::GroupEnded;
using coordinator::GroupForgotten;
using coordinator::LoadedState;
using coordinator::Record;
using coordinator::SqliteStore;
using coordinator::StepEnded;
using coordinator::Store;
using coordinator::SyncMode;
using testing::TempDir;

#define REQUIRE_OK(expr)             \
  do {                               \
    const Status s_ = (expr);        \
    INFO(s_.ToString());             \
    REQUIRE(s_.ok());                \
  } while (0)

std::unique_ptr<Store> OpenOk(const std::string& dir, SyncMode sync = SyncMode::kNormal) {
  std::unique_ptr<Store> store;
  REQUIRE_OK(SqliteStore::Open(dir, sync, &store));
  REQUIRE(store);
  return store;
}

LoadedState LoadOk(Store* store) {
  LoadedState state;
  REQUIRE_OK(store->Load(&state));
  return state;
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
  e.status = AttemptStatus::kSucceeded;
  e.exit_code = 0;
  e.stdout_tail = "ok\n";
  e.stdout_bytes = 3;
  return e;
}

// A second connection of the test's own, to look at or damage the file.
struct RawDb {
  sqlite3* db = nullptr;
  explicit RawDb(const std::string& path) { REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK); }
  ~RawDb() { sqlite3_close(db); }
  void Exec(const std::string& sql) {
    char* err = nullptr;
    int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
    INFO((err ? err : ""));
    sqlite3_free(err);
    REQUIRE(rc == SQLITE_OK);
  }
  int64_t Count(const std::string& table) {
    sqlite3_stmt* st = nullptr;
    REQUIRE(sqlite3_prepare_v2(db, ("SELECT COUNT(*) FROM " + table).c_str(), -1, &st, nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_step(st) == SQLITE_ROW);
    int64_t n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return n;
  }
};

TEST_CASE("Store: every record kind round-trips through a reopen", "[unit][store]") {
  TempDir d;
  GroupAccepted g = Group(7, 4);
  g.spec_json = R"({"id":"build","steps":[{"id":"a","shell":"echo \"é\""}]})";
  g.submitted_unix_ms = INT64_MIN;
  AttemptStarted started{7, 3, UINT32_MAX, "node1-1", INT64_MAX};
  AttemptEnded full;
  full.submission = 7;
  full.step = 3;
  full.attempt = UINT32_MAX;
  full.ended_unix_ms = -1;
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
  AttemptStarted running{7, 0, 2, "node2-1", 5};
  StepEnded step_end{7, 3, StepState::kFailed, "exit 1", 42};
  StepEnded pending_cancelled{7, 1, StepState::kCancelled, "", 43};
  CancelRequested whole{7, std::nullopt, "bob", 44};
  CancelRequested one{7, 2u, "", 45};
  GroupEnded group_end{7, GroupState::kCancelled, 46};
  {
    auto store = OpenOk(d.path);
    REQUIRE_OK(store->Commit({g, started, full, bare_start, bare, running}));
    REQUIRE_OK(store->Commit({step_end, pending_cancelled, whole, one, group_end}));
  }
  LoadedState state = Reopened(d.path);
  REQUIRE(state.max_submission == 7);
  REQUIRE(state.groups.size() == 1);
  const coordinator::LoadedGroup& lg = state.groups[0];
  CHECK(lg.accepted == g);
  CHECK(lg.ended == group_end);
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
  REQUIRE(lg.steps[2].attempts.size() == 1);
  CHECK(lg.steps[2].attempts[0].started == started);
  CHECK(lg.steps[2].attempts[0].ended == full);
  CHECK(lg.steps[2].ended == step_end);
}

TEST_CASE("Store: a new store is empty and Load replaces what it is given", "[unit][store]") {
  TempDir d;
  LoadedState state;
  state.max_submission = 99;
  state.groups.emplace_back();
  auto store = OpenOk(d.path);
  REQUIRE_OK(store->Load(&state));
  CHECK(state == LoadedState{});
  REQUIRE_OK(store->Commit({}));
}

TEST_CASE("Store: a batch that fails midway leaves nothing behind", "[unit][store]") {
  TempDir d;
  auto store = OpenOk(d.path);
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
    CHECK_THAT(s.message(), Catch::Contains("UNIQUE"));
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
  TempDir d;
  {
    auto store = OpenOk(d.path);
    std::vector<Record> batch;
    for (uint64_t sub : {1, 2}) {
      batch.emplace_back(Group(sub));
      batch.emplace_back(AttemptStarted{sub, 0, 1, "w", 1});
      batch.emplace_back(Ended(sub, 0, 1));
      batch.emplace_back(StepEnded{sub, 0, StepState::kCompleted, "", 2});
      batch.emplace_back(CancelRequested{sub, std::nullopt, "bob", 3});
      batch.emplace_back(CancelRequested{sub, 1u, "bob", 4});
      batch.emplace_back(GroupEnded{sub, GroupState::kCancelled, 5});
    }
    REQUIRE_OK(store->Commit(batch));
    REQUIRE_OK(store->Commit({GroupForgotten{1}}));
    CHECK(store->Commit({GroupForgotten{1}}).code() == Status::Code::kFailedPrecondition);
  }
  RawDb raw(d.path + "/cohort.db");
  for (const char* table : {"submissions", "attempts", "step_ends", "cancels"}) {
    INFO(table);
    CHECK(raw.Count(std::string(table) + " WHERE submission = 1") == 0);
    CHECK(raw.Count(std::string(table) + " WHERE submission = 2") > 0);
  }
  LoadedState state = Reopened(d.path);
  REQUIRE(state.groups.size() == 1);
  CHECK(state.groups[0].accepted.submission == 2);
}

TEST_CASE("Store: a submission is never given out twice, across forgetting and reopening", "[unit][store]") {
  TempDir d;
  {
    auto store = OpenOk(d.path);
    REQUIRE_OK(store->Commit({Group(1), Group(2), Group(3)}));
    REQUIRE_OK(store->Commit({GroupForgotten{3}, GroupForgotten{2}}));
    CHECK(LoadOk(store.get()).max_submission == 3);
  }
  auto store = OpenOk(d.path);
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
  TempDir d;
  REQUIRE_OK(OpenOk(d.path)->Commit({Group(1)}));
  RawDb(d.path + "/cohort.db").Exec("UPDATE schema_version SET version = 99");
  std::unique_ptr<Store> store;
  Status s = SqliteStore::Open(d.path, SyncMode::kNormal, &store);
  CHECK(s.code() == Status::Code::kFailedPrecondition);
  CHECK_THAT(s.message(), Catch::Contains(d.path + "/cohort.db: schema version 99 is newer than this "
                                          "cohort-coordinator supports (" +
                                          std::to_string(coordinator::schema::SupportedVersion()) +
                                          "): upgrade cohort-coordinator, or start with another --state-dir"));
  CHECK_FALSE(store);
  // Refused, not touched: the version is still 99.
  RawDb raw(d.path + "/cohort.db");
  CHECK(raw.Count("schema_version WHERE version = 99") == 1);
}

TEST_CASE("Store: a damaged or foreign file is refused, never replaced by an empty state", "[unit][store]") {
  TempDir d;
  const std::string db = d.path + "/cohort.db";
  SECTION("garbage over a real database") {
    REQUIRE_OK(OpenOk(d.path)->Commit({Group(1)}));
    std::ofstream(db, std::ios::binary | std::ios::trunc) << std::string(8192, 'x');
    std::unique_ptr<Store> store;
    Status s = SqliteStore::Open(d.path, SyncMode::kNormal, &store);
    CHECK(s.code() == Status::Code::kCorruption);
    CHECK_THAT(s.message(), Catch::StartsWith(db + " is not a cohort state database or is damaged") &&
                                Catch::EndsWith("restore it from a backup (docs/OPERATIONS.md) or move it away"));
  }
  SECTION("another program's database") {
    RawDb(db).Exec("CREATE TABLE notes (body TEXT)");
    std::unique_ptr<Store> store;
    Status s = SqliteStore::Open(d.path, SyncMode::kNormal, &store);
    CHECK(s.code() == Status::Code::kCorruption);
    CHECK_THAT(s.message(), Catch::Contains(db + " is not a cohort state database") && Catch::Contains("notes"));
  }
}

TEST_CASE("Store: a state directory that cannot be made or written is refused, naming it", "[unit][store]") {
  TempDir d;
  // A path under a regular file fails for root too.
  std::ofstream(d.path + "/file") << "x";
  std::unique_ptr<Store> store;
  Status s = SqliteStore::Open(d.path + "/file/sub", SyncMode::kNormal, &store);
  CHECK(s.code() == Status::Code::kIoError);
  CHECK_THAT(s.message(), Catch::Contains(d.path + "/file/sub"));
  s = SqliteStore::Open(d.path + "/file", SyncMode::kNormal, &store);
  CHECK(s.code() == Status::Code::kIoError);
  CHECK_THAT(s.message(), Catch::Contains("is not a directory"));
  if (::geteuid() != 0) {  // root writes through mode bits: only this part needs a normal user
    REQUIRE(::mkdir((d.path + "/ro").c_str(), 0500) == 0);
    s = SqliteStore::Open(d.path + "/ro", SyncMode::kNormal, &store);
    CHECK(s.code() == Status::Code::kIoError);
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
