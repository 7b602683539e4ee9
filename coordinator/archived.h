// ReadArchived puts a finished group that the core keeps only as a summary
// (Scheduler::ArchivedSubmission) back into the core, from the store that
// holds it, so that whoever asks next about that group (its result, a
// SUBMIT under its id, a cancel) gets the answer the core gave before it let
// the details go. The daemon calls it before handling such a request; the
// restore tests call it as the daemon does.
//
// The caller commits the core's journal first: the store must hold every
// record the core wrote of the group. Socket-free and clock-free; reads the
// store, so it runs on the loop that owns both.
#ifndef COHORT_COORDINATOR_ARCHIVED_H_
#define COHORT_COORDINATOR_ARCHIVED_H_

#include <string_view>

#include "common/status.h"
#include "common/time.h"
#include "coordinator/scheduler.h"
#include "coordinator/store.h"

namespace cohort::coordinator {

// OK and nothing done when `id` is not archived (unknown, running, or held
// in full). Otherwise the store's error, or the core's from Hydrate.
common::Status ReadArchived(Store* store, Scheduler* core, std::string_view id, common::Time now);

}  // namespace cohort::coordinator

#endif  // COHORT_COORDINATOR_ARCHIVED_H_
