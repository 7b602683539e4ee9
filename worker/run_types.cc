#include "worker/run_types.h"

#include <string.h>

#include <string>

namespace cohort::worker {

std::string RunResult::Summary() const {
  std::string s;
  switch (kind) {
    case Kind::kExited:
      s = "exited " + std::to_string(exit_code);
      break;
    case Kind::kSignaled: {
      const char* abbrev = sigabbrev_np(signal);
      s = "killed by " + (abbrev != nullptr ? "SIG" + std::string(abbrev) : "signal " + std::to_string(signal));
      if (core_dumped) s += " (core dumped)";
      break;
    }
    case Kind::kSpawnFailed:
      return "failed to start: " + error;
    case Kind::kLost:
      s = "exit status lost";
      break;
  }
  if (timed_out) s += " after timeout";
  if (cancelled) s += timed_out ? " and cancel" : " after cancel";
  if (escalated_to_kill) s += " (escalated to SIGKILL)";
  if (!error.empty()) s += ": " + error;
  return s;
}

}  // namespace cohort::worker
