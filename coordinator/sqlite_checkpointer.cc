#include "coordinator/sqlite_checkpointer.h"

#include <sqlite3.h>

namespace cohort::coordinator {

using common::Status;

Status WalCheckpointer::Attach(sqlite3* writer, const std::string& path, std::unique_ptr<WalCheckpointer>* out) {
  sqlite3* own = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &own, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    Status s = Status::IoError(path + ": cannot open a connection for checkpoints: " +
                               (own ? sqlite3_errmsg(own) : "out of memory"));
    sqlite3_close_v2(own);
    return s;
  }
  // A connection that has never read has not opened the WAL, and its
  // checkpoints do nothing: one read makes it see the log.
  if (int r = sqlite3_exec(own, "SELECT count(*) FROM sqlite_master", nullptr, nullptr, nullptr); r != SQLITE_OK) {
    Status s = Status::IoError(path + ": cannot read it for checkpoints: " + sqlite3_errmsg(own));
    sqlite3_close_v2(own);
    return s;
  }
  std::unique_ptr<WalCheckpointer> c(new WalCheckpointer(writer, own));
  c->thread_ = std::thread([p = c.get()] { p->Run(); });
  // Replaces SQLite's own hook, which is what automatic checkpoints are.
  sqlite3_wal_hook(writer, &WalCheckpointer::OnCommit, c.get());
  *out = std::move(c);
  return Status::Ok();
}

WalCheckpointer::~WalCheckpointer() {
  sqlite3_wal_hook(writer_, nullptr, nullptr);
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_one();
  thread_.join();
  sqlite3_close_v2(own_);
}

int WalCheckpointer::OnCommit(void* self, sqlite3* db, const char* schema, int pages) {
  auto* c = static_cast<WalCheckpointer*>(self);
  if (pages >= kBlockingPages) {
    // The background checkpoints never caught up: one on this thread, with
    // no commit behind it, does. Its failure is the next commit's to report.
    sqlite3_wal_checkpoint_v2(db, schema, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
  } else if (pages >= kBackgroundPages) {
    {
      std::lock_guard<std::mutex> lock(c->mu_);
      c->wanted_ = true;
    }
    c->wake_.notify_one();
  }
  return SQLITE_OK;
}

void WalCheckpointer::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    wake_.wait(lock, [this] { return wanted_ || stop_; });
    if (stop_) return;
    wanted_ = false;
    lock.unlock();
    // Busy (the other thread is checkpointing) or an I/O error: the next
    // commit asks again, and a lasting error shows on the committing side.
    sqlite3_wal_checkpoint_v2(own_, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
    lock.lock();
  }
}

}  // namespace cohort::coordinator
