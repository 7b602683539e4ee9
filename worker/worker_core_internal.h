// What the files of WorkerCore share and nothing else uses: how its notices
// are built.
#ifndef COHORT_WORKER_WORKER_CORE_INTERNAL_H_
#define COHORT_WORKER_WORKER_CORE_INTERNAL_H_

#include <string>
#include <utility>
#include <vector>

#include "common/messages.h"
#include "worker/worker_core.h"

namespace cohort::worker::internal {

inline Notice Note(Notice::Level level, std::string event, std::vector<NoticeField> fields = {}) {
  return Notice{level, std::move(event), std::move(fields)};
}

// How a log line names an attempt; `step` is the step's id when known.
inline std::vector<NoticeField> Named(const common::AttemptId& id, std::string step) {
  return {{"group", id.group}, {"submission", id.submission}, {"step", std::move(step)}, {"attempt", id.attempt}};
}

}  // namespace cohort::worker::internal

#endif  // COHORT_WORKER_WORKER_CORE_INTERNAL_H_
