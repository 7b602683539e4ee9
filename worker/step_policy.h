// StepPolicy is what a worker agrees to run, checked before a step is
// started: whether shell lines are allowed at all, an optional list of the
// only executables (absolute paths) an argv step may name, the environment
// variables a step may set, and the user steps run as. A refused step fails
// with an error naming the rule, so the user sees why in `cohort status`;
// nothing of it runs.
//
// The rules hold against a hostile coordinator or client as far as they go:
// with a list, a bare name is resolved against the list, never against a
// PATH the step chose, and a shell line is refused unless the shell itself is
// on the list (which allows anything, and says so). With a list, a step's
// environment is an allowlist too (--allowed-env): the variables an allowed
// program reads decide what it runs (SHELLOPTS and PS4, exported bash
// functions, MAKEFLAGS, GIT_CONFIG_*, ...), and no denylist of them can be
// complete. PATH and HOME are then always the worker's.
//
// Thread contract: immutable after Load; Check may be called from any thread.
#ifndef COHORT_WORKER_STEP_POLICY_H_
#define COHORT_WORKER_STEP_POLICY_H_

#include <sys/stat.h>

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "worker/runner_options.h"

namespace cohort::worker {

// A user steps run as, from the passwd and group databases.
struct RunAsUser {
  std::string name;
  std::string home;
  RunnerOptions::Credentials credentials;
};

// Looks `user` (a name or a numeric uid) up. NotFound naming it if unknown.
common::Status LookUpUser(const std::string& user, RunAsUser* out);

// Environment variables that make the dynamic loader, a shell or a common
// interpreter or tool run code of the caller's choosing (LD_PRELOAD,
// BASH_ENV, SHELLOPTS, BASH_FUNC_*, PYTHONPATH, MAKEFLAGS, GIT_CONFIG_*, ...):
// the known ones, refused under a command policy whatever --allowed-env says.
bool CodeLoadingVariable(std::string_view name);

// The worker's options a policy is made of.
struct StepPolicyConfig {
  bool allow_shell = true;
  // "" for no list, else a file of absolute paths, one per line (# comments
  // and blank lines skipped).
  std::string allowed_commands_file = "";
  // --allowed-env: variable names separated by commas, a trailing * allowing
  // a prefix ("MYAPP_*"). Only with a list; "" then allows no variable.
  std::string allowed_env = "";
  // The interpreter shell steps would run with.
  std::string shell = "/bin/sh";
  // Applied to the stat of the opened list file before it is read: whoever
  // may rewrite the list decides what steps run (the worker passes the key
  // files' owner and mode rule, which this library cannot link).
  std::function<common::Status(const struct stat&, const std::string& path)> check_file = nullptr;
};

class StepPolicy {
 public:
  StepPolicy() = default;  // allows everything

  // InvalidArgument naming the option, file and line for a config that
  // cannot be used; the status of `check_file` if it refuses the list file.
  static common::Status Load(const StepPolicyConfig& config, StepPolicy* out);

  // OK if `request` may run. A bare argv[0] that names a listed executable by
  // its base name is replaced by that executable's path. FailedPrecondition
  // naming the rule, and the variable for an environment refusal, otherwise.
  common::Status Check(RunRequest* request) const;

  bool allow_shell() const { return allow_shell_; }
  const std::optional<std::vector<std::string>>& allowed() const { return allowed_; }

 private:
  // Under a list: OK if a step may set `name`.
  common::Status CheckEnvName(const std::string& name) const;

  bool allow_shell_ = true;
  std::string shell_ = "/bin/sh";
  std::optional<std::vector<std::string>> allowed_;  // absolute paths, in file order
  std::vector<std::string> env_names_;               // exact names from --allowed-env
  std::vector<std::string> env_prefixes_;            // of its NAME* entries, without the *
};

}  // namespace cohort::worker

#endif  // COHORT_WORKER_STEP_POLICY_H_
