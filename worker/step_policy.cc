#include "worker/step_policy.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "worker/base_env.h"

namespace cohort::worker {

using common::Status;

namespace {

constexpr int kMaxGroups = 1024;

std::string Trimmed(const std::string& line) {
  size_t b = line.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  size_t e = line.find_last_not_of(" \t\r");
  return line.substr(b, e - b + 1);
}

std::string BaseName(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

bool IdentifierChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

// Letters, digits and _, not starting with a digit: what a shell can export.
// `may_be_empty` for the prefix of a "*" entry.
bool Identifier(std::string_view name, bool may_be_empty) {
  if (name.empty()) return may_be_empty;
  if (name[0] >= '0' && name[0] <= '9') return false;
  return std::all_of(name.begin(), name.end(), IdentifierChar);
}

// What the worker core adds to every step after the step's own variables
// (worker_core.cc), so the worker's values are the ones the step sees.
bool WorkerStepVariable(std::string_view name) {
  static constexpr std::string_view kNames[] = {kWorkerEnv, kLifeEnv, kGroupEnv, kStepEnv, kAttemptEnv};
  return std::find(std::begin(kNames), std::end(kNames), name) != std::end(kNames);
}

// The list file's text, read from the descriptor `check_file` looked at, so
// the file checked is the file read.
Status ReadListFile(const std::string& path, const StepPolicyConfig& config, std::string* text) {
  const std::string where = "--allowed-commands: ";
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::NotFound(where + "cannot read " + path + ": " + std::strerror(errno));
  struct stat st {};
  Status s;
  if (::fstat(fd, &st) != 0) {
    s = Status::IoError(where + "cannot stat " + path + ": " + std::strerror(errno));
  } else if (!S_ISREG(st.st_mode)) {
    s = Status::InvalidArgument(where + path + " is not a regular file");
  } else if (config.check_file) {
    s = config.check_file(st, path);
  }
  char buf[4096];
  while (s.ok()) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) s = Status::IoError(where + "cannot read " + path + ": " + std::strerror(errno));
    if (n <= 0) break;
    text->append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return s;
}

// --allowed-env's entries into exact names and prefixes.
Status ParseAllowedEnv(const std::string& text, std::vector<std::string>* names, std::vector<std::string>* prefixes) {
  std::stringstream in(text);
  std::string entry;
  while (std::getline(in, entry, ',')) {
    entry = Trimmed(entry);
    if (entry.empty()) continue;
    const bool prefix = entry.back() == '*';
    const std::string name = prefix ? entry.substr(0, entry.size() - 1) : entry;
    if (!Identifier(name, prefix)) {
      return Status::InvalidArgument("--allowed-env: \"" + entry +
                                     "\" is not a variable name (letters, digits and _, not starting with a digit) "
                                     "or such a name's prefix followed by *");
    }
    // Listing one of these by name can only be a mistake: the step would
    // still be refused, so say so at start-up.
    if (!prefix && WorkerOwnedVariable(name)) {
      return Status::InvalidArgument("--allowed-env: " + name +
                                     " is always the worker's under --allowed-commands; steps cannot set it");
    }
    if (!prefix && CodeLoadingVariable(name)) {
      return Status::InvalidArgument("--allowed-env: " + name +
                                     " could make an allowed program run other code; steps cannot set it");
    }
    (prefix ? prefixes : names)->push_back(name);
  }
  return Status::Ok();
}

}  // namespace

Status LookUpUser(const std::string& user, RunAsUser* out) {
  long hint = sysconf(_SC_GETPW_R_SIZE_MAX);
  std::vector<char> buf(hint > 0 ? static_cast<size_t>(hint) : 16384);
  passwd entry{};
  passwd* found = nullptr;
  int rc = getpwnam_r(user.c_str(), &entry, buf.data(), buf.size(), &found);
  if (found == nullptr && !user.empty() && user.find_first_not_of("0123456789") == std::string::npos) {
    rc = getpwuid_r(static_cast<uid_t>(std::strtoul(user.c_str(), nullptr, 10)), &entry, buf.data(), buf.size(),
                    &found);
  }
  if (found == nullptr) {
    return Status::NotFound("--run-as: no user \"" + user + "\"" + (rc != 0 ? std::string(" (") + std::strerror(rc) + ")" : ""));
  }
  out->name = found->pw_name;
  out->home = found->pw_dir != nullptr && found->pw_dir[0] == '/' ? found->pw_dir : "/";
  out->credentials.uid = found->pw_uid;
  out->credentials.gid = found->pw_gid;
  std::vector<gid_t> groups(kMaxGroups);
  int n = kMaxGroups;
  if (getgrouplist(found->pw_name, found->pw_gid, groups.data(), &n) < 0) {
    return Status::FailedPrecondition("--run-as: user \"" + user + "\" is in more than " +
                                      std::to_string(kMaxGroups) + " groups");
  }
  groups.resize(static_cast<size_t>(n));
  out->credentials.groups = std::move(groups);
  return Status::Ok();
}

Status StepPolicy::Load(const StepPolicyConfig& config, StepPolicy* out) {
  StepPolicy p;
  p.allow_shell_ = config.allow_shell;
  p.shell_ = config.shell;
  const std::string& allowed_commands_file = config.allowed_commands_file;
  if (Status s = ParseAllowedEnv(config.allowed_env, &p.env_names_, &p.env_prefixes_); !s.ok()) return s;
  if (allowed_commands_file.empty() && !(p.env_names_.empty() && p.env_prefixes_.empty())) {
    // Without a list every variable is allowed: an operator who named some
    // would believe the others refused.
    return Status::InvalidArgument("--allowed-env needs --allowed-commands: without a command policy a step may "
                                   "set any variable");
  }
  if (!allowed_commands_file.empty()) {
    std::string text;
    if (Status s = ReadListFile(allowed_commands_file, config, &text); !s.ok()) return s;
    std::istringstream in(text);
    std::vector<std::string> list;
    std::string line;
    int line_no = 0;
    while (std::getline(in, line)) {
      ++line_no;
      std::string path = Trimmed(line);
      if (path.empty() || path[0] == '#') continue;
      if (path[0] != '/') {
        return Status::InvalidArgument("--allowed-commands: " + allowed_commands_file + ":" +
                                       std::to_string(line_no) + ": \"" + path + "\" is not an absolute path");
      }
      list.push_back(path);
    }
    p.allowed_ = std::move(list);
  }
  *out = std::move(p);
  return Status::Ok();
}

bool CodeLoadingVariable(std::string_view name) {
  static constexpr std::string_view kNames[] = {
      // the dynamic loader and the C library
      "GCONV_PATH", "GLIBC_TUNABLES", "LOCPATH",
      // shells: startup files, options (xtrace runs PS4's substitutions)
      "BASH_ENV", "ENV", "SHELLOPTS", "BASHOPTS", "PS4", "PROMPT_COMMAND",
      // interpreters and virtual machines
      "PYTHONSTARTUP", "PYTHONPATH", "PYTHONHOME", "PYTHONUSERBASE", "PYTHONBREAKPOINT", "PERL5OPT", "PERL5LIB",
      "PERLLIB", "PERL5DB", "RUBYOPT", "RUBYLIB", "NODE_OPTIONS", "NODE_PATH", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS",
      "JDK_JAVA_OPTIONS", "CLASSPATH",
      // make: flags and makefiles of the caller's choosing
      "MAKEFLAGS", "MFLAGS", "MAKEFILES",
      // git: commands it runs, and where its configuration comes from
      "GIT_DIR", "GIT_COMMON_DIR", "GIT_EXEC_PATH", "GIT_SSH", "GIT_SSH_COMMAND", "GIT_PAGER", "GIT_EDITOR",
      "GIT_ASKPASS", "GIT_PROXY_COMMAND", "GIT_EXTERNAL_DIFF", "GIT_TEMPLATE_DIR",
      // where programs read their configuration, as HOME is (git reads
      // $XDG_CONFIG_HOME/git/config), and the commands they start for you
      "XDG_CONFIG_HOME", "XDG_CONFIG_DIRS", "XDG_DATA_HOME", "XDG_DATA_DIRS", "OPENSSL_CONF", "LUA_INIT",
      "PAGER", "EDITOR", "VISUAL", "LESSOPEN", "LESSCLOSE", "SSH_ASKPASS"};
  // LD_*; BASH_FUNC_name%% (a function bash imports, which overrides the
  // command `name`); GIT_CONFIG, GIT_CONFIG_COUNT, _KEY_n, _VALUE_n, ...
  static constexpr std::string_view kPrefixes[] = {"LD_", "BASH_FUNC_", "GIT_CONFIG"};
  for (std::string_view prefix : kPrefixes) {
    if (name.starts_with(prefix)) return true;
  }
  return std::find(std::begin(kNames), std::end(kNames), name) != std::end(kNames);
}

Status StepPolicy::CheckEnvName(const std::string& name) const {
  const std::string variable = "refused by the worker's policy: step environment variable \"" + name + "\"";
  if (WorkerOwnedVariable(name)) {
    return Status::FailedPrecondition(variable + " is the worker's under a command policy; no --allowed-env entry "
                                                 "lets a step set PATH or HOME");
  }
  if (CodeLoadingVariable(name)) {
    return Status::FailedPrecondition(variable + " could make a program on the worker's --allowed-commands list run "
                                                 "other code; no --allowed-env entry allows it");
  }
  if (WorkerStepVariable(name)) return Status::Ok();
  if (std::find(env_names_.begin(), env_names_.end(), name) != env_names_.end()) return Status::Ok();
  for (const std::string& prefix : env_prefixes_) {
    // The rest a name, too: "MYAPP_*" does not allow "MYAPP_x%%".
    if (name.starts_with(prefix) && Identifier(name, false)) return Status::Ok();
  }
  return Status::FailedPrecondition(variable + " is not in --allowed-env (a command policy is set)");
}

Status StepPolicy::Check(RunRequest* request) const {
  if (allowed_) {
    // The list names the executables a step may start; what they read from
    // the environment decides what else they run.
    for (const auto& [name, value] : request->env) {
      if (Status s = CheckEnvName(name); !s.ok()) return s;
    }
  }
  if (request->argv.empty()) {
    if (!allow_shell_) {
      return Status::FailedPrecondition(
          "refused by the worker's policy: shell steps are not allowed (--allow-shell=false); give the step a "
          "\"command\" list instead of \"shell\"");
    }
    if (allowed_ && std::find(allowed_->begin(), allowed_->end(), shell_) == allowed_->end()) {
      return Status::FailedPrecondition("refused by the worker's policy: shell steps run " + shell_ +
                                        ", which is not in the worker's --allowed-commands list");
    }
    return Status::Ok();
  }
  if (!allowed_) return Status::Ok();
  const std::string& program = request->argv[0];
  if (program.find('/') != std::string::npos) {
    if (std::find(allowed_->begin(), allowed_->end(), program) != allowed_->end()) return Status::Ok();
  } else {
    // Resolved against the list, not the step's PATH, which the step chose.
    for (const std::string& path : *allowed_) {
      if (BaseName(path) == program) {
        request->argv[0] = path;
        return Status::Ok();
      }
    }
  }
  return Status::FailedPrecondition("refused by the worker's policy: \"" + program +
                                    "\" is not in the worker's --allowed-commands list");
}

}  // namespace cohort::worker
