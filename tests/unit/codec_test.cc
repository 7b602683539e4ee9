// The wire codec: every message round-trips, and hostile or broken input of
// every kind comes back as Corruption naming the command and the field,
// never as a crash, a hang or an exception. Bodies are built and taken apart
// here with a few lines of hand-written msgpack rather than the library, so
// the tests also pin the bytes on the wire, as a client in another language
// would see them.
#include <catch2/catch.hpp>

#include <climits>
#include <cstdint>
#include <initializer_list>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "common/codec.h"
#include "common/messages.h"
#include "common/protocol.h"
#include "common/status.h"

namespace cohort::common {
namespace {

// ---- Hand-written msgpack ------------------------------------------------------

std::string BigEndian(uint64_t v, int bytes) {
  std::string out;
  for (int i = bytes - 1; i >= 0; --i) out += static_cast<char>((v >> (8 * i)) & 0xFF);
  return out;
}

// Builds msgpack bytes, always in the shortest form, as the codec does.
class Mp {
 public:
  Mp& Map(uint32_t n) { return Header(n, 0x80, 15, '\xde', '\xdf'); }
  Mp& Array(uint32_t n) { return Header(n, 0x90, 15, '\xdc', '\xdd'); }
  Mp& Str(std::string_view s) {
    if (s.size() < 32) bytes_ += static_cast<char>(0xa0 | s.size());
    else if (s.size() < 256) bytes_ += '\xd9' + BigEndian(s.size(), 1);
    else if (s.size() < 65536) bytes_ += '\xda' + BigEndian(s.size(), 2);
    else bytes_ += '\xdb' + BigEndian(s.size(), 4);
    bytes_ += s;
    return *this;
  }
  Mp& Bin(std::string_view s) {
    if (s.size() < 256) bytes_ += '\xc4' + BigEndian(s.size(), 1);
    else bytes_ += '\xc6' + BigEndian(s.size(), 4);
    bytes_ += s;
    return *this;
  }
  Mp& Uint(uint64_t v) {
    if (v < 128) bytes_ += static_cast<char>(v);
    else if (v < 256) bytes_ += '\xcc' + BigEndian(v, 1);
    else if (v < 65536) bytes_ += '\xcd' + BigEndian(v, 2);
    else if (v <= UINT32_MAX) bytes_ += '\xce' + BigEndian(v, 4);
    else bytes_ += '\xcf' + BigEndian(v, 8);
    return *this;
  }
  Mp& Int(int64_t v) {
    if (v >= 0) return Uint(static_cast<uint64_t>(v));
    if (v >= -32) bytes_ += static_cast<char>(v);
    else bytes_ += '\xd3' + BigEndian(static_cast<uint64_t>(v), 8);
    return *this;
  }
  Mp& Float(double) { return Raw(std::string("\xcb\x3f\xf0\0\0\0\0\0\0", 9)); }  // 1.0
  Mp& Nil() { return Raw("\xc0"); }
  Mp& Bool(bool b) { return Raw(b ? "\xc3" : "\xc2"); }
  Mp& Raw(std::string_view bytes) {
    bytes_ += bytes;
    return *this;
  }
  std::string bytes() const { return bytes_; }

