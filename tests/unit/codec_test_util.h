// What the codec tests share: a few lines of hand-written msgpack, to build
// and take apart bodies without the library (so the tests pin the bytes on
// the wire, as a client in another language would see them), decoding
// helpers, and a sample of every message.
#ifndef COHORT_TESTS_UNIT_CODEC_TEST_UTIL_H_
#define COHORT_TESTS_UNIT_CODEC_TEST_UTIL_H_

#include <catch2/catch.hpp>

#include <climits>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "common/codec.h"
#include "common/messages.h"
#include "common/protocol.h"
#include "common/status.h"

namespace cohort::common::codec_testing {

// ---- Hand-written msgpack ------------------------------------------------------

inline std::string BigEndian(uint64_t v, int bytes) {
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

inline uint64_t ReadBigEndian(std::string_view b, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = v << 8 | static_cast<uint8_t>(b[at + i]);
  return v;
}

// The offset just past the (well-formed) value at b[i].
inline size_t Skip(std::string_view b, size_t i) {
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
  // `key` added, for an optional field the encoder left out.
  Body Plus(const std::string& key, const std::string& value) const {
    Body out = *this;
    out.fields.emplace_back(key, value);
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

inline Status DecodeFrames(const std::vector<std::string>& frames, Message* out) {
  std::vector<std::string_view> views(frames.begin(), frames.end());
  return Decode(views, out);
}

inline Status DecodeBody(std::string_view command, std::string_view body, Message* out = nullptr) {
  Message scratch;
  return Decode({kProtocol, command, body}, out ? out : &scratch);
}

// Corruption whose message holds every one of `parts`.
inline void RequireCorruption(const Status& s, std::initializer_list<std::string_view> parts) {
  INFO("status: " << s.ToString());
  REQUIRE(s.code() == Status::Code::kCorruption);
  for (std::string_view p : parts) CHECK(s.message().find(p) != std::string::npos);
}

inline Message RoundTrip(const Message& m) {
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

inline std::string Binary() {
  std::string s("out\0put\xff\xfe\x80 \xc3(", 13);  // NULs and invalid UTF-8
  for (int i = 0; i < 300; ++i) s += static_cast<char>(i);
  return s;
}

// At least one of every message, with values that exercise the encoding:
// extremes, empty strings, unicode, nil, binary output.
inline std::vector<Message> Samples() {
  const std::string max_name(kMaxNameBytes, 'n');
  RunMsg run;
  run.id = {"grp-ü-組", 7, 3, 12};
  run.step_id = "build \xF0\x9F\x9A\x80";
  run.argv = {"/bin/echo", "", "a b", "ünïcödé", std::string(300, 'x')};
  run.shell = "";
  run.env = {{"PATH", "/usr/bin"}, {"EMPTY", ""}, {"Z", "last"}, {"A", "order kept"}};
  run.cwd = "/tmp/work dir";
  run.timeout_ms = UINT64_MAX;
  RunMsg shell_run;
  shell_run.id = {max_name, UINT32_MAX, 1, UINT64_MAX};
  shell_run.step_id = max_name;
  shell_run.shell = "echo hi | tr a-z A-Z; exit 3";
  FinishedMsg fin;
  fin.id = {"g", 0, 1, 1};
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
  ok_fin.id = {"g", 1, 2, 300};
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
  reg.running = {{"g1", 0, 1, 1}, {"g2", 4294967295u, 4294967295u, UINT64_MAX}, {"", 0, 0, 2}};
  reg.version = "0.1.0";
  reg.instance = 0x9e3779b97f4a7c15u;
  reg.seq = UINT64_MAX;
  FinishedMsg lost_fin;
  lost_fin.id = {"g", 2, 1, 8};
  lost_fin.signal = 15;
  lost_fin.lost = true;
  lost_fin.error = "worker w stopped it: no word from the coordinator for 60 s (its lease)";
  WelcomeMsg leased{1000, 3, "tcp://10.0.0.1:5702"};
  leased.lease_ms = UINT32_MAX;
  leased.ack = 17;
  HeartbeatMsg numbered;
  numbered.seq = 18;
  HeartbeatMsg acked;
  acked.ack = UINT64_MAX;
  StatusMsg paged{10, "g"};
  paged.cursor = UINT64_MAX;
  reg.kill_grace_ms = 3600000;
  HeartbeatMsg from_leader;
  from_leader.epoch = UINT64_MAX;
  WelcomeMsg welcome_epoch{250, 5, "tcp://10.0.0.1:5702"};
  welcome_epoch.epoch = 7;
  RunMsg fenced_run = run;
  fenced_run.epoch = 3;
  fenced_run.client = "alice";
  RegisterMsg leaving{"w", 2, {}, {}, "0.1.0"};
  leaving.draining = true;
  HeartbeatMsg draining_beat{std::vector<AttemptId>{{"g", 0, 1, 1}}};
  draining_beat.draining = true;
  return {
      SubmitMsg{UINT64_MAX, R"({"id": "g", "steps": [{"id": "a", "shell": "true"}]})"},
      SubmitMsg{0, ""},
      StatusMsg{1, "grp-ü-組"},
      paged,
      WaitMsg{2, max_name},
      CancelRequestMsg{3, "g", ""},
      CancelRequestMsg{4, "g", "step-a"},
      GroupsMsg{5},
      WorkersMsg{6},
      ReplyMsg{7, Status::Code::kOk, "", R"({"group": "g"})", ""},
      ReplyMsg{8, Status::Code::kNotFound, "no group \"x\"", "", ""},
      ReplyMsg{9, Status::Code::kIoError, "disk full ✗", "[]", ""},
      ReplyMsg{10, Status::Code::kUnavailable, "standby", "", "tcp://node2:5700"},
      reg,
      RegisterMsg{"w", 1, {}, {}, ""},
      WelcomeMsg{250, 5, "tcp://10.0.0.1:5702"},
      leased,
      HeartbeatMsg{},
      numbered,
      acked,
      from_leader,
      welcome_epoch,
      fenced_run,
      HeartbeatMsg{std::vector<AttemptId>{{"g1", 0, 1, 1}, {max_name, UINT32_MAX, UINT32_MAX, UINT64_MAX}}},
      HeartbeatMsg{std::vector<AttemptId>{}},
      run,
      shell_run,
      StartedMsg{{"g", 3, 2, 5}},
      fin,
      ok_fin,
      lost_fin,
      CancelAttemptMsg{{"g", 12, 4, 70000}, 0},
      CancelAttemptMsg{{"g", 12, 4, 70000}, 9},
      ReregisterMsg{"unknown worker; register again", ""},
      ReregisterMsg{"standby", "tcp://node2:5701"},
      ReregisterMsg{"", ""},
      ByeMsg{},
      CancelGroupMsg{"g", 9, 0},
      CancelGroupMsg{max_name, UINT64_MAX, UINT64_MAX},
      ConfirmMsg{{{"g", 0, 1, 1}, {"grp-ü-組", 7, 3, 12}, {max_name, UINT32_MAX, UINT32_MAX, UINT64_MAX}}},
      ConfirmMsg{},
      LogsMsg{11, "g", "step-a", 0, "stdout"},
      LogsMsg{UINT64_MAX, max_name, max_name, UINT32_MAX, "stderr"},
      PingMsg{12},
      CordonMsg{13, "w1", "cordoned"},
      CordonMsg{UINT64_MAX, max_name, "draining"},
      CordonMsg{0, "w", "ready"},
      leaving,
      draining_beat,
  };
}

}  // namespace cohort::common::codec_testing

#endif  // COHORT_TESTS_UNIT_CODEC_TEST_UTIL_H_
