// Leftovers are the processes a previous life of this worker left behind:
// those whose environment holds kLifeEnv=<the token that life recorded in the
// worker's state directory> (worker/life_record.h). The token is random per
// life, so the match is exact: nothing another worker started, under any
// name, from any install, is ever touched.
//
// Only processes of this user are looked at (of any user for a root worker,
// whose steps run as its --run-as user).
//
// Thread contract: plain functions; call once at start, before any step runs.
#ifndef COHORT_WORKER_LEFTOVERS_H_
#define COHORT_WORKER_LEFTOVERS_H_

#include <string>

#include "worker/run_types.h"  // kLifeEnv

namespace cohort::worker {

// SIGKILLs the processes found under `proc_root` that carry `life` as their
// kLifeEnv, until a scan finds none (a leftover may fork while it is being
// looked for), at most a few rounds. Returns how many processes it killed;
// none for an empty `life`.
int KillLeftovers(const std::string& life, const std::string& proc_root = "/proc");

}  // namespace cohort::worker

#endif  // COHORT_WORKER_LEFTOVERS_H_
