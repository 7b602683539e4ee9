// LeaderLease decides, from the local monotonic clock alone, what a
// coordinator does about its lease (leadership.h): when a standby
// campaigns, when the leader renews, and until when the leader may act.
//
// The database counts a lease from the moment it runs the statement, which
// is after the leader sent it; so counting from the send, the leader's view
// of its lease always ends first. A margin of a tenth of the lease covers
// the two clocks running at slightly different rates. Past that instant
// without a renewal (the database unreachable, or the process paused by
// SIGSTOP, a VM migration, a long swap) the leader cannot know that nobody
// took over, and must stop: Held() turns false and the loop steps down.
//
// Thread contract: a plain value, owned by one event loop; no clock read.
#ifndef COHORT_COORDINATOR_LEADER_LEASE_H_
#define COHORT_COORDINATOR_LEADER_LEASE_H_

#include "common/time.h"

namespace cohort::coordinator {

class LeaderLease {
 public:
  // `lease`: how long a won or renewed lease lasts in the database.
  explicit LeaderLease(common::Duration lease);

  common::Duration lease() const { return lease_; }

  // A standby: when to campaign next, and what a campaign's outcome means.
  common::Time NextCampaign() const { return next_campaign_; }
  void Lost(common::Time now);  // someone else holds it, or the database failed
  // The campaign sent at `sent` won: this process leads from now.
  void Won(common::Time sent);

  // The leader: renewals are due every quarter of the lease, and every
  // tenth after a failed one, until the lease is no longer held.
  common::Time NextRenewal() const { return next_renewal_; }
  void Renewed(common::Time sent);
  void RenewFailed(common::Time now);
  // Whether this process may still act as leader at `now`.
  bool Held(common::Time now) const { return now < held_until_; }
  common::Time held_until() const { return held_until_; }

 private:
  void HeldFrom(common::Time sent);

  common::Duration lease_;
  common::Time next_campaign_{};
  common::Time next_renewal_ = common::Time::max();
  common::Time held_until_{};
};

}  // namespace cohort::coordinator

#endif  // COHORT_COORDINATOR_LEADER_LEASE_H_
