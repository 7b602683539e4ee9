// WorkerGrant is what the operator allows one worker key to be, stated in the
// metadata section of its file in the workers' allowlist, next to the public
// key:
//
//   metadata
//       worker-name = "node7"  the worker name it registers as (default: the
//                              file's NAME, as the key is known everywhere)
//       max-slots = "16"       the most slots it may offer (default 256)
//       labels = "gpu, ssd"    the labels (agents) it may offer (default none)
//
// `cohort keygen` writes a `name` too: that is what the key's holder called
// it, not what the operator grants, so it decides nothing here.
//   curve
//       public-key = "..."
//
// A key can then only take steps meant for what the operator made it: a
// stolen key cannot claim every label, billions of slots, or another
// worker's name. The checks are pure functions of the grant and a REGISTER.
//
// Thread contract: plain values and functions.
#ifndef COHORT_COORDINATOR_WORKER_GRANT_H_
#define COHORT_COORDINATOR_WORKER_GRANT_H_

#include <cstdint>
#include <set>
#include <string>

#include "common/curve_keys.h"
#include "common/messages.h"
#include "common/status.h"

namespace cohort::coordinator {

// Slots a key may offer when its entry does not say: a large node's worth,
// not the four billion a REGISTER can carry.
inline constexpr uint32_t kDefaultGrantSlots = 256;

struct WorkerGrant {
  std::string name;
  uint32_t max_slots = kDefaultGrantSlots;
  std::set<std::string> labels;
};

// The grant an allowlist entry states; InvalidArgument naming the file and
// the field when a value is malformed (the key is then left out).
common::Status ParseWorkerGrant(const common::AllowlistEntry& entry, WorkerGrant* out);

// Whether `reg` stays within `grant`: FailedPrecondition with the reason (the
// field, what was claimed, what is granted) if not.
common::Status CheckRegistration(const WorkerGrant& grant, const common::RegisterMsg& reg);

}  // namespace cohort::coordinator

#endif  // COHORT_COORDINATOR_WORKER_GRANT_H_
