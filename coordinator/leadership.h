// Leadership among coordinators that share one database. Exactly one of
// them leads: it holds a lease, a row in the database with an epoch that
// only grows and an expiry on the database's own clock. The others stand by
// and campaign for the lease; one wins only once the holder's lease has run
// out (or it resigned), and winning raises the epoch.
//
// Every Commit of the leader's Store is fenced by its epoch: the batch's
// transaction first checks, with a row lock, that the row still holds that
// epoch, so a leader that was paused or cut off and deposed meanwhile
// writes nothing, whatever its own clock believes. A takeover waits for the
// lock, so a commit either lands before the takeover or not at all.
//
// Election is what a store offers for this (PostgresStore); LeaderLease in
// leader_lease.h decides, from the local clock, when to renew and when a
// leader must stop acting because it cannot know it still leads.
//
// Thread contract: as Store, one event loop owns it.
#ifndef COHORT_COORDINATOR_LEADERSHIP_H_
#define COHORT_COORDINATOR_LEADERSHIP_H_

#include <chrono>
#include <cstdint>
#include <string>

#include "common/status.h"
#include "common/time.h"

namespace cohort::coordinator {

// Who leads, or who asks to. The endpoints are where clients and workers
// reach it: a standby names them in its answers.
struct Leader {
  uint64_t epoch = 0;  // 0: nobody has ever led
  std::string holder;
  std::string client_endpoint;
  std::string worker_endpoint;
  int64_t expires_in_ms = 0;  // on the database's clock; negative: the lease ran out

  friend bool operator==(const Leader&, const Leader&) = default;
};

class Election {
 public:
  virtual ~Election() = default;

  // Takes the lease for `me` (its epoch is ignored) for `lease` if nobody
  // holds it: then *won is true, *current is `me` with the new epoch, and
  // every later Commit is fenced by it. Otherwise *won is false and
  // *current names the holder.
  virtual common::Status Campaign(const Leader& me, common::Duration lease, bool* won,
                                  Leader* current) = 0;
  // Extends the lease won last to `lease` from now. FailedPrecondition when
  // it was taken over (deposed() is then true, and *current names the new
  // leader when it could be read).
  virtual common::Status Renew(common::Duration lease, Leader* current) = 0;
  // Ends the lease now, so a standby takes over at once (a clean stop).
  virtual common::Status Resign() = 0;
  // Who holds the lease, as the database says now.
  virtual common::Status Current(Leader* out) = 0;
  // Whether a Renew or a fenced Commit found another epoch in the row.
  virtual bool deposed() const = 0;
};

}  // namespace cohort::coordinator

#endif  // COHORT_COORDINATOR_LEADERSHIP_H_
