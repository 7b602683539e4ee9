// How the CLI shows documents from the coordinator to a person: tables for
// a group's steps and the worker list, and a one-line progress summary (the
// group list is cli/group_list.h). Input is the coordinator's JSON (docs/PROTOCOL.md);
// missing or mistyped fields show as "-" rather than throwing.
#ifndef COHORT_CLI_DISPLAY_H_
#define COHORT_CLI_DISPLAY_H_

#include <cstdint>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace cohort::cli {

// Failed steps a group's end shows, and lines of output for each: with the
// lines around them, a group with any number of failures fits 40 lines.
inline constexpr size_t kEndSteps = 5;
inline constexpr size_t kTailLines = 5;
// Cancel reasons shown one by one; the rest are counted together.
inline constexpr size_t kEndReasons = 3;

// The end of a group for a person, gathered page by page: the result
// document's summary, the first failed steps with the last lines of their
// output, and the cancelled steps counted by reason.
struct GroupEnd {
  nlohmann::json summary;             // the result document without its steps
  std::vector<nlohmann::json> failed;  // at most kEndSteps, each with "tail" (lines) and "tail_stream"
  uint64_t failed_more = 0;            // failed steps not in `failed`
  std::vector<std::pair<std::string, uint64_t>> cancelled;  // by reason, in the order first seen
};

void PrintResult(const nlohmann::json& result, std::ostream& out);
void PrintWorkers(const nlohmann::json& list, std::ostream& out);
// Lines of each output stream one step's view shows.
inline constexpr size_t kStepTailLines = 20;
// One step of a result document in detail: its state, each attempt (worker,
// outcome, times), and the last lines of its last attempt's output, given
// as the bytes read (cli/result_pages.h, StepOutput).
void PrintStep(const std::string& group, const nlohmann::json& step, const std::string& stdout_text,
               const std::string& stderr_text, std::ostream& out);
// Counts by state, elapsed time, then only what needs attention.
void PrintGroupEnd(const GroupEnd& end, std::ostream& out);
// The last `n` lines of `text`, without control characters, each cut to
// fit a line of a terminal.
std::vector<std::string> LastLines(const std::string& text, size_t n);
// The live progress line on a terminal, like GNU parallel's --bar and --eta:
// "[#####.....] 3/10 done, 2 running, 1 failed  0:42  0.1/s  ETA 1:38",
// from a group summary (a brief STATUS) and the seconds since the wait began.
std::string ProgressBar(const nlohmann::json& summary, double elapsed_s);
// "g1: 3/10 done, 2 running, 1 failed", from a group summary (a brief STATUS).
std::string ProgressLine(const nlohmann::json& summary);

}  // namespace cohort::cli

#endif  // COHORT_CLI_DISPLAY_H_
