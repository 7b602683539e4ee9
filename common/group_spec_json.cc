// JSON reading of a GroupSpec. Strict on purpose: an unknown key is an error
// (a typo such as "max_paralel" must not silently run a group unlimited), a
// key given twice is an error, and every message names the field's path.
//
// The text is read with nlohmann::json's SAX interface straight into the
// GroupSpec, without a document tree: for a 10^6-step SUBMIT the tree was
// several hundred megabytes and most of the parse's time on the
// coordinator's loop. nlohmann::json's exceptions stop here.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/group_spec.h"
#include "common/result_json.h"

namespace cohort::common {
namespace {

using Json = nlohmann::json;

// One scalar as the SAX parser hands it over.
struct Scalar {
  enum class Type { kNull, kBool, kInt, kUInt, kFloat, kString } type = Type::kNull;
  int64_t i = 0;
  uint64_t u = 0;
  double d = 0;
  const std::string* text = nullptr;  // a float's token as written
  std::string* s = nullptr;           // a string's value, ours to move from

  bool number() const { return type == Type::kInt || type == Type::kUInt || type == Type::kFloat; }
  double as_double() const {
    return type == Type::kInt ? static_cast<double>(i) : type == Type::kUInt ? static_cast<double>(u) : d;
  }
  const char* type_name() const {
    switch (type) {
      case Type::kNull: return "null";
      case Type::kBool: return "boolean";
      case Type::kString: return "string";
      default: return "number";
    }
  }
};

// Where the parser is: one frame per open container that the schema knows.
enum class Ctx : uint8_t { kGroup, kSteps, kStep, kCommand, kEnv, kGroupRetry, kStepRetry, kRetryOn };

struct Frame {
  Ctx ctx;
  std::string key;    // objects: the key whose value comes next
  size_t count = 0;   // arrays: elements seen so far
  uint32_t seen = 0;  // objects with known keys: which were given
};

// The known keys of each object, by position (the bit in Frame::seen).
constexpr std::string_view kGroupKeys[] = {"id",         "max_parallel", "timeout_s", "deadline_s",
                                           "on_failure", "retry",        "steps"};
constexpr std::string_view kStepKeys[] = {"id", "command", "shell", "agent", "env", "cwd", "timeout_s", "retry"};
constexpr std::string_view kRetryKeys[] = {"max_attempts", "backoff_s", "backoff_multiplier",
                                           "max_backoff_s", "jitter",   "retry_on"};

template <size_t N>
int KeyIndex(const std::string_view (&keys)[N], std::string_view key) {
  for (size_t i = 0; i < N; ++i) {
    if (keys[i] == key) return static_cast<int>(i);
  }
  return -1;
}

// A step's retry block overrides only the fields it names, on top of the
// group's block, which may come later in the text: kept apart until the end.
struct StepRetry {
  size_t step = 0;
  RetryPolicy values;
  uint32_t given = 0;  // bits of kRetryKeys
};

class SpecReader {
 public:
  SpecReader(GroupSpec* out, size_t max_steps, std::string_view limit_name)
      : g_(out), max_steps_(max_steps), limit_name_(limit_name) {}

  const Status& status() const { return status_; }
  bool limit_hit() const { return limit_hit_; }

  // ---- nlohmann::json SAX interface ----
  bool null() { return OnScalar({}); }
  bool boolean(bool) { return OnScalar({Scalar::Type::kBool}); }
  bool number_integer(int64_t v) { return OnScalar({Scalar::Type::kInt, v}); }
  bool number_unsigned(uint64_t v) { return OnScalar({Scalar::Type::kUInt, 0, v}); }
  bool number_float(double v, const std::string& text) {
    return OnScalar({Scalar::Type::kFloat, 0, 0, v, &text});
  }
  bool string(std::string& v) { return OnScalar({Scalar::Type::kString, 0, 0, 0, nullptr, &v}); }
  bool binary(Json::binary_t&) { return Fail(Here(), "must not be binary data"); }
  bool start_object(size_t) { return OnContainer(true); }
  bool start_array(size_t) { return OnContainer(false); }
  bool key(std::string& k);
  bool end_object();
  bool end_array();
  bool parse_error(size_t, const std::string&, const nlohmann::detail::exception& e) {
    if (status_.ok()) status_ = Status::InvalidArgument(std::string("not valid JSON: ") + e.what());
    return false;
  }

