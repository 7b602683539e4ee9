// ResultSpill is where a worker keeps the results the coordinator has not
// confirmed that no longer fit the memory bound (WorkerCoreOptions.spill):
// STATE_DIR/unconfirmed, one file per result, named by the core's result
// number and holding the FINISHED message's encoded body. The core decides
// what goes there and when it leaves (SpillResult, SendSpilled,
// DeleteSpilled); this class only writes, reads and deletes.
//
// The files serve one life of the worker. A worker that starts again has
// its attempts taken for lost by the coordinator (a new registration under
// the name is accepted only then) and run again, so their results would be
// refused: Open deletes what an earlier life left. Files are not synced: they
// relieve memory during a coordinator outage and need not outlive the
// process.
//
// Thread contract: one thread (the worker loop) uses it.
#ifndef COHORT_WORKER_RESULT_SPILL_H_
#define COHORT_WORKER_RESULT_SPILL_H_

#include <cstdint>
#include <string>

#include "common/messages.h"
#include "common/status.h"

namespace cohort::worker {

class ResultSpill {
 public:
  // Creates DIR (0700) when missing and deletes every file an earlier life
  // left in it, counting them in *discarded.
  static common::Status Open(const std::string& dir, size_t* discarded, ResultSpill* out);

  // IoError naming the file (a full disk says so).
  common::Status Write(uint64_t seq, const common::Message& msg) const;
  // *out is the FINISHED written under `seq`; Corruption when the file holds
  // anything else, IoError when it cannot be read.
  common::Status Read(uint64_t seq, common::Message* out) const;
  void Remove(uint64_t seq) const;

  const std::string& dir() const { return dir_; }

 private:
  std::string PathOf(uint64_t seq) const { return dir_ + "/" + std::to_string(seq); }

  std::string dir_;
};

}  // namespace cohort::worker

#endif  // COHORT_WORKER_RESULT_SPILL_H_
