#include "cli/one_step.h"

#include <iostream>

#include "cli/command_line.h"
#include "cli/result_pages.h"
#include "common/result_json.h"

namespace cohort::cli {
namespace {

using common::Status;
using Json = nlohmann::json;

const Json* Field(const Json& j, const char* key) {
  if (!j.is_object()) return nullptr;
  auto it = j.find(key);
  return it == j.end() ? nullptr : &*it;
}

std::string StringField(const Json& j, const char* key) {
  const Json* v = Field(j, key);
  return v && v->is_string() ? v->get<std::string>() : "";
}

bool TimedOut(const Json& step) {
  const Json* history = Field(step, "history");
  if (!history || !history->is_array() || history->empty()) return false;
  return StringField(history->back(), "status") == "timed_out";
}

// Writes all of `bytes`; false when the stream would not take them (a
// closed pipe), which a command's exit code must not hide.
bool WriteAll(std::ostream& out, const std::string& bytes) {
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.flush();
  return static_cast<bool>(out);
}

}  // namespace

int OneStepExit(const Json& step) {
  const std::string state = StringField(step, "state");
  if (state == "completed") return kExitOk;
  if (state != "failed") return kExitFailed;
  if (TimedOut(step)) return kExitTimedOut;
  const Json* code = Field(step, "exit_code");
  if (code && code->is_number_integer()) {
    const int64_t n = code->get<int64_t>();
    if (n == kExitUsage || n == kExitUnreachable || n <= 0 || n > 255) return kExitFailed;
    return static_cast<int>(n);
  }
  const Json* signal = Field(step, "signal");
  if (signal && signal->is_number_integer()) {
    const int64_t n = signal->get<int64_t>();
    if (n > 0 && n < 128) return 128 + static_cast<int>(n);
  }
  return kExitFailed;
}

int FinishOneStep(Client& client, const std::string& group, const std::string& first_body) {
  const Json page = ParseBody(first_body);
  const Json* steps = Field(page, "steps");
  if (!steps || !steps->is_array() || steps->size() != 1) {
    return Fail(kExitFailed, "group " + group + " should hold one step, and the coordinator sent " +
                                 (steps && steps->is_array() ? std::to_string(steps->size()) : "none"));
  }
  const Json& step = steps->front();
  bool written = true;
  for (const char* stream : {"stdout", "stderr"}) {
    std::string bytes;
    if (Status s = StepOutput(client, group, step, stream, &bytes); !s.ok()) {
      std::cerr << "cohort: cannot read the step's " << stream << ": " << s.message() << "\n";
      continue;
    }
    written = WriteAll(std::string(stream) == "stdout" ? std::cout : std::cerr, bytes) && written;
  }
  const int code = OneStepExit(step);
  if (code != kExitOk) {
    const std::string error = StringField(step, "error");
    const std::string worker = StringField(step, "worker");
    std::cerr << "cohort: group " << group << ": the step " << StringField(step, "state")
              << (error.empty() ? "" : ": " + error) << (worker.empty() ? "" : " (worker " + worker + ")")
              << "; exit " << code << "\n";
  }
  return written || code != kExitOk ? code : kExitFailed;
}

}  // namespace cohort::cli
