// The wire codec's field rules: every field required and typed, integers in
// range, lists and strings within their limits, hostile nesting bounded,
// and mutated messages either decode or fail cleanly, with a Corruption that
// names the command and the field.
#include <catch2/catch.hpp>

#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "common/codec.h"
#include "common/messages.h"
#include "common/protocol.h"
#include "common/status.h"
#include "tests/unit/codec_test_util.h"

namespace cohort::common {
namespace {

using namespace codec_testing;

// ---- Fields --------------------------------------------------------------------

const std::vector<std::string_view> kUnsignedFields = {
    "req",          "step",          "attempt", "submission", "slots", "heartbeat_ms", "liveness", "timeout_ms",
    "stdout_bytes", "stderr_bytes", "seq", "ack", "lease_ms", "instance", "epoch"};

bool IsUnsigned(std::string_view key) {
  for (auto k : kUnsignedFields) {
    if (k == key) return true;
  }
  return false;
}

TEST_CASE("every field of every message is required (but the optional ones) and typed", "[codec]") {
  for (const Message& m : Samples()) {
    const std::string command(CommandName(m));
    const Body body = Body::Parse(Encode(m)[2]);
    for (const auto& [key, value] : body.fields) {
      INFO(command << " field " << key);
      const std::string quoted = "\"" + key + "\"";
      // The optional fields are tested on their own.
      const bool optional = (command == "REGISTER" && (key == "instance" || key == "seq" || key == "kill_grace_ms" ||
                                                       key == "draining")) ||
                            (command == "STATUS" && key == "cursor") ||
                            (command == "HEARTBEAT" &&
                             (key == "running" || key == "seq" || key == "ack" || key == "draining")) ||
                            (command == "WELCOME" && (key == "lease_ms" || key == "ack")) ||
                            (command == "FINISHED" && key == "lost") || (command == "RUN" && key == "client") ||
                            key == "epoch" ||
                            ((command == "REPLY" || command == "REREGISTER") && key == "leader");
      if (!optional) RequireCorruption(DecodeBody(command, body.Without(key).Bytes()), {command, quoted});
      const auto type = static_cast<uint8_t>(value[0]);
      const bool list = (type & 0xf0) == 0x90 || type == 0xdc || type == 0xdd;
      RequireCorruption(DecodeBody(command, body.With(key, "\x80").Bytes()), {command, "field " + quoted, "a map"});
      if (!list) {
        RequireCorruption(DecodeBody(command, body.With(key, "\x90").Bytes()),
                          {command, "field " + quoted, "an array"});
      }
      if (key == "exit_code" || key == "signal") {
        Message out;
        REQUIRE(DecodeBody(command, body.With(key, "\xc0").Bytes(), &out).ok());
        RequireCorruption(DecodeBody(command, body.With(key, Mp().Float(1).bytes()).Bytes()),
                          {command, quoted, "or nil, got a float"});
        RequireCorruption(DecodeBody(command, body.With(key, Mp().Uint(1ull << 31).bytes()).Bytes()),
                          {command, quoted, "2147483648"});
      } else {
        RequireCorruption(DecodeBody(command, body.With(key, "\xc0").Bytes()), {command, quoted, "got nil"});
      }
      const bool integer = type < 0x80 || type >= 0xe0 || (type >= 0xcc && type <= 0xd3);
      if (integer && key != "exit_code" && key != "signal") {
        RequireCorruption(DecodeBody(command, body.With(key, Mp().Float(1).bytes()).Bytes()),
                          {command, "field " + quoted, "integer", "got a float"});
        RequireCorruption(DecodeBody(command, body.With(key, Mp().Str("1").bytes()).Bytes()),
                          {command, "field " + quoted, "integer", "got a string"});
      }
      if (integer && IsUnsigned(key)) {
        RequireCorruption(DecodeBody(command, body.With(key, Mp().Int(-1).bytes()).Bytes()),
                          {command, "field " + quoted, "from 0 to", "got -1"});
        RequireCorruption(DecodeBody(command, body.With(key, Mp().Int(INT64_MIN).bytes()).Bytes()),
                          {command, "field " + quoted, "got -9223372036854775808"});
      }
      if (type >= 0xa0 && type <= 0xbf && key != "stdout" && key != "stderr") {
        RequireCorruption(DecodeBody(command, body.With(key, Mp().Bin("x").bytes()).Bytes()),
                          {command, "field " + quoted, "must be a string, got binary"});
      }
      if (type == 0xc2 || type == 0xc3) {
        RequireCorruption(DecodeBody(command, body.With(key, Mp().Uint(1).bytes()).Bytes()),
                          {command, "field " + quoted, "must be a boolean"});
      }
      // Given twice.
      Body twice = body;
      twice.fields.emplace_back(key, value);
      RequireCorruption(DecodeBody(command, twice.Bytes()), {command, quoted, "more than once"});
    }
  }
}

TEST_CASE("integers out of a field's range are Corruption", "[codec]") {
  Body started = Body::Parse(Encode(StartedMsg{{"g", 1, 1, 1}})[2]);
  RequireCorruption(DecodeBody("STARTED", started.With("step", Mp().Uint(1ull << 32).bytes()).Bytes()),
                    {"STARTED", "field \"step\"", "from 0 to 4294967295", "got 4294967296"});
  Message out;
  REQUIRE(DecodeBody("STARTED", started.With("attempt", Mp().Uint(UINT32_MAX).bytes()).Bytes(), &out).ok());
  CHECK(std::get<StartedMsg>(out).id.attempt == UINT32_MAX);
  // Any msgpack width is accepted for a value in range, e.g. uint64 for 1.
  REQUIRE(DecodeBody("STARTED", started.With("step", std::string("\xcf\0\0\0\0\0\0\0\x01", 9)).Bytes(), &out).ok());
  CHECK(std::get<StartedMsg>(out).id.step == 1);
  FinishedMsg zero;
  zero.id.submission = 1;
  Body fin = Body::Parse(Encode(zero)[2]);
  RequireCorruption(DecodeBody("FINISHED", fin.With("started_ms", Mp().Uint(1ull << 63).bytes()).Bytes()),
                    {"FINISHED", "field \"started_ms\"", "got 9223372036854775808"});
  REQUIRE(DecodeBody("FINISHED", fin.With("exit_code", Mp().Int(-1).bytes()).Bytes(), &out).ok());
  CHECK(std::get<FinishedMsg>(out).exit_code == -1);
}

TEST_CASE("list fields check their entries", "[codec]") {
  Body run = Body::Parse(Encode(RunMsg{})[2]);
  RequireCorruption(DecodeBody("RUN", run.With("argv", Mp().Array(2).Str("a").Uint(3).bytes()).Bytes()),
                    {"RUN: field \"argv\" must be an array of strings (entry 1 is an integer)"});
  RequireCorruption(DecodeBody("RUN", run.With("argv", Mp().Str("a").bytes()).Bytes()),
                    {"RUN: field \"argv\" must be an array of strings, got a string"});
  RequireCorruption(
      DecodeBody("RUN", run.With("env", Mp().Array(1).Array(3).Str("a").Str("b").Str("c").bytes()).Bytes()),
      {"RUN", "\"env\"", "entry 0 is of 3 values"});
  RequireCorruption(DecodeBody("RUN", run.With("env", Mp().Array(1).Array(2).Str("a").Nil().bytes()).Bytes()),
                    {"RUN", "\"env\"", "entry 0 is [a string, nil]"});
  RequireCorruption(DecodeBody("RUN", run.With("env", Mp().Array(1).Str("A=B").bytes()).Bytes()),
                    {"RUN", "\"env\"", "entry 0 is a string"});
  Body reg = Body::Parse(Encode(RegisterMsg{"w", 1, {}, {}, ""})[2]);
  RequireCorruption(DecodeBody("REGISTER", reg.With("running", Mp().Array(1).Str("g").bytes()).Bytes()),
                    {"REGISTER", "\"running\"", "entry 0 is a string"});
  std::string entry =
      Mp().Map(4).Str("group").Str("g").Str("step").Uint(0).Str("attempt").Uint(1).Str("submission").Uint(1).bytes();
  std::string bad_entry = Mp().Map(2).Str("group").Str("g").Str("step").Uint(0).bytes();
  RequireCorruption(
      DecodeBody("REGISTER", reg.With("running", Mp().Array(2).Raw(entry).Raw(bad_entry).bytes()).Bytes()),
      {"REGISTER: missing required field \"running[1].attempt\""});
  std::string typo = Mp().Map(3).Str("group").Str("g").Str("step").Int(-2).Str("attempt").Uint(1).bytes();
  RequireCorruption(DecodeBody("REGISTER", reg.With("running", Mp().Array(1).Raw(typo).bytes()).Bytes()),
                    {"REGISTER: field \"running[0].step\"", "got -2"});
  Message out;
  std::string extra = Mp().Map(5).Str("group").Str("g").Str("zz").Nil().Str("step").Uint(0).Str("attempt").Uint(1)
                          .Str("submission").Uint(4).bytes();
  REQUIRE(DecodeBody("REGISTER", reg.With("running", Mp().Array(1).Raw(extra).bytes()).Bytes(), &out).ok());
  CHECK(std::get<RegisterMsg>(out).running == std::vector<AttemptId>{{"g", 0, 1, 4}});
  // instance is optional (older workers send none) but typed when present.
  RegisterMsg with_instance{"w", 1, {}, {}, "", 42};
  Body inst = Body::Parse(Encode(with_instance)[2]);
  REQUIRE(DecodeBody("REGISTER", inst.Without("instance").Bytes(), &out).ok());
  CHECK(std::get<RegisterMsg>(out).instance == 0);
  RequireCorruption(DecodeBody("REGISTER", inst.With("instance", Mp().Str("x").bytes()).Bytes()),
                    {"REGISTER", "\"instance\""});
  // kill_grace_ms likewise, and bounded.
  RegisterMsg with_grace{"w", 1, {}, {}, "", 42};
  with_grace.kill_grace_ms = 60000;
  Body grace = Body::Parse(Encode(with_grace)[2]);
  REQUIRE(DecodeBody("REGISTER", grace.Bytes(), &out).ok());
  CHECK(std::get<RegisterMsg>(out) == with_grace);
  REQUIRE(DecodeBody("REGISTER", grace.Without("kill_grace_ms").Bytes(), &out).ok());
  CHECK(std::get<RegisterMsg>(out).kill_grace_ms == 0);
  RequireCorruption(DecodeBody("REGISTER", grace.With("kill_grace_ms", Mp().Uint(3600001).bytes()).Bytes()),
                    {"REGISTER", "\"kill_grace_ms\"", "at most 3600000"});
  // draining is optional: absent means not draining, and only a bool is one.
  CHECK(std::get<RegisterMsg>(out).draining == false);
  REQUIRE(DecodeBody("REGISTER", grace.Plus("draining", Mp().Bool(true).bytes()).Bytes(), &out).ok());
  CHECK(std::get<RegisterMsg>(out).draining);
  RequireCorruption(DecodeBody("REGISTER", grace.Plus("draining", Mp().Uint(1).bytes()).Bytes()),
                    {"REGISTER", "\"draining\""});
}

TEST_CASE("CORDON names a worker and one of three modes", "[codec]") {
  Message out;
  Body body = Body::Parse(Encode(CordonMsg{1, "w1", "draining"})[2]);
  REQUIRE(DecodeBody("CORDON", body.Bytes(), &out).ok());
  CHECK(std::get<CordonMsg>(out) == CordonMsg{1, "w1", "draining"});
  RequireCorruption(DecodeBody("CORDON", body.With("mode", Mp().Str("drained").bytes()).Bytes()),
                    {"CORDON", "\"mode\"", "\"cordoned\", \"draining\" or \"ready\""});
  RequireCorruption(DecodeBody("CORDON", body.With("worker", Mp().Str("").bytes()).Bytes()), {"CORDON", "\"worker\""});
  RequireCorruption(DecodeBody("CORDON", body.Without("worker").Bytes()), {"CORDON", "\"worker\""});
}

TEST_CASE("a worker's HEARTBEAT may list the attempts it holds", "[codec]") {
  Message out;
  // Absent (every coordinator HEARTBEAT, and older workers') is not an empty list.
  REQUIRE(DecodeBody("HEARTBEAT", "\x80", &out).ok());
  CHECK_FALSE(std::get<HeartbeatMsg>(out).running.has_value());
  REQUIRE(DecodeBody("HEARTBEAT", Mp().Map(1).Str("running").Array(0).bytes(), &out).ok());
  REQUIRE(std::get<HeartbeatMsg>(out).running.has_value());
  CHECK(std::get<HeartbeatMsg>(out).running->empty());
  const HeartbeatMsg listed{std::vector<AttemptId>{{"g", 0, 1, 4}, {"h", 2, 3, 5}}};
  CHECK(RoundTrip(listed) == Message(listed));
  CHECK(Encode(HeartbeatMsg{})[2] == "\x80");
  // Checked like REGISTER's list, entry by entry.
  RequireCorruption(DecodeBody("HEARTBEAT", Mp().Map(1).Str("running").Nil().bytes()),
                    {"HEARTBEAT: field \"running\" must be an array of {group, step, attempt, submission} maps",
                     "got nil"});
  RequireCorruption(DecodeBody("HEARTBEAT", Mp().Map(1).Str("running").Array(1).Str("g").bytes()),
                    {"HEARTBEAT", "\"running\"", "entry 0 is a string"});
  const std::string short_entry = Mp().Map(2).Str("group").Str("g").Str("step").Uint(0).bytes();
  RequireCorruption(DecodeBody("HEARTBEAT", Mp().Map(1).Str("running").Array(1).Raw(short_entry).bytes()),
                    {"HEARTBEAT: missing required field \"running[0].attempt\""});
  using Ids = std::vector<AttemptId>;
  RequireCorruption(DecodeBody("HEARTBEAT", Encode(HeartbeatMsg{Ids{{"g", 0, 1, 1}, {"g", 1, 1, 0}}})[2]),
                    {"HEARTBEAT: field \"running[1].submission\" must be at least 1, got 0"});
  RequireCorruption(ValidateMessage(HeartbeatMsg{Ids{{"g", 0, 1, 0}}}),
                    {"HEARTBEAT: field \"running[0].submission\" must be at least 1, got 0"});
  const std::string over(kMaxNameBytes + 1, 'g');
  RequireCorruption(DecodeBody("HEARTBEAT", Encode(HeartbeatMsg{Ids{{over, 0, 1, 1}}})[2]),
                    {"HEARTBEAT", "\"running[0].group\"", "kMaxNameBytes"});
  HeartbeatMsg full{Ids(kMaxArgs, AttemptId{"g", 0, 1, 1})};
  CHECK(RoundTrip(full) == Message(full));
  full.running->emplace_back(AttemptId{"g", 0, 1, 1});
  RequireCorruption(DecodeBody("HEARTBEAT", Encode(full)[2]),
                    {"HEARTBEAT: field \"running\" has 65537 entries, over the limit of 65536 (kMaxArgs)"});
  RequireCorruption(ValidateMessage(full), {"HEARTBEAT: field \"running\" has 65537 entries"});
}

TEST_CASE("unknown keys are ignored - whatever they hold", "[codec]") {
  for (const Message& m : Samples()) {
    Body body = Body::Parse(Encode(m)[2]);
    body.fields.insert(body.fields.begin(), {"zz_future", Mp().Map(1).Str("a").Array(2).Float(1).Bin("x").bytes()});
    body.fields.emplace_back("zz_later", Mp().Nil().bytes());
    body.fields.emplace_back("zz_later", std::string("\xd4\x01\x02", 3));  // fixext, given twice: still ignored
    Message out;
    INFO(CommandName(m));
    REQUIRE(DecodeBody(CommandName(m), body.Bytes(), &out).ok());
    CHECK(out == m);
  }
}

TEST_CASE("value rules: slots and heartbeat settings are at least 1", "[codec]") {
  RequireCorruption(ValidateMessage(RegisterMsg{"w", 0, {}, {}, ""}), {"REGISTER", "\"slots\"", "at least 1"});
  Body reg = Body::Parse(Encode(RegisterMsg{"w", 1, {}, {}, ""})[2]);
  RequireCorruption(DecodeBody("REGISTER", reg.With("slots", Mp().Uint(0).bytes()).Bytes()),
                    {"REGISTER: field \"slots\" must be at least 1, got 0"});
  Body welcome = Body::Parse(Encode(WelcomeMsg{})[2]);
  RequireCorruption(DecodeBody("WELCOME", welcome.With("heartbeat_ms", Mp().Uint(0).bytes()).Bytes()),
                    {"WELCOME", "\"heartbeat_ms\"", "at least 1"});
  RequireCorruption(DecodeBody("WELCOME", welcome.With("liveness", Mp().Uint(0).bytes()).Bytes()),
                    {"WELCOME", "\"liveness\"", "at least 1"});
}

TEST_CASE("value rules: every attempt names its submission, from 1", "[codec]") {
  const std::string zero = Mp().Uint(0).bytes();
  const std::string rule = "must be at least 1, got 0";
  for (const Message& m : Samples()) {
    const std::string command(CommandName(m));
    const Body body = Body::Parse(Encode(m)[2]);
    const bool inline_id = std::holds_alternative<RunMsg>(m) || std::holds_alternative<StartedMsg>(m) ||
                           std::holds_alternative<FinishedMsg>(m) || std::holds_alternative<CancelAttemptMsg>(m) ||
                           std::holds_alternative<CancelGroupMsg>(m);
    if (!inline_id) continue;
    INFO(command);
    RequireCorruption(DecodeBody(command, body.With("submission", zero).Bytes()),
                      {command + ": field \"submission\" " + rule});
    // A cohort/1 body has none.
    RequireCorruption(DecodeBody(command, body.Without("submission").Bytes()),
                      {command + ": missing required field \"submission\""});
  }
  RunMsg run;
  run.id = {"g", 0, 1};
  RequireCorruption(ValidateMessage(run), {"RUN: field \"submission\" " + rule});
  RequireCorruption(ValidateMessage(CancelGroupMsg{"g", 0, 0}), {"CANCEL_GROUP: field \"submission\" " + rule});
  RequireCorruption(ValidateMessage(RegisterMsg{"w", 1, {}, {{"g", 0, 1, 1}, {"g", 1, 1}}, ""}),
                    {"REGISTER: field \"running[1].submission\" " + rule});
  RequireCorruption(DecodeBody("REGISTER", Encode(RegisterMsg{"w", 1, {}, {{"g", 0, 1, 0}}, ""})[2]),
                    {"REGISTER: field \"running[0].submission\" " + rule});
  RequireCorruption(DecodeBody("CONFIRM", Encode(ConfirmMsg{{{"g", 0, 1, 1}, {"g", 0, 1, 0}}})[2]),
                    {"CONFIRM: field \"ids[1].submission\" " + rule});
  const std::string old_entry = Mp().Map(3).Str("group").Str("g").Str("step").Uint(0).Str("attempt").Uint(1).bytes();
  RequireCorruption(DecodeBody("CONFIRM", Mp().Map(1).Str("ids").Array(1).Raw(old_entry).bytes()),
                    {"CONFIRM: missing required field \"ids[0].submission\""});
}

TEST_CASE("CONFIRM checks its list of attempts", "[codec]") {
  Message out;
  REQUIRE(DecodeBody("CONFIRM", Mp().Map(1).Str("ids").Array(0).bytes(), &out).ok());
  CHECK(std::get<ConfirmMsg>(out) == ConfirmMsg{});
  RequireCorruption(DecodeBody("CONFIRM", Mp().Map(0).bytes()), {"CONFIRM: missing required field \"ids\""});
  RequireCorruption(DecodeBody("CONFIRM", Mp().Map(1).Str("ids").Map(0).bytes()),
                    {"CONFIRM: field \"ids\" must be an array of {group, step, attempt, submission} maps, got a map"});
  RequireCorruption(DecodeBody("CONFIRM", Mp().Map(1).Str("ids").Array(1).Uint(7).bytes()),
                    {"CONFIRM", "\"ids\"", "entry 0 is an integer"});
  const std::string typo = Mp().Map(4).Str("group").Str("g").Str("step").Uint(0).Str("attempt").Str("1")
                               .Str("submission").Uint(1).bytes();
  RequireCorruption(DecodeBody("CONFIRM", Mp().Map(1).Str("ids").Array(1).Raw(typo).bytes()),
                    {"CONFIRM: field \"ids[0].attempt\" must be an unsigned integer, got a string"});
  RequireCorruption(ValidateMessage(ConfirmMsg{{{"g\xff", 0, 1, 1}}}), {"CONFIRM", "\"ids[0].group\"", "UTF-8"});
}

// ---- Limits --------------------------------------------------------------------

TEST_CASE("names longer than kMaxNameBytes are Corruption", "[codec]") {
  const std::string max(kMaxNameBytes, 'a');
  const std::string over(kMaxNameBytes + 1, 'a');
  CHECK(RoundTrip(StatusMsg{1, max}) == Message(StatusMsg{1, max}));
  CHECK(RoundTrip(StatusMsg{1, "g", true}) == Message(StatusMsg{1, "g", true}));
  const std::string limit = "over the limit of 256 (kMaxNameBytes)";
  RequireCorruption(DecodeBody("STATUS", Encode(StatusMsg{1, over})[2]),
                    {"STATUS: field \"group\" is 257 bytes", limit});
  RequireCorruption(DecodeBody("CANCEL", Encode(CancelRequestMsg{1, "g", over})[2]), {"CANCEL", "\"step\"", limit});
  RequireCorruption(DecodeBody("CANCEL_GROUP", Encode(CancelGroupMsg{over, 0, 0})[2]), {"CANCEL_GROUP", "\"group\"", limit});
  RequireCorruption(DecodeBody("REGISTER", Encode(RegisterMsg{over, 1, {}, {}, ""})[2]),
                    {"REGISTER", "\"name\"", limit});
  RequireCorruption(DecodeBody("REGISTER", Encode(RegisterMsg{"w", 1, {"a", over}, {}, ""})[2]),
                    {"REGISTER", "\"agents[1]\"", limit});
  RequireCorruption(DecodeBody("REGISTER", Encode(RegisterMsg{"w", 1, {}, {{"g", 0, 1, 1}, {over, 0, 1, 1}}, ""})[2]),
                    {"REGISTER", "\"running[1].group\"", limit});
  RequireCorruption(DecodeBody("CONFIRM", Encode(ConfirmMsg{{{"g", 0, 1, 1}, {over, 0, 1, 1}}})[2]),
                    {"CONFIRM", "\"ids[1].group\"", limit});
  RunMsg run;
  run.id.submission = 1;
  run.step_id = std::string(1'000'000, 's');  // a 1 MB step id
  RequireCorruption(DecodeBody("RUN", Encode(run)[2]), {"RUN: field \"step_id\" is 1000000 bytes", limit});
  RequireCorruption(ValidateMessage(run), {"RUN: field \"step_id\" is 1000000 bytes", limit});
  FinishedMsg fin;
  fin.id = {over, 0, 1, 1};
  RequireCorruption(DecodeBody("FINISHED", Encode(fin)[2]), {"FINISHED", "\"group\"", limit});
}

TEST_CASE("lists and strings over their limits are Corruption", "[codec]") {
  RunMsg run;
  run.id.submission = 1;
  run.argv.assign(kMaxArgs, "x");
  CHECK(RoundTrip(run) == Message(run));
  run.argv.push_back("x");
  RequireCorruption(DecodeBody("RUN", Encode(run)[2]),
                    {"RUN: field \"argv\" has 65537 entries, over the limit of 65536 (kMaxArgs)"});
  RequireCorruption(ValidateMessage(run), {"RUN: field \"argv\" has 65537 entries"});
  run.argv = {"a", std::string(kMaxStringBytes + 1, 'b')};
  RequireCorruption(DecodeBody("RUN", Encode(run)[2]),
                    {"RUN: field \"argv[1]\" is 1048577 bytes, over the limit of 1048576 (kMaxStringBytes)"});
  run.argv = {std::string(kMaxStringBytes, 'b')};
  CHECK(RoundTrip(run) == Message(run));
  run.argv.clear();
  run.env.assign(kMaxArgs + 1, {"K", "V"});
  RequireCorruption(DecodeBody("RUN", Encode(run)[2]), {"RUN", "\"env\"", "65537 entries"});
  run.env = {{"K", std::string(kMaxStringBytes + 1, 'v')}};
  RequireCorruption(DecodeBody("RUN", Encode(run)[2]), {"RUN", "\"env[0][1]\"", "kMaxStringBytes"});
  run.env.clear();
  run.shell = std::string(kMaxStringBytes + 1, ' ');
  RequireCorruption(DecodeBody("RUN", Encode(run)[2]), {"RUN", "\"shell\"", "kMaxStringBytes"});
  RegisterMsg reg{"w", 1, std::vector<std::string>(kMaxArgs + 1, "a"), {}, ""};
  RequireCorruption(DecodeBody("REGISTER", Encode(reg)[2]), {"REGISTER", "\"agents\"", "kMaxArgs"});
  reg.agents.clear();
  reg.running.assign(kMaxArgs + 1, AttemptId{"g", 0, 1, 1});
  RequireCorruption(DecodeBody("REGISTER", Encode(reg)[2]), {"REGISTER", "\"running\"", "kMaxArgs"});
  ConfirmMsg confirm{std::vector<AttemptId>(kMaxArgs, AttemptId{"g", 0, 1, 1})};
  CHECK(RoundTrip(confirm) == Message(confirm));
  confirm.ids.emplace_back();
  RequireCorruption(DecodeBody("CONFIRM", Encode(confirm)[2]),
                    {"CONFIRM: field \"ids\" has 65537 entries, over the limit of 65536 (kMaxArgs)"});
  RequireCorruption(ValidateMessage(confirm), {"CONFIRM: field \"ids\" has 65537 entries"});
  FinishedMsg fin;
  fin.id.submission = 1;
  fin.error = std::string(kMaxStringBytes + 1, 'e');
  RequireCorruption(DecodeBody("FINISHED", Encode(fin)[2]), {"FINISHED", "\"error\"", "kMaxStringBytes"});
  fin.error.clear();
  fin.stderr_tail = std::string(kMaxOutputBytes + 1, '\0');
  RequireCorruption(DecodeBody("FINISHED", Encode(fin)[2]),
                    {"FINISHED: field \"stderr\" is 16777217 bytes, over the limit of 16777216 (kMaxOutputBytes)"});
  fin.stderr_tail.resize(kMaxOutputBytes);
  fin.stdout_tail = fin.stderr_tail;
  CHECK(RoundTrip(fin) == Message(fin));
}

TEST_CASE("documents and whole messages over their limits are Corruption", "[codec]") {
  // Held as Messages: passing a SubmitMsg where a Message is taken would copy 62 MiB.
  Message submit = SubmitMsg{1, std::string(kMaxDocumentBytes + 1, ' ')};
  RequireCorruption(DecodeBody("SUBMIT", Encode(submit)[2]), {"SUBMIT", "\"spec\"", "kMaxDocumentBytes"});
  RequireCorruption(ValidateMessage(submit), {"SUBMIT", "\"spec\"", "kMaxDocumentBytes"});
  std::get<SubmitMsg>(submit).spec.pop_back();
  CHECK(ValidateMessage(submit).ok());  // and so its body fits in kMaxMessageBytes
  Message reply = ReplyMsg{1, Status::Code::kOk, "", std::move(std::get<SubmitMsg>(submit).spec) + " ", ""};
  RequireCorruption(DecodeBody("REPLY", Encode(reply)[2]), {"REPLY", "\"body\"", "kMaxDocumentBytes"});
  RequireCorruption(DecodeBody("SUBMIT", std::string(kMaxMessageBytes + 1, '\0')),
                    {"SUBMIT: body is 67108865 bytes, over the limit of 67108864 (kMaxMessageBytes)"});
  // Fields each within their limits can still add up to too much.
  RunMsg big;
  big.id.submission = 1;
  big.argv.assign(65, std::string(kMaxStringBytes, 'x'));
  Message run = std::move(big);
  RequireCorruption(ValidateMessage(run), {"RUN: body would be", "kMaxMessageBytes"});
}

TEST_CASE("hostile nesting and sizes cost bounded memory and are Corruption", "[codec]") {
  // 100,000 levels of single-element arrays, as the body and inside a field.
  RequireCorruption(DecodeBody("RUN", std::string(100'000, '\x91') + "\x01"), {"RUN", "deeper than 16 levels"});
  RequireCorruption(DecodeBody("STATUS", Mp().Map(1).Str("req").bytes() + std::string(100'000, '\x91')),
                    {"STATUS", "deeper than 16"});
  std::string maps;
  for (int i = 0; i < 50'000; ++i) maps += "\x81\xa1k";
  RequireCorruption(DecodeBody("WAIT", maps + "\x01"), {"WAIT", "kMaxBodyDepth"});
  // kMaxBodyDepth levels are fine (in an unknown key); one more is not.
  Body status = Body::Parse(Encode(StatusMsg{1, "g"})[2]);
  auto nested = [](size_t levels) { return std::string(levels, '\x91') + "\x01"; };
  CHECK(DecodeBody("STATUS", status.With("req", Mp().Uint(1).bytes()).Bytes()).ok());
  Body deep = status;
  deep.fields.emplace_back("zz", nested(kMaxBodyDepth - 1));
  CHECK(DecodeBody("STATUS", deep.Bytes()).ok());
  deep.fields.back().second = nested(kMaxBodyDepth);
  RequireCorruption(DecodeBody("STATUS", deep.Bytes()), {"STATUS", "deeper than"});
  // Headers that promise more than any body can hold are refused before
  // anything is allocated for them.
  RequireCorruption(DecodeBody("STATUS", "\x81\xa2zz\xdd\xff\xff\xff\xff"), {"STATUS", "more than 1048576 values"});
  RequireCorruption(DecodeBody("STATUS", "\xdf\xff\xff\xff\xff"), {"STATUS", "kMaxBodyValues"});
  RequireCorruption(DecodeBody("STATUS", "\x81\xa2zz\xdc\xff\xff\x01"), {"STATUS", "truncated"});
  RequireCorruption(DecodeBody("STATUS", "\x81\xa2zz\xdb\xff\xff\xff\xff" "abc"), {"STATUS", "truncated"});
  RequireCorruption(DecodeBody("FINISHED", "\x81\xa2zz\xc6\x7f\xff\xff\xff"), {"FINISHED", "truncated"});
  // Many small arrays: within the depth limit, but over the value budget.
  std::string wide = "\x81\xa2zz\xdd" + BigEndian(600'000, 4);
  for (int i = 0; i < 600'000; ++i) wide += "\x91\x01";
  RequireCorruption(DecodeBody("STATUS", wide), {"STATUS", "kMaxBodyValues"});
  // A key that is not a string, deep inside an unknown field, is fine.
  CHECK(DecodeBody("STATUS", status.Bytes().replace(0, 1, "\x83") + "\xa2zz\x81\x01\x02").ok());
}

// ---- Mutation fuzzing ----------------------------------------------------------

TEST_CASE("mutated messages decode or fail cleanly", "[codec]") {
  std::vector<std::vector<std::string>> seeds;
  for (const Message& m : Samples()) seeds.push_back(Encode(m));
  std::mt19937_64 rng(20240601);
  auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
  static constexpr char kInteresting[] = "\x00\x7f\x80\x8f\x90\x9f\xa0\xbf\xc0\xc1\xc2\xc4\xc6\xcb\xcf\xd3\xd4"
                                         "\xd9\xdb\xdc\xdd\xde\xdf\xe0\xff";
  size_t ok = 0;
  size_t corrupt = 0;
  for (int iteration = 0; iteration < 20'000; ++iteration) {
    std::vector<std::string> frames = seeds[pick(seeds.size())];
    const int mutations = 1 + static_cast<int>(pick(4));
    for (int k = 0; k < mutations; ++k) {
      size_t roll = pick(100);
      if (frames.empty()) frames.emplace_back();
      std::string& f = frames[roll < 4 ? pick(frames.size()) : frames.size() - 1];  // mostly the body
      char byte = pick(2) ? static_cast<char>(rng()) : kInteresting[pick(sizeof(kInteresting) - 1)];
      size_t at = f.empty() ? 0 : pick(f.size() + 1);
      switch (pick(7)) {
        case 0: if (at < f.size()) f[at] = static_cast<char>(f[at] ^ (1 << pick(8))); break;
        case 1: if (at < f.size()) f[at] = byte; break;
        case 2: f.insert(at, 1, byte); break;
        case 3: f.erase(at, 1 + pick(8)); break;
        case 4: f.resize(at); break;
        case 5: f.insert(at, f.substr(at, 1 + pick(16))); break;
        case 6:
          if (roll < 2) frames.pop_back();
          else if (roll < 3) frames.push_back(f.substr(0, at));
          else if (at < f.size()) f[at] = kInteresting[pick(sizeof(kInteresting) - 1)];
          break;
      }
    }
    Message out;
    Status s = DecodeFrames(frames, &out);
    if (s.ok()) {
      ++ok;
      // Whatever decodes obeys every rule and survives another round trip.
      REQUIRE(ValidateMessage(out).ok());
      REQUIRE(RoundTrip(out) == out);
    } else {
      ++corrupt;
      REQUIRE(s.code() == Status::Code::kCorruption);
      REQUIRE_FALSE(s.message().empty());
    }
  }
  INFO("ok " << ok << ", corrupt " << corrupt);
  CHECK(ok > 100);  // the mutations do not all break the framing
  CHECK(corrupt > 10'000);
}

}  // namespace
}  // namespace cohort::common
