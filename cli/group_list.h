// How `cohort groups` shows the coordinator's group list (the GROUPS reply,
// docs/PROTOCOL.md): the groups chosen by state, newest first, at most a
// given number, and for a person one row a group with its counts and how
// long it has run. Missing or mistyped fields show as "-" rather than
// throwing. Stateless functions; safe from any thread.
#ifndef COHORT_CLI_GROUP_LIST_H_
#define COHORT_CLI_GROUP_LIST_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace cohort::cli {

// The groups `cohort groups` lists when no --limit is given.
inline constexpr size_t kGroupsShown = 50;
// The states --state takes, as the coordinator names them.
inline constexpr const char* kGroupStates[] = {"running", "completed", "failed", "cancelled"};
bool IsGroupState(std::string_view state);

// The groups of `list` in `state` (every one when it is empty), newest
// submission first, at most `limit` of them (0: all); *more counts those the
// limit left out. A list that is not an array selects nothing.
nlohmann::json SelectGroups(const nlohmann::json& list, const std::string& state, size_t limit, size_t* more);

// "2026-11-26T11:32:03.123Z" as milliseconds since the epoch; nullopt for
// anything else.
std::optional<int64_t> ParseUnixMs(std::string_view iso);
// "0:42", "1:02:03", "3d 04:05:06".
std::string Elapsed(int64_t ms);

// A table of `list`: each group's steps by state and its elapsed time, from
// submission to its end, or to `now_unix_ms` while it runs.
void PrintGroups(const nlohmann::json& list, int64_t now_unix_ms, std::ostream& out);

}  // namespace cohort::cli

#endif  // COHORT_CLI_GROUP_LIST_H_
