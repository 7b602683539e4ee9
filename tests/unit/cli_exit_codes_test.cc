// The CLI's exit codes for the coordinator's answers, and what `cohort
// cancel` says of a group that had already finished.
#include <sstream>

#include <catch2/catch.hpp>

#include "cli/exit_codes.h"

namespace cohort::cli {
namespace {

using common::Status;

TEST_CASE("each kind of answer has its own exit code", "[cli]") {
  CHECK(StatusExit(Status::Ok()) == kExitOk);
  CHECK(StatusExit(Status::NotFound("no group \"g\"")) == kExitNotFound);
  CHECK(StatusExit(Status::Unavailable("no answer")) == kExitUnreachable);
  CHECK(StatusExit(Status::InvalidArgument("wrong port")) == kExitUsage);
  CHECK(StatusExit(Status::AlreadyExists("taken")) == kExitUsage);
  CHECK(StatusExit(Status::FailedPrecondition("limit")) == kExitFailed);
  // Scripts tell these apart: every code is its own.
  CHECK(kExitNotFound != kExitFailed);
  CHECK(kExitNotFound != kExitUsage);
  CHECK(kExitNotFound != kExitUnreachable);
}

TEST_CASE("cancel of a finished group says so in plain words and exits 0", "[cli]") {
  std::ostringstream err;
  const Status finished = Status::FailedPrecondition("group \"g\" has already finished completed");
  CHECK(CancelOutcome(finished, "g", "", 1, false, err) == kExitOk);
  CHECK(err.str() == "group g already finished (completed); nothing to cancel\n");
}

TEST_CASE("a repeated cancel that finds the group cancelled was done by the first", "[cli]") {
  std::ostringstream err;
  const Status cancelled = Status::FailedPrecondition("group \"g\" has already finished cancelled");
  CHECK(CancelOutcome(cancelled, "g", "", 2, false, err) == kExitOk);
  CHECK(err.str() == "cancel of group g requested\n");
  std::ostringstream first;
  CHECK(CancelOutcome(cancelled, "g", "", 1, false, first) == kExitOk);
  CHECK(first.str() == "group g already finished (cancelled); nothing to cancel\n");
}

TEST_CASE("cancel's other outcomes", "[cli]") {
  std::ostringstream ok;
  CHECK(CancelOutcome(Status::Ok(), "g", "s1", 1, false, ok) == kExitOk);
  CHECK(ok.str() == "cancel of step s1 requested\n");
  std::ostringstream quiet;
  CHECK(CancelOutcome(Status::Ok(), "g", "", 1, true, quiet) == kExitOk);
  CHECK(quiet.str().empty());
  std::ostringstream missing;
  CHECK(CancelOutcome(Status::NotFound("no group \"g\""), "g", "", 1, false, missing) == kExitNotFound);
  CHECK(missing.str() == "cohort: no group \"g\"\n");
  std::ostringstream other;
  CHECK(CancelOutcome(Status::FailedPrecondition("not an admin"), "g", "", 1, false, other) == kExitFailed);
}

}  // namespace
}  // namespace cohort::cli
