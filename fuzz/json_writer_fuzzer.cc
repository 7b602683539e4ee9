// Harness: JsonWriter (common/json_writer.h), which writes the coordinator's
// result documents as text with no JSON tree, and GroupResultJson on top of
// it. nlohmann::json is the reference it promises to match. Properties:
//  - a string of valid UTF-8 is written exactly as nlohmann's dump() writes
//    it; any other bytes are written as JSON that parses, each bad byte a
//    U+FFFD, so the text equals nlohmann's (which may merge a run of bad
//    bytes into one U+FFFD) once runs of U+FFFD are merged;
//  - a double reads back as the same double (null for NaN and infinities),
//    and as a number with a fraction, never an integer;
//  - objects and arrays of such values parse back to what was written;
//  - a result document built from the same strings is valid JSON.
#include <fuzzer/FuzzedDataProvider.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/json_writer.h"
#include "common/result.h"
#include "common/result_json.h"
#include "fuzz/fuzz_util.h"

namespace {

using cohort::common::JsonWriter;
using cohort::fuzz::Require;
using Json = nlohmann::json;

std::string MergeReplacements(std::string s) {
  static const std::string kTwo = "\xEF\xBF\xBD\xEF\xBF\xBD";
  for (size_t at; (at = s.find(kTwo)) != std::string::npos;) s.erase(at, 3);
  return s;
}

Json Parse(const std::string& text, const char* what) {
  Json j;
  std::string error;
  Require(cohort::common::ParseJsonBounded(text, &j, &error), what, error + "\n" + text);
  return j;
}

void CheckString(const std::string& s) {
  std::string out;
  cohort::common::AppendJsonString(s, &out);
  // Valid exactly when dropping bad bytes and replacing them agree (an
  // exception from the strict handler would do, but costs more than the run).
  const Json j(s);
  const std::string reference = cohort::common::DumpJson(j);
  const bool valid = reference == j.dump(-1, ' ', false, Json::error_handler_t::ignore);
  if (valid) {
    Require(out == reference, "valid UTF-8 is written as nlohmann writes it", out + "\n" + reference);
  } else {
    Require(Parse(out, "a string with bad UTF-8 is written as JSON that parses").is_string(), "a string is a string");
    Require(MergeReplacements(out) == MergeReplacements(reference),
            "bad UTF-8 is written as nlohmann writes it, up to runs of U+FFFD", out + "\n" + reference);
  }
}

void CheckDouble(double d) {
  std::string out;
  JsonWriter(&out).Double(d);
  Json j = Parse(out, "a double is written as JSON that parses");
  if (!std::isfinite(d)) {
    Require(j.is_null(), "NaN and infinities are written as null", out);
    return;
  }
  Require(j.is_number_float(), "a double reads back as a number with a fraction", out);
  const double back = j.get<double>();
  Require(back == d && std::signbit(back) == std::signbit(d), "a double reads back the same", out);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const std::string a = in.ConsumeRandomLengthString(4096);
  const std::string b = in.ConsumeRandomLengthString(4096);
  const double d = [&] {
    uint64_t bits = in.ConsumeIntegral<uint64_t>();
    double v;
    std::memcpy(&v, &bits, sizeof v);
    return v;
  }();
  const int64_t i = in.ConsumeIntegral<int64_t>();
  const uint64_t u = in.ConsumeIntegral<uint64_t>();
  CheckString(a);
  CheckString(b);
  CheckDouble(d);

  std::string text;
  JsonWriter w(&text);
  w.BeginObject().Key(a).String(b).Key("n").Double(d).Key("list").BeginArray();
  w.Int(i).UInt(u).Null().StringOrNull(a).BeginObject().EndObject().BeginArray().EndArray().EndArray();
  w.EndObject();
  Json doc = Parse(text, "a written document parses");
  Require(doc.is_object() && doc.contains("list") && doc["list"].size() == 6, "a document has what was written", text);
  Require(doc["list"][0] == i && doc["list"][1] == u && doc["list"][2].is_null(), "integers read back", text);

  // A result document made of the same strings, as the coordinator writes it.
  cohort::common::GroupResult r;
  r.id = a;
  r.cause = cohort::common::GroupError{b, a};
  r.errors = {*r.cause};
  cohort::common::StepResult step{b, cohort::common::StepState::kFailed, a, b, {}};
  cohort::common::AttemptRecord attempt;
  attempt.attempt = 1;
  attempt.worker = a;
  attempt.exit_code = static_cast<int>(i);
  attempt.error = b;
  attempt.stdout_tail = a;
  attempt.stderr_tail = b;
  step.attempts = {attempt};
  r.steps = {step};
  const std::string result = cohort::common::GroupResultJson(r, cohort::common::WallClock({}, i / 4));
  // accept() checks the syntax without building a tree: a third of the
  // cost of a parse, which was most of this harness's time.
  Require(Json::accept(result), "a result document is valid JSON", result);
  return 0;
}
