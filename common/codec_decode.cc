// The wire codec's decoding half: Decode (common/codec.h); encoding is in
// common/codec.cc, and what the two share in common/codec_internal.h.
// Decoding first walks the body with msgpack's allocation-free parser to
// bound its nesting and value count, then unpacks it (msgpack's own limits as
// a second guard; strings and binaries referenced in place, not copied),
// reads each field with a type check, and last applies the value rules that
// ValidateMessage applies.
#include "common/codec.h"

#include <msgpack.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <exception>
#include <iterator>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "common/codec_internal.h"
#include "common/protocol.h"
#include "common/quote.h"

namespace cohort::common {
namespace {

using codec_internal::Check;
using codec_internal::Checker;
using codec_internal::FieldError;
using codec_internal::kCommandNames;
using codec_internal::kNone;
using codec_internal::RepairUtf8InPlace;
using codec_internal::TooMany;
using codec_internal::Where;

// ---- Decoding: the body's shape ----------------------------------------------

// The first pass over a body: msgpack's parser with a visitor that builds
// nothing and stops at the first container that nests too deep or brings the
// value count over budget. Without it the unpacker would allocate each
// container's slots from its header alone, before seeing whether the bytes
// to fill them exist.
class ShapeCheck : public msgpack::v2::null_visitor {
 public:
  enum class Verdict { kOk, kTooDeep, kTooMany, kMalformed, kTruncated };

  bool start_array(uint32_t n) { return Open(n); }
  bool end_array() { return Close(); }
  bool start_map(uint32_t n) { return Open(2 * static_cast<uint64_t>(n)); }
  bool end_map() { return Close(); }
  void parse_error(size_t, size_t offset) {
    verdict_ = Verdict::kMalformed;
    error_offset_ = offset;
  }
  void insufficient_bytes(size_t, size_t) { verdict_ = Verdict::kTruncated; }

  Verdict verdict() const { return verdict_; }
  size_t error_offset() const { return error_offset_; }

 private:
  bool Open(uint64_t values) {
    values_ += values;
    if (++depth_ > kMaxBodyDepth) verdict_ = Verdict::kTooDeep;
    else if (values_ > kMaxBodyValues) verdict_ = Verdict::kTooMany;
    return verdict_ == Verdict::kOk;
  }
  bool Close() {
    --depth_;
    return true;
  }

  size_t depth_ = 0;
  uint64_t values_ = 0;
  Verdict verdict_ = Verdict::kOk;
  size_t error_offset_ = 0;
};

// Strings and binaries stay in the caller's frame while we read them, so
// each is copied once, into its field. The shape check has already seen that
// each lies whole within the frame.
bool ReferenceInPlace(msgpack::type::object_type, size_t, void*) { return true; }

const char* TypeName(const msgpack::object& o) {
  switch (o.type) {
    case msgpack::type::NIL: return "nil";
    case msgpack::type::BOOLEAN: return "a boolean";
    case msgpack::type::POSITIVE_INTEGER:
    case msgpack::type::NEGATIVE_INTEGER: return "an integer";
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64: return "a float";
    case msgpack::type::STR: return "a string";
    case msgpack::type::BIN: return "binary";
    case msgpack::type::ARRAY: return "an array";
    case msgpack::type::MAP: return "a map";
    case msgpack::type::EXT: return "an extension";
  }
  return "an unknown type";
}

// STR and BIN share the layout {size, ptr}; ptr may be null when size is 0.
std::string_view View(const msgpack::object& o) {
  return o.via.str.size == 0 ? std::string_view() : std::string_view(o.via.str.ptr, o.via.str.size);
}

// ---- Decoding: fields ----------------------------------------------------------

// Reads typed fields out of one msgpack map (the body, or an entry of the
// running list). Like Checker it keeps the first problem: a decoder chains
// every read, then Done(), and checks ok() once.
//
// Each lookup starts where the previous one matched, so a map in the
// encoder's key order costs one comparison per field. A duplicated key can
// only hide among the entries no read matched, so Done() searches for one
// only when there are such entries.
class Fields {
 public:
  // `map` must be a MAP. `parent`/`index` name it when it is a list entry.
  Fields(std::string_view command, const msgpack::object& map, std::string_view parent = {}, size_t index = kNone)
      : command_(command), parent_(parent), index_(index), kv_(map.via.map.ptr), size_(map.via.map.size) {
    for (uint32_t i = 0; i < size_ && ok(); ++i) {
      if (kv_[i].key.type == msgpack::type::STR) continue;
      std::string what = parent_.empty() ? "body" : "field \"" + Where(parent_, index_).str() + "\"";
      Fail(std::string(command_) + ": " + what + " map keys must be strings, got " + TypeName(kv_[i].key));
    }
  }

