// A daemon's state directory: where it is by default, creating it, and the
// lock that makes it one process's at a time.
//
// The coordinator keeps its store there; a worker keeps the record of what
// it started. Both take STATE_DIR/lock with flock(2) for as long as they run,
// so a second daemon given the same directory refuses to start (naming the
// holder's pid) instead of sharing what is only ever one process's. The
// kernel drops the lock however the holder exits: a crash never leaves it
// held.
//
// Thread contract: plain functions and a move-only owner of the lock's file
// descriptor; no shared state.
#ifndef COHORT_COMMON_STATE_DIR_H_
#define COHORT_COMMON_STATE_DIR_H_

#include <string>

#include "common/status.h"

namespace cohort::common {

// The directory `leaf` when none is given: systemd's StateDirectory= when it
// set one (the first, if it listed several), /var/lib/LEAF for root,
// $XDG_STATE_HOME/LEAF or ~/.local/state/LEAF otherwise, creating the XDG
// parents (0700) as XDG asks. "" when no home is known.
std::string DefaultStateDir(const std::string& leaf);

// Creates `dir` (mode 0700) when missing; its parent must exist. `program`
// names the daemon in the error ("writable by cohort-worker").
// FailedPrecondition when it cannot be made or is no directory.
Status MakeStateDir(const std::string& dir, const std::string& program);

// Whether MakeStateDir and StateDirLock::Take could succeed on `dir`, without
// creating or locking anything (for --check-config): the directory, or the
// nearest of its parents that exists, is a directory this process may
// write, and an existing lock file may be opened. A lock held by a running
// daemon is not an error here. FailedPrecondition naming what is wrong.
Status CheckStateDir(const std::string& dir, const std::string& program);

class StateDirLock {
 public:
  StateDirLock() = default;
  ~StateDirLock();
  StateDirLock(StateDirLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  StateDirLock& operator=(StateDirLock&& other) noexcept;
  StateDirLock(const StateDirLock&) = delete;
  StateDirLock& operator=(const StateDirLock&) = delete;

  // Takes DIR/lock exclusively and writes our pid in it. FailedPrecondition,
  // naming the holder's pid, when another process holds it, and when the
  // lock file cannot be opened.
  static Status Take(const std::string& dir, const std::string& program, StateDirLock* out);

  bool held() const { return fd_ >= 0; }
  // Drops the lock now (a store closes its files first).
  void Release();

 private:
  int fd_ = -1;
};

}  // namespace cohort::common

#endif  // COHORT_COMMON_STATE_DIR_H_
