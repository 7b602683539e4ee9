#include "common/result.h"

namespace cohort::common {

std::string_view StepStateName(StepState s) {
  switch (s) {
    case StepState::kPending: return "pending";
    case StepState::kRunning: return "running";
    case StepState::kRetrying: return "retrying";
    case StepState::kCompleted: return "completed";
    case StepState::kFailed: return "failed";
    case StepState::kCancelled: return "cancelled";
  }
  return "unknown";
}

std::string_view GroupStateName(GroupState s) {
  switch (s) {
    case GroupState::kRunning: return "running";
    case GroupState::kCompleted: return "completed";
    case GroupState::kFailed: return "failed";
    case GroupState::kCancelled: return "cancelled";
  }
  return "unknown";
}

std::string_view AttemptStatusName(AttemptStatus s) {
  switch (s) {
    case AttemptStatus::kRunning: return "running";
    case AttemptStatus::kSucceeded: return "succeeded";
    case AttemptStatus::kFailed: return "failed";
    case AttemptStatus::kTimedOut: return "timed_out";
    case AttemptStatus::kCancelled: return "cancelled";
    case AttemptStatus::kWorkerLost: return "worker_lost";
  }
  return "unknown";
}

}  // namespace cohort::common
