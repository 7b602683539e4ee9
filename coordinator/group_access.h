// Which group a client's request is about, and whether that client may reach
// it. On a cluster with CURVE, a client is its key's name, and the groups it
// submits live in a namespace of their own: group "nightly" of client "alice"
// is "alice/nightly", so two clients may use one id and neither can take the
// other's. A client names its groups with or without its prefix; only an
// admin client (--admin-clients) reaches another client's groups, by their
// full id. Without CURVE every client is the same anonymous one, ids carry no
// prefix, and everything is reachable, as on any single-user tool.
//
// Pure functions. Thread contract: none needed.
#ifndef COHORT_COORDINATOR_GROUP_ACCESS_H_
#define COHORT_COORDINATOR_GROUP_ACCESS_H_

#include <functional>
#include <string>
#include <string_view>

namespace cohort::coordinator {

struct Caller {
  std::string name;  // the key's name; "" without CURVE
  bool admin = false;
};

// The id group `id` of `client` is kept under.
std::string QualifiedGroupId(std::string_view client, std::string_view id);

// The group a request of `caller` naming `named` is about: the caller's own
// group of that name when `exists` says there is one, else `named` as a full
// id.
std::string ResolveGroup(const Caller& caller, std::string_view named,
                         const std::function<bool(std::string_view)>& exists);

// Whether `caller` may see, wait for, read or cancel a group `owner` submitted.
inline bool MayReach(const Caller& caller, std::string_view owner) { return caller.admin || caller.name == owner; }

}  // namespace cohort::coordinator

#endif  // COHORT_COORDINATOR_GROUP_ACCESS_H_
