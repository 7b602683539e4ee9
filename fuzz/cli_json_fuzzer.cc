// Harness: the JSON the CLI reads, through the functions `cohort` calls.
// The input is taken both as a document the coordinator sent (a reply body:
// a result document, a group summary, the group or worker list), parsed with
// ParseJsonBounded and shown with cli/display.h whatever its shape, and as a
// group file: parsed, written back with DumpJson and checked with
// ParseGroupSpecJson, as `cohort submit FILE` does before sending it.
// Properties: nothing throws or crashes on any document; a parse error has a
// message; and DumpJson writes what ParseJsonBounded reads back unchanged, so
// the CLI sends the group the file described.
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "cli/display.h"
#include "cli/group_list.h"
#include "common/group_spec.h"
#include "common/result_json.h"
#include "fuzz/fuzz_util.h"

namespace {

using cohort::fuzz::Require;
using Json = nlohmann::json;

void Show(const Json& doc) {
  std::ostringstream out;
  cohort::cli::PrintResult(doc, out);
  size_t more = 0;
  cohort::cli::PrintGroups(cohort::cli::SelectGroups(doc, "", 2, &more), 0, out);
  cohort::cli::PrintGroups(doc, INT64_MAX, out);
  cohort::cli::PrintWorkers(doc, out);
  out << cohort::cli::ProgressLine(doc);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  Json doc;
  std::string error;
  if (!cohort::common::ParseJsonBounded(text, &doc, &error)) {
    Require(!error.empty(), "a JSON parse error has a message");
    Show(Json());  // the CLI shows a body it cannot parse as null
    return 0;
  }
  Show(doc);

  const std::string dumped = cohort::common::DumpJson(doc);
  Json again;
  Require(cohort::common::ParseJsonBounded(dumped, &again, &error), "DumpJson output parses", error + "\n" + dumped);
  Require(again == doc, "ParseJsonBounded(DumpJson(doc)) == doc", dumped);

  if (doc.is_object()) {
    cohort::common::GroupSpec spec;
    cohort::common::Status s = cohort::common::ParseGroupSpecJson(dumped, &spec);
    if (!s.ok()) {
      cohort::fuzz::RequireCleanError(s, cohort::common::Status::Code::kInvalidArgument,
                                      "a refused group file is InvalidArgument");
    }
  }
  return 0;
}