 private:
  Mp& Header(uint32_t n, int fix, uint32_t fix_max, char c16, char c32) {
    if (n <= fix_max) bytes_ += static_cast<char>(fix | n);
    else if (n < 65536) bytes_ += c16 + BigEndian(n, 2);
    else bytes_ += c32 + BigEndian(n, 4);
    return *this;
  }
  std::string bytes_;
};

uint64_t ReadBigEndian(std::string_view b, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = v << 8 | static_cast<uint8_t>(b[at + i]);
  return v;
}

// The offset just past the (well-formed) value at b[i].
size_t Skip(std::string_view b, size_t i) {
  const auto c = static_cast<uint8_t>(b[i]);
  auto items = [&](size_t at, uint64_t n) {
    for (uint64_t k = 0; k < n; ++k) at = Skip(b, at);
    return at;
  };
  if (c <= 0x7f || c >= 0xe0) return i + 1;
  if ((c & 0xf0) == 0x80) return items(i + 1, 2 * (c & 0x0f));
  if ((c & 0xf0) == 0x90) return items(i + 1, c & 0x0f);
  if ((c & 0xe0) == 0xa0) return i + 1 + (c & 0x1f);
  switch (c) {
    case 0xc4: case 0xd9: return i + 2 + ReadBigEndian(b, i + 1, 1);
    case 0xc5: case 0xda: return i + 3 + ReadBigEndian(b, i + 1, 2);
    case 0xc6: case 0xdb: return i + 5 + ReadBigEndian(b, i + 1, 4);
    case 0xcc: case 0xd0: return i + 2;
    case 0xcd: case 0xd1: return i + 3;
    case 0xca: case 0xce: case 0xd2: return i + 5;
    case 0xcb: case 0xcf: case 0xd3: return i + 9;
    case 0xdc: return items(i + 3, ReadBigEndian(b, i + 1, 2));
    case 0xdd: return items(i + 5, ReadBigEndian(b, i + 1, 4));
    case 0xde: return items(i + 3, 2 * ReadBigEndian(b, i + 1, 2));
    case 0xdf: return items(i + 5, 2 * ReadBigEndian(b, i + 1, 4));
    default: return i + 1;  // nil, booleans
  }
}

// A body map taken apart into keys and raw values, to edit one field and
// put it back together.
struct Body {
  std::vector<std::pair<std::string, std::string>> fields;  // key, raw msgpack value

