#include "common/group_spec.h"

#include "common/protocol.h"
#include "common/quote.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <unordered_set>

namespace cohort::common {

std::string_view FailureKindName(FailureKind kind) {
  switch (kind) {
    case FailureKind::kExit: return "exit";
    case FailureKind::kTimeout: return "timeout";
    case FailureKind::kWorkerLost: return "worker_lost";
  }
  return "unknown";
}

bool ParseFailureKind(std::string_view name, FailureKind* out) {
  for (FailureKind k : {FailureKind::kExit, FailureKind::kTimeout, FailureKind::kWorkerLost}) {
    if (name == FailureKindName(k)) {
      *out = k;
      return true;
    }
  }
  return false;
}

std::string_view OnFailureName(OnFailure mode) {
  return mode == OnFailure::kContinue ? "continue" : "cancel";
}

namespace {

std::string StepWhere(size_t index, const StepSpec& step) {
  std::string out = "steps[" + std::to_string(index) + "]";
  if (!step.id.empty()) out += " (id " + Quote(step.id) + ")";
  return out;
}

std::string FormatNumber(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  std::string s = std::to_string(v);
  while (!s.empty() && s.back() == '0') s.pop_back();
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

// A time the user gave in seconds: finite and > 0 (or >= 0 when zero_ok).
Status CheckSeconds(std::string_view where, std::string_view field, double v, bool zero_ok) {
  bool good = std::isfinite(v) && (zero_ok ? v >= 0 : v > 0);
  if (good) return Status::Ok();
  std::string msg(where);
  if (!msg.empty()) msg += ": ";
  msg += std::string(field) + " must be a " + (zero_ok ? "non-negative" : "positive") +
         " number of seconds, got " + FormatNumber(v);
  return Status::InvalidArgument(msg);
}

std::string Prefix(std::string_view where) {
  return where.empty() ? std::string() : std::string(where) + ": ";
}

Status CheckId(std::string_view where, std::string_view field, const std::string& id) {
  if (id.size() > kMaxIdBytes) {
    return Status::InvalidArgument(Prefix(where) + std::string(field) + " is " +
                                   std::to_string(id.size()) + " bytes; the limit is " +
                                   std::to_string(kMaxIdBytes));
  }
  for (unsigned char c : id) {
    if (c < 0x20 || c == 0x7f) {
      return Status::InvalidArgument(Prefix(where) + std::string(field) +
                                     " must not contain control characters");
    }
  }
  return Status::Ok();
}

Status TooBig(const std::string& where, const std::string& field, size_t n, size_t limit, const char* unit) {
  return Status::InvalidArgument(where + ": " + field + " is " + std::to_string(n) + " " + unit + "; the limit is " +
                                 std::to_string(limit));
}

Status CheckStepSize(const std::string& where, const StepSpec& step) {
  constexpr size_t kMaxStepBytes = 32u << 20;  // what one RUN may carry, well inside a message
  size_t total = step.shell.size() + step.cwd.size();
  if (step.shell.size() > kMaxStringBytes) return TooBig(where, "shell", step.shell.size(), kMaxStringBytes, "bytes");
  if (step.cwd.size() > kMaxStringBytes) return TooBig(where, "cwd", step.cwd.size(), kMaxStringBytes, "bytes");
  if (step.argv.size() > kMaxArgs) return TooBig(where, "command", step.argv.size(), kMaxArgs, "arguments");
  if (step.env.size() > kMaxArgs) return TooBig(where, "env", step.env.size(), kMaxArgs, "variables");
  for (size_t i = 0; i < step.argv.size(); ++i) {
    if (step.argv[i].size() > kMaxStringBytes) {
      return TooBig(where, "command[" + std::to_string(i) + "]", step.argv[i].size(), kMaxStringBytes, "bytes");
    }
    total += step.argv[i].size();
  }
  for (const auto& [key, value] : step.env) {
    if (key.size() > kMaxStringBytes || value.size() > kMaxStringBytes) {
      return TooBig(where, "env." + key.substr(0, 64), std::max(key.size(), value.size()), kMaxStringBytes, "bytes");
    }
    total += key.size() + value.size();
  }
  if (total > kMaxStepBytes) return TooBig(where, "the command, env and cwd together", total, kMaxStepBytes, "bytes");
  return Status::Ok();
}

}  // namespace

Status ValidateRetryPolicy(const RetryPolicy& p, std::string_view where) {
  std::string at = Prefix(where);
  if (p.max_attempts < 1 || p.max_attempts > kMaxAttempts) {
    return Status::InvalidArgument(at + "retry.max_attempts must be from 1 to " + std::to_string(kMaxAttempts) +
                                   ", got " + std::to_string(p.max_attempts));
  }
  if (Status s = CheckSeconds(where, "retry.backoff_s", p.backoff_s, true); !s.ok()) return s;
  if (Status s = CheckSeconds(where, "retry.max_backoff_s", p.max_backoff_s, true); !s.ok()) return s;
  if (!std::isfinite(p.backoff_multiplier) || p.backoff_multiplier < 1.0) {
    return Status::InvalidArgument(at + "retry.backoff_multiplier must be a number >= 1, got " +
                                   FormatNumber(p.backoff_multiplier));
  }
  if (!std::isfinite(p.jitter) || p.jitter < 0.0 || p.jitter > 1.0) {
    return Status::InvalidArgument(at + "retry.jitter must be a fraction between 0 and 1, got " +
                                   FormatNumber(p.jitter));
  }
  if ((p.retry_on & ~kAllFailureKinds) != 0) {
    return Status::InvalidArgument(at + "retry.retry_on has an unknown failure kind");
  }
  return Status::Ok();
}

namespace {

// One step's own rules; where names it in the message ("" while the caller
// only wants to know whether it passes).
Status CheckStep(const std::string& where, const StepSpec& step) {
  if (step.id.empty()) return Status::InvalidArgument(Prefix(where) + "id must not be empty");
  if (Status s = CheckId(where, "id", step.id); !s.ok()) return s;
  if (step.argv.empty() && step.shell.empty()) {
    return Status::InvalidArgument(Prefix(where) + "needs a command (argv) or a shell string");
  }
  if (!step.argv.empty() && !step.shell.empty()) {
    return Status::InvalidArgument(Prefix(where) + "give either command (argv) or shell, not both");
  }
  if (!step.argv.empty() && step.argv[0].empty()) {
    return Status::InvalidArgument(Prefix(where) + "command[0] (the program) must not be empty");
  }
  // The wire's limits, checked here so a step that could never be sent to
  // a worker is refused at submission, naming the field.
  if (Status s = CheckStepSize(where, step); !s.ok()) return s;
  if (Status s = CheckId(where, "agent", step.agent); !s.ok()) return s;
  for (const auto& [key, value] : step.env) {
    if (key.empty() || key.find('=') != std::string::npos || key.find('\0') != std::string::npos) {
      return Status::InvalidArgument(Prefix(where) + "env has an invalid variable name " + Quote(key));
    }
    if (value.find('\0') != std::string::npos) {
      return Status::InvalidArgument(Prefix(where) + "env." + key + " must not contain a NUL byte");
    }
  }
  if (step.timeout_s) {
    if (Status s = CheckSeconds(where, "timeout_s", *step.timeout_s, false); !s.ok()) return s;
  }
  if (step.retry) {
    if (Status s = ValidateRetryPolicy(*step.retry, where); !s.ok()) return s;
  }
  return Status::Ok();
}

}  // namespace

Status ValidateGroupSpec(const GroupSpec& spec) {
  if (Status s = CheckId("", "id", spec.id); !s.ok()) return s;
  if (spec.steps.empty()) return Status::InvalidArgument("steps: a group needs at least one step");
  if (spec.steps.size() > kMaxStepsPerGroup) {
    return Status::InvalidArgument("steps: " + std::to_string(spec.steps.size()) +
                                   " steps; the limit is " + std::to_string(kMaxStepsPerGroup));
  }
  if (spec.max_parallel && *spec.max_parallel < 1) {
    return Status::InvalidArgument("max_parallel must be at least 1 (omit it for no limit), got " +
                                   std::to_string(*spec.max_parallel));
  }
  if (spec.timeout_s) {
    if (Status s = CheckSeconds("", "timeout_s", *spec.timeout_s, false); !s.ok()) return s;
  }
  if (spec.deadline_s) {
    if (Status s = CheckSeconds("", "deadline_s", *spec.deadline_s, false); !s.ok()) return s;
  }
  if (Status s = ValidateRetryPolicy(spec.retry, ""); !s.ok()) return s;

  std::unordered_set<std::string_view> ids;
  ids.reserve(spec.steps.size());
  for (size_t i = 0; i < spec.steps.size(); ++i) {
    const StepSpec& step = spec.steps[i];
    // Checked first without naming the step: building "steps[i] (id ...)"
    // for every step of a 10^5-step group cost more than the checks. A step
    // that fails is checked again, by name, for the message.
    if (!CheckStep("", step).ok()) return CheckStep(StepWhere(i, step), step);
    if (!ids.insert(step.id).second) {
      return Status::InvalidArgument(StepWhere(i, step) +
                                     ": id is a duplicate; step ids must be unique in a group");
    }
  }
  return Status::Ok();
}

const RetryPolicy& EffectiveRetry(const GroupSpec& group, const StepSpec& step) {
  return step.retry ? *step.retry : group.retry;
}

std::optional<double> EffectiveTimeout(const GroupSpec& group, const StepSpec& step) {
  return step.timeout_s ? step.timeout_s : group.timeout_s;
}

}  // namespace cohort::common