  bool ok() const { return error_.empty(); }
  Status status() const { return ok() ? Status::Ok() : Status::Corruption(error_); }

  bool Has(std::string_view key) const {
    for (uint32_t i = 0; i < size_; ++i) {
      if (View(kv_[i].key) == key) return true;
    }
    return false;
  }

  // Refuses a key that was read and appears more than once.
  Fields& Done() {
    for (size_t k = 0; ok() && matched_ < size_ && k < asked_count_; ++k) {
      uint32_t seen = 0;
      for (uint32_t i = 0; i < size_; ++i) seen += View(kv_[i].key) == asked_[k] ? 1 : 0;
      if (seen > 1) Wrong(asked_[k], "appears more than once");
    }
    return *this;
  }

  template <typename T>
  Fields& Int(std::string_view key, T* out) {
    if (const msgpack::object* v = Get(key)) ReadInt(key, *v, out);
    return *this;
  }
  Fields& OptInt(std::string_view key, std::optional<int>* out) {
    const msgpack::object* v = Get(key);
    int value = 0;
    if (v != nullptr && v->type == msgpack::type::NIL) out->reset();
    else if (v != nullptr && ReadInt(key, *v, &value, " or nil")) *out = value;
    return *this;
  }
  Fields& Bool(std::string_view key, bool* out) {
    const msgpack::object* v = Get(key);
    if (v != nullptr && v->type == msgpack::type::BOOLEAN) *out = v->via.boolean;
    else if (v != nullptr) Wrong(key, std::string("must be a boolean, got ") + TypeName(*v));
    return *this;
  }
  Fields& Str(std::string_view key, std::string* out) {
    const msgpack::object* v = Get(key);
    if (v != nullptr && v->type == msgpack::type::STR) out->assign(View(*v));
    else if (v != nullptr) Wrong(key, std::string("must be a string, got ") + TypeName(*v));
    return *this;
  }
  // Free text: invalid UTF-8 is repaired, never a reason to drop a report.
  Fields& Text(std::string_view key, std::string* out) {
    Str(key, out);
    RepairUtf8InPlace(out);
    return *this;
  }
  // Process output: any bytes, as bin or str.
  Fields& Output(std::string_view key, std::string* out) {
    const msgpack::object* v = Get(key);
    if (v != nullptr && (v->type == msgpack::type::BIN || v->type == msgpack::type::STR)) out->assign(View(*v));
    else if (v != nullptr) Wrong(key, std::string("must be binary or a string, got ") + TypeName(*v));
    return *this;
  }
  Fields& Strings(std::string_view key, std::vector<std::string>* out) {
    static constexpr char kWhat[] = "an array of strings";
    const msgpack::object* v = List(key, kWhat, out);
    for (uint32_t i = 0; v != nullptr && i < v->via.array.size; ++i) {
      const msgpack::object& e = v->via.array.ptr[i];
      if (e.type != msgpack::type::STR) return Entry(key, kWhat, i, TypeName(e));
      out->emplace_back(View(e));
    }
    return *this;
  }
  Fields& Env(std::string_view key, std::vector<std::pair<std::string, std::string>>* out) {
    static constexpr char kWhat[] = "an array of [name, value] string pairs";
    const msgpack::object* v = List(key, kWhat, out);
    for (uint32_t i = 0; v != nullptr && i < v->via.array.size; ++i) {
      const msgpack::object& e = v->via.array.ptr[i];
      if (e.type != msgpack::type::ARRAY) return Entry(key, kWhat, i, TypeName(e));
      if (e.via.array.size != 2) return Entry(key, kWhat, i, "of " + std::to_string(e.via.array.size) + " values");
      const msgpack::object& name = e.via.array.ptr[0];
      const msgpack::object& value = e.via.array.ptr[1];
      if (name.type != msgpack::type::STR || value.type != msgpack::type::STR) {
        return Entry(key, kWhat, i, std::string("[") + TypeName(name) + ", " + TypeName(value) + "]");
      }
      out->emplace_back(View(name), View(value));
    }
    return *this;
  }
  // group, step, attempt and submission, inline in this map.
  Fields& Id(AttemptId* out) {
    return Str("group", &out->group).Int("step", &out->step).Int("attempt", &out->attempt)
        .Int("submission", &out->submission);
  }
  Fields& Attempts(std::string_view key, std::vector<AttemptId>* out) {
    static constexpr char kWhat[] = "an array of {group, step, attempt, submission} maps";
    const msgpack::object* v = List(key, kWhat, out);
    for (uint32_t i = 0; v != nullptr && i < v->via.array.size; ++i) {
      const msgpack::object& e = v->via.array.ptr[i];
      if (e.type != msgpack::type::MAP) return Entry(key, kWhat, i, TypeName(e));
      Fields entry(command_, e, key, i);
      if (!entry.Id(&out->emplace_back()).Done().ok()) return Fail(entry.error_);
    }
    return *this;
  }
  Fields& Code(std::string_view key, Status::Code* out) {
    std::string name;
    if (Str(key, &name).ok() && !ParseWireCode(name, out)) {
      Wrong(key, "must be one of ok, invalid_argument, not_found, already_exists, failed_precondition, "
                 "unavailable, corruption, io_error; got " + Quote(name));
    }
    return *this;
  }