  // After a successful parse: what can only be checked once everything is read.
  bool Finish();

 private:
  bool Fail(std::string path, const std::string& what) {
    if (status_.ok()) status_ = Status::InvalidArgument(path + ": " + what);
    return false;
  }

  // The path of the value about to be read ("steps[3].retry.jitter"), built
  // from the frames only for an error message; Here(1) is the path of the
  // innermost container itself.
  std::string Here(size_t drop = 0) const;

  bool OnScalar(const Scalar& v);
  bool OnContainer(bool object);

  bool String(const Scalar& v, std::string* out) {
    if (v.type != Scalar::Type::kString) return Fail(Here(), std::string("must be a string, got ") + v.type_name());
    *out = std::move(*v.s);
    return true;
  }
  bool Seconds(const Scalar& v, double* out) {
    if (!v.number()) return Fail(Here(), std::string("must be a number of seconds, got ") + v.type_name());
    *out = v.as_double();
    return true;
  }
  bool Integer(const Scalar& v, int64_t* out);
  bool GroupValue(const Scalar& v);
  bool StepValue(const Scalar& v);
  bool RetryValue(const Scalar& v, RetryPolicy* p);

  // The retry block being read: the innermost retry frame, or the one
  // around the retry_on list being read.
  RetryPolicy* RetryTarget() {
    Ctx c = stack_.back().ctx;
    if (c == Ctx::kRetryOn) c = stack_[stack_.size() - 2].ctx;
    return c == Ctx::kGroupRetry ? &g_->retry : &step_retries_.back().values;
  }

