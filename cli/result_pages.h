// Reading a group's whole result from the coordinator, page by page
// (docs/PROTOCOL.md, "Paged results"): the first page comes with a WAIT's or
// a STATUS's reply, each next one from a STATUS with the previous page's
// next_cursor. The result is written out as it arrives, so the CLI holds one
// page at a time, whatever the size of the group.
//
// Thread contract: plain functions; the Client is used by the calling thread.
#ifndef COHORT_CLI_RESULT_PAGES_H_
#define COHORT_CLI_RESULT_PAGES_H_

#include <ostream>
#include <string>

#include <nlohmann/json.hpp>

#include "cli/client.h"
#include "common/status.h"

namespace cohort::cli {

enum class ResultFormat {
  kJson,   // one JSON document with every step
  kJsonl,  // one JSON object per step per line, then the group's summary
  kTable,  // a table for a person: the steps that need attention first
  kEnd,    // for a person, at a group's end: counts and what needs attention (display.h, GroupEnd)
};

// Rows of the table view; the rest are counted, and it says how to see them.
inline constexpr size_t kTableRows = 1000;

// Writes the group's result, from the page in `first_body` on, to `out`.
// *summary is the first page without its steps (state, counts, errors), for
// the exit code. A page that is not a result document, or a STATUS that
// fails midway (the group was forgotten meanwhile), is an error; what was
// written stays written.
common::Status WriteResult(Client& client, const std::string& group, const std::string& first_body,
                           ResultFormat format, std::ostream& out, nlohmann::json* summary);

// The step `id` of the group, read page by page from `first_body` on;
// NotFound when no page holds it.
common::Status FindStep(Client& client, const std::string& group, const std::string& first_body,
                        const std::string& id, nlohmann::json* step);

// The kept `stream` ("stdout" or "stderr") of a result document's step, the
// bytes its last attempt wrote: the page's text when it is whole, else LOGS.
// A page leaves output out past its budget (output_omitted), and JSON
// replaces bytes that are not UTF-8 with U+FFFD.
common::Status StepOutput(Client& client, const std::string& group, const nlohmann::json& step,
                          const std::string& stream, std::string* out);

}  // namespace cohort::cli

#endif  // COHORT_CLI_RESULT_PAGES_H_
