#include "coordinator/group_access.h"

namespace cohort::coordinator {

std::string QualifiedGroupId(std::string_view client, std::string_view id) {
  if (client.empty()) return std::string(id);
  std::string out;
  out.reserve(client.size() + 1 + id.size());
  out.append(client).append("/").append(id);
  return out;
}

std::string ResolveGroup(const Caller& caller, std::string_view named,
                         const std::function<bool(std::string_view)>& exists) {
  if (caller.name.empty()) return std::string(named);
  std::string own = QualifiedGroupId(caller.name, named);
  return exists(own) ? own : std::string(named);
}

}  // namespace cohort::coordinator
