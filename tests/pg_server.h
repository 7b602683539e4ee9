// PgServer is a private, real PostgreSQL server for tests: a cluster made
// by initdb in a temporary directory, listening on a free loopback port and
// on a Unix socket in that directory, stopped and removed with the object.
// It owns the directory and the postmaster process. Started as root (CI),
// initdb and postgres run as an unprivileged user (postgres, else nobody),
// since both refuse root.
//
// Shared() gives each test binary one server, started the first time it is
// asked for and stopped at exit; tests take a database of their own on it
// (CreateDatabase), which costs a fraction of a second, not a cluster.
//
// Thread contract: one thread uses an instance.
#ifndef COHORT_TESTS_PG_SERVER_H_
#define COHORT_TESTS_PG_SERVER_H_

#include <sys/types.h>

#include <memory>
#include <string>

namespace cohort::testing {

class PgServer {
 public:
  // `durable`: fsync as a production server does (for benchmarks and
  // power-loss questions); off, a crash of the server process still loses
  // nothing committed, which is what the tests kill.
  static bool Start(std::unique_ptr<PgServer>* out, std::string* error, bool durable = false);
  // The binary's one server, started on first use; null (and *error) when it
  // cannot start.
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
  pid_t pid() const { return pid_; }

  bool CreateDatabase(const std::string& name, std::string* error);
  bool Exec(const std::string& dbname, const std::string& sql, std::string* error);

  // Fast shutdown (SIGINT), waited for; SIGKILL past 30 s.
  bool Stop(std::string* error);
  // Stop, then start on the same data directory and port.
  bool Restart(std::string* error);
  // SIGKILL the postmaster (its backends exit on their own); Launch again
  // with Restart or StartAgain.
  void Kill();
  bool StartAgain(std::string* error);

 private:
  PgServer() = default;
  bool Init(std::string* error);
  bool Launch(std::string* error);
  bool WaitReady(std::string* error);
  std::string LogTail() const;

  std::string dir_;
  std::string bin_;
  int port_ = 0;
  pid_t pid_ = -1;
  bool durable_ = false;
  uid_t uid_ = 0;
  gid_t gid_ = 0;
  bool drop_ = false;  // run the server as uid_/gid_
};

}  // namespace cohort::testing

#endif  // COHORT_TESTS_PG_SERVER_H_
