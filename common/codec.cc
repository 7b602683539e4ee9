// The wire codec's encoding half, with ValidateMessage and the command and
// status-code names; decoding is in common/codec_decode.cc, and what the two
// share in common/codec_internal.h. Encoding packs each body straight into
// its frame with one msgpack packer and no intermediate object tree; a first
// pass with a counting sink sizes the frame, so it is allocated once.
#include "common/codec.h"

#include <msgpack.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "common/codec_internal.h"
#include "common/protocol.h"

namespace cohort::common {
namespace {

using codec_internal::Check;
using codec_internal::Checker;
using codec_internal::FirstInvalidUtf8;
using codec_internal::kCommandNames;
using codec_internal::kNone;
using codec_internal::RepairUtf8InPlace;

// `s`, or its repaired copy in *storage when it is not valid UTF-8.
std::string_view RepairUtf8(std::string_view s, std::string* storage) {
  if (FirstInvalidUtf8(s) == kNone) return s;
  storage->assign(s);
  RepairUtf8InPlace(storage);
  return *storage;
}

// ---- Encoding ------------------------------------------------------------------

struct CountingSink {
  size_t bytes = 0;
  void write(const char*, size_t n) { bytes += n; }
};

struct StringSink {
  std::string* out;
  void write(const char* p, size_t n) { out->append(p, n); }
};

// Writes one body. Map() gives the number of pairs; each other call writes
// one key and its value.
template <typename Sink>
class Writer {
 public:
  explicit Writer(Sink& sink) : pk_(sink) {}

  Writer& Map(uint32_t pairs) {
    pk_.pack_map(pairs);
    return *this;
  }
  Writer& Str(std::string_view key, std::string_view v) {
    Raw(key);
    Raw(v);
    return *this;
  }
  Writer& U(std::string_view key, uint64_t v) {
    Raw(key);
    pk_.pack_uint64(v);  // msgpack-c picks the shortest form, as for I()
    return *this;
  }
  Writer& I(std::string_view key, int64_t v) {
    Raw(key);
    pk_.pack_int64(v);
    return *this;
  }
  Writer& Bool(std::string_view key, bool v) {
    Raw(key);
    if (v) pk_.pack_true();
    else pk_.pack_false();
    return *this;
  }
  Writer& OptInt(std::string_view key, const std::optional<int>& v) {
    Raw(key);
    if (v) pk_.pack_int64(*v);
    else pk_.pack_nil();
    return *this;
  }
  Writer& Bin(std::string_view key, std::string_view v) {
    Raw(key);
    pk_.pack_bin(Clamp(v.size())).pack_bin_body(v.data(), Clamp(v.size()));
    return *this;
  }
  Writer& Text(std::string_view key, std::string_view v) {
    std::string storage;
    return Str(key, RepairUtf8(v, &storage));
  }
  Writer& Strings(std::string_view key, const std::vector<std::string>& v) {
    Raw(key);
    pk_.pack_array(Clamp(v.size()));
    for (uint32_t i = 0; i < Clamp(v.size()); ++i) Raw(v[i]);
    return *this;
  }
  Writer& Env(std::string_view key, const std::vector<std::pair<std::string, std::string>>& env) {
    Raw(key);
    pk_.pack_array(Clamp(env.size()));
    for (uint32_t i = 0; i < Clamp(env.size()); ++i) {
      pk_.pack_array(2);
      Raw(env[i].first);
      Raw(env[i].second);
    }
    return *this;
  }
  // The four fields of an AttemptId, inline in the enclosing map.
  Writer& Id(const AttemptId& id) {
    return Str("group", id.group).U("step", id.step).U("attempt", id.attempt).U("submission", id.submission);
  }
  Writer& Attempts(std::string_view key, const std::vector<AttemptId>& ids) {
    Raw(key);
    pk_.pack_array(Clamp(ids.size()));
    for (uint32_t i = 0; i < Clamp(ids.size()); ++i) Map(4).Id(ids[i]);
    return *this;
  }

 private:
  // msgpack lengths are 32-bit. Anything longer is far over kMaxMessageBytes
  // and refused by the peer anyway; cutting it keeps the frame well-formed.
  static uint32_t Clamp(size_t n) { return n > UINT32_MAX ? UINT32_MAX : static_cast<uint32_t>(n); }
  void Raw(std::string_view s) { pk_.pack_str(Clamp(s.size())).pack_str_body(s.data(), Clamp(s.size())); }

