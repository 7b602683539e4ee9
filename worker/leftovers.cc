#include "worker/leftovers.h"

#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <vector>

namespace cohort::worker {
namespace {

constexpr int kMaxRounds = 10;

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
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

}  // namespace

int KillLeftovers(const std::string& life, const std::string& proc_root) {
  if (life.empty()) return 0;
  const std::string needle = std::string(1, '\0') + kLifeEnv + "=" + life + std::string(1, '\0');
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
