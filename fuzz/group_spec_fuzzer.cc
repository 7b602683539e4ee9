// Harness: the group-spec parser, ParseGroupSpecJson (JSON text, read through
// the bounded JSON parser, then validated), exactly as the coordinator reads
// a SUBMIT and the CLI checks a group before sending it. A spec it accepts
// must be valid, and must read back the same from the JSON this harness
// writes for it (there is no serializer in the code base, so SpecToJson below
// writes every field the reader knows). A refused spec must be
// InvalidArgument with a message.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/group_spec.h"
#include "common/result_json.h"
#include "fuzz/fuzz_util.h"

namespace {

using cohort::common::FailureKind;
using cohort::common::GroupSpec;
using cohort::common::RetryPolicy;
using cohort::common::StepSpec;
using cohort::fuzz::Require;
using Json = nlohmann::json;

Json RetryToJson(const RetryPolicy& p) {
  Json j{{"max_attempts", p.max_attempts},
         {"backoff_s", p.backoff_s},
         {"backoff_multiplier", p.backoff_multiplier},
         {"max_backoff_s", p.max_backoff_s},
         {"jitter", p.jitter}};
  if (p.retry_on_given) {
    Json kinds = Json::array();
    for (FailureKind k : {FailureKind::kExit, FailureKind::kTimeout, FailureKind::kWorkerLost}) {
      if (p.RetriesOn(k)) kinds.push_back(std::string(cohort::common::FailureKindName(k)));
    }
    j["retry_on"] = std::move(kinds);
  }
  return j;
}

Json SpecToJson(const GroupSpec& g) {
  Json j{{"id", g.id}, {"on_failure", std::string(cohort::common::OnFailureName(g.on_failure))},
         {"retry", RetryToJson(g.retry)}, {"steps", Json::array()}};
  if (g.max_parallel) j["max_parallel"] = *g.max_parallel;
  if (g.timeout_s) j["timeout_s"] = *g.timeout_s;
  if (g.deadline_s) j["deadline_s"] = *g.deadline_s;
  for (const StepSpec& s : g.steps) {
    Json step{{"id", s.id}, {"agent", s.agent}, {"cwd", s.cwd}, {"env", Json::object()}};
    if (!s.argv.empty()) step["command"] = s.argv;
    else step["shell"] = s.shell;
    for (const auto& [name, value] : s.env) step["env"][name] = value;
    if (s.timeout_s) step["timeout_s"] = *s.timeout_s;
    if (s.retry) step["retry"] = RetryToJson(*s.retry);
    j["steps"].push_back(std::move(step));
  }
  return j;
}

// "" when equal, else the first field that differs.
std::string Diff(const RetryPolicy& a, const RetryPolicy& b, const std::string& where) {
  if (a.max_attempts != b.max_attempts) return where + "max_attempts";
  if (a.backoff_s != b.backoff_s) return where + "backoff_s";
  if (a.backoff_multiplier != b.backoff_multiplier) return where + "backoff_multiplier";
  if (a.max_backoff_s != b.max_backoff_s) return where + "max_backoff_s";
  if (a.jitter != b.jitter) return where + "jitter";
  if (a.retry_on != b.retry_on) return where + "retry_on";
  if (a.retry_on_given != b.retry_on_given) return where + "retry_on_given";
  return "";
}

std::string Diff(const GroupSpec& a, const GroupSpec& b) {
  if (a.id != b.id) return "id";
  if (a.max_parallel != b.max_parallel) return "max_parallel";
  if (a.timeout_s != b.timeout_s) return "timeout_s";
  if (a.deadline_s != b.deadline_s) return "deadline_s";
  if (a.on_failure != b.on_failure) return "on_failure";
  if (std::string d = Diff(a.retry, b.retry, "retry."); !d.empty()) return d;
  if (a.steps.size() != b.steps.size()) return "steps (count)";
  for (size_t i = 0; i < a.steps.size(); ++i) {
    const StepSpec& x = a.steps[i];
    const StepSpec& y = b.steps[i];
    const std::string at = "steps[" + std::to_string(i) + "].";
    if (x.id != y.id) return at + "id";
    if (x.argv != y.argv) return at + "command";
    if (x.shell != y.shell) return at + "shell";
    if (x.agent != y.agent) return at + "agent";
    if (x.env != y.env) return at + "env";
    if (x.cwd != y.cwd) return at + "cwd";
    if (x.timeout_s != y.timeout_s) return at + "timeout_s";
    if (x.retry.has_value() != y.retry.has_value()) return at + "retry";
    if (x.retry) {
      if (std::string d = Diff(*x.retry, *y.retry, at + "retry."); !d.empty()) return d;
    }
  }
  return "";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  GroupSpec spec;
  cohort::common::Status s = cohort::common::ParseGroupSpecJson(text, &spec);
  if (!s.ok()) {
    cohort::fuzz::RequireCleanError(s, cohort::common::Status::Code::kInvalidArgument,
                                    "a refused spec is InvalidArgument");
    return 0;
  }
  cohort::common::Status valid = cohort::common::ValidateGroupSpec(spec);
  Require(valid.ok(), "a parsed spec is valid", valid.ToString());

  const std::string again = cohort::common::DumpJson(SpecToJson(spec));
  GroupSpec reread;
  s = cohort::common::ParseGroupSpecJson(again, &reread);
  Require(s.ok(), "a parsed spec, written as JSON, parses again", s.ToString() + "\n" + again);
  std::string diff = Diff(spec, reread);
  Require(diff.empty(), "a parsed spec reads back the same from its JSON", diff + " differs in\n" + again);
  return 0;
}
