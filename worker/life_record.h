// LifeRecord is a worker's state directory and what the worker keeps there:
// the token of its current life, so that the next life knows exactly which
// processes were its own.
//
// A SIGKILLed worker takes its steps' shells along (PR_SET_PDEATHSIG) but not
// their descendants: without a systemd cgroup to clean up, a step's
// `sleep 3600 &` runs on, reparented to init. Every step carries its life's
// token in kLifeEnv; the next life of the worker on the same directory reads
// the token recorded there and kills exactly the processes that carry it
// (KillLeftovers). A worker on another directory (another install, another
// cluster, a test beside a service) has other tokens and is never touched,
// whatever its name. The directory is locked while its worker runs: a second
// worker given it refuses to start.
//
// What escapes: a step that clears its environment (env -i) or rewrites
// kLifeEnv, and steps of a worker older than the record. The unit's
// KillMode=control-group covers those under systemd.
//
// Thread contract: owned by main, used once at start before any step runs;
// the lock lives as long as the object.
#ifndef COHORT_WORKER_LIFE_RECORD_H_
#define COHORT_WORKER_LIFE_RECORD_H_

#include <string>

#include "common/state_dir.h"
#include "common/status.h"

namespace cohort::worker {

class LifeRecord {
 public:
  // Creates `dir` (0700) if missing, locks it, and reads the token the
  // previous life recorded. FailedPrecondition when another worker holds it.
  static common::Status Open(const std::string& dir, LifeRecord* out);

  // The previous life's token; "" when none was recorded (a new directory).
  const std::string& previous() const { return previous_; }

  // Chooses this life's token and records it durably (written to a new
  // file, synced, renamed over the old one). Call it after the previous
  // life's leftovers are dead: until then the old token must stay recorded,
  // so that a crash in between still finds them next time.
  common::Status Begin(std::string* token);

  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  common::StateDirLock lock_;
  std::string previous_;
};

}  // namespace cohort::worker

#endif  // COHORT_WORKER_LIFE_RECORD_H_
