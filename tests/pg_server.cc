#include "tests/pg_server.h"

#include <fcntl.h>
#include <grp.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

namespace cohort::testing {

namespace {

using Clock = std::chrono::steady_clock;

std::string BinDir() {
  if (FILE* p = ::popen("pg_config --bindir 2>/dev/null", "r")) {
    char buf[512] = {};
    std::string out = std::fgets(buf, sizeof buf, p) ? buf : "";
    ::pclose(p);
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
    if (!out.empty() && ::access((out + "/postgres").c_str(), X_OK) == 0) return out;
  }
  return "/usr/lib/postgresql/15/bin";
}

int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  ::close(fd);
  return port;
}

// fork + (drop to uid/gid) + exec, stdout and stderr to `log`.
pid_t Spawn(const std::vector<std::string>& argv, const std::string& log, bool drop, uid_t uid, gid_t gid) {
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid != 0) return pid;
  // The child: its own process group, so a test's kill of ours spares it
  // nothing and a Ctrl-C of the test run reaches it too.
  int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd >= 0) {
    ::dup2(fd, 1);
    ::dup2(fd, 2);
  }
  if (drop && (::setgroups(0, nullptr) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0)) ::_exit(126);
  ::execv(args[0], args.data());
  ::_exit(127);
}

bool Finished(pid_t pid, int* status) { return ::waitpid(pid, status, WNOHANG) == pid; }

}  // namespace

bool PgServer::Start(std::unique_ptr<PgServer>* out, std::string* error, bool durable) {
  std::unique_ptr<PgServer> s(new PgServer());
  s->durable_ = durable;
  s->bin_ = BinDir();
  if (!s->Init(error) || !s->Launch(error)) return false;
  *out = std::move(s);
  return true;
}

PgServer* PgServer::Shared(std::string* error) {
  static std::unique_ptr<PgServer> shared;
  static std::string failed;
  if (!shared && failed.empty()) {
    if (!Start(&shared, &failed)) shared.reset();
    if (!shared && failed.empty()) failed = "PostgreSQL did not start";
  }
  if (!shared) *error = failed;
  return shared.get();
}

bool PgServer::Init(std::string* error) {
  // Short: a Unix socket's path must fit in 107 bytes.
  char tmpl[] = "/tmp/cohort-pg-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) {
    *error = "mkdtemp failed";
    return false;
  }
  dir_ = tmpl;
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
    if (::chown(dir_.c_str(), uid_, gid_) != 0) {
      *error = "cannot chown " + dir_;
      return false;
    }
  }
  ::chmod(dir_.c_str(), 0755);
  const pid_t pid = Spawn({bin_ + "/initdb", "-D", data_dir(), "-U", "cohort", "--auth=trust", "-E", "UTF8",
                           "--locale=C", "--no-sync"},
                          dir_ + "/initdb.log", drop_, uid_, gid_);
  int status = 0;
  if (pid < 0 || ::waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::ifstream in(dir_ + "/initdb.log");
    std::stringstream ss;
    ss << in.rdbuf();
    *error = "initdb failed (" + bin_ + "/initdb): " + ss.str();
    return false;
  }
  port_ = FreePort();
  return port_ > 0;
}

bool PgServer::Launch(std::string* error) {
  std::vector<std::string> argv = {bin_ + "/postgres", "-D", data_dir(), "-k", dir_, "-p", std::to_string(port_),
                                   "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200"};
  if (!durable_) {
    for (const char* setting : {"fsync=off", "full_page_writes=off"}) {
      argv.push_back("-c");
      argv.push_back(setting);
    }
  }
  pid_ = Spawn(argv, dir_ + "/postgres.log", drop_, uid_, gid_);
  if (pid_ < 0) {
    *error = "fork failed";
    return false;
  }
  return WaitReady(error);
}

bool PgServer::WaitReady(std::string* error) {
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  const std::string conninfo = ConnInfo("postgres");
  while (Clock::now() < deadline) {
    if (PQping(conninfo.c_str()) == PQPING_OK) return true;
    int status = 0;
    if (Finished(pid_, &status)) {
      pid_ = -1;
      *error = "postgres exited at start: " + LogTail();
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  *error = "postgres did not accept connections within 30 s: " + LogTail();
  return false;
}

std::string PgServer::LogTail() const {
  std::ifstream in(dir_ + "/postgres.log");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string all = ss.str();
  return all.size() > 2000 ? all.substr(all.size() - 2000) : all;
}

PgServer::~PgServer() {
  std::string ignored;
  if (pid_ > 0) Stop(&ignored);
  if (!dir_.empty()) {
    const std::string cmd = "rm -rf '" + dir_ + "'";
    if (std::system(cmd.c_str()) != 0) {
      // A leftover temporary directory is harmless.
    }
  }
}

std::string PgServer::ConnInfo(const std::string& dbname) const {
  return "host=" + dir_ + " port=" + std::to_string(port_) + " user=cohort dbname=" + dbname;
}

std::string PgServer::Uri(const std::string& dbname) const {
  std::string host;
  for (char c : dir_) host += c == '/' ? std::string("%2F") : std::string(1, c);
  return "postgresql://cohort@" + host + ":" + std::to_string(port_) + "/" + dbname;
}

bool PgServer::Exec(const std::string& dbname, const std::string& sql, std::string* error) {
  PGconn* conn = PQconnectdb(ConnInfo(dbname).c_str());
  bool ok = PQstatus(conn) == CONNECTION_OK;
  if (!ok) *error = PQerrorMessage(conn);
  if (ok) {
    PGresult* r = PQexec(conn, sql.c_str());
    ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!ok) *error = PQresultErrorMessage(r);
    PQclear(r);
  }
  PQfinish(conn);
  return ok;
}

bool PgServer::CreateDatabase(const std::string& name, std::string* error) {
  PGconn* conn = PQconnectdb(conninfo().c_str());
  bool ok = PQstatus(conn) == CONNECTION_OK;
  if (!ok) *error = PQerrorMessage(conn);
  if (ok) {
    char* quoted = PQescapeIdentifier(conn, name.c_str(), name.size());
    PGresult* r = PQexec(conn, ("CREATE DATABASE " + std::string(quoted) + " ENCODING 'UTF8'").c_str());
    PQfreemem(quoted);
    ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok) *error = PQresultErrorMessage(r);
    PQclear(r);
  }
  PQfinish(conn);
  return ok;
}

bool PgServer::Stop(std::string* error) {
  if (pid_ <= 0) return true;
  ::kill(pid_, SIGINT);
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  int status = 0;
  while (!Finished(pid_, &status)) {
    if (Clock::now() >= deadline) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
      *error = "postgres did not stop within 30 s; killed";
      pid_ = -1;
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  pid_ = -1;
  return true;
}

bool PgServer::Restart(std::string* error) { return Stop(error) && Launch(error); }

void PgServer::Kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

bool PgServer::StartAgain(std::string* error) {
  // The killed postmaster's backends notice it is gone and exit; the new
  // one waits for the shared memory they hold to be released.
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  while (true) {
    if (Launch(error)) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

}  // namespace cohort::testing
