// StepPolicy is what a worker agrees to run, checked before a step is
// started: whether shell lines are allowed at all, an optional list of the
// only executables (absolute paths) an argv step may name, and the user steps
// run as. A refused step fails with an error naming the rule, so the user
// sees why in `cohort status`; nothing of it runs.
//
// The rules hold against a hostile coordinator or client as far as they go:
// with a list, a bare name is resolved against the list, never against a
// PATH the step chose, and a shell line is refused unless the shell itself is
// on the list (which allows anything, and says so).
//
// Thread contract: immutable after Load; Check may be called from any thread.
#ifndef COHORT_WORKER_STEP_POLICY_H_
#define COHORT_WORKER_STEP_POLICY_H_

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

// Environment variables that make the dynamic loader or a common interpreter
// load code of the caller's choosing (LD_PRELOAD, BASH_ENV, PYTHONPATH, ...).
bool CodeLoadingVariable(std::string_view name);

class StepPolicy {
 public:
  StepPolicy() = default;  // allows everything

  // `allowed_commands_file`: "" for no list, else a file of absolute paths,
  // one per line (# comments and blank lines skipped). `shell` is the
  // interpreter shell steps would run with.
  static common::Status Load(bool allow_shell, const std::string& allowed_commands_file, const std::string& shell,
                             StepPolicy* out);

  // OK if `request` may run. A bare argv[0] that names a listed executable by
  // its base name is replaced by that executable's path. FailedPrecondition
  // naming the rule otherwise.
  common::Status Check(RunRequest* request) const;

  bool allow_shell() const { return allow_shell_; }
  const std::optional<std::vector<std::string>>& allowed() const { return allowed_; }

 private:
  bool allow_shell_ = true;
  std::string shell_ = "/bin/sh";
  std::optional<std::vector<std::string>> allowed_;  // absolute paths, in file order
};

}  // namespace cohort::worker

#endif  // COHORT_WORKER_STEP_POLICY_H_
