// make_seeds: writes the seed corpus the harnesses start from, into
// fuzz/corpus/<harness>/ (scripts/fuzz --seeds runs it; the files are
// committed). Seeds are small valid inputs: one message of every type per
// codec harness, encoded by the real encoder; group files and coordinator
// replies made by the real serializers, so a format change shows up here as
// a diff of the corpus; and strings, good and bad UTF-8, for the JSON writer.
// Usage: make_seeds SOURCE_DIR CORPUS_DIR
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include "common/codec.h"
#include "common/messages.h"
#include "common/result.h"
#include "common/result_json.h"
#include "fuzz/fuzz_util.h"

namespace {

namespace fs = std::filesystem;
using namespace cohort::common;  // NOLINT: a tool that names every message type

std::vector<std::pair<std::string, Message>> Messages() {
  RunMsg run;
  run.id = {"build-42", 3, 1, 7};
  run.step_id = "test";
  run.argv = {"make", "-j4", "test"};
  run.env = {{"CC", "clang"}, {"V", "1"}};
  run.cwd = "/src";
  run.timeout_ms = 60000;
  RunMsg shell_run;
  shell_run.id = {"build-42", 4, 2, 7};
  shell_run.step_id = "lint";
  shell_run.shell = "ruff check . && echo ok";
  FinishedMsg fin;
  fin.id = {"build-42", 3, 1, 7};
  fin.exit_code = 2;
  fin.error = "exited with code 2";
  fin.stdout_tail = "ok 1\nnot ok 2\n";
  fin.stderr_tail = std::string("\xff\x00warn", 6);
  fin.stdout_bytes = 14;
  fin.stderr_bytes = 6;
  fin.started_ms = 1764156723123;
  fin.finished_ms = 1764156729456;
  FinishedMsg killed;
  killed.id = {"g", 0, 2, 8};
  killed.signal = 9;
  killed.timed_out = true;
  killed.escalated = true;
  RegisterMsg reg{"w1", 4, {"linux", "gpu"}, {{"build-42", 3, 1, 7}, {"g", 0, 2, 8}}, "0.1.0", 0x9e3779b97f4a7c15u};
  return {
      {"submit", SubmitMsg{1, R"({"id": "g", "steps": [{"id": "a", "shell": "true"}]})"}},
      {"status", StatusMsg{7, "build-42"}},
      {"status_brief", StatusMsg{8, "build-42", true}},
      {"wait", WaitMsg{9, "build-42"}},
      {"cancel_request", CancelRequestMsg{10, "build-42", "lint"}},
      {"groups", GroupsMsg{11}},
      {"workers", WorkersMsg{12}},
      {"reply", ReplyMsg{7, Status::Code::kOk, "", R"({"group": "build-42"})", ""}},
      {"reply_error", ReplyMsg{9, Status::Code::kNotFound, "no group \"x\"", "", ""}},
      {"register", reg},
      {"welcome", WelcomeMsg{1000, 3, "tcp://127.0.0.1:5702"}},
      {"heartbeat", HeartbeatMsg{}},
      {"heartbeat_running", HeartbeatMsg{std::vector<AttemptId>{{"build-42", 3, 1, 7}, {"g", 0, 2, 8}}}},
      {"run", run},
      {"run_shell", shell_run},
      {"started", StartedMsg{{"build-42", 3, 1, 7}}},
      {"finished", fin},
      {"finished_killed", killed},
      {"cancel_attempt", CancelAttemptMsg{{"build-42", 3, 1, 7}, 0}},
      {"reregister", ReregisterMsg{"unknown worker; register again", ""}},
      {"bye", ByeMsg{}},
      {"cancel_group", CancelGroupMsg{"build-42", 7, 0}},
      {"confirm", ConfirmMsg{{{"build-42", 3, 1, 7}, {"g", 0, 2, 8}}}},
      {"logs", LogsMsg{13, "build-42", "lint", 2, "stderr"}},
      {"ping", PingMsg{15}},
      {"cordon", CordonMsg{16, "node-1", "draining"}},
      {"status_page", StatusMsg{14, "build-42", false, 10000}},
  };
}

// Group files beyond configs/: every key the reader knows, and its variants.
const char* const kSpecs[][2] = {
    {"readme.json",
     R"({"id": "build-42", "max_parallel": 4, "timeout_s": 30, "deadline_s": 600, "on_failure": "cancel",
 "retry": {"max_attempts": 3, "backoff_s": 0.5, "backoff_multiplier": 2, "max_backoff_s": 30,
           "jitter": 0.1, "retry_on": ["exit", "timeout", "worker_lost"]},
 "steps": [{"id": "build", "command": ["make", "-j4"], "agent": "linux", "env": {"K": "V"},
            "cwd": "/src", "timeout_s": 60},
           {"id": "lint", "shell": "ruff check . && echo ok", "retry": {"max_attempts": 1}}]})"},
    {"minimal.json", R"({"steps": [{"id": "1", "command": "true"}]})"},
    {"continue.json",
     R"({"id": null, "on_failure": "continue", "max_parallel": 2.0, "steps": [{"id": "a", "shell": "exit 1"},
 {"id": "b", "command": ["sh", "-c", "echo \"\u00e9\\t\""], "retry": {"retry_on": ["timeout"], "jitter": 1}}]})"},
};