 private:
  // The value under `key`; nullptr (the reason recorded) when it is missing
  // or an earlier read already failed.
  const msgpack::object* Get(std::string_view key) {
    if (!ok()) return nullptr;
    if (asked_count_ < asked_.size()) asked_[asked_count_++] = key;
    for (uint32_t probe = 0; probe < size_; ++probe) {
      uint32_t i = cursor_ + probe < size_ ? cursor_ + probe : cursor_ + probe - size_;
      if (View(kv_[i].key) != key) continue;
      cursor_ = i + 1;
      ++matched_;
      return &kv_[i].val;
    }
    Fail(std::string(command_) + ": missing required field \"" + Path(key) + "\"");
    return nullptr;
  }

  // An array field within kMaxArgs (with room reserved in *out), else
  // nullptr with the reason recorded.
  template <typename Vector>
  const msgpack::object* List(std::string_view key, std::string_view what, Vector* out) {
    const msgpack::object* v = Get(key);
    if (v != nullptr && v->type != msgpack::type::ARRAY) {
      Wrong(key, "must be " + std::string(what) + ", got " + TypeName(*v));
    } else if (v != nullptr && v->via.array.size > kMaxArgs) {
      Fail(TooMany(command_, Where(Path(key)), v->via.array.size));
    } else if (v != nullptr) {
      out->reserve(v->via.array.size);
      return v;
    }
    return nullptr;
  }

  // Integers of any msgpack width, range-checked against T. Floats are
  // refused even when whole: a sender that writes one has a bug to find.
  template <typename T>
  bool ReadInt(std::string_view key, const msgpack::object& v, T* out, std::string_view alt = {}) {
    using L = std::numeric_limits<T>;
    std::string got;
    if (v.type == msgpack::type::POSITIVE_INTEGER) {
      if (v.via.u64 <= static_cast<uint64_t>(L::max())) {
        *out = static_cast<T>(v.via.u64);
        return true;
      }
      got = std::to_string(v.via.u64);
    } else if (v.type == msgpack::type::NEGATIVE_INTEGER) {
      if constexpr (L::is_signed) {
        if (v.via.i64 >= static_cast<int64_t>(L::min())) {
          *out = static_cast<T>(v.via.i64);
          return true;
        }
      }
      got = std::to_string(v.via.i64);
    } else {
      Wrong(key, std::string("must be ") + (L::is_signed ? "an integer" : "an unsigned integer") + std::string(alt) +
                     ", got " + TypeName(v));
      return false;
    }
    Wrong(key, "must be an integer from " + std::to_string(L::min()) + " to " + std::to_string(L::max()) +
                   std::string(alt) + ", got " + got);
    return false;
  }

