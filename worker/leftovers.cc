#include "worker/leftovers.h"

#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <string_view>
#include <vector>

namespace cohort::worker {
namespace {

constexpr int kMaxRounds = 10;
constexpr int kMaxDepth = 4096;  // a ppid chain longer than this is broken

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The executable's path; " (deleted)" dropped, so a worker whose binary was
// replaced by an upgrade still counts as one.
std::string Exe(const std::string& proc_root, pid_t pid) {
  char buf[4096];
  ssize_t n = readlink((proc_root + "/" + std::to_string(pid) + "/exe").c_str(), buf, sizeof buf - 1);
  std::string exe = n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
  constexpr std::string_view kDeleted = " (deleted)";
  if (exe.ends_with(kDeleted)) exe.resize(exe.size() - kDeleted.size());
  return exe;
}

// Field 4 of /proc/PID/stat, after the command name in parentheses (which
// may itself hold spaces and parentheses).
pid_t ParentOf(const std::string& proc_root, pid_t pid) {
  std::string stat = Slurp(proc_root + "/" + std::to_string(pid) + "/stat");
  size_t paren = stat.rfind(')');
  if (paren == std::string::npos) return 0;
  std::istringstream rest(stat.substr(paren + 1));
  std::string state;
  long ppid = 0;
  rest >> state >> ppid;
  return static_cast<pid_t>(ppid);
}

bool OwnedByUs(const std::string& proc_root, pid_t pid) {
  std::istringstream in(Slurp(proc_root + "/" + std::to_string(pid) + "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("Uid:", 0) == 0) {
      std::istringstream f(line.substr(4));
      long uid = -1;
      f >> uid;
      // A root worker runs steps as its --run-as user: any user's are its.
      return getuid() == 0 || uid == static_cast<long>(getuid());
    }
  }
  return false;
}

// True when a live process running `worker_exe` is `pid` or one of its ancestors.
bool UnderLiveWorker(const std::string& proc_root, pid_t pid, const std::string& worker_exe) {
  for (int depth = 0; pid > 1 && depth < kMaxDepth; ++depth) {
    if (!worker_exe.empty() && Exe(proc_root, pid) == worker_exe) return true;
    pid = ParentOf(proc_root, pid);
  }
  return false;
}

}  // namespace

int KillLeftovers(const std::string& name, const std::string& proc_root) {
  const std::string needle = std::string(1, '\0') + kWorkerEnv + "=" + name + std::string(1, '\0');
  const std::string self_exe = Exe(proc_root, getpid());
  int killed = 0;
  std::set<pid_t> signalled;
  for (int round = 0; round < kMaxRounds; ++round) {
    std::vector<pid_t> found;
    DIR* d = opendir(proc_root.c_str());
    if (!d) return killed;
    while (dirent* e = readdir(d)) {
      const pid_t pid = static_cast<pid_t>(std::atol(e->d_name));
      if (pid <= 1 || pid == getpid() || signalled.count(pid)) continue;
      // Our own user's processes only; the environment of others is unreadable anyway.
      const std::string env = std::string(1, '\0') + Slurp(proc_root + "/" + e->d_name + "/environ");
      if (env.find(needle) == std::string::npos || !OwnedByUs(proc_root, pid)) continue;
      if (UnderLiveWorker(proc_root, pid, self_exe)) continue;
      found.push_back(pid);
    }
    closedir(d);
    if (found.empty()) break;
    for (pid_t pid : found) {
      if (kill(pid, SIGKILL) == 0) ++killed;
      signalled.insert(pid);
    }
  }
  return killed;
}

}  // namespace cohort::worker
