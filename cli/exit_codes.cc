#include "cli/exit_codes.h"

namespace cohort::cli {

using common::Status;

int StatusExit(const Status& s) {
  switch (s.code()) {
    case Status::Code::kOk: return kExitOk;
    case Status::Code::kUnavailable: return kExitUnreachable;
    case Status::Code::kNotFound: return kExitNotFound;
    case Status::Code::kInvalidArgument:
    case Status::Code::kAlreadyExists: return kExitUsage;
    default: return kExitFailed;
  }
}

int CancelOutcome(const Status& answer, const std::string& group, const std::string& step, int sent, bool json,
                  std::ostream& err) {
  // The coordinator's words for a group that has ended: "... has already
  // finished STATE".
  constexpr std::string_view kFinished = "has already finished ";
  const size_t at = answer.message().rfind(kFinished);
  const bool finished = answer.code() == Status::Code::kFailedPrecondition && at != std::string::npos;
  const std::string state = finished ? answer.message().substr(at + kFinished.size()) : "";
  // A repeat that finds the group cancelled: the first send, whose answer
  // was lost, did it.
  if (answer.ok() || (finished && sent > 1 && state == "cancelled")) {
    if (!json) err << "cancel of " << (step.empty() ? "group " + group : "step " + step) << " requested\n";
    return kExitOk;
  }
  if (finished) {
    err << "group " << group << " already finished (" << state << "); nothing to cancel\n";
    return kExitOk;
  }
  err << "cohort: " << answer.message() << "\n";
  return StatusExit(answer);
}

}  // namespace cohort::cli
