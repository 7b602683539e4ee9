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

// Where a value sits ("steps[3].retry.retry_on[0]"), spelled out only for
// an error message: building each field's path as a string cost more than
// reading the field (a 10^5-step group has a million of them).
class Path {
 public:
  Path() = default;
  Path(const Path& parent, std::string_view key) : parent_(&parent), key_(key) {}
  Path(const Path& parent, size_t index) : parent_(&parent), index_(index) {}

  std::string str() const {
    std::string out = parent_ ? parent_->str() : std::string();
    if (index_ != kNoIndex) return out + "[" + std::to_string(index_) + "]";
    if (!out.empty() && !key_.empty()) out += ".";
    return out + std::string(key_);
  }

 private:
  static constexpr size_t kNoIndex = static_cast<size_t>(-1);
  const Path* parent_ = nullptr;
  std::string_view key_;
  size_t index_ = kNoIndex;
};

// Reads fields out of a parsed document, moving strings out of it.
class Reader {
 public:
  Status status() const { return status_; }
  bool ok() const { return status_.ok(); }

  void Fail(const Path& path, const std::string& what) {
    if (status_.ok()) status_ = Status::InvalidArgument(path.str() + ": " + what);
  }

  bool Object(const Json& j, const Path& path) {
    if (j.is_object()) return true;
    Fail(path, "must be an object, got " + std::string(j.type_name()));
    return false;
  }

  // Refuses keys outside `known`, so typos are caught.
  void OnlyKeys(const Json& j, const Path& path, std::initializer_list<std::string_view> known) {
    for (auto it = j.begin(); it != j.end(); ++it) {
      bool found = false;
      for (std::string_view k : known) found = found || it.key() == k;
      if (!found) Fail(Path(path, it.key()), "unknown field");
    }
  }

  // The member `key` of object j, or null when absent.
  static Json* Member(Json& j, std::string_view key) {
    auto it = j.find(key);
    return it == j.end() ? nullptr : &*it;
  }

  void String(Json& j, const Path& path, std::string* out) {
    if (!j.is_string()) return Fail(path, "must be a string, got " + std::string(j.type_name()));
    *out = std::move(j.get_ref<std::string&>());
  }

  void Seconds(const Json& j, const Path& path, double* out) {
    if (!j.is_number()) return Fail(path, "must be a number of seconds, got " + std::string(j.type_name()));
    *out = j.get<double>();
  }

