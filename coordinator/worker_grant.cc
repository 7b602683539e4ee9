#include "coordinator/worker_grant.h"

#include <charconv>
#include <string_view>

#include "common/protocol.h"

namespace cohort::coordinator {

using common::Status;

namespace {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

Status Bad(const common::AllowlistEntry& e, const std::string& field, const std::string& why) {
  return Status::InvalidArgument(e.origin + ": metadata/" + field + " " + why);
}

}  // namespace

Status ParseWorkerGrant(const common::AllowlistEntry& e, WorkerGrant* out) {
  *out = {};
  out->name = e.name;
  if (auto it = e.metadata.find("worker-name"); it != e.metadata.end()) {
    if (it->second.empty() || it->second.size() > common::kMaxNameBytes) {
      return Bad(e, "worker-name", "must be 1 to " + std::to_string(common::kMaxNameBytes) + " bytes");
    }
    out->name = it->second;
  }
  if (auto it = e.metadata.find("max-slots"); it != e.metadata.end()) {
    const std::string& v = it->second;
    uint32_t n = 0;
    auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (ec != std::errc() || end != v.data() + v.size() || n < 1) {
      return Bad(e, "max-slots", "must be a whole number from 1 to 4294967295, got \"" + v + "\"");
    }
    out->max_slots = n;
  }
  if (auto it = e.metadata.find("labels"); it != e.metadata.end()) {
    std::string_view rest = it->second;
    while (!rest.empty()) {
      const size_t comma = rest.find(',');
      std::string_view label = Trim(rest.substr(0, comma));
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      if (label.empty()) continue;
      if (label.size() > common::kMaxNameBytes) {
        return Bad(e, "labels", "holds a label longer than " + std::to_string(common::kMaxNameBytes) + " bytes");
      }
      out->labels.emplace(label);
    }
    if (out->labels.size() > common::kMaxAgents) {
      return Bad(e, "labels", "lists " + std::to_string(out->labels.size()) + " labels; a worker may offer at most " +
                                  std::to_string(common::kMaxAgents));
    }
  }
  return Status::Ok();
}

Status CheckRegistration(const WorkerGrant& g, const common::RegisterMsg& reg) {
  if (reg.name != g.name) {
    return Status::FailedPrecondition("this key may register only as worker \"" + g.name + "\", not \"" + reg.name +
                                      "\" (metadata worker-name in its allowlist entry)");
  }
  if (reg.slots > g.max_slots) {
    return Status::FailedPrecondition("worker \"" + reg.name + "\" offers " + std::to_string(reg.slots) +
                                      " slots; its key may offer at most " + std::to_string(g.max_slots) +
                                      " (metadata max-slots in its allowlist entry)");
  }
  for (const std::string& label : reg.agents) {
    if (g.labels.count(label) == 0) {
      return Status::FailedPrecondition("worker \"" + reg.name + "\" offers label \"" + label +
                                        "\", which its key is not granted (metadata labels in its allowlist entry)");
    }
  }
  return Status::Ok();
}

}  // namespace cohort::coordinator