  GroupSpec* g_;
  size_t max_steps_;
  std::string_view limit_name_;
  bool limit_hit_ = false;
  Status status_;
  std::vector<Frame> stack_;
  bool root_seen_ = false;
  uint32_t group_seen_ = 0;  // the group object's keys, once it is closed
  std::vector<StepRetry> step_retries_;
};

std::string SpecReader::Here(size_t drop) const {
  std::string path;
  for (size_t i = 0; i + drop < stack_.size(); ++i) {
    const Frame& f = stack_[i];
    switch (f.ctx) {
      case Ctx::kSteps:
      case Ctx::kCommand:
      case Ctx::kRetryOn:
        path += "[" + std::to_string(f.count) + "]";
        break;
      default:
        if (!path.empty()) path += ".";
        path += f.key;
    }
  }
  return path;
}

bool SpecReader::key(std::string& k) {
  Frame& f = stack_.back();
  int index = -1;
  switch (f.ctx) {
    case Ctx::kGroup: index = KeyIndex(kGroupKeys, k); break;
    case Ctx::kStep: index = KeyIndex(kStepKeys, k); break;
    case Ctx::kGroupRetry:
    case Ctx::kStepRetry: index = KeyIndex(kRetryKeys, k); break;
    default: break;  // env: any name (checked by ValidateGroupSpec)
  }
  f.key = std::move(k);
  if (f.ctx == Ctx::kEnv) return true;
  if (index < 0) return Fail(Here(), "unknown field");
  const uint32_t bit = 1u << index;
  if (f.seen & bit) return Fail(Here(), "given more than once");
  f.seen |= bit;
  if (f.ctx == Ctx::kStepRetry) step_retries_.back().given |= bit;
  return true;
}

bool SpecReader::Integer(const Scalar& v, int64_t* out) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  switch (v.type) {
    case Scalar::Type::kInt:
      *out = v.i;
      return true;
    case Scalar::Type::kUInt:
      if (v.u > static_cast<uint64_t>(kMax)) {
        // As int64 it would wrap negative, and a later message would name a
        // number the user never wrote.
        return Fail(Here(), "must be a whole number up to " + std::to_string(kMax) + ", got " + std::to_string(v.u));
      }
      *out = static_cast<int64_t>(v.u);
      return true;
    case Scalar::Type::kFloat:
      if (std::isfinite(v.d) && v.d == std::floor(v.d) && std::fabs(v.d) < 9e15) {
        *out = static_cast<int64_t>(v.d);
        return true;
      }
      return Fail(Here(), "must be a whole number, got " + *v.text);
    default:
      return Fail(Here(), std::string("must be a whole number, got ") + v.type_name());
  }
}

bool SpecReader::GroupValue(const Scalar& v) {
  const std::string& k = stack_.back().key;
  const bool null = v.type == Scalar::Type::kNull;
  if (k == "id") return null || String(v, &g_->id);
  if (k == "max_parallel") {
    int64_t n = 0;
    if (null) return true;
    if (!Integer(v, &n)) return false;
    g_->max_parallel = n;
    return true;
  }
  if (k == "timeout_s" || k == "deadline_s") {
    double t = 0;
    if (null) return true;
    if (!Seconds(v, &t)) return false;
    (k == "timeout_s" ? g_->timeout_s : g_->deadline_s) = t;
    return true;
  }
  if (k == "on_failure") {
    std::string mode;
    if (!String(v, &mode)) return false;
    if (mode == "cancel") g_->on_failure = OnFailure::kCancel;
    else if (mode == "continue") g_->on_failure = OnFailure::kContinue;
    else return Fail(Here(), "unknown value \"" + mode + "\" (expected cancel or continue)");
    return true;
  }
  if (k == "retry") return Fail(Here(), std::string("must be an object, got ") + v.type_name());
  return Fail(Here(), "must be a list of steps");  // "steps"
}

bool SpecReader::StepValue(const Scalar& v) {
  const std::string& k = stack_.back().key;
  StepSpec& s = g_->steps.back();
  if (k == "id") return String(v, &s.id);
  if (k == "command") {
    // A command given as one string is a shell line, the way users write it.
    if (v.type == Scalar::Type::kString) return String(v, &s.shell);
    return Fail(Here(), "must be a list of strings (argv) or a string (shell line)");
  }
  if (k == "shell") return String(v, &s.shell);
  if (k == "agent") return String(v, &s.agent);
  if (k == "cwd") return String(v, &s.cwd);
  if (k == "timeout_s") {
    double t = 0;
    if (!Seconds(v, &t)) return false;
    s.timeout_s = t;
    return true;
  }
  return Fail(Here(), std::string("must be an object, got ") + v.type_name());  // env, retry
}

bool SpecReader::RetryValue(const Scalar& v, RetryPolicy* p) {
  const std::string& k = stack_.back().key;
  if (k == "max_attempts") return Integer(v, &p->max_attempts);
  if (k == "backoff_s") return Seconds(v, &p->backoff_s);
  if (k == "backoff_multiplier") return Seconds(v, &p->backoff_multiplier);
  if (k == "max_backoff_s") return Seconds(v, &p->max_backoff_s);
  if (k == "jitter") return Seconds(v, &p->jitter);
  return Fail(Here(), "must be a list of \"exit\", \"timeout\", \"worker_lost\"");  // retry_on
}

bool SpecReader::OnScalar(const Scalar& v) {
  if (stack_.empty()) return Fail("group", std::string("must be a JSON object, got ") + v.type_name());
  Frame& f = stack_.back();
  switch (f.ctx) {
    case Ctx::kGroup: return GroupValue(v);
    case Ctx::kStep: return StepValue(v);
    case Ctx::kGroupRetry:
    case Ctx::kStepRetry: return RetryValue(v, RetryTarget());
    case Ctx::kSteps: return Fail(Here(), std::string("must be an object, got ") + v.type_name());
    case Ctx::kCommand:
      if (v.type != Scalar::Type::kString) return Fail(Here(), "must be a string");
      g_->steps.back().argv.push_back(std::move(*v.s));
      ++f.count;
      return true;
    case Ctx::kEnv:
      if (v.type != Scalar::Type::kString) return Fail(Here(), "must be a string");
      g_->steps.back().env.emplace_back(f.key, std::move(*v.s));
      return true;
    case Ctx::kRetryOn: {
      FailureKind kind;
      if (v.type != Scalar::Type::kString || !ParseFailureKind(*v.s, &kind)) {
        return Fail(Here(), "unknown failure kind " +
                                (v.type == Scalar::Type::kString ? "\"" + *v.s + "\"" : std::string(v.type_name())) +
                                " (expected exit, timeout or worker_lost)");
      }
      RetryTarget()->retry_on |= static_cast<uint8_t>(kind);
      ++f.count;
      return true;
    }
  }
  return false;
}

bool SpecReader::OnContainer(bool object) {
  const char* type = object ? "object" : "array";
  if (stack_.empty()) {
    if (root_seen_ || !object) return Fail("group", std::string("must be a JSON object, got ") + type);
    root_seen_ = true;
    stack_.push_back({Ctx::kGroup, {}});
    return true;
  }
  Frame& f = stack_.back();
  std::optional<Ctx> next;
  switch (f.ctx) {
    case Ctx::kGroup:
      if (f.key == "retry" && object) next = Ctx::kGroupRetry;
      else if (f.key == "steps" && !object) next = Ctx::kSteps;
      else if (f.key == "retry") return Fail(Here(), "must be an object, got array");
      else if (f.key == "steps") return Fail(Here(), "must be a list of steps");
      else if (f.key == "max_parallel") return Fail(Here(), std::string("must be a whole number, got ") + type);
      else if (f.key == "timeout_s" || f.key == "deadline_s") {
        return Fail(Here(), std::string("must be a number of seconds, got ") + type);
      } else {
        return Fail(Here(), std::string("must be a string, got ") + type);
      }
      break;
    case Ctx::kSteps:
      if (!object) return Fail(Here(), "must be an object, got array");
      if (f.count >= max_steps_) {
        limit_hit_ = true;
        return Fail(Here(1), "more than " + std::to_string(max_steps_) + " steps; the limit is " +
                                 std::to_string(max_steps_) +
                                 (limit_name_.empty() ? std::string() : " (" + std::string(limit_name_) + ")"));
      }
      g_->steps.emplace_back();
      next = Ctx::kStep;
      break;
    case Ctx::kStep:
      if (f.key == "command" && !object) next = Ctx::kCommand;
      else if (f.key == "env" && object) next = Ctx::kEnv;
      else if (f.key == "retry" && object) next = Ctx::kStepRetry;
      else if (f.key == "command") return Fail(Here(), "must be a list of strings (argv) or a string (shell line)");
      else if (f.key == "env" || f.key == "retry") return Fail(Here(), "must be an object, got array");
      else if (f.key == "timeout_s") return Fail(Here(), std::string("must be a number of seconds, got ") + type);
      else return Fail(Here(), std::string("must be a string, got ") + type);
      if (*next == Ctx::kStepRetry) step_retries_.push_back({g_->steps.size() - 1, {}, 0});
      break;
    case Ctx::kGroupRetry:
    case Ctx::kStepRetry:
      if (f.key == "retry_on" && !object) {
        RetryTarget()->retry_on = 0;
        RetryTarget()->retry_on_given = true;
        next = Ctx::kRetryOn;
      } else if (f.key == "retry_on") {
        return Fail(Here(), "must be a list of \"exit\", \"timeout\", \"worker_lost\"");
      } else if (f.key == "max_attempts") {
        return Fail(Here(), std::string("must be a whole number, got ") + type);
      } else {
        return Fail(Here(), std::string("must be a number of seconds, got ") + type);
      }
      break;
    case Ctx::kCommand: return Fail(Here(), "must be a string");
    case Ctx::kEnv: return Fail(Here(), "must be a string");
    case Ctx::kRetryOn:
      return Fail(Here(), std::string("unknown failure kind ") + type + " (expected exit, timeout or worker_lost)");
  }
  stack_.push_back({*next, {}});
  return true;
}

bool SpecReader::end_object() {
  const Frame f = std::move(stack_.back());
  stack_.pop_back();
  if (f.ctx == Ctx::kGroup) group_seen_ = f.seen;
  if (f.ctx == Ctx::kStep) {
    constexpr uint32_t kCommandBit = 1u << 1, kShellBit = 1u << 2;
    if ((f.seen & kCommandBit) && (f.seen & kShellBit)) {
      stack_.push_back(f);
      stack_.back().key = "shell";
      return Fail(Here(), "give either command or shell, not both");
    }
  } else if (f.ctx == Ctx::kEnv) {
    // Sorted, as a JSON object's members have no order; a name given twice
    // is ambiguous, so refused.
    auto& env = g_->steps.back().env;
    std::stable_sort(env.begin(), env.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    for (size_t i = 1; i < env.size(); ++i) {
      if (env[i].first == env[i - 1].first) {
        stack_.push_back(f);
        stack_.back().key = env[i].first;
        return Fail(Here(), "given more than once");
      }
    }
  }
  if (!stack_.empty()) ++stack_.back().count;
  return true;
}

bool SpecReader::end_array() {
  const Frame f = std::move(stack_.back());
  stack_.pop_back();
  if (f.ctx == Ctx::kCommand && f.count == 0) return Fail(Here(), "must not be an empty list");
  return true;
}

bool SpecReader::Finish() {
  if (!status_.ok()) return false;
  if (!root_seen_) return Fail("group", "must be a JSON object");
  constexpr uint32_t kStepsBit = 1u << 6;
  if (!(group_seen_ & kStepsBit)) return Fail("steps", "missing; a group needs at least one step");
  for (StepRetry& r : step_retries_) {
    RetryPolicy p = g_->retry;
    auto take = [&](int bit, auto member) {
      if (r.given & (1u << bit)) p.*member = r.values.*member;
    };
    take(0, &RetryPolicy::max_attempts);
    take(1, &RetryPolicy::backoff_s);
    take(2, &RetryPolicy::backoff_multiplier);
    take(3, &RetryPolicy::max_backoff_s);
    take(4, &RetryPolicy::jitter);
    if (r.given & (1u << 5)) {
      p.retry_on = r.values.retry_on;
      p.retry_on_given = true;
    }
    g_->steps[r.step].retry = p;
  }
  return true;
}

}  // namespace

Status ParseGroupSpecJson(std::string_view text, GroupSpec* out, size_t max_steps, std::string_view limit_name) {
  // The reader never recurses, but a caller that serializes or walks a
  // deeper document would; refuse what ParseJsonBounded refuses.
  if (Status s = CheckJsonDepth(text); !s.ok()) return Status::InvalidArgument("not valid JSON: " + s.message());
  GroupSpec spec;
  SpecReader reader(&spec, std::min(max_steps, kMaxStepsPerGroup), limit_name);
  try {
    const bool parsed = Json::sax_parse(text.begin(), text.end(), &reader);
    if (!parsed || !reader.Finish()) {
      if (reader.status().ok()) return Status::InvalidArgument("not valid JSON");
      // Over the caller's own limit the spec may be fine: refused, not invalid.
      if (reader.limit_hit() && max_steps < kMaxStepsPerGroup) {
        return Status::FailedPrecondition(reader.status().message());
      }
      return reader.status();
    }
  } catch (const std::exception& e) {
    return Status::InvalidArgument(std::string("not valid JSON: ") + e.what());
  }
  if (Status s = ValidateGroupSpec(spec); !s.ok()) return s;
  *out = std::move(spec);
  return Status::Ok();
}

}  // namespace cohort::common
