#include "worker/step_runner.h"

#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <string_view>
#include <system_error>
#include <utility>

#include "worker/output_tail.h"
#include "worker/spawn.h"
#include "worker/spawn_child.h"
#include "worker/unique_fd.h"

namespace cohort::worker {
namespace {

using common::Clock;
using common::Duration;
using common::Status;
using common::Time;
using namespace std::chrono_literals;

// P_PIDFD (Linux 5.4) is not in glibc 2.36's idtype_t yet.
constexpr idtype_t kIdPidfd = static_cast<idtype_t>(3);
// How often a step whose direct child is gone looks at its process group:
// the death of an orphaned member raises no event the runner could poll.
constexpr Duration kGroupPollInterval = 10ms;
// A pipe's default capacity, so one read usually empties it.
constexpr size_t kReadChunk = 64 * 1024;
// Per descriptor and Process() call, so that a step printing as fast as it
// can does not starve the other steps or the caller's sockets.
constexpr int kMaxReadsPerCall = 16;
constexpr Duration kDestructorWait = 2s;
constexpr Duration kDestructorPoll = 5ms;

// Durations come from the caller (a spec's timeout, the config's grace);
// clamped like common::SecondsToDuration so `now + d` cannot overflow.
Time After(Time now, Duration d) {
  constexpr Duration kLongest = std::chrono::hours(24 * 365 * 100);
  return now + std::clamp(d, Duration::zero(), kLongest);
}

// kill(-pgid, 0) also succeeds while a member is an unreaped zombie, so
// callers reap first; ESRCH then means the whole tree is gone.
bool GroupEmpty(pid_t pgid) { return kill(-pgid, 0) != 0 && errno == ESRCH; }

timespec ToTimespec(Duration d) {
  if (d < Duration::zero()) d = Duration::zero();
  auto secs = std::chrono::duration_cast<std::chrono::seconds>(d);
  auto nanos = std::chrono::duration_cast<std::chrono::nanoseconds>(d - secs);
  return timespec{static_cast<time_t>(secs.count()), static_cast<long>(nanos.count())};
}

// Reads what is there without blocking, into the tail. Closes the fd at EOF
// (or on a read error, which a pipe only reports when something is badly
// wrong). A short read means the pipe was empty a moment ago, which saves
// the EAGAIN round trip, except when `drain` asks for everything now.
void ReadStream(UniqueFd* fd, OutputTail* tail, std::vector<char>* buffer, bool drain) {
  for (int i = 0; i < kMaxReadsPerCall && fd->valid(); ++i) {
    ssize_t n = read(fd->get(), buffer->data(), buffer->size());
    if (n > 0) {
      tail->Append(std::string_view(buffer->data(), static_cast<size_t>(n)));
      if (!drain && static_cast<size_t>(n) < buffer->size()) return;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    fd->Reset();
  }
}

}  // namespace

struct StepRunner::Step {
  explicit Step(size_t tail_bytes) : out_tail(tail_bytes), err_tail(tail_bytes) {}

  uint64_t key = 0;
  pid_t pid = 0;  // the direct child: the process group id, or the namespace's init
  pid_t step_pid = 0;  // the step's main process, as reported
  bool isolated = false;  // in a PID namespace of its own
  UniqueFd pidfd;
  UniqueFd status;  // the init's reports, when isolated
  UniqueFd out;
  UniqueFd err;
  OutputTail out_tail;
  OutputTail err_tail;
  Time start{};
  std::optional<Time> timeout_at;

  bool reaped = false;  // the main process's status is known
  bool direct_reaped = false;  // the direct child has been waited for
  RunResult::Kind kind = RunResult::Kind::kLost;
  int exit_code = -1;
  int signal = 0;
  bool core_dumped = false;

