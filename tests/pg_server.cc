#include "tests/pg_server.h"

#include <errno.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <vector>

#include "common/unique_fd.h"
#include "tests/free_port.h"
#include "tests/harness_util.h"

namespace cohort::testing {

namespace {

using Clock = std::chrono::steady_clock;
using Fd = common::UniqueFd;

constexpr auto kDeadline = std::chrono::seconds(30);
constexpr const char* kFallbackBinDir = "/usr/lib/postgresql/15/bin";
constexpr const char* kDirTemplate = "/cohort-pg-XXXXXX";
// sun_path holds 107 bytes and a NUL, and the socket is DIR/.s.PGSQL.PORT.
constexpr size_t kMaxSocketPath = 107;

std::string BinDir() {
  // libpq-dev's pg_config may belong to another major version than the
  // installed server, so its answer counts only if a postgres is there.
  if (FILE* p = ::popen("pg_config --bindir 2>/dev/null", "r")) {
    char buf[512] = {};
    std::string out = std::fgets(buf, sizeof buf, p) ? buf : "";
    ::pclose(p);
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
    if (!out.empty() && ::access((out + "/postgres").c_str(), X_OK) == 0) return out;
  }
  return kFallbackBinDir;
}

// Whether `uid` (with only group `gid`, as setgroups(0) leaves it) can walk
// down to `dir`: a TMPDIR under /root would make initdb fail far less clearly.
bool ReachableBy(const std::string& dir, uid_t uid, gid_t gid) {
  for (size_t end = dir.find('/', 1);; end = dir.find('/', end + 1)) {
    struct stat st {};
    if (::stat(dir.substr(0, end).c_str(), &st) != 0) return false;
    const mode_t bit = st.st_uid == uid ? S_IXUSR : st.st_gid == gid ? S_IXGRP : S_IXOTH;
    if ((st.st_mode & bit) == 0) return false;
    if (end == std::string::npos) return true;
  }
}

// $TMPDIR when the socket path under it fits and the server's user can reach
// it; /tmp otherwise.
std::string TempBase(bool drop, uid_t uid, gid_t gid) {
  const char* env = std::getenv("TMPDIR");
  std::string base = env != nullptr ? env : "";
  while (!base.empty() && base.back() == '/') base.pop_back();
  const size_t socket_path = base.size() + std::strlen(kDirTemplate) + std::strlen("/.s.PGSQL.65535");
  if (base.empty() || base[0] != '/' || socket_path > kMaxSocketPath || (drop && !ReachableBy(base, uid, gid))) {
    return "/tmp";
  }
  return base;
}

// Whether postmaster.pid in `data_dir` says the server accepts connections.
bool SaysReady(const std::string& data_dir) {
  std::ifstream in(data_dir + "/postmaster.pid");
  std::string line;
  for (int i = 0; i < 8 && std::getline(in, line); ++i) {
  }
  return line.rfind("ready", 0) == 0;
}

struct ProcStat {
  char state = 0;  // 0: no such process
  pid_t ppid = 0;
};

ProcStat ReadStat(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(in, line);
  // "pid (comm) S ppid ...", and comm may hold anything, parentheses too.
  const size_t paren = line.rfind(')');
  ProcStat s;
  if (paren == std::string::npos || paren + 4 > line.size()) return s;
  s.state = line[paren + 2];
  s.ppid = static_cast<pid_t>(std::atol(line.c_str() + paren + 4));
  return s;
}

std::vector<pid_t> ChildrenOf(pid_t parent) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || !std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      continue;
    }
    const pid_t pid = static_cast<pid_t>(std::atol(name.c_str()));
    if (ReadStat(pid).ppid == parent) out.push_back(pid);
  }
  return out;
}

// A conninfo value, quoted only when it must be (so the usual string reads
// "host=DIR port=P user=cohort dbname=NAME").
std::string ConnValue(const std::string& v) {
  if (!v.empty() && v.find_first_of(" \t\n\r\f\v'\\") == std::string::npos) return v;
  std::string q = "'";
  for (char c : v) {
    if (c == '\'' || c == '\\') q += '\\';
    q += c;
  }
  return q + "'";
}

}  // namespace

bool PgServer::Start(std::unique_ptr<PgServer>* out, std::string* error, bool durable) {
  std::unique_ptr<PgServer> s(new PgServer());
  s->owner_ = ::getpid();
  s->durable_ = durable;
  s->bin_ = BinDir();
  if (!s->Init(error)) return false;
  // The free port can be taken between FreePort() and postgres's bind; a
  // bind failure is worth a fresh port, anything else is not.
  for (int attempt = 0;; ++attempt) {
    bool transient = false;
    if (s->Launch(&transient, error)) break;
    if (!transient || attempt == 4) return false;
    s->port_ = FreePort();
  }
  *out = std::move(s);
  return true;
}