  // "attempt", or "running[1].attempt" inside a list entry.
  std::string Path(std::string_view key) const {
    return parent_.empty() ? std::string(key) : Where(parent_, index_).str() + "." + std::string(key);
  }
  void Wrong(std::string_view key, const std::string& what) { Fail(FieldError(command_, Where(Path(key)), what)); }
  Fields& Entry(std::string_view key, std::string_view what, size_t i, const std::string& got) {
    Wrong(key, "must be " + std::string(what) + " (entry " + std::to_string(i) + " is " + got + ")");
    return *this;
  }
  Fields& Fail(std::string message) {
    if (error_.empty()) error_ = std::move(message);
    return *this;
  }

  std::string_view command_;
  std::string_view parent_;
  size_t index_;
  const msgpack::object_kv* kv_;
  uint32_t size_;
  uint32_t cursor_ = 0;
  uint32_t matched_ = 0;
  std::array<std::string_view, 20> asked_;  // FINISHED reads the most: 17
  size_t asked_count_ = 0;
  std::string error_;
};

void Read(Fields& f, SubmitMsg* m) { f.Int("req", &m->req).Str("spec", &m->spec); }
void Read(Fields& f, StatusMsg* m) {
  f.Int("req", &m->req).Str("group", &m->group);
  if (f.Has("brief")) f.Bool("brief", &m->brief);
  if (f.Has("cursor")) f.Int("cursor", &m->cursor);
}
void Read(Fields& f, LogsMsg* m) {
  f.Int("req", &m->req).Str("group", &m->group).Str("step", &m->step).Int("attempt", &m->attempt)
      .Str("stream", &m->stream);
}
void Read(Fields& f, WaitMsg* m) { f.Int("req", &m->req).Str("group", &m->group); }
void Read(Fields& f, CancelRequestMsg* m) { f.Int("req", &m->req).Str("group", &m->group).Str("step", &m->step); }
void Read(Fields& f, GroupsMsg* m) { f.Int("req", &m->req); }
void Read(Fields& f, WorkersMsg* m) { f.Int("req", &m->req); }
void Read(Fields& f, PingMsg* m) { f.Int("req", &m->req); }
void Read(Fields& f, CordonMsg* m) { f.Int("req", &m->req).Str("worker", &m->worker).Str("mode", &m->mode); }
void Read(Fields& f, ReplyMsg* m) {
  f.Int("req", &m->req).Code("code", &m->code).Text("error", &m->error).Str("body", &m->body);
  if (f.Has("leader")) f.Str("leader", &m->leader);
}
void Read(Fields& f, RegisterMsg* m) {
  f.Str("name", &m->name).Int("slots", &m->slots).Strings("agents", &m->agents).Attempts("running", &m->running)
      .Str("version", &m->version);
  if (f.Has("instance")) f.Int("instance", &m->instance);
  if (f.Has("seq")) f.Int("seq", &m->seq);
  if (f.Has("kill_grace_ms")) f.Int("kill_grace_ms", &m->kill_grace_ms);
  if (f.Has("draining")) f.Bool("draining", &m->draining);
}
void Read(Fields& f, WelcomeMsg* m) {
  f.Int("heartbeat_ms", &m->heartbeat_ms).Int("liveness", &m->liveness).Str("cancel_endpoint", &m->cancel_endpoint);
  if (f.Has("lease_ms")) f.Int("lease_ms", &m->lease_ms);
  if (f.Has("ack")) f.Int("ack", &m->ack);
  if (f.Has("epoch")) f.Int("epoch", &m->epoch);
}
void Read(Fields& f, HeartbeatMsg* m) {
  if (f.Has("running")) f.Attempts("running", &m->running.emplace());
  if (f.Has("seq")) f.Int("seq", &m->seq);
  if (f.Has("ack")) f.Int("ack", &m->ack);
  if (f.Has("epoch")) f.Int("epoch", &m->epoch);
  if (f.Has("draining")) f.Bool("draining", &m->draining);
}
void Read(Fields& f, RunMsg* m) {
  f.Id(&m->id).Str("step_id", &m->step_id).Strings("argv", &m->argv).Str("shell", &m->shell).Env("env", &m->env)
      .Str("cwd", &m->cwd).Int("timeout_ms", &m->timeout_ms);
  if (f.Has("epoch")) f.Int("epoch", &m->epoch);
  if (f.Has("client")) f.Str("client", &m->client);
}
void Read(Fields& f, StartedMsg* m) { f.Id(&m->id); }
void Read(Fields& f, FinishedMsg* m) {
  f.Id(&m->id).OptInt("exit_code", &m->exit_code).OptInt("signal", &m->signal).Bool("timed_out", &m->timed_out)
      .Bool("cancelled", &m->cancelled).Bool("escalated", &m->escalated).Text("error", &m->error)
      .Output("stdout", &m->stdout_tail).Output("stderr", &m->stderr_tail).Int("stdout_bytes", &m->stdout_bytes)
      .Int("stderr_bytes", &m->stderr_bytes).Int("started_ms", &m->started_ms).Int("finished_ms", &m->finished_ms);
  if (f.Has("lost")) f.Bool("lost", &m->lost);
}
void Read(Fields& f, CancelAttemptMsg* m) {
  f.Id(&m->id);
  if (f.Has("epoch")) f.Int("epoch", &m->epoch);
}
void Read(Fields& f, ReregisterMsg* m) {
  f.Text("reason", &m->reason);
  if (f.Has("leader")) f.Str("leader", &m->leader);
}
void Read(Fields&, ByeMsg*) {}
void Read(Fields& f, CancelGroupMsg* m) {
  f.Str("group", &m->group).Int("submission", &m->submission);
  if (f.Has("epoch")) f.Int("epoch", &m->epoch);
}
void Read(Fields& f, ConfirmMsg* m) { f.Attempts("ids", &m->ids); }

// Reads Message's alternative number `index`, then applies its value rules.
template <size_t I = 0>
Status ReadMessage(size_t index, std::string_view command, Fields& f, Message* out) {
  if constexpr (I + 1 < std::variant_size_v<Message>) {
    if (index != I) return ReadMessage<I + 1>(index, command, f, out);
  }
  std::variant_alternative_t<I, Message> m;
  Read(f, &m);
  if (!f.Done().ok()) return f.status();
  Checker c(command);
  Check(c, m);
  if (Status s = c.status(); !s.ok()) return s;
  *out = std::move(m);
  return Status::Ok();
}

template <typename T, typename... Ts>
constexpr size_t IndexIn(const std::variant<Ts...>*) {
  size_t i = 0;
  (void)((std::is_same_v<T, Ts> || (++i, false)) || ...);
  return i;
}
constexpr size_t kCancelRequest = IndexIn<CancelRequestMsg>(static_cast<const Message*>(nullptr));
constexpr size_t kCancelAttempt = IndexIn<CancelAttemptMsg>(static_cast<const Message*>(nullptr));
static_assert(kCommandNames[kCancelRequest] == "CANCEL" && kCommandNames[kCancelAttempt] == "CANCEL");

// Another version of cohort ("cohort/" and a number) gets an answer an
// operator can act on; anything else is not cohort at all.
std::string ProtocolError(std::string_view got) {
  constexpr std::string_view kName = "cohort/";
  const std::string_view version = got.substr(std::min(got.size(), kName.size()));
  const bool numbered = got.starts_with(kName) && !version.empty() && version.size() <= 9 &&
                        std::all_of(version.begin(), version.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (numbered) {
    return "peer speaks protocol " + std::string(got) + ", this build speaks " + kProtocol +
           ": upgrade the older of the two";
  }
  return "unsupported protocol " + Quote(got) + " (expected \"" + kProtocol + "\")";
}

Status DecodeUnchecked(std::span<const std::string_view> frames, Message* out) {
  if (frames.size() != kFrameCount) {
    return Status::Corruption("expected 3 frames (protocol, command, body), got " + std::to_string(frames.size()));
  }
  if (frames[0] != kProtocol) return Status::Corruption(ProtocolError(frames[0]));
  const std::string_view command = frames[1];
  const auto* known = std::find(std::begin(kCommandNames), std::end(kCommandNames), command);
  if (known == std::end(kCommandNames)) return Status::Corruption("unknown command " + Quote(command));
  size_t index = static_cast<size_t>(known - std::begin(kCommandNames));
  const std::string cmd(command);

  const std::string_view body = frames[2];
  if (body.size() > kMaxMessageBytes) {
    return Status::Corruption(cmd + ": body is " + std::to_string(body.size()) + " bytes, over the limit of " +
                              std::to_string(kMaxMessageBytes) + " (kMaxMessageBytes)");
  }
  if (body.empty()) return Status::Corruption(cmd + ": body is empty; expected a msgpack map");
  ShapeCheck shape;
  size_t end = 0;
  if (!msgpack::v2::parse(body.data(), body.size(), end, shape) || shape.verdict() != ShapeCheck::Verdict::kOk) {
    switch (shape.verdict()) {
      case ShapeCheck::Verdict::kTooDeep:
        return Status::Corruption(cmd + ": body nests containers deeper than " + std::to_string(kMaxBodyDepth) +
                                  " levels (kMaxBodyDepth)");
      case ShapeCheck::Verdict::kTooMany:
        return Status::Corruption(cmd + ": body holds more than " + std::to_string(kMaxBodyValues) +
                                  " values (kMaxBodyValues)");
      case ShapeCheck::Verdict::kTruncated:
        return Status::Corruption(cmd + ": body is truncated (its msgpack ends mid-value)");
      default:
        return Status::Corruption(cmd + ": body is not valid msgpack (byte " + std::to_string(shape.error_offset()) +
                                  ")");
    }
  }
  if (end != body.size()) {
    return Status::Corruption(cmd + ": body has " + std::to_string(body.size() - end) +
                              " bytes after its map (expected exactly one msgpack map)");
  }

  // The shape check already holds the body to these; they guard the
  // unpacker should the two parsers ever disagree.
  const msgpack::unpack_limit limits(kMaxBodyValues, kMaxBodyValues, kMaxMessageBytes, kMaxMessageBytes,
                                     kMaxMessageBytes, kMaxBodyDepth);
  // One zone per thread, cleared after each message, instead of a fresh
  // zone per message: its first 8 KiB chunk was a malloc and a free on every
  // message, a tenth of the coordinator's per-step cost.
  thread_local msgpack::zone zone;
  struct ClearOnExit {
    msgpack::zone& z;
    ~ClearOnExit() { z.clear(); }
  } clear_on_exit{zone};
  size_t offset = 0;
  const msgpack::object root =
      msgpack::unpack(zone, body.data(), body.size(), offset, ReferenceInPlace, nullptr, limits);
  if (root.type != msgpack::type::MAP) {
    return Status::Corruption(cmd + ": body must be a msgpack map, got " + TypeName(root));
  }
  Fields fields(command, root);
  if (!fields.ok()) return fields.status();
  if (index == kCancelRequest || index == kCancelAttempt) {
    // One command, two bodies: only a client's carries a request id.
    if (fields.Has("req")) index = kCancelRequest;
    else if (fields.Has("attempt")) index = kCancelAttempt;
    else return Status::Corruption("CANCEL: missing required field \"req\" (client) or \"attempt\" (worker)");
  }
  return ReadMessage(index, command, fields, out);
}

}  // namespace

Status Decode(std::span<const std::string_view> frames, Message* out) {
  // Whatever msgpack or the standard library might still throw stops here.
  try {
    return DecodeUnchecked(frames, out);
  } catch (const std::exception& e) {
    return Status::Corruption((frames.size() >= 2 ? Quote(frames[1]) : std::string("message")) +
                              ": cannot decode body: " + e.what());
  } catch (...) {
    return Status::Corruption("cannot decode message: unknown error");
  }
}

}  // namespace cohort::common
