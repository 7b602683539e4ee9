// WalCheckpointer copies a WAL-mode SQLite database's log back into the
// database file on a thread of its own, with its own connection, so that the
// fsyncs of a checkpoint never stall the connection that commits (the
// coordinator's event loop). It owns that thread and connection.
//
// The committing connection hands its WAL to it: after each commit SQLite
// calls the hook installed by Attach with the log's size, and past
// kBackgroundPages the thread is woken for a PASSIVE checkpoint, which never
// blocks the writer. A checkpoint cannot complete while commits land behind
// it, so under a load that never pauses the log could grow for ever: past
// kBlockingPages the committing thread checkpoints itself, once, right after
// its commit, which bounds the log.
//
// Thread contract: Attach, and destruction, on the thread that owns the
// committing connection; the hook runs on that thread too. Destroy this
// before closing that connection.
#ifndef COHORT_COORDINATOR_SQLITE_CHECKPOINTER_H_
#define COHORT_COORDINATOR_SQLITE_CHECKPOINTER_H_

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "common/status.h"

struct sqlite3;

namespace cohort::coordinator {

class WalCheckpointer {
 public:
  static constexpr int kBackgroundPages = 1000;    // about 4 MiB at SQLite's default page size
  static constexpr int kBlockingPages = 16 * 1024;  // about 64 MiB

  // Opens a second connection to `path` and starts the thread; `writer` is
  // the committing connection, whose automatic checkpoints this replaces.
  static common::Status Attach(sqlite3* writer, const std::string& path, std::unique_ptr<WalCheckpointer>* out);
  ~WalCheckpointer();
  WalCheckpointer(const WalCheckpointer&) = delete;
  WalCheckpointer& operator=(const WalCheckpointer&) = delete;

 private:
  WalCheckpointer(sqlite3* writer, sqlite3* own) : writer_(writer), own_(own) {}
  static int OnCommit(void* self, sqlite3* db, const char* schema, int pages);
  void Run();

  sqlite3* writer_;
  sqlite3* own_;
  std::mutex mu_;
  std::condition_variable wake_;
  bool wanted_ = false;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace cohort::coordinator

#endif  // COHORT_COORDINATOR_SQLITE_CHECKPOINTER_H_
