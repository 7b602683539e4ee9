// LeaderLease with a fake clock: a leader's own view of its lease always
// ends before the database's, renewals come every quarter lease, a failed
// one is retried every tenth, and a standby campaigns every eighth.
#include <catch2/catch.hpp>

#include "coordinator/leader_lease.h"

namespace cohort::coordinator {
namespace {

using std::chrono::milliseconds;
using common::Time;

const Time kT0 = Time{} + std::chrono::hours(1);

TEST_CASE("LeaderLease: held from the send of the winning campaign, less a tenth", "[unit][lease]") {
  LeaderLease lease(milliseconds(4000));
  CHECK_FALSE(lease.Held(kT0));
  lease.Won(kT0);
  CHECK(lease.Held(kT0 + milliseconds(3599)));
  // The database counts 4 s from a later instant than kT0: ours ends first.
  CHECK_FALSE(lease.Held(kT0 + milliseconds(3600)));
  CHECK(lease.NextRenewal() == kT0 + milliseconds(1000));
}

TEST_CASE("LeaderLease: a renewal extends from its send, and failures retry until the lease is gone", "[unit][lease]") {
  LeaderLease lease(milliseconds(4000));
  lease.Won(kT0);
  lease.Renewed(kT0 + milliseconds(1000));
  CHECK(lease.held_until() == kT0 + milliseconds(4600));
  CHECK(lease.NextRenewal() == kT0 + milliseconds(2000));
  // The database is unreachable from 2 s on: retries every 400 ms ...
  lease.RenewFailed(kT0 + milliseconds(2000));
  CHECK(lease.NextRenewal() == kT0 + milliseconds(2400));
  lease.RenewFailed(kT0 + milliseconds(2400));
  CHECK(lease.NextRenewal() == kT0 + milliseconds(2800));
  // ... and failures never extend what was held.
  CHECK(lease.held_until() == kT0 + milliseconds(4600));
  CHECK_FALSE(lease.Held(kT0 + milliseconds(4600)));
  // A process paused past its lease finds it gone when it runs again.
  CHECK_FALSE(lease.Held(kT0 + std::chrono::seconds(60)));
}

TEST_CASE("LeaderLease: a standby campaigns every eighth of the lease, and losing stops renewals",
          "[unit][lease]") {
  LeaderLease lease(milliseconds(4000));
  CHECK(lease.NextCampaign() <= kT0);
  lease.Lost(kT0);
  CHECK(lease.NextCampaign() == kT0 + milliseconds(500));
  lease.Won(kT0 + milliseconds(500));
  CHECK(lease.Held(kT0 + milliseconds(600)));
  lease.Lost(kT0 + milliseconds(700));
  CHECK_FALSE(lease.Held(kT0 + milliseconds(701)));
  CHECK(lease.NextRenewal() == Time::max());
}

}  // namespace
}  // namespace cohort::coordinator
