#include "coordinator/client_limits.h"

#include <algorithm>

namespace cohort::coordinator {

using common::Status;

namespace {

std::string Who(const std::string& client) { return client.empty() ? "anonymous clients" : "client \"" + client + "\""; }

}  // namespace

Status ClientLimits::CheckSubmit(const std::string& client) const {
  if (max_groups_ == 0) return Status::Ok();
  const size_t n = InFlight(client);
  if (n < max_groups_) return Status::Ok();
  return Status::FailedPrecondition(Who(client) + " already has " + std::to_string(n) +
                                    " groups in flight; the limit is " + std::to_string(max_groups_) +
                                    " (--max-groups-per-client): wait for one to finish");
}

void ClientLimits::Admitted(const std::string& client, const std::string& group) {
  if (max_groups_ == 0) return;  // nothing to count against
  if (owner_.emplace(group, client).second) ++in_flight_[client];
}

void ClientLimits::Ended(const std::string& group) {
  auto it = owner_.find(group);
  if (it == owner_.end()) return;
  auto count = in_flight_.find(it->second);
  if (count != in_flight_.end() && --count->second == 0) in_flight_.erase(count);
  owner_.erase(it);
}

size_t ClientLimits::InFlight(const std::string& client) const {
  auto it = in_flight_.find(client);
  return it == in_flight_.end() ? 0 : it->second;
}

Status ClientLimits::CheckWait(const std::string& client) const {
  // Without CURVE every client is the anonymous one: a share of one would be
  // the whole, so only the coordinator's total applies.
  if (max_waits_ == 0 || client.empty()) return Status::Ok();
  const size_t n = Waits(client);
  if (n < max_waits_) return Status::Ok();
  return Status::Unavailable(Who(client) + " already holds " + std::to_string(n) + " WAITs; the limit is " +
                             std::to_string(max_waits_) + " (--max-waits-per-client): poll with STATUS instead");
}

void ClientLimits::WaitsEnded(const std::string& client, size_t n) {
  auto it = waits_.find(client);
  if (it == waits_.end()) return;
  it->second -= std::min(n, it->second);
  if (it->second == 0) waits_.erase(it);
}

size_t ClientLimits::Waits(const std::string& client) const {
  auto it = waits_.find(client);
  return it == waits_.end() ? 0 : it->second;
}

}  // namespace cohort::coordinator