// json_writer_fuzzer reads two strings (FuzzedDataProvider: each ends at a
// backslash that is not doubled), then a double and two integers from the end.
const std::string kWriterSeeds[][2] = {
    {"ascii.bin", std::string("key \"quoted\" \\\\ back\\ value\tnew\nline\\ ") + std::string(8, '\x3f') +
                      std::string(16, '\x80')},
    {"utf8.bin", "\xc3\xa9t\xc3\xa9 \xf0\x9f\x9a\x80 \xef\xbf\xbd\\ \x7f\x01\x1f\\ 0123456789abcdefghijklmn"},
    {"bad-utf8.bin", "\xe2\x82" "A\xff\xfe\xc0\xaf\\ \xed\xa0\x80\xf4\x90\x80\x80\xf0\x9f\x98\\ " +
                         std::string(24, '\xff')},
};

Time At(int seconds) { return Time(std::chrono::seconds(seconds)); }

// A failed group's result document and summary, as STATUS and GROUPS send them.
std::vector<std::pair<std::string, std::string>> Replies() {
  const WallClock clock(At(0), 1764156723123);
  GroupResult r;
  r.id = "build-42";
  r.state = GroupState::kFailed;
  r.cause = GroupError{"test", "exited with code 2"};
  r.errors = {*r.cause, GroupError{"", "deadline of 600s passed"}};
  r.submitted_at = At(1);
  r.finished_at = At(9);
  r.counts[static_cast<int>(StepState::kFailed)] = 1;
  r.counts[static_cast<int>(StepState::kCancelled)] = 1;
  StepResult test{"test", StepState::kFailed, "exited with code 2", "", {}};
  AttemptRecord a;
  a.attempt = 1;
  a.worker = "w1";
  a.dispatched_at = At(2);
  a.started_at = At(3);
  a.finished_at = At(8);
  a.status = AttemptStatus::kFailed;
  a.exit_code = 2;
  a.error = "exited with code 2";
  a.stdout_tail = "not ok 2\n";
  test.attempts = {a};
  StepResult lint{"lint", StepState::kCancelled, "cancelled: step test failed", "", {}};
  r.steps = {test, lint};
  GroupSummary s{"build-42", GroupState::kRunning, 5, {1, 2, 1, 1, 0, 0}, At(1), std::nullopt};
  WorkerSummary w1{"w1", 4, 1, {"linux", "gpu"}, At(0)};
  return {{"result.json", GroupResultJson(r, clock)},
          {"summary.json", GroupSummaryJson(s, clock)},
          {"groups.json", GroupListJson({s}, clock)},
          {"workers.json", WorkerListJson({w1}, clock, At(5))},
          {"submitted.json", SubmittedJson("build-42")}};
}

void Write(const fs::path& path, const std::string& bytes) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << bytes;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: make_seeds SOURCE_DIR CORPUS_DIR\n";
    return 2;
  }
  const fs::path source = argv[1];
  const fs::path corpus = argv[2];
  for (const auto& [name, msg] : Messages()) {
    const std::vector<std::string> frames = Encode(msg);
    Write(corpus / "codec" / name, std::string(1, static_cast<char>(msg.index())) + frames[2]);
    Write(corpus / "envelope" / name, cohort::fuzz::JoinFrames(frames));
  }
  std::vector<std::pair<std::string, std::string>> specs;
  for (const auto& [name, text] : kSpecs) specs.emplace_back(name, text);
  for (const auto& entry : fs::directory_iterator(source / "configs")) {
    if (entry.path().extension() != ".json") continue;
    std::ifstream in(entry.path(), std::ios::binary);
    specs.emplace_back(entry.path().filename().string(), std::string(std::istreambuf_iterator<char>(in), {}));
  }
  for (const auto& [name, text] : specs) {
    Write(corpus / "group_spec" / name, text);
    Write(corpus / "cli_json" / ("spec-" + name), text);
  }
  for (const auto& [name, text] : Replies()) Write(corpus / "cli_json" / name, text);
  for (const auto& [name, bytes] : kWriterSeeds) Write(corpus / "json_writer" / name, bytes);
  return 0;
}
