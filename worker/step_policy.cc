#include "worker/step_policy.h"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>

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

Status StepPolicy::Load(bool allow_shell, const std::string& allowed_commands_file, const std::string& shell,
                        StepPolicy* out) {
  StepPolicy p;
  p.allow_shell_ = allow_shell;
  p.shell_ = shell;
  if (!allowed_commands_file.empty()) {
    std::ifstream in(allowed_commands_file);
    if (!in) return Status::NotFound("--allowed-commands: cannot read " + allowed_commands_file);
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
      "GCONV_PATH", "GLIBC_TUNABLES", "LOCPATH",  "BASH_ENV", "ENV",    "PYTHONSTARTUP", "PYTHONPATH",
      "PYTHONHOME", "PERL5OPT",       "PERL5LIB", "RUBYOPT",  "RUBYLIB", "NODE_OPTIONS"};
  if (name.substr(0, 3) == "LD_") return true;
  return std::find(std::begin(kNames), std::end(kNames), name) != std::end(kNames);
}

Status StepPolicy::Check(RunRequest* request) const {
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
  // The list names the executables a step may start; variables that make
  // the loader or an interpreter run other code would get around it.
  for (const auto& [name, value] : request->env) {
    if (CodeLoadingVariable(name)) {
      return Status::FailedPrecondition("refused by the worker's policy: env " + name +
                                        " could load code that is not on the worker's --allowed-commands list");
    }
  }
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