PgServer* PgServer::Shared(std::string* error) {
  static std::mutex mu;
  static std::unique_ptr<PgServer> shared;  // its destructor at exit stops the server
  static std::string failed;
  static bool tried = false;
  std::lock_guard<std::mutex> lock(mu);
  if (!tried) {
    tried = true;
    if (!Start(&shared, &failed)) shared.reset();
  }
  if (!shared) *error = failed;
  return shared.get();
}

bool PgServer::Init(std::string* error) {
  if (::geteuid() == 0) {
    const passwd* pw = ::getpwnam("postgres");
    if (pw == nullptr) pw = ::getpwnam("nobody");
    if (pw == nullptr) {
      *error = "running as root and no postgres or nobody user to run PostgreSQL as";
      return false;
    }
    drop_ = true;
    uid_ = pw->pw_uid;
    gid_ = pw->pw_gid;
  }
  std::string tmpl = TempBase(drop_, uid_, gid_) + kDirTemplate;
  if (::mkdtemp(tmpl.data()) == nullptr) {
    *error = "mkdtemp " + tmpl + ": " + std::strerror(errno);
    return false;
  }
  dir_ = tmpl;
  if (drop_ && ::chown(dir_.c_str(), uid_, gid_) != 0) {
    *error = "chown " + dir_ + ": " + std::strerror(errno);
    return false;
  }
  // Root in a container may lack CAP_DAC_OVERRIDE and still has to reach
  // the socket in a directory the server's user owns.
  ::chmod(dir_.c_str(), 0755);
  const std::string log = dir_ + "/initdb.log";
  const pid_t pid = Spawn(
      {bin_ + "/initdb", "-D", data_dir(), "-U", "cohort", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"},
      SpawnOptions{.cwd = dir_, .log = log, .drop = drop_, .uid = uid_, .gid = gid_});
  int status = 0;
  pid_t r = -1;
  if (pid > 0) {
    while ((r = ::waitpid(pid, &status, 0)) < 0 && errno == EINTR) {
    }
  }
  if (r != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    *error = "initdb failed (" + bin_ + "/initdb, status " + std::to_string(status) + "): " + Tail(log, 0);
    return false;
  }
  port_ = FreePort();
  if (port_ <= 0) {
    *error = "no free loopback port";
    return false;
  }
  return true;
}

bool PgServer::Launch(bool* transient, std::string* error) {
  *transient = false;
  const std::string log = dir_ + "/postgres.log";
  const long offset = FileSize(log);
  std::vector<std::string> argv = {bin_ + "/postgres", "-D", data_dir(), "-k", dir_, "-p", std::to_string(port_),
                                   "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200"};
  if (!durable_) {
    // Both only matter when the machine loses power; synchronous_commit
    // stays on, or a Kill() would lose commits a test saw acknowledged.
    for (const char* setting : {"fsync=off", "full_page_writes=off"}) {
      argv.push_back("-c");
      argv.push_back(setting);
    }
  }
  // The server says it is ready in postmaster.pid, in its data directory:
  // each change there wakes the wait below, as does the server's exit.
  Fd changes(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (changes.get() < 0 ||
      ::inotify_add_watch(changes.get(), data_dir().c_str(), IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO) < 0) {
    *error = std::string("inotify: ") + std::strerror(errno);
    return false;
  }
  pid_ = Spawn(argv, SpawnOptions{.cwd = dir_, .log = log, .drop = drop_, .uid = uid_, .gid = gid_});
  if (pid_ < 0) {
    pid_ = -1;
    *error = std::string("fork: ") + std::strerror(errno);
    return false;
  }
  Fd exited(PidFd(pid_));
  // connect_timeout: a postmaster that hangs (stopped, say) must not hang us.
  const std::string ping = ConnInfo("postgres") + " connect_timeout=2";
  const auto deadline = Clock::now() + kDeadline;
  while (true) {
    const PGPing p = SaysReady(data_dir()) ? PQping(ping.c_str()) : PQPING_REJECT;
    if (p == PQPING_OK) return true;
    if (Exited(pid_)) {
      pid_ = -1;
      const std::string tail = Tail(log, offset);
      *transient = tail.find("could not bind") != std::string::npos ||
                   tail.find("could not create any TCP/IP sockets") != std::string::npos ||
                   tail.find("is still in use") != std::string::npos;
      *error = "postgres exited at start: " + tail;
      return false;
    }
    if (p == PQPING_NO_ATTEMPT || !WaitReadable({changes.get(), exited.get()}, deadline)) {
      KillTree();
      *error = "postgres did not accept connections within 30 s: " + Tail(log, offset);
      return false;
    }
    char events[4096];
    while (::read(changes.get(), events, sizeof events) > 0) {
    }
  }
}

bool PgServer::LaunchUntilUp(std::string* error) {
  // On the same port a bind can fail while someone holds it for a moment;
  // each try is a whole start of postgres, which paces the tries.
  const auto deadline = Clock::now() + kDeadline;
  while (true) {
    bool transient = false;
    if (Launch(&transient, error)) return true;
    if (!transient || Clock::now() >= deadline) return false;
  }
}

PgServer::~PgServer() {
  // A forked child of the test that exits through exit() runs this too, and
  // the server and directory are its parent's.
  if (::getpid() != owner_) return;
  std::string ignored;
  if (pid_ > 0 && !Stop(&ignored)) {
    // Stop fell back to SIGKILL; the directory goes all the same.
  }
  if (!dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);  // a leftover directory is harmless
  }
}

std::string PgServer::ConnInfo(const std::string& dbname) const {
  return "host=" + ConnValue(dir_) + " port=" + std::to_string(port_) + " user=cohort dbname=" + ConnValue(dbname);
}

std::string PgServer::Uri(const std::string& dbname) const {
  return "postgresql://cohort@" + PercentEncode(dir_) + ":" + std::to_string(port_) + "/" + PercentEncode(dbname);
}

bool PgServer::Exec(const std::string& dbname, const std::string& sql, std::string* error) {
  PGconn* conn = PQconnectdb(ConnInfo(dbname).c_str());
  bool ok = PQstatus(conn) == CONNECTION_OK;
  if (ok) {
    PGresult* r = PQexec(conn, sql.c_str());
    ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    PQclear(r);
  }
  if (!ok) *error = PQerrorMessage(conn);
  PQfinish(conn);
  return ok;
}

bool PgServer::CreateDatabase(const std::string& name, std::string* error) {
  PGconn* conn = PQconnectdb(conninfo().c_str());
  bool ok = PQstatus(conn) == CONNECTION_OK;
  if (ok) {
    char* quoted = PQescapeIdentifier(conn, name.c_str(), name.size());
    ok = quoted != nullptr;
    if (ok) {
      PGresult* r = PQexec(conn, ("CREATE DATABASE " + std::string(quoted)).c_str());
      PQfreemem(quoted);
      ok = PQresultStatus(r) == PGRES_COMMAND_OK;
      PQclear(r);
    }
  }
  if (!ok) *error = "CREATE DATABASE " + name + ": " + PQerrorMessage(conn);
  PQfinish(conn);
  return ok;
}

bool PgServer::Stop(std::string* error) {
  if (pid_ <= 0) return true;
  Fd exited(PidFd(pid_));
  ::kill(pid_, SIGINT);
  const auto deadline = Clock::now() + kDeadline;
  while (!Exited(pid_)) {
    if (!WaitReadable({exited.get()}, deadline)) {
      KillTree();
      *error = "postgres did not stop within 30 s; killed";
      return false;
    }
  }
  pid_ = -1;
  return true;
}

bool PgServer::Restart(std::string* error) { return Stop(error) && LaunchUntilUp(error); }

void PgServer::Kill() { KillTree(); }

bool PgServer::StartAgain(std::string* error) { return pid_ > 0 || LaunchUntilUp(error); }

void PgServer::KillTree() {
  if (pid_ <= 0) return;
  // Killing the postmaster alone leaves its backends serving their clients
  // until each notices, and a write sent right after Kill() can commit. So
  // every child goes too. Stopped first, the postmaster cannot fork one we
  // would miss, nor reap one whose pid could be reused before we signal it.
  ::kill(pid_, SIGSTOP);
  // It is our child: waitid returns once it has stopped (or died), and
  // leaves it for Reap below.
  siginfo_t info{};
  while (::waitid(P_PID, static_cast<id_t>(pid_), &info, WSTOPPED | WEXITED | WNOWAIT) < 0 && errno == EINTR) {
  }
  const char state = ReadStat(pid_).state;
  // Already dead, its children are orphans we cannot name; they exit on
  // their own once they notice.
  const std::vector<pid_t> children = state == 'T' || state == 't' ? ChildrenOf(pid_) : std::vector<pid_t>{};
  std::vector<Fd> exits;
  for (pid_t child : children) {
    exits.emplace_back(PidFd(child));
    ::kill(child, SIGKILL);
  }
  // Zombies of the stopped postmaster have released their sockets and shared
  // memory, which is what a restart needs; a pidfd is readable once its
  // process has exited, reaped or not.
  const auto deadline = Clock::now() + kDeadline;
  for (const Fd& exit : exits) WaitReadable({exit.get()}, deadline);
  ::kill(pid_, SIGKILL);
  Reap(pid_);
  pid_ = -1;
}

}  // namespace cohort::testing
