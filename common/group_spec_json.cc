// JSON reading of a GroupSpec. Strict on purpose: an unknown key is an error
// (a typo such as "max_paralel" must not silently run a group unlimited), and
// every message names the field's path. nlohmann::json's exceptions stop here.
#include <cmath>
#include <string>

#include <nlohmann/json.hpp>

#include "common/group_spec.h"
#include "common/result_json.h"

namespace cohort::common {
namespace {

using Json = nlohmann::json;

class Reader {
 public:
  Status status() const { return status_; }
  bool ok() const { return status_.ok(); }

  void Fail(const std::string& path, const std::string& what) {
    if (status_.ok()) status_ = Status::InvalidArgument(path + ": " + what);
  }

  bool Object(const Json& j, const std::string& path) {
    if (j.is_object()) return true;
    Fail(path, "must be an object, got " + std::string(j.type_name()));
    return false;
  }

  // Refuses keys outside `known`, so typos are caught.
  void OnlyKeys(const Json& j, const std::string& path, std::initializer_list<std::string_view> known) {
    for (auto it = j.begin(); it != j.end(); ++it) {
      bool found = false;
      for (std::string_view k : known) found = found || it.key() == k;
      if (!found) Fail(Join(path, it.key()), "unknown field");
    }
  }

  static std::string Join(const std::string& path, std::string_view key) {
    return path.empty() ? std::string(key) : path + "." + std::string(key);
  }

  void String(const Json& j, const std::string& path, std::string* out) {
    if (!j.is_string()) return Fail(path, "must be a string, got " + std::string(j.type_name()));
    *out = j.get<std::string>();
  }

  void Seconds(const Json& j, const std::string& path, double* out) {
    if (!j.is_number()) return Fail(path, "must be a number of seconds, got " + std::string(j.type_name()));
    *out = j.get<double>();
  }

  void Integer(const Json& j, const std::string& path, int64_t* out) {
    if (j.is_number_integer()) {
      *out = j.get<int64_t>();
      return;
    }
    if (j.is_number_float()) {
      double v = j.get<double>();
      if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 9e15) {
        *out = static_cast<int64_t>(v);
        return;
      }
    }
    Fail(path, "must be a whole number, got " + (j.is_number() ? j.dump() : std::string(j.type_name())));
  }

  void Retry(const Json& j, const std::string& path, RetryPolicy* p) {
    if (!Object(j, path)) return;
    OnlyKeys(j, path, {"max_attempts", "backoff_s", "backoff_multiplier", "max_backoff_s", "jitter", "retry_on"});
    if (j.contains("max_attempts")) Integer(j["max_attempts"], Join(path, "max_attempts"), &p->max_attempts);
    if (j.contains("backoff_s")) Seconds(j["backoff_s"], Join(path, "backoff_s"), &p->backoff_s);
    if (j.contains("backoff_multiplier")) {
      Seconds(j["backoff_multiplier"], Join(path, "backoff_multiplier"), &p->backoff_multiplier);
    }
    if (j.contains("max_backoff_s")) Seconds(j["max_backoff_s"], Join(path, "max_backoff_s"), &p->max_backoff_s);
    if (j.contains("jitter")) Seconds(j["jitter"], Join(path, "jitter"), &p->jitter);
    if (j.contains("retry_on")) {
      const Json& r = j["retry_on"];
      std::string rpath = Join(path, "retry_on");
      if (!r.is_array()) return Fail(rpath, "must be a list of \"exit\", \"timeout\", \"worker_lost\"");
      p->retry_on = 0;
      p->retry_on_given = true;
      for (size_t i = 0; i < r.size(); ++i) {
        FailureKind kind;
        if (!r[i].is_string() || !ParseFailureKind(r[i].get<std::string>(), &kind)) {
          return Fail(rpath + "[" + std::to_string(i) + "]",
                      "unknown failure kind " +
                          (r[i].is_string() ? "\"" + r[i].get<std::string>() + "\"" : std::string(r[i].type_name())) +
                          " (expected exit, timeout or worker_lost)");
        }
        p->retry_on |= static_cast<uint8_t>(kind);
      }
    }
  }

