// Helpers shared by the step runner's integration tests
// (step_runner_test.cc and step_runner_stop_test.cc): requests, waits on the
// runner's own descriptors bounded by kBudget (never a fixed sleep), probes
// of /proc, and a scratch directory.
#ifndef COHORT_TESTS_INTEGRATION_RUNNER_TEST_UTIL_H_
#define COHORT_TESTS_INTEGRATION_RUNNER_TEST_UTIL_H_

#include <dirent.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "common/time.h"
#include "worker/step_runner.h"

namespace cohort::worker::runner_test {

// Generous, for loaded CI boxes and sanitizer builds; a passing test never
// waits this long.
inline constexpr common::Duration kBudget = std::chrono::seconds(30);

inline RunRequest Shell(uint64_t key, std::string command) {
  RunRequest r;
  r.key = key;
  r.shell = std::move(command);
  return r;
}

inline RunRequest Argv(uint64_t key, std::vector<std::string> argv) {
  RunRequest r;
  r.key = key;
  r.argv = std::move(argv);
  return r;
}

inline RunnerOptions WithGrace(common::Duration grace) {
  RunnerOptions options;
  options.kill_grace = grace;
  return options;
}

inline double Seconds(common::Duration d) { return std::chrono::duration<double>(d).count(); }

// Polls until attempt `key` finishes; results of other keys are dropped.
inline std::optional<RunResult> WaitFor(StepRunner& runner, uint64_t key) {
  const common::Time limit = common::Clock::now() + kBudget;
  std::vector<RunResult> done;
  while (common::Clock::now() < limit) {
    runner.PollOnce(limit, &done);
    for (RunResult& r : done) {
      if (r.key == key) return std::move(r);
    }
    done.clear();
  }
  return std::nullopt;
}

inline std::map<uint64_t, RunResult> WaitForAll(StepRunner& runner) {
  std::vector<RunResult> done;
  REQUIRE(runner.RunUntilIdle(common::Clock::now() + kBudget, &done));
  std::map<uint64_t, RunResult> by_key;
  for (RunResult& r : done) by_key.emplace(r.key, std::move(r));
  return by_key;
}

// Polls until the running attempt's stdout holds `lines` newline-terminated
// lines; returns them.
inline std::vector<std::string> WaitForLines(StepRunner& runner, uint64_t key, size_t lines) {
  const common::Time limit = common::Clock::now() + kBudget;
  std::vector<RunResult> done;
  std::string out;
  while (common::Clock::now() < limit) {
    REQUIRE(runner.PeekOutput(key, &out, nullptr));
    std::vector<std::string> got;
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);) got.push_back(line);
    if (!out.empty() && out.back() != '\n') got.pop_back();
    if (got.size() >= lines) return got;
    runner.PollOnce(limit, &done);
    REQUIRE(done.empty());
  }
  FAIL("step " << key << " printed only: " << out);
  return {};
}

// Polls until the running attempt's main process is stopped (state T in its
// /proc stat), so that a test of a step that stops itself does not race the
// step's own `kill -STOP` with its cancel.
inline void WaitStopped(StepRunner& runner, uint64_t key) {
  const std::optional<pid_t> pid = runner.PidOf(key);
  REQUIRE(pid);
  const common::Time limit = common::Clock::now() + kBudget;
  std::vector<RunResult> done;
  std::string stat;
  while (common::Clock::now() < limit) {
    std::ifstream in("/proc/" + std::to_string(*pid) + "/stat");
    stat.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    const size_t paren = stat.rfind(')');
    if (paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'T') return;
    // A stopped process makes no event to wake the poll: a short bound.
    runner.PollOnce(std::min(limit, common::Clock::now() + std::chrono::milliseconds(10)), &done);
    REQUIRE(done.empty());
  }
  FAIL("step " << key << " did not stop: " << stat);
}

// A number that sleep accepts and no other process on the box has in its
// command line: "300.<pid><random>".
inline std::string UniqueSleepArg() {
  std::random_device rd;
  return "300." + std::to_string(getpid()) + std::to_string(rd() % 1000000);
}

inline int CountProcessesWithArg(const std::string& arg) {
  int count = 0;
  DIR* proc = opendir("/proc");
  REQUIRE(proc != nullptr);
  while (dirent* e = readdir(proc)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    std::ifstream f(std::string("/proc/") + e->d_name + "/cmdline", std::ios::binary);
    std::string cmdline((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    std::string needle = std::string(1, '\0') + arg + std::string(1, '\0');
    if (cmdline.find(needle) != std::string::npos) ++count;
  }
  closedir(proc);
  return count;
}

// Also true for a zombie, which has a /proc entry until it is reaped.
inline bool ProcessExists(pid_t pid) {
  struct stat st;
  return stat(("/proc/" + std::to_string(pid)).c_str(), &st) == 0;
}

inline bool GroupExists(pid_t pgid) { return kill(-pgid, 0) == 0 || errno != ESRCH; }

inline int CountOpenFds() {
  int count = 0;
  DIR* dir = opendir("/proc/self/fd");
  REQUIRE(dir != nullptr);
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] != '.') ++count;
  }
  closedir(dir);
  return count - 1;  // the DIR's own descriptor
}

class TempDir {
 public:
  TempDir() {
    char templ[] = "/tmp/cohort-runner-test-XXXXXX";
    REQUIRE(mkdtemp(templ) != nullptr);
    char* real = realpath(templ, nullptr);
    path_ = real;
    free(real);
  }
  ~TempDir() {
    for (const std::string& f : files_) unlink(f.c_str());
    rmdir(path_.c_str());
  }
  const std::string& path() const { return path_; }
  void Write(const std::string& name, const std::string& content, mode_t mode) {
    std::string file = path_ + "/" + name;
    std::ofstream(file) << content;
    REQUIRE(chmod(file.c_str(), mode) == 0);
    files_.push_back(file);
  }

 private:
  std::string path_;
  std::vector<std::string> files_;
};

}  // namespace cohort::worker::runner_test

#endif  // COHORT_TESTS_INTEGRATION_RUNNER_TEST_UTIL_H_
