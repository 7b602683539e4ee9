// How the CLI shows documents from the coordinator to a person: tables for
// a group's steps, the group list and the worker list, and a one-line
// progress summary. Input is the coordinator's JSON (docs/PROTOCOL.md);
// missing or mistyped fields show as "-" rather than throwing.
#ifndef COHORT_CLI_DISPLAY_H_
#define COHORT_CLI_DISPLAY_H_

#include <ostream>
#include <string>

#include <nlohmann/json.hpp>

namespace cohort::cli {

void PrintResult(const nlohmann::json& result, std::ostream& out);
void PrintGroups(const nlohmann::json& list, std::ostream& out);
void PrintWorkers(const nlohmann::json& list, std::ostream& out);
// "g1: 3/10 done, 2 running, 1 failed", from a group summary (a brief STATUS).
std::string ProgressLine(const nlohmann::json& summary);

}  // namespace cohort::cli

#endif  // COHORT_CLI_DISPLAY_H_