  void Integer(const Json& j, const Path& path, int64_t* out) {
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

  void Retry(Json& j, const Path& path, RetryPolicy* p) {
    if (!Object(j, path)) return;
    OnlyKeys(j, path, {"max_attempts", "backoff_s", "backoff_multiplier", "max_backoff_s", "jitter", "retry_on"});
    if (Json* v = Member(j, "max_attempts")) Integer(*v, Path(path, "max_attempts"), &p->max_attempts);
    if (Json* v = Member(j, "backoff_s")) Seconds(*v, Path(path, "backoff_s"), &p->backoff_s);
    if (Json* v = Member(j, "backoff_multiplier")) {
      Seconds(*v, Path(path, "backoff_multiplier"), &p->backoff_multiplier);
    }
    if (Json* v = Member(j, "max_backoff_s")) Seconds(*v, Path(path, "max_backoff_s"), &p->max_backoff_s);
    if (Json* v = Member(j, "jitter")) Seconds(*v, Path(path, "jitter"), &p->jitter);
    if (Json* r = Member(j, "retry_on")) {
      const Path rpath(path, "retry_on");
      if (!r->is_array()) return Fail(rpath, "must be a list of \"exit\", \"timeout\", \"worker_lost\"");
      p->retry_on = 0;
      p->retry_on_given = true;
      for (size_t i = 0; i < r->size(); ++i) {
        const Json& e = (*r)[i];
        FailureKind kind;
        if (!e.is_string() || !ParseFailureKind(e.get_ref<const std::string&>(), &kind)) {
          return Fail(Path(rpath, i),
                      "unknown failure kind " +
                          (e.is_string() ? "\"" + e.get<std::string>() + "\"" : std::string(e.type_name())) +
                          " (expected exit, timeout or worker_lost)");
        }
        p->retry_on |= static_cast<uint8_t>(kind);
      }
    }
  }

  void Step(Json& j, const Path& path, const RetryPolicy& group_retry, StepSpec* s) {
    if (!Object(j, path)) return;
    OnlyKeys(j, path, {"id", "command", "shell", "agent", "env", "cwd", "timeout_s", "retry"});
    if (Json* v = Member(j, "id")) String(*v, Path(path, "id"), &s->id);
    if (Json* c = Member(j, "command")) {
      const Path cpath(path, "command");
      if (c->is_string()) {
        // A command given as one string is a shell line, the way users write it.
        s->shell = std::move(c->get_ref<std::string&>());
      } else if (c->is_array()) {
        s->argv.reserve(c->size());
        for (size_t i = 0; i < c->size(); ++i) {
          Json& a = (*c)[i];
          if (!a.is_string()) return Fail(Path(cpath, i), "must be a string");
          s->argv.push_back(std::move(a.get_ref<std::string&>()));
        }
        if (s->argv.empty()) return Fail(cpath, "must not be an empty list");
      } else {
        return Fail(cpath, "must be a list of strings (argv) or a string (shell line)");
      }
    }
    if (Json* v = Member(j, "shell")) {
      if (!s->shell.empty()) return Fail(Path(path, "shell"), "give either command or shell, not both");
      String(*v, Path(path, "shell"), &s->shell);
    }
    if (Json* v = Member(j, "agent")) String(*v, Path(path, "agent"), &s->agent);
    if (Json* v = Member(j, "cwd")) String(*v, Path(path, "cwd"), &s->cwd);
    if (Json* e = Member(j, "env")) {
      const Path epath(path, "env");
      if (!Object(*e, epath)) return;
      for (auto it = e->begin(); it != e->end(); ++it) {
        if (!it.value().is_string()) return Fail(Path(epath, it.key()), "must be a string");
        s->env.emplace_back(it.key(), std::move(it.value().get_ref<std::string&>()));
      }
    }
    if (Json* v = Member(j, "timeout_s")) {
      double t = 0;
      Seconds(*v, Path(path, "timeout_s"), &t);
      s->timeout_s = t;
    }
    if (Json* v = Member(j, "retry")) {
      // A step's retry block starts from the group's, so {"max_attempts": 1}
      // overrides just that field.
      RetryPolicy p = group_retry;
      p.retry_on_given = group_retry.retry_on_given;
      Retry(*v, Path(path, "retry"), &p);
      s->retry = p;
    }
  }

  void Group(Json& j, GroupSpec* g) {
    const Path root;
    if (!j.is_object()) return Fail(Path(root, "group"), "must be a JSON object, got " + std::string(j.type_name()));
    OnlyKeys(j, root, {"id", "max_parallel", "timeout_s", "deadline_s", "on_failure", "retry", "steps"});
    if (Json* v = Member(j, "id"); v && !v->is_null()) String(*v, Path(root, "id"), &g->id);
    if (Json* v = Member(j, "max_parallel"); v && !v->is_null()) {
      int64_t n = 0;
      Integer(*v, Path(root, "max_parallel"), &n);
      g->max_parallel = n;
    }
    if (Json* v = Member(j, "timeout_s"); v && !v->is_null()) {
      double t = 0;
      Seconds(*v, Path(root, "timeout_s"), &t);
      g->timeout_s = t;
    }
    if (Json* v = Member(j, "deadline_s"); v && !v->is_null()) {
      double t = 0;
      Seconds(*v, Path(root, "deadline_s"), &t);
      g->deadline_s = t;
    }
    if (Json* v = Member(j, "on_failure")) {
      std::string mode;
      String(*v, Path(root, "on_failure"), &mode);
      if (mode == "cancel") {
        g->on_failure = OnFailure::kCancel;
      } else if (mode == "continue") {
        g->on_failure = OnFailure::kContinue;
      } else if (ok()) {
        Fail(Path(root, "on_failure"), "unknown value \"" + mode + "\" (expected cancel or continue)");
      }
    }
    if (Json* v = Member(j, "retry")) Retry(*v, Path(root, "retry"), &g->retry);
    const Path spath(root, "steps");
    Json* steps = Member(j, "steps");
    if (!steps) return Fail(spath, "missing; a group needs at least one step");
    if (!steps->is_array()) return Fail(spath, "must be a list of steps");
    if (steps->size() > kMaxStepsPerGroup) {
      return Fail(spath, std::to_string(steps->size()) + " steps; the limit is " + std::to_string(kMaxStepsPerGroup));
    }
    g->steps.resize(steps->size());
    for (size_t i = 0; i < steps->size() && ok(); ++i) {
      Step((*steps)[i], Path(spath, i), g->retry, &g->steps[i]);
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
