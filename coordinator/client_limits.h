// ClientLimits bounds what one client may make the coordinator hold: groups
// in flight (submitted and not yet finished), steps per group, and WAITs held
// at once (so one client cannot take every waiting slot from the others). A client is
// the name its CURVE key has in the clients' allowlist; without CURVE every
// client is the same anonymous one. The server checks the groups in flight
// before it parses a submission, and the spec reader stops at max_steps(),
// so a refused group never reaches the core. 0 means no limit.
//
// Pure: no sockets, no clock. Thread contract: one thread.
#ifndef COHORT_COORDINATOR_CLIENT_LIMITS_H_
#define COHORT_COORDINATOR_CLIENT_LIMITS_H_

#include <cstddef>
#include <string>
#include <unordered_map>

#include "common/group_spec.h"
#include "common/status.h"

namespace cohort::coordinator {

class ClientLimits {
 public:
  ClientLimits(size_t max_groups_in_flight, size_t max_steps_per_group, size_t max_waits = 0)
      : max_groups_(max_groups_in_flight), max_steps_(max_steps_per_group), max_waits_(max_waits) {}

  // FailedPrecondition naming the limit if `client` may not submit now.
  common::Status CheckSubmit(const std::string& client) const;
  // The most steps a group may have (0 in the options: no per-client limit).
  size_t max_steps() const { return max_steps_ == 0 ? common::kMaxStepsPerGroup : max_steps_; }
  // `group` of `client` is now in flight.
  void Admitted(const std::string& client, const std::string& group);
  // `group` finished; unknown groups are ignored.
  void Ended(const std::string& group);
  size_t InFlight(const std::string& client) const;

  // Unavailable naming the limit if `client` may not hold another WAIT
  // (never for the anonymous client: without keys all clients are one).
  common::Status CheckWait(const std::string& client) const;
  // `client` holds one more WAIT, or `n` fewer.
  void WaitHeld(const std::string& client) { ++waits_[client]; }
  void WaitsEnded(const std::string& client, size_t n);
  size_t Waits(const std::string& client) const;

 private:
  size_t max_groups_;
  size_t max_steps_;
  size_t max_waits_;
  std::unordered_map<std::string, size_t> waits_;  // client -> WAITs held
  std::unordered_map<std::string, std::string> owner_;  // group -> client
  std::unordered_map<std::string, size_t> in_flight_;   // client -> groups
};

}  // namespace cohort::coordinator

#endif  // COHORT_COORDINATOR_CLIENT_LIMITS_H_
