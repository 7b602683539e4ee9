// Measures the state store on a real file: commit throughput of attempt
// records in batches of 1, 100 and 1000, with synchronous=NORMAL and FULL,
// and what a finished step costs on disk (the file's size after N groups of
// M steps with typical small output tails, divided by N*M).
// Usage: store_bench [dir] [groups] [steps]   (dir defaults to a new one
// under /var/tmp, on disk rather than tmpfs, so FULL pays for its fsyncs)
#include <stdlib.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "coordinator/archived.h"
#include "coordinator/scheduler.h"
#include "coordinator/sqlite_store.h"

namespace {

using cohort::common::Status;
using cohort::coordinator::AttemptEnded;
using cohort::coordinator::AttemptStarted;
using cohort::coordinator::GroupAccepted;
using cohort::coordinator::GroupEnded;
using cohort::coordinator::LoadedState;
using cohort::coordinator::Record;
using cohort::coordinator::SqliteStore;
using cohort::coordinator::StepEnded;
using cohort::coordinator::Store;
using cohort::coordinator::SyncMode;

using Seconds = std::chrono::duration<double>;
constexpr Seconds kRunFor{1.5};
constexpr uint64_t kBigGroupSteps = 1'000'000;

bool Check(const Status& s, const char* what) {
  if (s.ok()) return true;
  std::fprintf(stderr, "store_bench: %s: %s\n", what, s.ToString().c_str());
  return false;
}

std::unique_ptr<Store> OpenIn(const std::string& dir, SyncMode sync) {
  std::unique_ptr<Store> store;
  if (!Check(SqliteStore::Open(dir, sync, &store), "open")) std::exit(1);
  return store;
}

// Commits AttemptStarted records of one big group, `batch` per commit,
// for about kRunFor.
bool Throughput(const std::string& dir, SyncMode sync, int batch) {
  auto store = OpenIn(dir, sync);
  if (!Check(store->Commit({GroupAccepted{1, "big", "{}", "bench", 0, kBigGroupSteps}}), "commit")) return false;
  uint64_t n = 0, commits = 0;
  std::vector<Record> records;
  const auto start = std::chrono::steady_clock::now();
  Seconds elapsed{};
  while (elapsed < kRunFor) {
    records.clear();
    for (int i = 0; i < batch; ++i, ++n) {
      records.emplace_back(AttemptStarted{1, static_cast<uint32_t>(n % kBigGroupSteps),
                                       static_cast<uint32_t>(n / kBigGroupSteps + 1), "node1-1", 1700000000000});
    }
    if (!Check(store->Commit(records), "commit")) return false;
    ++commits;
    elapsed = std::chrono::steady_clock::now() - start;
  }
  std::printf("commit %-6s batch=%-4d  %9.0f records/s  %7.0f commits/s  (%llu records in %.2f s)\n",
              sync == SyncMode::kFull ? "FULL" : "NORMAL", batch, n / elapsed.count(),
              commits / elapsed.count(), static_cast<unsigned long long>(n), elapsed.count());
  return true;
}

std::string SpecJson(const std::string& id, int steps) {
  std::string spec = "{\"id\":\"" + id + "\",\"steps\":[";
  for (int i = 0; i < steps; ++i) {
    spec += std::string(i ? "," : "") + "{\"id\":\"step-" + std::to_string(i) + "\",\"shell\":\"make -C src test\"}";
  }
  return spec + "]}";
}

// One group's whole life, one commit per phase as the loop would see it.
bool RunGroup(Store* store, uint64_t submission, int steps) {
  const std::string spec = SpecJson("g" + std::to_string(submission), steps);
  std::vector<Record> accepted = {GroupAccepted{submission, "g" + std::to_string(submission), spec, "alice",
                                                1700000000000, static_cast<uint64_t>(steps)}};
  std::vector<Record> started, ended;
  for (uint32_t i = 0; i < static_cast<uint32_t>(steps); ++i) {
    started.emplace_back(AttemptStarted{submission, i, 1, "node1-1", 1700000000100});
    AttemptEnded e;
    e.submission = submission;
    e.step = i;
    e.attempt = 1;
    e.ended_unix_ms = 1700000005000;
    e.status = cohort::common::AttemptStatus::kSucceeded;
    e.exit_code = 0;
    e.stdout_tail = std::string(200, 'o');  // the last lines of a typical build step
    e.stderr_tail = std::string(50, 'e');
    e.stdout_bytes = 12000;
    e.stderr_bytes = 50;
    ended.emplace_back(std::move(e));
    ended.emplace_back(StepEnded{submission, i, cohort::common::StepState::kCompleted, "", 1700000005000});
  }
  ended.emplace_back(GroupEnded{submission, cohort::common::GroupState::kCompleted, 1700000005000});
  return Check(store->Commit(accepted), "commit") && Check(store->Commit(started), "commit") &&
         Check(store->Commit(ended), "commit");
}

bool BytesPerStep(const std::string& dir, int groups, int steps) {
  {
    auto store = OpenIn(dir, SyncMode::kNormal);
    for (int g = 1; g <= groups; ++g) {
      if (!RunGroup(store.get(), g, steps)) return false;
    }
  }  // closed: the WAL is checkpointed into the file
  struct stat st;
  if (::stat((dir + "/cohort.db").c_str(), &st) != 0) return false;
  const double per_step = static_cast<double>(st.st_size) / (static_cast<double>(groups) * steps);
  std::printf("bytes per finished step: %.0f  (%d groups x %d steps, tails 200+50 bytes, file %lld bytes)\n",
              per_step, groups, steps, static_cast<long long>(st.st_size));
  return true;
}

// Groups accepted and half started, none ended: what a crash leaves.
bool LeaveRunning(Store* store, uint64_t submission, int steps) {
  const std::string spec = SpecJson("r" + std::to_string(submission), steps);
  std::vector<Record> records = {GroupAccepted{submission, "r" + std::to_string(submission), spec, "alice",
                                               1700000000000, static_cast<uint64_t>(steps)}};
  for (uint32_t i = 0; i < static_cast<uint32_t>(steps) / 2; ++i) {
    records.emplace_back(AttemptStarted{submission, i, 1, "node" + std::to_string(i % 100), 1700000000100});
  }
  return Check(store->Commit(records), "commit");
}

// A coordinator's restart: the store opened, loaded, and restored into a new
// core, with `finished` and `running` groups of `steps` steps stored.
bool RestartTime(const std::string& dir, int finished, int running, int steps) {
  {
    auto store = OpenIn(dir, SyncMode::kNormal);
    for (int g = 1; g <= finished; ++g) {
      if (!RunGroup(store.get(), g, steps)) return false;
    }
    for (int g = 1; g <= running; ++g) {
      if (!LeaveRunning(store.get(), finished + g, steps)) return false;
    }
  }
  const auto start = std::chrono::steady_clock::now();
  auto store = OpenIn(dir, SyncMode::kNormal);
  LoadedState state;
  if (!store || !Check(store->Load(&state), "load")) return false;
  const std::chrono::duration<double> loaded = std::chrono::steady_clock::now() - start;
  cohort::coordinator::SchedulerOptions options;
  options.journal = true;
  options.wall = cohort::common::WallClock(cohort::common::Time{}, 1700000010000);
  cohort::coordinator::Scheduler core(options);
  std::vector<cohort::coordinator::Action> actions;
  if (!Check(core.Restore(state, cohort::common::Time{}, &actions), "restore")) return false;
  const std::chrono::duration<double> restored = std::chrono::steady_clock::now() - start;
  // A finished group's result is read from the store when someone asks.
  const auto ask = std::chrono::steady_clock::now();
  if (!Check(cohort::coordinator::ReadArchived(store.get(), &core, "g1", cohort::common::Time{}), "read back")) {
    return false;
  }
  if (!core.Result("g1")) return Check(cohort::common::Status::NotFound("g1 after reading it back"), "read back");
  const std::chrono::duration<double> read_back = std::chrono::steady_clock::now() - ask;
  std::printf("restart: %d finished + %d running groups x %d steps (%lld + %lld steps): open+load %.2f s, "
              "restored into the core %.2f s; %zu attempts to reattach; a finished group read back in %.1f ms\n",
              finished, running, steps, static_cast<long long>(finished) * steps,
              static_cast<long long>(running) * steps, loaded.count(), restored.count(), core.unclaimed_attempts(),
              read_back.count() * 1000);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::string root;
  if (argc > 1 && std::string(argv[1]) == "--restart") {
    // 10^6 finished and 10^5 unfinished steps: the restart the docs promise.
    char tmpl[] = "/var/tmp/cohort-store-bench-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) return 1;
    const bool ok = RestartTime(std::string(tmpl) + "/restart", 1000, 100, 1000);
    std::string cmd = "rm -rf '" + std::string(tmpl) + "'";
    if (std::system(cmd.c_str()) != 0) std::fprintf(stderr, "store_bench: could not remove %s\n", tmpl);
    return ok ? 0 : 1;
  }
  if (argc > 1 && argv[1][0] == '-') {
    std::fprintf(stderr, "usage: store_bench [DIR [GROUPS [STEPS]]] | store_bench --restart\n"
                         "  commits to SQLite state stores under DIR (default: a temporary directory,\n"
                         "  removed after) and prints records/s per sync mode and batch, then the\n"
                         "  bytes per finished step for GROUPS groups of STEPS steps (1000, 10);\n"
                         "  --restart: the time to load and restore 10^6 finished + 10^5 running steps\n");
    return 2;
  }
  if (argc > 1) {
    root = argv[1];
  } else {
    char tmpl[] = "/var/tmp/cohort-store-bench-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) return 1;
    root = tmpl;
  }
  const int groups = argc > 2 ? std::atoi(argv[2]) : 1000;
  const int steps = argc > 3 ? std::atoi(argv[3]) : 10;
  int run = 0;
  bool ok = true;
  for (SyncMode sync : {SyncMode::kNormal, SyncMode::kFull}) {
    for (int batch : {1, 100, 1000}) {
      ok = ok && Throughput(root + "/run" + std::to_string(run++), sync, batch);
    }
  }
  ok = ok && BytesPerStep(root + "/size", groups, steps);
  if (argc <= 1) {
    std::string cmd = "rm -rf '" + root + "'";
    if (std::system(cmd.c_str()) != 0) std::fprintf(stderr, "store_bench: could not remove %s\n", root.c_str());
  }
  return ok ? 0 : 1;
}