  msgpack::packer<Sink> pk_;
};

// One Pack per message: the number of pairs, then the fields in the order
// docs/PROTOCOL.md lists them. (A wrong count fails every round-trip test.)
template <typename S> void Pack(Writer<S>& w, const SubmitMsg& m) { w.Map(2).U("req", m.req).Str("spec", m.spec); }
template <typename S> void Pack(Writer<S>& w, const StatusMsg& m) {
  w.Map(2 + (m.brief ? 1 : 0) + (m.cursor ? 1 : 0)).U("req", m.req).Str("group", m.group);
  if (m.brief) w.Bool("brief", true);
  if (m.cursor) w.U("cursor", m.cursor);
}
template <typename S> void Pack(Writer<S>& w, const LogsMsg& m) {
  w.Map(5).U("req", m.req).Str("group", m.group).Str("step", m.step).U("attempt", m.attempt).Str("stream", m.stream);
}
template <typename S> void Pack(Writer<S>& w, const WaitMsg& m) { w.Map(2).U("req", m.req).Str("group", m.group); }
template <typename S> void Pack(Writer<S>& w, const CancelRequestMsg& m) {
  w.Map(3).U("req", m.req).Str("group", m.group).Str("step", m.step);
}
template <typename S> void Pack(Writer<S>& w, const GroupsMsg& m) { w.Map(1).U("req", m.req); }
template <typename S> void Pack(Writer<S>& w, const WorkersMsg& m) { w.Map(1).U("req", m.req); }
template <typename S> void Pack(Writer<S>& w, const PingMsg& m) { w.Map(1).U("req", m.req); }
template <typename S> void Pack(Writer<S>& w, const CordonMsg& m) {
  w.Map(3).U("req", m.req).Str("worker", m.worker).Str("mode", m.mode);
}
template <typename S> void Pack(Writer<S>& w, const ReplyMsg& m) {
  w.Map(4 + (m.leader.empty() ? 0 : 1)).U("req", m.req).Str("code", WireCodeName(m.code)).Text("error", m.error)
      .Str("body", m.body);
  if (!m.leader.empty()) w.Str("leader", m.leader);
}
template <typename S> void Pack(Writer<S>& w, const RegisterMsg& m) {
  w.Map(6 + (m.seq ? 1 : 0) + (m.kill_grace_ms ? 1 : 0) + (m.draining ? 1 : 0)).Str("name", m.name)
      .U("slots", m.slots).Strings("agents", m.agents).Attempts("running", m.running).Str("version", m.version)
      .U("instance", m.instance);
  if (m.seq) w.U("seq", m.seq);
  if (m.kill_grace_ms) w.U("kill_grace_ms", m.kill_grace_ms);
  if (m.draining) w.Bool("draining", true);
}
template <typename S> void Pack(Writer<S>& w, const WelcomeMsg& m) {
  w.Map(3 + (m.lease_ms ? 1 : 0) + (m.ack ? 1 : 0) + (m.epoch ? 1 : 0)).U("heartbeat_ms", m.heartbeat_ms)
      .U("liveness", m.liveness).Str("cancel_endpoint", m.cancel_endpoint);
  if (m.lease_ms) w.U("lease_ms", m.lease_ms);
  if (m.ack) w.U("ack", m.ack);
  if (m.epoch) w.U("epoch", m.epoch);
}
template <typename S> void Pack(Writer<S>& w, const HeartbeatMsg& m) {
  w.Map((m.running ? 1 : 0) + (m.seq ? 1 : 0) + (m.ack ? 1 : 0) + (m.epoch ? 1 : 0) + (m.draining ? 1 : 0));
  if (m.running) w.Attempts("running", *m.running);
  if (m.seq) w.U("seq", m.seq);
  if (m.ack) w.U("ack", m.ack);
  if (m.epoch) w.U("epoch", m.epoch);
  if (m.draining) w.Bool("draining", true);
}
template <typename S> void Pack(Writer<S>& w, const RunMsg& m) {
  w.Map(10 + (m.epoch ? 1 : 0) + (m.client.empty() ? 0 : 1)).Id(m.id).Str("step_id", m.step_id)
      .Strings("argv", m.argv).Str("shell", m.shell).Env("env", m.env).Str("cwd", m.cwd)
      .U("timeout_ms", m.timeout_ms);
  if (m.epoch) w.U("epoch", m.epoch);
  if (!m.client.empty()) w.Str("client", m.client);
}
template <typename S> void Pack(Writer<S>& w, const StartedMsg& m) { w.Map(4).Id(m.id); }
template <typename S> void Pack(Writer<S>& w, const FinishedMsg& m) {
  w.Map(m.lost ? 17 : 16).Id(m.id).OptInt("exit_code", m.exit_code).OptInt("signal", m.signal)
      .Bool("timed_out", m.timed_out).Bool("cancelled", m.cancelled).Bool("escalated", m.escalated)
      .Text("error", m.error).Bin("stdout", m.stdout_tail).Bin("stderr", m.stderr_tail)
      .U("stdout_bytes", m.stdout_bytes).U("stderr_bytes", m.stderr_bytes).I("started_ms", m.started_ms)
      .I("finished_ms", m.finished_ms);
  if (m.lost) w.Bool("lost", true);
}
template <typename S> void Pack(Writer<S>& w, const CancelAttemptMsg& m) {
  w.Map(4 + (m.epoch ? 1 : 0)).Id(m.id);
  if (m.epoch) w.U("epoch", m.epoch);
}
template <typename S> void Pack(Writer<S>& w, const ReregisterMsg& m) {
  w.Map(1 + (m.leader.empty() ? 0 : 1)).Text("reason", m.reason);
  if (!m.leader.empty()) w.Str("leader", m.leader);
}
template <typename S> void Pack(Writer<S>& w, const ByeMsg&) { w.Map(0); }
template <typename S> void Pack(Writer<S>& w, const CancelGroupMsg& m) {
  w.Map(2 + (m.epoch ? 1 : 0)).Str("group", m.group).U("submission", m.submission);
  if (m.epoch) w.U("epoch", m.epoch);
}
template <typename S> void Pack(Writer<S>& w, const ConfirmMsg& m) { w.Map(1).Attempts("ids", m.ids); }

size_t EncodedBodyBytes(const Message& msg) {
  CountingSink counter;
  Writer<CountingSink> w(counter);
  std::visit([&](const auto& m) { Pack(w, m); }, msg);
  return counter.bytes;
}

}  // namespace

void EncodeBody(const Message& msg, std::string* body) {
  body->clear();
  StringSink sink{body};
  Writer<StringSink> w(sink);
  std::visit([&](const auto& m) { Pack(w, m); }, msg);
}

std::vector<std::string> Encode(const Message& msg) {
  std::vector<std::string> frames;
  frames.reserve(kFrameCount);
  frames.emplace_back(kProtocol);
  frames.emplace_back(CommandName(msg));
  std::string& body = frames.emplace_back();
  body.reserve(EncodedBodyBytes(msg));
  EncodeBody(msg, &body);
  return frames;
}

std::string_view CommandName(const Message& msg) { return kCommandNames[msg.index()]; }

std::optional<uint64_t> RequestIdOf(const Message& msg) {
  return std::visit(
      [](const auto& m) -> std::optional<uint64_t> {
        if constexpr (requires { m.req; }) {
          return m.req;
        } else {
          return std::nullopt;
        }
      },
      msg);
}

Status ValidateMessage(const Message& msg) {
  const std::string command(CommandName(msg));
  Checker c(command);
  std::visit([&](const auto& m) { Check(c, m); }, msg);
  if (Status s = c.status(); !s.ok()) return s;
  if (size_t bytes = EncodedBodyBytes(msg); bytes > kMaxMessageBytes) {
    return Status::Corruption(command + ": body would be " + std::to_string(bytes) + " bytes, over the limit of " +
                              std::to_string(kMaxMessageBytes) + " (kMaxMessageBytes)");
  }
  return Status::Ok();
}

std::string_view WireCodeName(Status::Code code) {
  switch (code) {
    case Status::Code::kOk: return "ok";
    case Status::Code::kInvalidArgument: return "invalid_argument";
    case Status::Code::kNotFound: return "not_found";
    case Status::Code::kAlreadyExists: return "already_exists";
    case Status::Code::kFailedPrecondition: return "failed_precondition";
    case Status::Code::kUnavailable: return "unavailable";
    case Status::Code::kCorruption: return "corruption";
    case Status::Code::kIoError: return "io_error";
  }
  return "";
}

bool ParseWireCode(std::string_view name, Status::Code* out) {
  for (auto code : {Status::Code::kOk, Status::Code::kInvalidArgument, Status::Code::kNotFound,
                    Status::Code::kAlreadyExists, Status::Code::kFailedPrecondition, Status::Code::kUnavailable,
                    Status::Code::kCorruption, Status::Code::kIoError}) {
    if (WireCodeName(code) == name) {
      *out = code;
      return true;
    }
  }
  return false;
}

}  // namespace cohort::common
