// PgServer is a private, real PostgreSQL server for tests: a cluster made by
// initdb in a temporary directory, listening on a free loopback port and on a
// Unix socket in that directory, stopped and removed with the object. It owns
// the directory and the server's processes (the postmaster it forks, and
// through it the backends). Started as root (CI), initdb and postgres run as
// an unprivileged user (postgres, else nobody), since both refuse root.
//
// Shared() gives each test binary one server, started the first time it is
// asked for and stopped at exit; tests take a database of their own on it
// (CreateDatabase), which costs tens of milliseconds, not a cluster.
//
// Thread contract: an instance is used by one thread at a time (it reaps its
// postmaster with waitpid, so nothing else in the process may reap children
// it did not start). Shared() may be called from any thread; the server it
// returns is then under the same contract.
#ifndef COHORT_TESTS_PG_SERVER_H_
#define COHORT_TESTS_PG_SERVER_H_

#include <sys/types.h>

#include <memory>
#include <string>

namespace cohort::testing {

class PgServer {
 public:
  // `durable`: fsync as a production server does (for benchmarks and
  // power-loss questions); off, a crash of the server's processes still loses
  // nothing committed (the page cache survives it), which is what tests kill.
  static bool Start(std::unique_ptr<PgServer>* out, std::string* error, bool durable = false);
  // The binary's one server, started on first use and stopped at exit; null
  // (and *error) when it cannot start. A failed start is not retried.
  static PgServer* Shared(std::string* error);
  ~PgServer();
  PgServer(const PgServer&) = delete;
  PgServer& operator=(const PgServer&) = delete;

  // libpq connection strings: over the Unix socket, as the superuser cohort.
  std::string conninfo() const { return ConnInfo("postgres"); }
  std::string ConnInfo(const std::string& dbname) const;
  // The same as a postgresql:// URI, for --store.
  std::string Uri(const std::string& dbname) const;
  const std::string& socket_dir() const { return dir_; }
  int port() const { return port_; }
  std::string data_dir() const { return dir_ + "/data"; }
  // The postmaster, or -1 while stopped or killed.
  pid_t pid() const { return pid_; }

  // Any name: it is quoted as an identifier.
  bool CreateDatabase(const std::string& name, std::string* error);
  // Runs `sql` (several statements allowed) on a fresh connection; rows are
  // discarded.
  bool Exec(const std::string& dbname, const std::string& sql, std::string* error);

  // Fast shutdown (SIGINT), waited for; SIGKILL past 30 s (and false).
  bool Stop(std::string* error);
  // Stop, then start on the same data directory and port; ready when true.
  bool Restart(std::string* error);
  // A crash: SIGKILL to the postmaster and every backend, returning once all
  // are dead, so no connection is served after it. Start the server again
  // with StartAgain (or Restart); it recovers from its WAL.
  void Kill();
  // Starts a stopped or killed server on the same port; true at once if it is
  // running.
  bool StartAgain(std::string* error);

 private:
  PgServer() = default;
  bool Init(std::string* error);
  // One postgres process, waited for until it accepts connections; on false
  // none is left running and *transient says a retry may succeed.
  bool Launch(bool* transient, std::string* error);
  bool LaunchUntilUp(std::string* error);
  void KillTree();

  std::string dir_;
  std::string bin_;
  int port_ = 0;
  pid_t pid_ = -1;
  pid_t owner_ = -1;  // the process that started it; a forked child leaves it alone
  bool durable_ = false;
  uid_t uid_ = 0;
  gid_t gid_ = 0;
  bool drop_ = false;  // run initdb and postgres as uid_/gid_
};

}  // namespace cohort::testing

#endif  // COHORT_TESTS_PG_SERVER_H_
