#include "coordinator/leader_lease.h"

namespace cohort::coordinator {

using common::Duration;
using common::Time;

LeaderLease::LeaderLease(Duration lease) : lease_(lease) {}

void LeaderLease::Lost(Time now) {
  // Often enough that a takeover waits little past the lease's end, rarely
  // enough that standbys cost the database nothing.
  next_campaign_ = now + lease_ / 8;
  next_renewal_ = Time::max();
  held_until_ = Time{};
}

void LeaderLease::Won(Time sent) { HeldFrom(sent); }

void LeaderLease::Renewed(Time sent) { HeldFrom(sent); }

void LeaderLease::RenewFailed(Time now) { next_renewal_ = now + lease_ / 10; }

void LeaderLease::HeldFrom(Time sent) {
  held_until_ = sent + lease_ - lease_ / 10;
  next_renewal_ = sent + lease_ / 4;
}

}  // namespace cohort::coordinator