  bool term_sent = false;
  bool termed_after_exit = false;  // TERM sent once the direct child was reaped
  bool kill_sent = false;
  bool timed_out = false;
  bool cancelled = false;
  Time kill_at{};
  Time give_up_at{};
  Time next_group_check{};
  std::string error;
};

StepRunner::StepRunner(RunnerOptions options)
    : options_(std::move(options)), spawner_(std::make_unique<Spawner>()), read_buffer_(kReadChunk) {
  // Best effort here; BecomeSubreaper() is public so main() can report.
  BecomeSubreaper().IgnoreError();
}

StepRunner::~StepRunner() {
  for (auto& [key, step] : steps_) {
    if (!Gone(*step)) Signal(*step, SIGKILL);
  }
  const Time limit = Clock::now() + kDestructorWait;
  std::vector<pollfd> fds;
  while (true) {
    ReapAll();
    bool done = true;
    fds.clear();
    for (auto& [key, step] : steps_) {
      if (!step->direct_reaped) {
        done = false;
        fds.push_back(pollfd{step->pidfd.get(), POLLIN, 0});
      } else if (!Gone(*step)) {
        done = false;
        Signal(*step, SIGKILL);  // members forked before the first kill landed
      }
    }
    // Past the limit only processes in uninterruptible sleep are left, and a
    // destructor must return; they die when their I/O does.
    if (done || Clock::now() >= limit) break;
    timespec wait = ToTimespec(kDestructorPoll);
    ppoll(fds.data(), fds.size(), &wait, nullptr);
  }
}

Status StepRunner::BecomeSubreaper() {
  if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0) {
    return Status::IoError("prctl(PR_SET_CHILD_SUBREAPER): " +
                           std::error_code(errno, std::generic_category()).message());
  }
  return Status::Ok();
}

Status StepRunner::Start(const RunRequest& request, Time now) {
  const bool pending = std::any_of(pending_.begin(), pending_.end(),
                                   [&](const RunResult& r) { return r.key == request.key; });
  if (pending || steps_.count(request.key) != 0) {
    return Status::InvalidArgument("step " + std::to_string(request.key) +
                                   ": an attempt with this key has not finished");
  }
  if (Status s = ValidateRequest(request, options_); !s.ok()) return s;

  SpawnedChild child;
  std::string step_error;
  if (Status s = spawner_->Spawn(request, options_, &child, &step_error); !s.ok()) return s;
  if (!step_error.empty()) {
    RunResult result;
    result.key = request.key;
    result.kind = RunResult::Kind::kSpawnFailed;
    result.start = now;
    result.end = now;
    result.error = std::move(step_error);
    pending_.push_back(std::move(result));
    return Status::Ok();
  }

  auto step = std::make_unique<Step>(options_.tail_bytes);
  step->key = request.key;
  step->pid = child.pid;
  step->step_pid = child.step_pid;
  step->isolated = child.status_read.valid();
  step->status = std::move(child.status_read);
  step->pidfd = std::move(child.pidfd);
  step->out = std::move(child.stdout_read);
  step->err = std::move(child.stderr_read);
  step->start = now;
  if (request.timeout) step->timeout_at = After(now, *request.timeout);
  by_pid_[step->pid] = step.get();
  steps_.emplace(request.key, std::move(step));
  return Status::Ok();
}

bool StepRunner::Cancel(uint64_t key, Time now) {
  auto it = steps_.find(key);
  if (it == steps_.end()) return false;
  Step& step = *it->second;
  step.cancelled = true;
  if (!step.term_sent) Terminate(step, now);
  return true;
}

size_t StepRunner::CancelAll(Time now) {
  for (auto& [key, step] : steps_) {
    step->cancelled = true;
    if (!step->term_sent) Terminate(*step, now);
  }
  return steps_.size();
}

bool StepRunner::Running(uint64_t key) const { return steps_.count(key) != 0; }

std::optional<pid_t> StepRunner::PidOf(uint64_t key) const {
  auto it = steps_.find(key);
  if (it == steps_.end()) return std::nullopt;
  return it->second->step_pid;
}

bool StepRunner::PeekOutput(uint64_t key, std::string* stdout_tail, std::string* stderr_tail) const {
  auto it = steps_.find(key);
  if (it == steps_.end()) return false;
  if (stdout_tail != nullptr) *stdout_tail = it->second->out_tail.Contents();
  if (stderr_tail != nullptr) *stderr_tail = it->second->err_tail.Contents();
  return true;
}

void StepRunner::PollFds(std::vector<PollFd>* fds) const {
  fds->clear();
  for (const auto& [key, step] : steps_) {
    for (const UniqueFd* fd : {&step->pidfd, &step->status, &step->out, &step->err}) {
      if (fd->valid()) fds->push_back(PollFd{fd->get(), POLLIN});
    }
  }
}

std::optional<Time> StepRunner::NextDeadline() const {
  std::optional<Time> next;
  auto consider = [&next](Time t) {
    if (!next || t < *next) next = t;
  };
  for (const RunResult& r : pending_) consider(r.end);
  for (const auto& [key, step] : steps_) {
    if (!step->reaped && !step->term_sent && step->timeout_at) consider(*step->timeout_at);
    if (step->term_sent && !step->kill_sent) consider(step->kill_at);
    if (step->reaped) {
      consider(step->next_group_check);
      if (step->kill_sent) consider(step->give_up_at);
    }
  }
  return next;
}

void StepRunner::Process(Time now, std::vector<RunResult>* finished) {
  for (RunResult& r : pending_) finished->push_back(std::move(r));
  pending_.clear();

  // Poll our own descriptors again, with no wait, rather than make the
  // caller hand back its poll results: one syscall instead of a read attempt
  // on every pipe.
  enum class Source { kPidfd, kStatus, kStdout, kStderr };
  std::vector<pollfd> fds;
  std::vector<std::pair<Step*, Source>> owners;
  for (auto& [key, step] : steps_) {
    if (step->pidfd.valid()) {
      fds.push_back(pollfd{step->pidfd.get(), POLLIN, 0});
      owners.emplace_back(step.get(), Source::kPidfd);
    }
    if (step->status.valid()) {
      fds.push_back(pollfd{step->status.get(), POLLIN, 0});
      owners.emplace_back(step.get(), Source::kStatus);
    }
    if (step->out.valid()) {
      fds.push_back(pollfd{step->out.get(), POLLIN, 0});
      owners.emplace_back(step.get(), Source::kStdout);
    }
    if (step->err.valid()) {
      fds.push_back(pollfd{step->err.get(), POLLIN, 0});
      owners.emplace_back(step.get(), Source::kStderr);
    }
  }
  if (!fds.empty() && poll(fds.data(), fds.size(), 0) > 0) {
    for (size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      auto [step, source] = owners[i];
      switch (source) {
        case Source::kPidfd:
          ReapStep(*step);
          break;
        case Source::kStatus:
          ReadStatus(*step);
          break;
        case Source::kStdout:
          ReadStream(&step->out, &step->out_tail, &read_buffer_, false);
          break;
        case Source::kStderr:
          ReadStream(&step->err, &step->err_tail, &read_buffer_, false);
          break;
      }
    }
  }

  // Orphans adopted as subreaper, and direct children whose pidfd became
  // readable after the poll above.
  ReapAll();

  for (auto it = steps_.begin(); it != steps_.end();) {
    if (Advance(*it->second, now, finished)) {
      it = steps_.erase(it);
    } else {
      ++it;
    }
  }
}

void StepRunner::PollOnce(Time limit, std::vector<RunResult>* finished) {
  std::vector<PollFd> mine;
  PollFds(&mine);
  std::vector<pollfd> fds;
  fds.reserve(mine.size());
  for (const PollFd& p : mine) fds.push_back(pollfd{p.fd, p.events, 0});
  Time wake = limit;
  if (std::optional<Time> deadline = NextDeadline(); deadline && *deadline < wake) wake = *deadline;
  // ppoll rather than poll: a millisecond timeout would round a deadline
  // 0.4 ms away down to a busy loop.
  timespec wait = ToTimespec(wake - Clock::now());
  ppoll(fds.data(), fds.size(), &wait, nullptr);
  Process(Clock::now(), finished);
}

bool StepRunner::RunUntilIdle(Time limit, std::vector<RunResult>* finished) {
  while (!idle()) {
    if (Clock::now() >= limit) return false;
    PollOnce(limit, finished);
  }
  return true;
}

void StepRunner::ReapStep(Step& step) {
  siginfo_t info{};
  int rc;
  do {
    rc = waitid(kIdPidfd, static_cast<id_t>(step.pidfd.get()), &info, WEXITED | WNOHANG);
  } while (rc != 0 && errno == EINTR);
  if (rc == 0) {
    if (info.si_pid != 0) RecordExit(step, info.si_code, info.si_status);
    return;
  }
  if (errno == ECHILD) {
    // Someone broke the one-reaper contract. Without this the pidfd would
    // stay readable and spin the caller's loop forever.
    if (step.isolated) ReadStatus(step);
    if (!step.reaped) {
      step.reaped = true;
      step.kind = RunResult::Kind::kLost;
      step.error = "exit status lost: the child was reaped outside the runner";
    }
    step.direct_reaped = true;
    step.pidfd.Reset();
    by_pid_.erase(step.pid);
  }
}

void StepRunner::ReapAll() {
  // waitid(P_ALL) routes each status by pid, so a direct child reaped here
  // still reaches its step; anything unknown is an orphan and only needs
  // reaping. Children with a non-SIGCHLD exit signal (a sanitizer's helper
  // threads) are not matched without __WALL and stay with their owner.
  while (true) {
    siginfo_t info{};
    if (waitid(P_ALL, 0, &info, WEXITED | WNOHANG) != 0) {
      if (errno == EINTR) continue;
      return;  // ECHILD: no children at all
    }
    if (info.si_pid == 0) return;
    auto it = by_pid_.find(info.si_pid);
    if (it != by_pid_.end()) RecordExit(*it->second, info.si_code, info.si_status);
  }
}

void StepRunner::RecordExit(Step& step, int code, int status) {
  step.direct_reaped = true;
  step.pidfd.Reset();
  by_pid_.erase(step.pid);
  if (step.isolated) {
    // The init: its own status says nothing. It reports the step's end
    // before it exits, unless it was killed, and then the kernel killed the
    // step along with the rest of the namespace.
    ReadStatus(step);
    if (!step.reaped) RecordStepEnd(step, CLD_KILLED, SIGKILL);
    return;
  }
  RecordStepEnd(step, code, status);
}

void StepRunner::RecordStepEnd(Step& step, int code, int status) {
  step.reaped = true;
  if (code == CLD_EXITED) {
    step.kind = RunResult::Kind::kExited;
    step.exit_code = status;
  } else {
    step.kind = RunResult::Kind::kSignaled;
    step.signal = status;
    step.core_dumped = code == CLD_DUMPED;
  }
}

void StepRunner::ReadStatus(Step& step) {
  while (step.status.valid()) {
    spawn_internal::InitReport report;
    ssize_t n = read(step.status.get(), &report, sizeof report);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    // Records are written whole (less than PIPE_BUF); anything else is the
    // end of the pipe.
    if (n != static_cast<ssize_t>(sizeof report)) {
      step.status.Reset();
      return;
    }
    if (report.kind == spawn_internal::InitReport::kEnded && !step.reaped) RecordStepEnd(step, report.a, report.b);
  }
}

void StepRunner::Signal(const Step& step, int sig) {
  // The init forwards what it is sent to every process of its namespace;
  // SIGKILL kills the init itself, and the kernel the rest.
  if (step.isolated) {
    kill(step.pid, sig);
  } else {
    kill(-step.pid, sig);
  }
}

bool StepRunner::Gone(const Step& step) const {
  if (step.isolated) return step.direct_reaped;
  return step.direct_reaped && GroupEmpty(step.pid);
}

void StepRunner::Terminate(Step& step, Time now) {
  Signal(step, SIGTERM);
  // A stopped process would hold SIGTERM pending forever; systemd sends
  // SIGCONT after SIGTERM for the same reason.
  Signal(step, SIGCONT);
  step.term_sent = true;
  step.kill_at = After(now, options_.kill_grace);
}

bool StepRunner::Advance(Step& step, Time now, std::vector<RunResult>* finished) {
  // Done first, so that a step whose last process exited just before its
  // kill deadline is not reported as escalated.
  if (step.reaped && Gone(step)) {
    finished->push_back(Finish(step, now));
    return true;
  }
  if (!step.reaped && !step.term_sent && step.timeout_at && now >= *step.timeout_at) {
    step.timed_out = true;
    Terminate(step, now);
  }
  if (step.term_sent && !step.kill_sent && now >= step.kill_at) {
    Signal(step, SIGKILL);
    step.kill_sent = true;
    step.give_up_at = After(now, options_.give_up_after_kill);
  }
  if (!step.reaped) return false;

  if (!step.term_sent) {
    // The direct child is done but left members of its group running, e.g.
    // `daemon &`. Like systemd's control-group stop: TERM, then KILL after
    // the grace; the result stays the direct child's.
    Terminate(step, now);
    step.termed_after_exit = true;
  } else if (!step.termed_after_exit) {
    // Stopping began while the direct child lived, and members it started
    // since (a cleanup trap's background work) never saw that TERM. One more
    // for them, on the deadline already running.
    if (!step.kill_sent) {
      Signal(step, SIGTERM);
      Signal(step, SIGCONT);
    }
    step.termed_after_exit = true;
  }
  if (step.kill_sent && now >= step.give_up_at) {
    step.error = step.isolated
                     ? "the init of its PID namespace (pid " + std::to_string(step.pid) +
                           ") had not exited after SIGKILL (a process stuck in uninterruptible sleep); reported anyway"
                     : "process group " + std::to_string(step.pid) +
                           " still had members after SIGKILL (stuck in uninterruptible sleep, or a zombie whose "
                           "parent left the group); reported anyway";
    finished->push_back(Finish(step, now));
    return true;
  }
  step.next_group_check = now + kGroupPollInterval;
  return false;
}

RunResult StepRunner::Finish(Step& step, Time now) {
  // Every writer in the group is gone, so what is in the pipes is all there
  // is, unless a process escaped the group (setsid) and holds a write end:
  // then take what is there and do not wait for an EOF that may never come.
  ReadStream(&step.out, &step.out_tail, &read_buffer_, true);
  ReadStream(&step.err, &step.err_tail, &read_buffer_, true);
  step.out.Reset();
  step.err.Reset();
  step.status.Reset();

  RunResult result;
  result.key = step.key;
  result.kind = step.kind;
  result.exit_code = step.exit_code;
  result.signal = step.signal;
  result.core_dumped = step.core_dumped;
  result.timed_out = step.timed_out;
  result.cancelled = step.cancelled;
  result.escalated_to_kill = step.kill_sent;
  result.pid = step.step_pid;
  result.start = step.start;
  result.end = now;
  result.stdout_tail = step.out_tail.Contents();
  result.stderr_tail = step.err_tail.Contents();
  result.stdout_bytes = step.out_tail.total_bytes();
  result.stderr_bytes = step.err_tail.total_bytes();
  result.stdout_truncated = step.out_tail.truncated();
  result.stderr_truncated = step.err_tail.truncated();
  result.error = std::move(step.error);
  return result;
}

}  // namespace cohort::worker
