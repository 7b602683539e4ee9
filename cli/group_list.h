// How `cohort groups` shows the coordinator's group list (the GROUPS reply,
// docs/PROTOCOL.md) to a person: one row a group. Missing or mistyped fields
// show as "-" rather than throwing. Stateless functions; safe from any thread.
#ifndef COHORT_CLI_GROUP_LIST_H_
#define COHORT_CLI_GROUP_LIST_H_

#include <ostream>

#include <nlohmann/json.hpp>

namespace cohort::cli {

void PrintGroups(const nlohmann::json& list, std::ostream& out);

}  // namespace cohort::cli

#endif  // COHORT_CLI_GROUP_LIST_H_
