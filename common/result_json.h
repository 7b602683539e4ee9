// The result document: a group's result as JSON, the body of STATUS and WAIT
// replies and the output of `cohort ... --json`. Every key is always present;
// what is not known is null. Times are ISO-8601 UTC strings with
// milliseconds. Bytes of output tails that are not valid UTF-8 are replaced
// with U+FFFD when the document is written.
#ifndef COHORT_COMMON_RESULT_JSON_H_
#define COHORT_COMMON_RESULT_JSON_H_

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "common/status.h"
#include "common/time.h"

namespace cohort::common {

// "2026-11-26T11:32:03.123Z"
std::string FormatUnixMs(int64_t unix_ms);

// The whole result document as JSON text, written directly (see
// common/json_writer.h): a 10,000-step document is built on the
// coordinator's loop when a group ends.
std::string GroupResultJson(const GroupResult& result, const WallClock& clock);
nlohmann::json GroupSummaryToJson(const GroupSummary& summary, const WallClock& clock);

// Parses JSON without throwing and without letting nesting run deeper than
// kMaxJsonDepth: serializing or walking a hostile 200,000-level document
// recurses once per level and would overflow the stack. false and *error
// set on bad syntax or too deep a document.
constexpr int kMaxJsonDepth = 64;
// The same depth check alone, by a linear scan of the text: InvalidArgument
// "nested deeper than ..." when it is too deep.
Status CheckJsonDepth(std::string_view text);
bool ParseJsonBounded(std::string_view text, nlohmann::json* out, std::string* error);

// Serializes without throwing: invalid UTF-8 (from a step's output) becomes U+FFFD.
std::string DumpJson(const nlohmann::json& j, int indent = -1);

}  // namespace cohort::common

#endif  // COHORT_COMMON_RESULT_JSON_H_