  static Body Parse(std::string_view b) {
    Body body;
    const auto c = static_cast<uint8_t>(b[0]);
    size_t n = (c & 0xf0) == 0x80 ? (c & 0x0f) : ReadBigEndian(b, 1, 2);
    size_t at = (c & 0xf0) == 0x80 ? 1 : 3;
    for (size_t k = 0; k < n; ++k) {
      size_t key_end = Skip(b, at);
      size_t len = static_cast<uint8_t>(b[at]) & 0x1f;  // our keys are fixstr
      std::string key(b.substr(at + 1, len));
      size_t value_end = Skip(b, key_end);
      body.fields.emplace_back(key, std::string(b.substr(key_end, value_end - key_end)));
      at = value_end;
    }
    return body;
  }
  std::string Bytes() const {
    Mp mp;
    mp.Map(static_cast<uint32_t>(fields.size()));
    for (const auto& [key, value] : fields) mp.Str(key).Raw(value);
    return mp.bytes();
  }
  Body Without(const std::string& key) const {
    Body out;
    for (const auto& f : fields) {
      if (f.first != key) out.fields.push_back(f);
    }
    return out;
  }
  Body With(const std::string& key, const std::string& value) const {
    Body out = *this;
    for (auto& f : out.fields) {
      if (f.first == key) f.second = value;
    }
    return out;
  }
};

// ---- Helpers -------------------------------------------------------------------

Status DecodeFrames(const std::vector<std::string>& frames, Message* out) {
  std::vector<std::string_view> views(frames.begin(), frames.end());
  return Decode(views, out);
}

Status DecodeBody(std::string_view command, std::string_view body, Message* out = nullptr) {
  Message scratch;
  return Decode({kProtocol, command, body}, out ? out : &scratch);
}

// Corruption whose message holds every one of `parts`.
void RequireCorruption(const Status& s, std::initializer_list<std::string_view> parts) {
  INFO("status: " << s.ToString());
  REQUIRE(s.code() == Status::Code::kCorruption);
  for (std::string_view p : parts) CHECK(s.message().find(p) != std::string::npos);
}

Message RoundTrip(const Message& m) {
  std::vector<std::string> frames = Encode(m);
  REQUIRE(frames.size() == 3);
  CHECK(frames[0] == kProtocol);
  CHECK(frames[1] == CommandName(m));
  Message out;
  Status s = DecodeFrames(frames, &out);
  INFO(CommandName(m) << ": " << s.ToString());
  REQUIRE(s.ok());
  return out;
}

std::string Binary() {
  std::string s("out\0put\xff\xfe\x80 \xc3(", 13);  // NULs and invalid UTF-8
  for (int i = 0; i < 300; ++i) s += static_cast<char>(i);
  return s;
}

// At least one of every message, with values that exercise the encoding:
// extremes, empty strings, unicode, nil, binary output.
std::vector<Message> Samples() {
  const std::string max_name(kMaxNameBytes, 'n');
  RunMsg run;
  run.id = {"grp-ü-組", 7, 3};
  run.step_id = "build \xF0\x9F\x9A\x80";
  run.argv = {"/bin/echo", "", "a b", "ünïcödé", std::string(300, 'x')};
  run.shell = "";
  run.env = {{"PATH", "/usr/bin"}, {"EMPTY", ""}, {"Z", "last"}, {"A", "order kept"}};
  run.cwd = "/tmp/work dir";
  run.timeout_ms = UINT64_MAX;
  RunMsg shell_run;
  shell_run.id = {max_name, UINT32_MAX, 1};
  shell_run.step_id = max_name;
  shell_run.shell = "echo hi | tr a-z A-Z; exit 3";
  FinishedMsg fin;
  fin.id = {"g", 0, 1};
  fin.exit_code = std::nullopt;
  fin.signal = 9;
  fin.timed_out = true;
  fin.cancelled = false;
  fin.escalated = true;
  fin.error = "killed after timeout";
  fin.stdout_tail = Binary();
  fin.stderr_tail = "";
  fin.stdout_bytes = UINT64_MAX;
  fin.stderr_bytes = 0;
  fin.started_ms = INT64_MIN;
  fin.finished_ms = INT64_MAX;
  FinishedMsg ok_fin;
  ok_fin.id = {"g", 1, 2};
  ok_fin.exit_code = INT_MIN;
  ok_fin.signal = std::nullopt;
  ok_fin.cancelled = true;
  ok_fin.stdout_tail = "hello\n";
  ok_fin.stderr_tail = std::string(1000, '\0');
  ok_fin.stdout_bytes = 6;
  ok_fin.stderr_bytes = 1000;
  ok_fin.started_ms = 1700000000000;
  ok_fin.finished_ms = 1700000000123;
  RegisterMsg reg;
  reg.name = "worker-1.example.com";
  reg.slots = 64;
  reg.agents = {"gpu", "linux-x86_64", max_name};
  reg.running = {{"g1", 0, 1}, {"g2", 4294967295u, 4294967295u}, {"", 0, 0}};
  reg.version = "0.1.0";
  reg.instance = 0x9e3779b97f4a7c15u;
  return {
      SubmitMsg{UINT64_MAX, R"({"id": "g", "steps": [{"id": "a", "shell": "true"}]})"},
      SubmitMsg{0, ""},
      StatusMsg{1, "grp-ü-組"},
      WaitMsg{2, max_name},
      CancelRequestMsg{3, "g", ""},
      CancelRequestMsg{4, "g", "step-a"},
      GroupsMsg{5},
      WorkersMsg{6},
      ReplyMsg{7, Status::Code::kOk, "", R"({"group": "g"})"},
      ReplyMsg{8, Status::Code::kNotFound, "no group \"x\"", ""},
      ReplyMsg{9, Status::Code::kIoError, "disk full ✗", "[]"},
      reg,
      RegisterMsg{"w", 1, {}, {}, ""},
      WelcomeMsg{250, 5, "tcp://10.0.0.1:5702"},
      HeartbeatMsg{},
      run,
      shell_run,
      StartedMsg{{"g", 3, 2}},
      fin,
      ok_fin,
      CancelAttemptMsg{{"g", 12, 4}},
      ReregisterMsg{"unknown worker; register again"},
      ReregisterMsg{""},
      ByeMsg{},
      CancelGroupMsg{"g"},
  };
}

// ---- Round trips ---------------------------------------------------------------

TEST_CASE("every message round-trips", "[codec]") {
  std::vector<bool> covered(std::variant_size_v<Message>, false);
  for (const Message& m : Samples()) {
    covered[m.index()] = true;
    INFO(CommandName(m));
    CHECK(RoundTrip(m) == m);
    CHECK(ValidateMessage(m).ok());
  }
  for (size_t i = 0; i < covered.size(); ++i) {
    INFO("alternative " << i);
    CHECK(covered[i]);
  }
}

TEST_CASE("command names follow the protocol", "[codec]") {
  CHECK(CommandName(SubmitMsg{}) == "SUBMIT");
  CHECK(CommandName(StatusMsg{}) == "STATUS");
  CHECK(CommandName(WaitMsg{}) == "WAIT");
  CHECK(CommandName(CancelRequestMsg{}) == "CANCEL");
  CHECK(CommandName(GroupsMsg{}) == "GROUPS");
  CHECK(CommandName(WorkersMsg{}) == "WORKERS");
  CHECK(CommandName(ReplyMsg{}) == "REPLY");
  CHECK(CommandName(RegisterMsg{}) == "REGISTER");
  CHECK(CommandName(WelcomeMsg{}) == "WELCOME");
  CHECK(CommandName(HeartbeatMsg{}) == "HEARTBEAT");
  CHECK(CommandName(RunMsg{}) == "RUN");
  CHECK(CommandName(StartedMsg{}) == "STARTED");
  CHECK(CommandName(FinishedMsg{}) == "FINISHED");
  CHECK(CommandName(CancelAttemptMsg{}) == "CANCEL");
  CHECK(CommandName(ReregisterMsg{}) == "REREGISTER");
  CHECK(CommandName(ByeMsg{}) == "BYE");
  CHECK(CommandName(CancelGroupMsg{}) == "CANCEL_GROUP");
}

TEST_CASE("bodies are the documented msgpack bytes", "[codec]") {
  CHECK(Encode(HeartbeatMsg{})[2] == "\x80");
  CHECK(Encode(ByeMsg{})[2] == "\x80");
  CHECK(Encode(StatusMsg{300, "g"})[2] == Mp().Map(2).Str("req").Uint(300).Str("group").Str("g").bytes());
  CHECK(Encode(CancelAttemptMsg{{"g", 1, 2}})[2] ==
        Mp().Map(3).Str("group").Str("g").Str("step").Uint(1).Str("attempt").Uint(2).bytes());
  CHECK(Encode(ReplyMsg{1, Status::Code::kFailedPrecondition, "e", "{}"})[2] ==
        Mp().Map(4).Str("req").Uint(1).Str("code").Str("failed_precondition").Str("error").Str("e").Str("body")
            .Str("{}").bytes());
  // Output goes out as bin, exit_code as nil when unset.
  FinishedMsg fin;
  fin.stdout_tail = "ab";
  Body body = Body::Parse(Encode(fin)[2]);
  REQUIRE(body.fields.size() == 15);
  CHECK(body.Bytes() == Encode(fin)[2]);  // taking it apart and back loses nothing
  for (const auto& [key, value] : body.fields) {
    if (key == "stdout") CHECK(value == std::string("\xc4\x02" "ab"));
    if (key == "stderr") CHECK(value == std::string("\xc4\x00", 2));
    if (key == "exit_code") CHECK(value == "\xc0");
  }
}

TEST_CASE("REPLY codes map to their wire names and back", "[codec]") {
  for (auto code : {Status::Code::kOk, Status::Code::kInvalidArgument, Status::Code::kNotFound,
                    Status::Code::kAlreadyExists, Status::Code::kFailedPrecondition, Status::Code::kUnavailable,
                    Status::Code::kCorruption, Status::Code::kIoError}) {
    Status::Code back{};
    REQUIRE(ParseWireCode(WireCodeName(code), &back));
    CHECK(back == code);
    ReplyMsg r{42, code, code == Status::Code::kOk ? "" : "why", ""};
    CHECK(RoundTrip(r) == Message(r));
  }
  CHECK(WireCodeName(Status::Code::kInvalidArgument) == "invalid_argument");
  Status::Code unused{};
  CHECK_FALSE(ParseWireCode("InvalidArgument", &unused));
  CHECK_FALSE(ParseWireCode("", &unused));
  RequireCorruption(DecodeBody("REPLY", Mp().Map(4).Str("req").Uint(1).Str("code").Str("bogus").Str("error")
                                            .Str("").Str("body").Str("").bytes()),
                    {"REPLY", "\"code\"", "bogus"});
}

TEST_CASE("output may be sent as str - and free text is repaired to UTF-8", "[codec]") {
  FinishedMsg fin;
  fin.error = std::string("bad \xff byte");
  Body body = Body::Parse(Encode(fin)[2]);
  // The encoder repairs error text, one byte for one.
  for (const auto& [key, value] : body.fields) {
    if (key == "error") CHECK(value == Mp().Str("bad ? byte").bytes());
  }
  // The decoder repairs it too, when another encoder did not, and accepts
  // output as str.
  Body foreign = body.With("error", Mp().Str(std::string("x\xc3(\xed\xa0\x80y")).bytes())
                     .With("stdout", Mp().Str("as str").bytes());
  Message out;
  REQUIRE(DecodeBody("FINISHED", foreign.Bytes(), &out).ok());
  CHECK(std::get<FinishedMsg>(out).error == "x?(???y");
  CHECK(std::get<FinishedMsg>(out).stdout_tail == "as str");
  ReregisterMsg rr{std::string("\x80")};
  CHECK(std::get<ReregisterMsg>(RoundTrip(rr)).reason == "?");
  // Identifiers are not repaired but refused.
  RequireCorruption(DecodeBody("STATUS", Mp().Map(2).Str("req").Uint(1).Str("group").Str("g\xff").bytes()),
                    {"STATUS", "field \"group\"", "UTF-8"});
  RequireCorruption(ValidateMessage(CancelGroupMsg{"\xc0\xaf"}), {"CANCEL_GROUP", "\"group\"", "UTF-8"});
}

TEST_CASE("CANCEL is told apart by its req field", "[codec]") {
  Message out;
  REQUIRE(DecodeBody("CANCEL", Mp().Map(3).Str("req").Uint(9).Str("group").Str("g").Str("step").Str("s").bytes(),
                     &out).ok());
  CHECK(std::get<CancelRequestMsg>(out) == CancelRequestMsg{9, "g", "s"});
  REQUIRE(DecodeBody("CANCEL", Mp().Map(3).Str("group").Str("g").Str("step").Uint(2).Str("attempt").Uint(5).bytes(),
                     &out).ok());
  CHECK(std::get<CancelAttemptMsg>(out) == CancelAttemptMsg{{"g", 2, 5}});
  RequireCorruption(DecodeBody("CANCEL", Mp().Map(1).Str("group").Str("g").bytes()),
                    {"CANCEL", "\"req\"", "\"attempt\""});
  // A client's cancel with an integer step is a client's cancel gone wrong.
  RequireCorruption(
      DecodeBody("CANCEL", Mp().Map(3).Str("req").Uint(1).Str("group").Str("g").Str("step").Uint(1).bytes()),
      {"CANCEL", "field \"step\" must be a string"});
}

// ---- Framing -------------------------------------------------------------------

TEST_CASE("framing errors are Corruption", "[codec]") {
  const std::vector<std::string> good = Encode(StatusMsg{1, "g"});
  Message out = ByeMsg{};
  RequireCorruption(DecodeFrames({}, &out), {"expected 3 frames", "got 0"});
  RequireCorruption(DecodeFrames({good[0]}, &out), {"got 1"});
  RequireCorruption(DecodeFrames({good[0], good[1]}, &out), {"got 2"});
  RequireCorruption(DecodeFrames({good[0], good[1], good[2], ""}, &out), {"got 4"});
  RequireCorruption(DecodeFrames({"cohort/2", good[1], good[2]}, &out), {"unsupported protocol", "cohort/2"});
  RequireCorruption(DecodeFrames({"", good[1], good[2]}, &out), {"unsupported protocol"});
  // Hostile bytes are escaped and cut in the message, never copied raw.
  Status junk = DecodeFrames({std::string("\0\x1b[2J", 5) + std::string(500, 'x'), good[1], good[2]}, &out);
  RequireCorruption(junk, {"unsupported protocol", "\\x00\\x1b[2J", "..."});
  CHECK(junk.message().size() < 200);
  RequireCorruption(DecodeFrames({good[0], "FROB", good[2]}, &out), {"unknown command", "FROB"});
  RequireCorruption(DecodeFrames({good[0], "status", good[2]}, &out), {"unknown command", "status"});
  RequireCorruption(DecodeFrames({good[0], "", good[2]}, &out), {"unknown command"});
  // A failed decode leaves *out alone.
  CHECK(std::holds_alternative<ByeMsg>(out));
}

TEST_CASE("bodies that are not one msgpack map are Corruption", "[codec]") {
  RequireCorruption(DecodeBody("STATUS", ""), {"STATUS", "body is empty"});
  RequireCorruption(DecodeBody("STATUS", "\x92\x01\x02"), {"STATUS", "must be a msgpack map", "an array"});
  RequireCorruption(DecodeBody("STATUS", "\x05"), {"STATUS", "must be a msgpack map", "an integer"});
  RequireCorruption(DecodeBody("STATUS", "\xc0"), {"STATUS", "must be a msgpack map", "nil"});
  RequireCorruption(DecodeBody("STATUS", "\xc1"), {"STATUS", "not valid msgpack"});
  RequireCorruption(DecodeBody("RUN", "garbage!"), {"RUN"});
  RequireCorruption(DecodeBody("HEARTBEAT", "\x80\x80"), {"HEARTBEAT", "1 bytes after its map"});
  RequireCorruption(DecodeBody("GROUPS", Mp().Map(1).Uint(1).Uint(2).bytes()), {"GROUPS", "keys must be strings"});
  // Every prefix of every valid body is truncated, or (for a prefix that is
  // itself a complete value) fails some other check.
  for (const Message& m : Samples()) {
    const std::string body = Encode(m)[2];
    for (size_t n = 0; n < body.size(); n += 1 + n / 8) {
      Status s = DecodeBody(CommandName(m), body.substr(0, n));
      INFO(CommandName(m) << " cut at " << n);
      RequireCorruption(s, {CommandName(m)});
    }
  }
  RequireCorruption(DecodeBody("STATUS", "\x82\xa3req\x01\xa5gr"), {"STATUS", "truncated"});
}

// ---- Fields --------------------------------------------------------------------

const std::vector<std::string_view> kUnsignedFields = {
    "req", "step", "attempt", "slots", "heartbeat_ms", "liveness", "timeout_ms", "stdout_bytes", "stderr_bytes"};

bool IsUnsigned(std::string_view key) {
  for (auto k : kUnsignedFields) {
    if (k == key) return true;
  }
  return false;
}

TEST_CASE("every field of every message is required (but one) and typed", "[codec]") {
  for (const Message& m : Samples()) {
    const std::string command(CommandName(m));
    const Body body = Body::Parse(Encode(m)[2]);
    for (const auto& [key, value] : body.fields) {
      INFO(command << " field " << key);
      const std::string quoted = "\"" + key + "\"";
      // REGISTER's instance is the one optional field (tested on its own).
      const bool optional = command == "REGISTER" && key == "instance";
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
  Body started = Body::Parse(Encode(StartedMsg{{"g", 1, 1}})[2]);
  RequireCorruption(DecodeBody("STARTED", started.With("step", Mp().Uint(1ull << 32).bytes()).Bytes()),
                    {"STARTED", "field \"step\"", "from 0 to 4294967295", "got 4294967296"});
  Message out;
  REQUIRE(DecodeBody("STARTED", started.With("attempt", Mp().Uint(UINT32_MAX).bytes()).Bytes(), &out).ok());
  CHECK(std::get<StartedMsg>(out).id.attempt == UINT32_MAX);
  // Any msgpack width is accepted for a value in range, e.g. uint64 for 1.
  REQUIRE(DecodeBody("STARTED", started.With("step", std::string("\xcf\0\0\0\0\0\0\0\x01", 9)).Bytes(), &out).ok());
  CHECK(std::get<StartedMsg>(out).id.step == 1);
  Body fin = Body::Parse(Encode(FinishedMsg{})[2]);
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
  std::string entry = Mp().Map(3).Str("group").Str("g").Str("step").Uint(0).Str("attempt").Uint(1).bytes();
  std::string bad_entry = Mp().Map(2).Str("group").Str("g").Str("step").Uint(0).bytes();
  RequireCorruption(
      DecodeBody("REGISTER", reg.With("running", Mp().Array(2).Raw(entry).Raw(bad_entry).bytes()).Bytes()),
      {"REGISTER: missing required field \"running[1].attempt\""});
  std::string typo = Mp().Map(3).Str("group").Str("g").Str("step").Int(-2).Str("attempt").Uint(1).bytes();
  RequireCorruption(DecodeBody("REGISTER", reg.With("running", Mp().Array(1).Raw(typo).bytes()).Bytes()),
                    {"REGISTER: field \"running[0].step\"", "got -2"});
  Message out;
  std::string extra =
      Mp().Map(4).Str("group").Str("g").Str("zz").Nil().Str("step").Uint(0).Str("attempt").Uint(1).bytes();
  REQUIRE(DecodeBody("REGISTER", reg.With("running", Mp().Array(1).Raw(extra).bytes()).Bytes(), &out).ok());
  CHECK(std::get<RegisterMsg>(out).running == std::vector<AttemptId>{{"g", 0, 1}});
  // instance is optional (older workers send none) but typed when present.
  RegisterMsg with_instance{"w", 1, {}, {}, "", 42};
  Body inst = Body::Parse(Encode(with_instance)[2]);
  REQUIRE(DecodeBody("REGISTER", inst.Without("instance").Bytes(), &out).ok());
  CHECK(std::get<RegisterMsg>(out).instance == 0);
  RequireCorruption(DecodeBody("REGISTER", inst.With("instance", Mp().Str("x").bytes()).Bytes()),
                    {"REGISTER", "\"instance\""});
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
  RequireCorruption(DecodeBody("CANCEL_GROUP", Encode(CancelGroupMsg{over})[2]), {"CANCEL_GROUP", "\"group\"", limit});
  RequireCorruption(DecodeBody("REGISTER", Encode(RegisterMsg{over, 1, {}, {}, ""})[2]),
                    {"REGISTER", "\"name\"", limit});
  RequireCorruption(DecodeBody("REGISTER", Encode(RegisterMsg{"w", 1, {"a", over}, {}, ""})[2]),
                    {"REGISTER", "\"agents[1]\"", limit});
  RequireCorruption(DecodeBody("REGISTER", Encode(RegisterMsg{"w", 1, {}, {{"g", 0, 1}, {over, 0, 1}}, ""})[2]),
                    {"REGISTER", "\"running[1].group\"", limit});
  RunMsg run;
  run.step_id = std::string(1'000'000, 's');  // a 1 MB step id
  RequireCorruption(DecodeBody("RUN", Encode(run)[2]), {"RUN: field \"step_id\" is 1000000 bytes", limit});
  RequireCorruption(ValidateMessage(run), {"RUN: field \"step_id\" is 1000000 bytes", limit});
  FinishedMsg fin;
  fin.id = {over, 0, 1};
  RequireCorruption(DecodeBody("FINISHED", Encode(fin)[2]), {"FINISHED", "\"group\"", limit});
}

TEST_CASE("lists and strings over their limits are Corruption", "[codec]") {
  RunMsg run;
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
  reg.running.assign(kMaxArgs + 1, AttemptId{"g", 0, 1});
  RequireCorruption(DecodeBody("REGISTER", Encode(reg)[2]), {"REGISTER", "\"running\"", "kMaxArgs"});
  FinishedMsg fin;
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
  Message reply = ReplyMsg{1, Status::Code::kOk, "", std::move(std::get<SubmitMsg>(submit).spec) + " "};
  RequireCorruption(DecodeBody("REPLY", Encode(reply)[2]), {"REPLY", "\"body\"", "kMaxDocumentBytes"});
  RequireCorruption(DecodeBody("SUBMIT", std::string(kMaxMessageBytes + 1, '\0')),
                    {"SUBMIT: body is 67108865 bytes, over the limit of 67108864 (kMaxMessageBytes)"});
  // Fields each within their limits can still add up to too much.
  RunMsg big;
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