  void Step(const Json& j, const std::string& path, const RetryPolicy& group_retry, StepSpec* s) {
    if (!Object(j, path)) return;
    OnlyKeys(j, path, {"id", "command", "shell", "agent", "env", "cwd", "timeout_s", "retry"});
    if (j.contains("id")) String(j["id"], Join(path, "id"), &s->id);
    if (j.contains("command")) {
      const Json& c = j["command"];
      std::string cpath = Join(path, "command");
      if (c.is_string()) {
        // A command given as one string is a shell line, the way users write it.
        s->shell = c.get<std::string>();
      } else if (c.is_array()) {
        for (size_t i = 0; i < c.size(); ++i) {
          if (!c[i].is_string()) return Fail(cpath + "[" + std::to_string(i) + "]", "must be a string");
          s->argv.push_back(c[i].get<std::string>());
        }
        if (s->argv.empty()) return Fail(cpath, "must not be an empty list");
      } else {
        return Fail(cpath, "must be a list of strings (argv) or a string (shell line)");
      }
    }
    if (j.contains("shell")) {
      if (!s->shell.empty()) return Fail(Join(path, "shell"), "give either command or shell, not both");
      String(j["shell"], Join(path, "shell"), &s->shell);
    }
    if (j.contains("agent")) String(j["agent"], Join(path, "agent"), &s->agent);
    if (j.contains("cwd")) String(j["cwd"], Join(path, "cwd"), &s->cwd);
    if (j.contains("env")) {
      const Json& e = j["env"];
      std::string epath = Join(path, "env");
      if (!Object(e, epath)) return;
      for (auto it = e.begin(); it != e.end(); ++it) {
        if (!it.value().is_string()) return Fail(Join(epath, it.key()), "must be a string");
        s->env.emplace_back(it.key(), it.value().get<std::string>());
      }
    }
    if (j.contains("timeout_s")) {
      double t = 0;
      Seconds(j["timeout_s"], Join(path, "timeout_s"), &t);
      s->timeout_s = t;
    }
    if (j.contains("retry")) {
      // A step's retry block starts from the group's, so {"max_attempts": 1}
      // overrides just that field.
      RetryPolicy p = group_retry;
      p.retry_on_given = group_retry.retry_on_given;
      Retry(j["retry"], Join(path, "retry"), &p);
      s->retry = p;
    }
  }

  void Group(const Json& j, GroupSpec* g) {
    if (!j.is_object()) return Fail("group", "must be a JSON object, got " + std::string(j.type_name()));
    OnlyKeys(j, "", {"id", "max_parallel", "timeout_s", "deadline_s", "on_failure", "retry", "steps"});
    if (j.contains("id") && !j["id"].is_null()) String(j["id"], "id", &g->id);
    if (j.contains("max_parallel") && !j["max_parallel"].is_null()) {
      int64_t n = 0;
      Integer(j["max_parallel"], "max_parallel", &n);
      g->max_parallel = n;
    }
    if (j.contains("timeout_s") && !j["timeout_s"].is_null()) {
      double t = 0;
      Seconds(j["timeout_s"], "timeout_s", &t);
      g->timeout_s = t;
    }
    if (j.contains("deadline_s") && !j["deadline_s"].is_null()) {
      double t = 0;
      Seconds(j["deadline_s"], "deadline_s", &t);
      g->deadline_s = t;
    }
    if (j.contains("on_failure")) {
      std::string mode;
      String(j["on_failure"], "on_failure", &mode);
      if (mode == "cancel") {
        g->on_failure = OnFailure::kCancel;
      } else if (mode == "continue") {
        g->on_failure = OnFailure::kContinue;
      } else if (ok()) {
        Fail("on_failure", "unknown value \"" + mode + "\" (expected cancel or continue)");
      }
    }
    if (j.contains("retry")) Retry(j["retry"], "retry", &g->retry);
    if (!j.contains("steps")) return Fail("steps", "missing; a group needs at least one step");
    const Json& steps = j["steps"];
    if (!steps.is_array()) return Fail("steps", "must be a list of steps");
    if (steps.size() > kMaxStepsPerGroup) {
      return Fail("steps", std::to_string(steps.size()) + " steps; the limit is " +
                               std::to_string(kMaxStepsPerGroup));
    }
    g->steps.resize(steps.size());
    for (size_t i = 0; i < steps.size() && ok(); ++i) {
      Step(steps[i], "steps[" + std::to_string(i) + "]", g->retry, &g->steps[i]);
    }
  }

 private:
  Status status_;
};

}  // namespace

Status ParseGroupSpecJson(std::string_view text, GroupSpec* out) {
  Json j;
  std::string error;
  if (!ParseJsonBounded(text, &j, &error)) return Status::InvalidArgument("not valid JSON: " + error);
  GroupSpec spec;
  Reader reader;
  reader.Group(j, &spec);
  if (!reader.ok()) return reader.status();
  if (Status s = ValidateGroupSpec(spec); !s.ok()) return s;
  *out = std::move(spec);
  return Status::Ok();
}

}  // namespace cohort::common
