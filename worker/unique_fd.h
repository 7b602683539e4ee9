// The worker's name for common::UniqueFd (common/unique_fd.h), which the
// spawn path and the runner use throughout.
#ifndef COHORT_WORKER_UNIQUE_FD_H_
#define COHORT_WORKER_UNIQUE_FD_H_

#include "common/unique_fd.h"

namespace cohort::worker {

using common::UniqueFd;

}  // namespace cohort::worker

#endif  // COHORT_WORKER_UNIQUE_FD_H_
