// DefaultBaseEnv (runner_options.h): reads the passwd database, so it lives
// with the runner, not with the pure value types of run_types.h.
#include "worker/base_env.h"

#include <pwd.h>
#include <unistd.h>

#include <string>
#include <string_view>
#include <vector>

#include "worker/runner_options.h"

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

bool WorkerOwnedVariable(std::string_view name) { return name == "PATH" || name == "HOME"; }

}  // namespace cohort::worker
