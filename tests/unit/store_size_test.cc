// The state store's size under a steady load: groups come and, once their
// retention is over, are forgotten; SQLite reuses the pages they free, so the
// file stops growing once as many groups are kept as retention holds. And
// the one read that serves a running group's output back, LoadOutput.
#include <sys/stat.h>

#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "coordinator/store.h"
#include "tests/unit/store_test_util.h"
#include "tests/unit/temp_dir.h"

namespace cohort {
namespace {

using coordinator::AttemptEnded;
using coordinator::AttemptStarted;
using coordinator::GroupAccepted;
using coordinator::GroupEnded;
using coordinator::GroupForgotten;
using coordinator::Record;
using coordinator::StepEnded;
using coordinator::Store;
using testing::OpenOk;
using testing::TempDir;

constexpr uint32_t kSteps = 20;
constexpr uint64_t kKept = 50;  // groups within retention at any time

// One group's life as the loop commits it, and the group kKept before it
// forgotten in the same turn as its end.
void RunGroup(Store* store, uint64_t submission, bool forget) {
  const std::string id = "g" + std::to_string(submission);
  REQUIRE_OK(store->Commit({GroupAccepted{submission, id, "{\"id\":\"" + id + "\",\"steps\":[]}", "alice",
                                          1700000000000, kSteps}}));
  std::vector<Record> started, ended;
  for (uint32_t i = 0; i < kSteps; ++i) {
    started.emplace_back(AttemptStarted{submission, i, 1, "node1", 1700000000100});
    AttemptEnded e;
    e.submission = submission;
    e.step = i;
    e.attempt = 1;
    e.ended_unix_ms = 1700000005000;
    e.status = common::AttemptStatus::kSucceeded;
    e.exit_code = 0;
    e.stdout_tail = std::string(300, 'o');
    e.stdout_bytes = 300;
    ended.emplace_back(std::move(e));
    ended.emplace_back(StepEnded{submission, i, common::StepState::kCompleted, "", 1700000005000});
  }
  ended.emplace_back(GroupEnded{submission, common::GroupState::kCompleted, 1700000005000});
  if (forget) ended.emplace_back(GroupForgotten{submission - kKept});
  REQUIRE_OK(store->Commit(started));
  REQUIRE_OK(store->Commit(ended));
}

// Runs groups [from, to) on the store in `dir`, then closes it (which
// checkpoints the WAL into the file) and returns the file's size.
int64_t SizeAfter(const std::string& dir, uint64_t from, uint64_t to, bool forget) {
  {
    auto store = OpenOk(dir);
    for (uint64_t s = from; s < to; ++s) RunGroup(store.get(), s, forget && s > kKept);
  }
  struct stat st;
  REQUIRE(::stat((dir + "/cohort.db").c_str(), &st) == 0);
  return st.st_size;
}

TEST_CASE("Store: under a steady load whose groups are forgotten after retention, the file stops growing",
          "[unit][store]") {
  TempDir tmp;
  SECTION("groups forgotten: the same size after 8 times the groups") {
    const std::string dir = tmp.path + "/steady";
    const int64_t warm = SizeAfter(dir, 1, 2 * kKept + 1, true);
    const int64_t later = SizeAfter(dir, 2 * kKept + 1, 16 * kKept + 1, true);
    INFO("after " << 2 * kKept << " groups: " << warm << " bytes; after " << 16 * kKept << ": " << later);
    CHECK(later <= warm + warm / 10);
  }
  SECTION("nothing forgotten: it grows with the groups (the check above can fail)") {
    const std::string dir = tmp.path + "/growing";
    const int64_t warm = SizeAfter(dir, 1, 2 * kKept + 1, false);
    const int64_t later = SizeAfter(dir, 2 * kKept + 1, 16 * kKept + 1, false);
    CHECK(later > 4 * warm);
  }
}

TEST_CASE("Store: LoadOutput reads one ended attempt's tails, byte for byte", "[unit][store]") {
  TempDir tmp;
  auto store = OpenOk(tmp.path + "/out");
  REQUIRE_OK(store->Commit({GroupAccepted{4, "g", "{}", "alice", 1700000000000, 2}}));
  REQUIRE_OK(store->Commit({AttemptStarted{4, 1, 1, "node1", 1700000000100}, AttemptStarted{4, 0, 1, "n", 1}}));
  AttemptEnded e;
  e.submission = 4;
  e.step = 1;
  e.attempt = 1;
  e.ended_unix_ms = 1700000005000;
  e.status = common::AttemptStatus::kFailed;
  e.exit_code = 1;
  e.stdout_tail = std::string("out\0\xff", 5);
  e.stderr_tail = "err";
  REQUIRE_OK(store->Commit({e}));
  std::string out, err;
  REQUIRE_OK(store->LoadOutput(4, 1, 1, &out, &err));
  CHECK(out == std::string("out\0\xff", 5));
  CHECK(err == "err");
  // Not ended, never started, another group: NotFound.
  CHECK(store->LoadOutput(4, 0, 1, &out, &err).code() == common::Status::Code::kNotFound);
  CHECK(store->LoadOutput(4, 1, 2, &out, &err).code() == common::Status::Code::kNotFound);
  CHECK(store->LoadOutput(5, 1, 1, &out, &err).code() == common::Status::Code::kNotFound);
}

}  // namespace
}  // namespace cohort
