// Leftovers are the processes a previous life of this worker left behind.
// A SIGKILLed worker takes its steps' direct children along (their
// PR_SET_PDEATHSIG), but not their descendants: without a systemd cgroup to
// clean up, a step's `sleep 3600 &` would run on, reparented to init, after
// its group was retried elsewhere or cancelled. Every step carries its
// worker's name in kWorkerEnv, so a worker starting under the same name finds
// them in /proc and kills them before it registers.
//
// Only processes of this user are touched (of any user for a root worker,
// whose steps run as its --run-as user), and never one that descends from a
// live cohort-worker (same executable): a second worker started by mistake
// under a name in use does not kill the first one's steps.
//
// Thread contract: plain functions; call once at start, before any step runs.
#ifndef COHORT_WORKER_LEFTOVERS_H_
#define COHORT_WORKER_LEFTOVERS_H_

#include <string>

#include "worker/run_types.h"  // kWorkerEnv

namespace cohort::worker {

// SIGKILLs the leftovers of worker `name` found under `proc_root`, until a
// scan finds none (a leftover may fork while it is being looked for), at
// most a few rounds. Returns how many processes it killed.
int KillLeftovers(const std::string& name, const std::string& proc_root = "/proc");

}  // namespace cohort::worker

#endif  // COHORT_WORKER_LEFTOVERS_H_
