#include "coordinator/client_limits.h"

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

}  // namespace cohort::coordinator
