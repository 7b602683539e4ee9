#include "worker/run_types.h"

#include <pwd.h>
#include <string.h>
#include <unistd.h>

#include <vector>

namespace cohort::worker {
namespace {

// The passwd database rather than $HOME, so the base environment does not
// depend on how the worker was started; looked up once because NSS can be
// slow (LDAP) and options are built often.
std::string LookUpHome() {
  long hint = sysconf(_SC_GETPW_R_SIZE_MAX);
  std::vector<char> buf(hint > 0 ? static_cast<size_t>(hint) : 16384);
  passwd entry{};
  passwd* found = nullptr;
  if (getpwuid_r(geteuid(), &entry, buf.data(), buf.size(), &found) == 0 && found != nullptr &&
      found->pw_dir != nullptr && found->pw_dir[0] == '/') {
    return found->pw_dir;
  }
  return "/";
}

}  // namespace

EnvVars DefaultBaseEnv() {
  static const std::string home = LookUpHome();
  return {
      {"PATH", "/usr/local/bin:/usr/bin:/bin"},
      {"HOME", home},
      {"LANG", "C.UTF-8"},
  };
}

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
