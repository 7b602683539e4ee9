// Integration tests of the step runner: real child processes, and every wait
// is a poll of the runner's own descriptors bounded by a deadline, never a
// fixed sleep.
#include "worker/step_runner.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "worker/unique_fd.h"

namespace cohort::worker {
namespace {

using common::Clock;
using common::Duration;
using common::Time;
using namespace std::chrono_literals;

// Generous, for loaded CI boxes and sanitizer builds; a passing test never
// waits this long.
constexpr Duration kBudget = 30s;

RunRequest Shell(uint64_t key, std::string command) {
  RunRequest r;
  r.key = key;
  r.shell = std::move(command);
  return r;
}

RunRequest Argv(uint64_t key, std::vector<std::string> argv) {
  RunRequest r;
  r.key = key;
  r.argv = std::move(argv);
  return r;
}

RunnerOptions WithGrace(Duration grace) {
  RunnerOptions options;
  options.kill_grace = grace;
  return options;
}

double Seconds(Duration d) { return std::chrono::duration<double>(d).count(); }

// Polls until attempt `key` finishes; results of other keys are dropped.
std::optional<RunResult> WaitFor(StepRunner& runner, uint64_t key) {
  const Time limit = Clock::now() + kBudget;
  std::vector<RunResult> done;
  while (Clock::now() < limit) {
    runner.PollOnce(limit, &done);
    for (RunResult& r : done) {
      if (r.key == key) return std::move(r);
    }
    done.clear();
  }
  return std::nullopt;
}

std::map<uint64_t, RunResult> WaitForAll(StepRunner& runner) {
  std::vector<RunResult> done;
  REQUIRE(runner.RunUntilIdle(Clock::now() + kBudget, &done));
  std::map<uint64_t, RunResult> by_key;
  for (RunResult& r : done) by_key.emplace(r.key, std::move(r));
  return by_key;
}

// Polls until the running attempt's stdout holds `lines` newline-terminated
// lines; returns them.
std::vector<std::string> WaitForLines(StepRunner& runner, uint64_t key, size_t lines) {
  const Time limit = Clock::now() + kBudget;
  std::vector<RunResult> done;
  std::string out;
  while (Clock::now() < limit) {
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

// A number that sleep accepts and no other process on the box has in its
// command line: "300.<pid><random>".
std::string UniqueSleepArg() {
  std::random_device rd;
  return "300." + std::to_string(getpid()) + std::to_string(rd() % 1000000);
}

int CountProcessesWithArg(const std::string& arg) {
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
bool ProcessExists(pid_t pid) {
  struct stat st;
  return stat(("/proc/" + std::to_string(pid)).c_str(), &st) == 0;
}

bool GroupExists(pid_t pgid) { return kill(-pgid, 0) == 0 || errno != ESRCH; }

int CountOpenFds() {
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

TEST_CASE("exit codes are reported", "[runner]") {
  StepRunner runner;
  REQUIRE(runner.Start(Shell(1, "exit 3"), Clock::now()).ok());
  std::optional<RunResult> r = WaitFor(runner, 1);
  REQUIRE(r);
  INFO(r->Summary());
  CHECK(r->kind == RunResult::Kind::kExited);
  CHECK(r->exit_code == 3);
  CHECK_FALSE(r->timed_out);
  CHECK_FALSE(r->cancelled);
  CHECK_FALSE(r->escalated_to_kill);
  CHECK(r->pid > 0);
  CHECK(r->end >= r->start);
  CHECK(runner.idle());
}

TEST_CASE("terminating signals are reported", "[runner]") {
  StepRunner runner;
  // ulimit -c 0: no core file in the test's working directory.
  REQUIRE(runner.Start(Shell(1, "ulimit -c 0; kill -SEGV $$"), Clock::now()).ok());
  REQUIRE(runner.Start(Shell(2, "kill -KILL $$"), Clock::now()).ok());
  std::map<uint64_t, RunResult> results = WaitForAll(runner);
  REQUIRE(results.size() == 2);
  CHECK(results[1].kind == RunResult::Kind::kSignaled);
  CHECK(results[1].signal == SIGSEGV);
  CHECK_FALSE(results[1].core_dumped);
  CHECK(results[2].kind == RunResult::Kind::kSignaled);
  CHECK(results[2].signal == SIGKILL);
  CHECK(results[2].Summary() == "killed by SIGKILL");
  CHECK_FALSE(results[2].escalated_to_kill);
}

TEST_CASE("argv runs directly - without a shell", "[runner]") {
  StepRunner runner;
  REQUIRE(runner.Start(Argv(1, {"printf", "%s|%s\n", "a b", "$HOME *"}), Clock::now()).ok());
  std::optional<RunResult> r = WaitFor(runner, 1);
  REQUIRE(r);
  CHECK(r->ok());
  CHECK(r->stdout_tail == "a b|$HOME *\n");
  CHECK(r->stdout_bytes == r->stdout_tail.size());
  CHECK_FALSE(r->stdout_truncated);
  CHECK(r->stderr_tail.empty());
}

TEST_CASE("argv[0] is looked up in the step's own PATH", "[runner]") {
  TempDir dir;
  dir.Write("cohort-test-tool", "#!/bin/sh\necho \"tool:$1\"\n", 0755);
  dir.Write("cohort-test-noexec", "#!/bin/sh\necho never\n", 0644);
  StepRunner runner;

  RunRequest found = Argv(1, {"cohort-test-tool", "x"});
  found.env = {{"PATH", "/nonexistent:" + dir.path()}};
  REQUIRE(runner.Start(found, Clock::now()).ok());
  std::optional<RunResult> r = WaitFor(runner, 1);
  REQUIRE(r);
  CHECK(r->ok());
  CHECK(r->stdout_tail == "tool:x\n");

  // The worker's own PATH plays no part: the base PATH lacks the directory.
  REQUIRE(runner.Start(Argv(2, {"cohort-test-tool"}), Clock::now()).ok());
  r = WaitFor(runner, 2);
  REQUIRE(r);
  CHECK(r->kind == RunResult::Kind::kSpawnFailed);
  CHECK_THAT(r->error, Catch::Contains("No such file or directory"));

  RunRequest noexec = Argv(3, {"cohort-test-noexec"});
  noexec.env = {{"PATH", dir.path()}};
  REQUIRE(runner.Start(noexec, Clock::now()).ok());
  r = WaitFor(runner, 3);
  REQUIRE(r);
  CHECK(r->kind == RunResult::Kind::kSpawnFailed);
  CHECK_THAT(r->error, Catch::Contains("Permission denied"));
}

TEST_CASE("a step gets the base environment plus its env - its cwd and /dev/null as stdin", "[runner]") {
  REQUIRE(setenv("COHORT_RUNNER_TEST_LEAK", "leaked", 1) == 0);
  TempDir dir;
  StepRunner runner;
  RunRequest req = Shell(1,
                         "echo \"FOO=$FOO\"; echo \"LANG=$LANG\"; echo \"PATH=$PATH\"; "
                         "echo \"LEAK=${COHORT_RUNNER_TEST_LEAK:-unset}\"; pwd; cat; echo stdin-was-empty");
  req.env = {{"FOO", "one"}, {"LANG", "C"}, {"FOO", "bar"}};
  req.cwd = dir.path();
  REQUIRE(runner.Start(req, Clock::now()).ok());
  std::optional<RunResult> r = WaitFor(runner, 1);
  unsetenv("COHORT_RUNNER_TEST_LEAK");
  REQUIRE(r);
  CHECK(r->ok());
  CHECK(r->stdout_tail == "FOO=bar\nLANG=C\nPATH=/usr/local/bin:/usr/bin:/bin\nLEAK=unset\n" + dir.path() +
                              "\nstdin-was-empty\n");
}

TEST_CASE("the base environment is configurable and is all a step sees", "[runner]") {
  RunnerOptions options;
  options.base_env = {{"ONLY", "this"}};
  StepRunner runner(options);
  // No PATH at all: the lookup falls back to execvp's /bin:/usr/bin.
  REQUIRE(runner.Start(Argv(1, {"env"}), Clock::now()).ok());
  std::optional<RunResult> r = WaitFor(runner, 1);
  REQUIRE(r);
  CHECK(r->ok());
  CHECK(r->stdout_tail == "ONLY=this\n");

  const EnvVars defaults = DefaultBaseEnv();
  REQUIRE(defaults.size() == 3);
  CHECK(defaults[0] == std::pair<std::string, std::string>("PATH", "/usr/local/bin:/usr/bin:/bin"));
  CHECK(defaults[1].first == "HOME");
  CHECK(defaults[2] == std::pair<std::string, std::string>("LANG", "C.UTF-8"));
}

TEST_CASE("a step leads its own session and process group and starts with default signal state", "[runner]") {
  // A worker that ignores SIGPIPE and blocks SIGUSR1 must not pass either on.
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  struct sigaction old_pipe {};
  REQUIRE(sigaction(SIGPIPE, &ignore, &old_pipe) == 0);
  sigset_t usr1, old_mask;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  REQUIRE(pthread_sigmask(SIG_BLOCK, &usr1, &old_mask) == 0);

  StepRunner runner;
  REQUIRE(runner.Start(Shell(1,
                             "read -r pid comm state ppid pgrp session rest < /proc/$$/stat; "
                             "echo \"$pid $ppid $pgrp $session\""),
                       Clock::now())
              .ok());
  // The direct child's own view, with no shell in between to change it.
  REQUIRE(runner.Start(Argv(2, {"grep", "-E", "^Sig(Blk|Ign):", "/proc/self/status"}), Clock::now()).ok());
  REQUIRE(runner.Start(Shell(3, "(yes; echo \"yes exited $?\" >&2) | head -c 10 >/dev/null"), Clock::now()).ok());
  std::map<uint64_t, RunResult> results = WaitForAll(runner);
  sigaction(SIGPIPE, &old_pipe, nullptr);
  pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  REQUIRE(results.size() == 3);
  for (auto& [key, r] : results) CHECK(r.ok());
  const std::string pid = std::to_string(results[1].pid);
  CHECK(results[1].stdout_tail == pid + " " + std::to_string(getpid()) + " " + pid + " " + pid + "\n");
  CHECK(results[2].stdout_tail == "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");
  // Killed by SIGPIPE (128 + 13), not "yes: standard output: Broken pipe".
  CHECK(results[3].stderr_tail == "yes exited 141\n");
}

TEST_CASE("a timeout stops a sleeping step promptly", "[runner]") {
  StepRunner runner;
  RunRequest req = Argv(1, {"sleep", "30"});
  req.timeout = 300ms;
  const Time before = Clock::now();
  REQUIRE(runner.Start(req, before).ok());
  std::optional<RunResult> r = WaitFor(runner, 1);
  const Time after = Clock::now();
  REQUIRE(r);
  INFO(r->Summary());
  CHECK(r->kind == RunResult::Kind::kSignaled);
  CHECK(r->signal == SIGTERM);
  CHECK(r->timed_out);
  CHECK_FALSE(r->cancelled);
  CHECK_FALSE(r->escalated_to_kill);
  const Duration lateness = (r->end - r->start) - 300ms;
  INFO("lateness past the 0.3 s timeout: " << Seconds(lateness) * 1000 << " ms (reported), "
                                           << Seconds(after - before - 300ms) * 1000 << " ms (observed)");
  CHECK(lateness >= Duration::zero());
  CHECK(after - before < 300ms + 1s);
}

TEST_CASE("stopping a shell step kills its background children too", "[runner]") {
  const std::string arg = UniqueSleepArg();
  StepRunner runner(WithGrace(5s));
  REQUIRE(runner.Start(Shell(1, "sleep " + arg + " & echo $!; sleep " + arg + " & echo $!; wait"), Clock::now())
              .ok());
  std::vector<std::string> pids = WaitForLines(runner, 1, 2);
  const pid_t pgid = *runner.PidOf(1);
  REQUIRE(runner.Cancel(1, Clock::now()));
  std::optional<RunResult> r = WaitFor(runner, 1);
  REQUIRE(r);
  INFO(r->Summary());
  CHECK(r->kind == RunResult::Kind::kSignaled);
  CHECK(r->signal == SIGTERM);
  CHECK(r->cancelled);
  CHECK_FALSE(r->escalated_to_kill);
  CHECK_FALSE(GroupExists(pgid));
  for (const std::string& pid : pids) CHECK_FALSE(ProcessExists(std::stoi(pid)));
  CHECK(CountProcessesWithArg(arg) == 0);
}

TEST_CASE("a step is reported only once its lingering background child is gone", "[runner]") {
  SECTION("the lingerer ignores TERM and exits by itself within the grace") {
    StepRunner runner(WithGrace(5s));
    REQUIRE(runner.Start(Shell(1, "trap '' TERM; sleep 0.5 & echo $!; exit 4"), Clock::now()).ok());
    std::optional<RunResult> r = WaitFor(runner, 1);
    REQUIRE(r);
    INFO(r->Summary());
    CHECK(r->kind == RunResult::Kind::kExited);
    CHECK(r->exit_code == 4);
    CHECK(r->end - r->start >= 500ms);
    CHECK_FALSE(r->escalated_to_kill);
    CHECK_FALSE(r->timed_out);
    CHECK_FALSE(ProcessExists(std::stoi(r->stdout_tail)));
  }
  SECTION("the lingerer ignores TERM and is killed after the grace") {
    StepRunner runner(WithGrace(200ms));
    REQUIRE(runner.Start(Shell(1, "trap '' TERM; sleep 30 & echo $!; exit 4"), Clock::now()).ok());
    std::optional<RunResult> r = WaitFor(runner, 1);
    REQUIRE(r);
    INFO(r->Summary());
    CHECK(r->kind == RunResult::Kind::kExited);
    CHECK(r->exit_code == 4);
    CHECK(r->escalated_to_kill);
    CHECK(r->end - r->start >= 200ms);
    CHECK(r->end - r->start < 200ms + 1s);
    CHECK_FALSE(ProcessExists(std::stoi(r->stdout_tail)));
  }
}

TEST_CASE("the subreaper reaps an orphaned grandchild before the step finishes", "[runner]") {
  StepRunner runner(WithGrace(5s));
  CHECK(StepRunner::BecomeSubreaper().ok());
  int subreaper = 0;
  REQUIRE(prctl(PR_GET_CHILD_SUBREAPER, &subreaper, 0, 0, 0) == 0);
  CHECK(subreaper == 1);
  // The subshell exits at once, orphaning the sleep, which the worker adopts.
  REQUIRE(runner.Start(Shell(1, "trap '' TERM; ( sleep 0.3 & echo $! ); exit 0"), Clock::now()).ok());
  std::optional<RunResult> r = WaitFor(runner, 1);
  REQUIRE(r);
  INFO(r->Summary());
  CHECK(r->ok());
  CHECK(r->end - r->start >= 300ms);
  CHECK_FALSE(r->escalated_to_kill);
  // Gone, not a zombie: a zombie keeps its /proc entry.
  CHECK_FALSE(ProcessExists(std::stoi(r->stdout_tail)));
}

TEST_CASE("a stopped step is continued so that it can act on TERM", "[runner]") {
  StepRunner runner(WithGrace(5s));
  REQUIRE(runner.Start(Shell(1, "echo ready; kill -STOP $$; sleep 30"), Clock::now()).ok());
  WaitForLines(runner, 1, 1);
  const Time cancelled_at = Clock::now();
  REQUIRE(runner.Cancel(1, cancelled_at));
  std::optional<RunResult> r = WaitFor(runner, 1);
  REQUIRE(r);
  INFO(r->Summary());
  CHECK(r->kind == RunResult::Kind::kSignaled);
  CHECK(r->signal == SIGTERM);
  CHECK_FALSE(r->escalated_to_kill);
  CHECK(r->end - cancelled_at < 1s);
}

TEST_CASE("a process that escapes with setsid does not hold the step up", "[runner]") {
  // The documented limit: setsid leaves the process group, so stopping the
  // group misses it (systemd's cgroup would not). The step must still finish
  // although the escapee holds its stdout open, and the escapee, orphaned
  // to the worker, must be reaped when it dies.
  const std::string arg = UniqueSleepArg();
  StepRunner runner(WithGrace(5s));
  REQUIRE(runner.Start(Shell(1, "setsid sleep " + arg +
                                    " & p=$!; until readlink /proc/$p/exe | grep -q /sleep$; do :; done; echo $p"),
                       Clock::now())
              .ok());
  std::optional<RunResult> r = WaitFor(runner, 1);
  REQUIRE(r);
  INFO(r->Summary());
  const pid_t escaped = std::stoi(r->stdout_tail);
  struct KillOnExit {
    pid_t pid;
    ~KillOnExit() { kill(pid, SIGKILL); }
  } guard{escaped};
  CHECK(r->ok());
  CHECK(r->end - r->start < 2s);
  CHECK(CountProcessesWithArg(arg) == 1);

  std::ifstream stat("/proc/" + std::to_string(escaped) + "/stat");
  std::string pid, comm, state, ppid;
  stat >> pid >> comm >> state >> ppid;
  CHECK(ppid == std::to_string(getpid()));  // adopted by the subreaper

  // glibc 2.36 declares pidfd_open without extern "C"; the raw syscall links.
  UniqueFd pidfd(static_cast<int>(syscall(SYS_pidfd_open, escaped, 0)));
  REQUIRE(pidfd.valid());
  REQUIRE(kill(escaped, SIGKILL) == 0);
  pollfd exited{pidfd.get(), POLLIN, 0};
  REQUIRE(poll(&exited, 1, static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(kBudget).count())) == 1);
  CHECK(ProcessExists(escaped));  // a zombie until someone reaps it
  std::vector<RunResult> done;
  runner.Process(Clock::now(), &done);
  CHECK(done.empty());
  CHECK_FALSE(ProcessExists(escaped));
}

TEST_CASE("a step that traps TERM is waited for while it cleans up", "[runner]") {
  StepRunner runner(WithGrace(5s));
  REQUIRE(runner.Start(Shell(1, "trap 'echo cleaning; sleep 0.2; exit 7' TERM; sleep 30 & echo ready; wait"),
                       Clock::now())
              .ok());
  WaitForLines(runner, 1, 1);
  const Time cancelled_at = Clock::now();
  REQUIRE(runner.Cancel(1, cancelled_at));
  std::optional<RunResult> r = WaitFor(runner, 1);
  REQUIRE(r);
  INFO(r->Summary());
  CHECK(r->kind == RunResult::Kind::kExited);
  CHECK(r->exit_code == 7);
  CHECK(r->cancelled);
  CHECK_FALSE(r->timed_out);
  CHECK_FALSE(r->escalated_to_kill);
  CHECK(r->stdout_tail == "ready\ncleaning\n");
  CHECK(r->end - cancelled_at >= 200ms);
  CHECK(r->end - cancelled_at < 5s);
}

TEST_CASE("what a cleanup trap leaves behind gets its own TERM when the step exits", "[runner]") {
  StepRunner runner(WithGrace(5s));
  // The trap waits until its sleep has exec'd: before that, the forked shell
  // still has the trap's handler and would swallow a TERM (a race in the
  // shell, not one the runner could close).
  REQUIRE(runner.Start(Shell(1,
                             "trap 'sleep 30 & p=$!; until readlink /proc/$p/exe | grep -q /sleep$; do :; done; "
                             "echo $p; exit 7' TERM; "
                             "sleep 30 & echo ready; wait"),
                       Clock::now())
              .ok());
  WaitForLines(runner, 1, 1);
  const Time cancelled_at = Clock::now();
  REQUIRE(runner.Cancel(1, cancelled_at));
  std::optional<RunResult> r = WaitFor(runner, 1);
  REQUIRE(r);
  INFO(r->Summary());
  CHECK(r->kind == RunResult::Kind::kExited);
  CHECK(r->exit_code == 7);
  CHECK_FALSE(r->escalated_to_kill);
  CHECK(r->end - cancelled_at < 1s);
  REQUIRE(r->stdout_tail.starts_with("ready\n"));
  CHECK_FALSE(ProcessExists(std::stoi(r->stdout_tail.substr(6))));
}

TEST_CASE("a step that ignores TERM is killed after the grace", "[runner]") {
  StepRunner runner(WithGrace(200ms));
  REQUIRE(runner.Start(Shell(1, "trap '' TERM; echo ready; sleep 30"), Clock::now()).ok());
  WaitForLines(runner, 1, 1);
  const Time cancelled_at = Clock::now();
  REQUIRE(runner.Cancel(1, cancelled_at));
  CHECK(runner.NextDeadline() == cancelled_at + 200ms);
  std::optional<RunResult> r = WaitFor(runner, 1);
  REQUIRE(r);
  INFO(r->Summary());
  CHECK(r->kind == RunResult::Kind::kSignaled);
  CHECK(r->signal == SIGKILL);
  CHECK(r->cancelled);
  CHECK(r->escalated_to_kill);
  CHECK(r->Summary() == "killed by SIGKILL after cancel (escalated to SIGKILL)");
  CHECK(r->end - cancelled_at >= 200ms);
  CHECK(r->end - cancelled_at < 200ms + 1s);
}

TEST_CASE("100 MB of output keeps only the tail - counts every byte and finishes", "[runner]") {
  StepRunner runner;
  REQUIRE(runner.Start(Shell(1, "yes | head -c 100000000; echo done >&2"), Clock::now()).ok());
  std::optional<RunResult> r = WaitFor(runner, 1);
  REQUIRE(r);
  INFO(r->Summary() << " in " << Seconds(r->end - r->start) << " s");
  CHECK(r->ok());
  CHECK(r->stdout_bytes == 100000000);
  CHECK(r->stdout_truncated);
  REQUIRE(r->stdout_tail.size() == 64 * 1024);
  std::string expected;
  for (size_t i = 0; i < 32 * 1024; ++i) expected += "y\n";
  CHECK(r->stdout_tail == expected);
  CHECK(r->stderr_tail == "done\n");
  CHECK_FALSE(r->stderr_truncated);
}

TEST_CASE("a small tail keeps the last bytes in order", "[runner]") {
  RunnerOptions options;
  options.tail_bytes = 10;
  StepRunner runner(options);
  REQUIRE(runner.Start(Shell(1, "seq 1 1000"), Clock::now()).ok());
  std::optional<RunResult> r = WaitFor(runner, 1);
  REQUIRE(r);
  CHECK(r->stdout_tail == "\n999\n1000\n");
  CHECK(r->stdout_bytes == 3893);
  CHECK(r->stdout_truncated);
}

TEST_CASE("steps that cannot start are failed attempts with a clear message", "[runner]") {
  StepRunner runner;
  const Time now = Clock::now();
  REQUIRE(runner.Start(Argv(1, {"cohort-no-such-command"}), now).ok());
  RunRequest bad_cwd = Argv(2, {"true"});
  bad_cwd.cwd = "/nonexistent/cohort-dir";
  REQUIRE(runner.Start(bad_cwd, now).ok());
  REQUIRE(runner.Start(Argv(3, {"/etc/passwd"}), now).ok());
  REQUIRE(runner.Start(Argv(4, {"/"}), now).ok());
  CHECK(runner.running() == 0);
  CHECK(runner.NextDeadline() == now);

  std::map<uint64_t, RunResult> results = WaitForAll(runner);
  REQUIRE(results.size() == 4);
  for (auto& [key, r] : results) {
    INFO(key << ": " << r.error);
    CHECK(r.kind == RunResult::Kind::kSpawnFailed);
    CHECK(r.pid == 0);
    CHECK(r.start == now);
  }
  CHECK_THAT(results[1].error,
             Catch::StartsWith("cannot start \"cohort-no-such-command\": No such file or directory"));
  CHECK(results[2].error ==
        "cannot start \"true\": cannot change directory to \"/nonexistent/cohort-dir\": No such file or directory");
  CHECK(results[3].error == "cannot start \"/etc/passwd\": Permission denied");
  CHECK(results[4].error == "cannot start \"/\": Permission denied");
  CHECK(results[1].Summary() == "failed to start: " + results[1].error);
}

TEST_CASE("invalid requests are refused by Start", "[runner]") {
  StepRunner runner(WithGrace(100ms));
  const Time now = Clock::now();
  using Code = common::Status::Code;
  CHECK(runner.Start(RunRequest{}, now).code() == Code::kInvalidArgument);
  RunRequest both = Shell(1, "true");
  both.argv = {"true"};
  CHECK(runner.Start(both, now).code() == Code::kInvalidArgument);
  CHECK(runner.Start(Argv(1, {""}), now).code() == Code::kInvalidArgument);
  CHECK(runner.Start(Argv(1, {"echo", std::string("a\0b", 3)}), now).code() == Code::kInvalidArgument);
  RunRequest bad_env = Argv(1, {"true"});
  bad_env.env = {{"A=B", "c"}};
  common::Status s = runner.Start(bad_env, now);
  CHECK(s.code() == Code::kInvalidArgument);
  CHECK_THAT(s.message(), Catch::Contains("A=B"));
  CHECK(runner.idle());

  RunRequest forever = Argv(7, {"sleep", "30"});
  forever.timeout = Duration::max();  // clamped, not an overflow
  REQUIRE(runner.Start(forever, now).ok());
  CHECK(runner.NextDeadline() > now + std::chrono::hours(24 * 365));
  s = runner.Start(Argv(7, {"true"}), now);
  CHECK(s.code() == Code::kInvalidArgument);
  CHECK_THAT(s.message(), Catch::Contains("step 7"));
  CHECK(runner.Running(7));
  CHECK_FALSE(runner.Cancel(8, now));
  REQUIRE(runner.Cancel(7, Clock::now()));
  REQUIRE(WaitFor(runner, 7));
  CHECK_FALSE(runner.Running(7));
}

TEST_CASE("the event-loop contract: descriptors and deadlines", "[runner]") {
  StepRunner runner(WithGrace(3s));
  std::vector<PollFd> fds;
  runner.PollFds(&fds);
  CHECK(fds.empty());
  CHECK_FALSE(runner.NextDeadline());

  const Time now = Clock::now();
  RunRequest req = Argv(1, {"sleep", "30"});
  req.timeout = 10s;
  REQUIRE(runner.Start(req, now).ok());
  CHECK(runner.NextDeadline() == now + 10s);
  runner.PollFds(&fds);
  REQUIRE(fds.size() == 3);  // pidfd, stdout, stderr
  for (const PollFd& p : fds) CHECK(p.events == POLLIN);

  const Time cancel_at = Clock::now();
  REQUIRE(runner.Cancel(1, cancel_at));
  CHECK(runner.NextDeadline() == cancel_at + 3s);
  std::optional<RunResult> r = WaitFor(runner, 1);
  REQUIRE(r);
  CHECK(r->cancelled);
  CHECK_FALSE(r->timed_out);
  runner.PollFds(&fds);
  CHECK(fds.empty());
  CHECK_FALSE(runner.NextDeadline());
}

TEST_CASE("CancelAll stops every running step gracefully", "[runner]") {
  StepRunner runner(WithGrace(3s));
  REQUIRE(runner.Start(Argv(1, {"sleep", "30"}), Clock::now()).ok());
  REQUIRE(runner.Start(Shell(2, "sleep 30 & wait"), Clock::now()).ok());
  CHECK(runner.CancelAll(Clock::now()) == 2);
  std::map<uint64_t, RunResult> results = WaitForAll(runner);
  REQUIRE(results.size() == 2);
  for (auto& [key, r] : results) {
    INFO(key << ": " << r.Summary());
    CHECK(r.cancelled);
    CHECK(r.signal == SIGTERM);
    CHECK_FALSE(r.escalated_to_kill);
  }
}

TEST_CASE("64 concurrent steps with output leak no descriptors", "[runner]") {
  constexpr int kSteps = 64;
  uint64_t expected_bytes = 0;
  for (int i = 1; i <= 20000; ++i) expected_bytes += std::to_string(i).size() + 1;

  const int before = CountOpenFds();
  {
    StepRunner runner;
    const int with_runner = CountOpenFds();
    for (int i = 0; i < kSteps; ++i) {
      REQUIRE(runner.Start(Shell(static_cast<uint64_t>(i), "seq 1 20000; echo \"err $$\" >&2"), Clock::now()).ok());
    }
    CHECK(runner.running() == kSteps);
    std::map<uint64_t, RunResult> results = WaitForAll(runner);
    REQUIRE(results.size() == kSteps);
    for (auto& [key, r] : results) {
      INFO("step " << key << ": " << r.Summary());
      CHECK(r.ok());
      CHECK(r.stdout_bytes == expected_bytes);
      CHECK(r.stdout_tail.size() == 64 * 1024);
      CHECK(r.stderr_tail == "err " + std::to_string(r.pid) + "\n");
    }
    // The runner keeps /dev/null open between steps and nothing else.
    CHECK(CountOpenFds() <= with_runner + 1);
  }
  CHECK(CountOpenFds() == before);
}

TEST_CASE("the destructor kills and reaps every leftover step", "[runner]") {
  const std::string arg = UniqueSleepArg();
  std::vector<pid_t> pids;
  {
    StepRunner runner(WithGrace(5s));
    REQUIRE(runner.Start(Shell(1, "trap '' TERM; sleep " + arg + " & echo $!; sleep " + arg + " & echo $!; wait"),
                         Clock::now())
                .ok());
    REQUIRE(runner.Start(Argv(2, {"sleep", arg}), Clock::now()).ok());
    for (const std::string& pid : WaitForLines(runner, 1, 2)) pids.push_back(std::stoi(pid));
    pids.push_back(*runner.PidOf(1));
    pids.push_back(*runner.PidOf(2));
    for (pid_t pid : pids) REQUIRE(ProcessExists(pid));
  }
  for (pid_t pid : pids) CHECK_FALSE(ProcessExists(pid));
  CHECK_FALSE(GroupExists(pids[2]));
  CHECK_FALSE(GroupExists(pids[3]));
  CHECK(CountProcessesWithArg(arg) == 0);
}

}  // namespace
}  // namespace cohort::worker
