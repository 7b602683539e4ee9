// Rule 1: what a group spec may say, and the errors that name what is wrong.
#include <cmath>
#include <cstdint>
#include <limits>

#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "common/group_spec.h"

namespace cohort::common {
namespace {

GroupSpec Valid() {
  GroupSpec g;
  g.id = "g";
  StepSpec a;
  a.id = "a";
  a.shell = "true";
  StepSpec b;
  b.id = "b";
  b.argv = {"echo", "hi"};
  g.steps = {a, b};
  return g;
}

// The error of a spec edited by `edit`; requires that it is refused.
template <typename F>
std::string ErrorOf(F edit) {
  GroupSpec g = Valid();
  edit(g);
  Status s = ValidateGroupSpec(g);
  REQUIRE_FALSE(s.ok());
  CHECK(s.code() == Status::Code::kInvalidArgument);
  return s.message();
}

// The error of JSON text that must be refused.
std::string JsonError(const std::string& text) {
  GroupSpec g;
  Status s = ParseGroupSpecJson(text, &g);
  REQUIRE_FALSE(s.ok());
  return s.message();
}

TEST_CASE("a valid spec passes", "[spec]") { CHECK(ValidateGroupSpec(Valid()).ok()); }

TEST_CASE("invalid specs are refused with the field and the step named", "[spec]") {
  using Catch::Matchers::Contains;
  CHECK_THAT(ErrorOf([](GroupSpec& g) { g.steps.clear(); }), Contains("steps") && Contains("at least one"));
  CHECK_THAT(ErrorOf([](GroupSpec& g) { g.steps[1].id = ""; }), Contains("steps[1]") && Contains("id must not be empty"));
  CHECK_THAT(ErrorOf([](GroupSpec& g) { g.steps[1].id = "a"; }),
             Contains("steps[1] (id \"a\")") && Contains("duplicate"));
  CHECK_THAT(ErrorOf([](GroupSpec& g) { g.steps[0].shell = ""; }),
             Contains("steps[0] (id \"a\")") && Contains("command") && Contains("shell"));
  CHECK_THAT(ErrorOf([](GroupSpec& g) { g.steps[0].argv = {"x"}; }), Contains("not both"));
  CHECK_THAT(ErrorOf([](GroupSpec& g) { g.max_parallel = 0; }), Contains("max_parallel") && Contains("got 0"));
  CHECK_THAT(ErrorOf([](GroupSpec& g) { g.steps[1].timeout_s = -1; }),
             Contains("steps[1] (id \"b\")") && Contains("timeout_s") && Contains("got -1"));
  CHECK_THAT(ErrorOf([](GroupSpec& g) { g.steps[0].timeout_s = std::nan(""); }),
             Contains("steps[0]") && Contains("timeout_s") && Contains("NaN"));
  CHECK_THAT(ErrorOf([](GroupSpec& g) { g.timeout_s = 0; }), Contains("timeout_s") && Contains("positive"));
  CHECK_THAT(ErrorOf([](GroupSpec& g) { g.deadline_s = -5; }), Contains("deadline_s"));
  CHECK_THAT(ErrorOf([](GroupSpec& g) { g.deadline_s = std::numeric_limits<double>::infinity(); }),
             Contains("deadline_s") && Contains("inf"));
  CHECK_THAT(ErrorOf([](GroupSpec& g) { g.retry.max_attempts = 0; }), Contains("retry.max_attempts"));
  CHECK_THAT(ErrorOf([](GroupSpec& g) { g.steps[1].retry = RetryPolicy{}; g.steps[1].retry->max_attempts = 1001; }),
             Contains("steps[1] (id \"b\")") && Contains("retry.max_attempts must be from 1 to 1000, got 1001"));
  CHECK_THAT(ErrorOf([](GroupSpec& g) { g.retry.backoff_s = -1; }), Contains("retry.backoff_s"));
  CHECK_THAT(ErrorOf([](GroupSpec& g) { g.retry.jitter = 2; }), Contains("retry.jitter"));
  CHECK_THAT(ErrorOf([](GroupSpec& g) { g.retry.backoff_multiplier = 0.5; }), Contains("backoff_multiplier"));
  CHECK_THAT(ErrorOf([](GroupSpec& g) {
               g.steps[1].retry = RetryPolicy{};
               g.steps[1].retry->max_backoff_s = std::nan("");
             }),
             Contains("steps[1] (id \"b\")") && Contains("retry.max_backoff_s"));
  CHECK_THAT(ErrorOf([](GroupSpec& g) { g.steps[0].env = {{"A=B", "x"}}; }), Contains("env"));
  CHECK_THAT(ErrorOf([](GroupSpec& g) { g.steps[0].id = std::string(1 << 20, 'x'); }),
             Contains("1048576 bytes") && Contains("limit"));
  CHECK_THAT(ErrorOf([](GroupSpec& g) { g.steps[0].id = "a\nb"; }), Contains("control"));
  // What could never be sent to a worker is refused at submission.
  CHECK_THAT(ErrorOf([](GroupSpec& g) { g.steps[0].shell = std::string((1 << 20) + 1, 'x'); }),
             Contains("steps[0] (id \"a\")") && Contains("shell") && Contains("limit"));
  CHECK_THAT(ErrorOf([](GroupSpec& g) { g.steps[1].argv.push_back(std::string((1 << 20) + 1, 'x')); }),
             Contains("steps[1]") && Contains("command[2]"));
  CHECK_THAT(ErrorOf([](GroupSpec& g) { g.steps[1].argv.resize(70000, "x"); }), Contains("arguments"));
  CHECK_THAT(ErrorOf([](GroupSpec& g) {
               g.steps[1].argv.assign(40, std::string(1 << 20, 'x'));
             }),
             Contains("together"));
  CHECK_THAT(ErrorOf([](GroupSpec& g) { g.steps[0].agent = std::string(300, 'a'); }), Contains("agent"));
}

TEST_CASE("JSON: the documented example parses", "[spec][json]") {
  const char* text = R"({"id": "demo", "max_parallel": 4, "timeout_s": 30, "deadline_s": 600, "on_failure": "cancel",
    "retry": {"max_attempts": 3, "backoff_s": 0.5, "backoff_multiplier": 2, "max_backoff_s": 30, "jitter": 0.1,
              "retry_on": ["exit", "timeout", "worker_lost"]},
    "steps": [{"id": "build", "command": ["make", "-j4"], "agent": "linux", "env": {"K": "V"}, "cwd": "/src", "timeout_s": 60},
              {"id": "lint", "shell": "ruff check . && echo ok", "retry": {"max_attempts": 1}}]})";
  GroupSpec g;
  Status s = ParseGroupSpecJson(text, &g);
  REQUIRE(s.ok());
  CHECK(g.id == "demo");
  CHECK(g.max_parallel == 4);
  CHECK(g.timeout_s == 30);
  CHECK(g.deadline_s == 600);
  CHECK(g.on_failure == OnFailure::kCancel);
  CHECK(g.retry.max_attempts == 3);
  CHECK(g.retry.jitter == Approx(0.1));
  CHECK(g.retry.retry_on_given);
  CHECK(g.retry.retry_on == kAllFailureKinds);
  REQUIRE(g.steps.size() == 2);
  CHECK(g.steps[0].argv == std::vector<std::string>{"make", "-j4"});
  CHECK(g.steps[0].agent == "linux");
  CHECK(g.steps[0].env == std::vector<std::pair<std::string, std::string>>{{"K", "V"}});
  CHECK(g.steps[0].cwd == "/src");
  CHECK(g.steps[0].timeout_s == 60);
  CHECK(EffectiveTimeout(g, g.steps[1]) == 30);
  CHECK(g.steps[1].shell == "ruff check . && echo ok");
  // A step's retry block overrides only what it names.
  REQUIRE(g.steps[1].retry);
  CHECK(g.steps[1].retry->max_attempts == 1);
  CHECK(g.steps[1].retry->backoff_s == 0.5);
  CHECK(EffectiveRetry(g, g.steps[0]).max_attempts == 3);
}

TEST_CASE("JSON: errors name the path of the field", "[spec][json]") {
  using Catch::Matchers::Contains;
  CHECK_THAT(JsonError("{"), Contains("not valid JSON"));
  CHECK_THAT(JsonError("[]"), Contains("must be a JSON object"));
  CHECK_THAT(JsonError(R"({"steps": []})"), Contains("steps"));
  CHECK_THAT(JsonError(R"({"max_paralel": 2, "steps": [{"id": "a", "shell": "x"}]})"),
             Contains("max_paralel: unknown field"));
  CHECK_THAT(JsonError(R"({"on_failure": "explode", "steps": [{"id": "a", "shell": "x"}]})"),
             Contains("on_failure") && Contains("explode"));
  CHECK_THAT(JsonError(R"({"max_parallel": 2.5, "steps": [{"id": "a", "shell": "x"}]})"),
             Contains("max_parallel") && Contains("whole number"));
  CHECK_THAT(JsonError(R"({"max_parallel": 0, "steps": [{"id": "a", "shell": "x"}]})"), Contains("max_parallel"));
  CHECK_THAT(JsonError(R"({"steps": [{"id": "a", "shell": "x"}, {"id": "b", "timeout_s": "5", "shell": "y"}]})"),
             Contains("steps[1].timeout_s") && Contains("number"));
  CHECK_THAT(JsonError(R"({"steps": [{"id": "a", "command": [1]}]})"), Contains("steps[0].command[0]"));
  CHECK_THAT(JsonError(R"({"steps": [{"id": "a", "shell": "x", "retry": {"retry_on": ["oops"]}}]})"),
             Contains("steps[0].retry.retry_on[0]") && Contains("oops"));
  CHECK_THAT(JsonError(R"({"steps": [{"id": "a", "shell": "x", "env": {"K": 1}}]})"), Contains("steps[0].env.K"));
  CHECK_THAT(JsonError(R"({"steps": [{"id": "a"}]})"), Contains("steps[0] (id \"a\")") && Contains("command"));
  CHECK_THAT(JsonError(R"({"steps": [{"id": "a", "shell": "x", "timeout_s": -2}]})"),
             Contains("steps[0] (id \"a\")") && Contains("timeout_s"));
  CHECK_THAT(JsonError(R"({"steps": [{"id": "a", "shell": "x"}], "deadline_s": true})"), Contains("deadline_s"));
  // Hostile nesting is refused by the parser, before anything recurses over it.
  std::string deep = R"({"steps": [{"id": "a", "shell": "x"}], "retry": {"retry_on": [)" +
                     std::string(200000, '[') + std::string(200000, ']') + "]}}";
  CHECK_THAT(JsonError(deep.c_str()), Contains("nested deeper"));
  CHECK_THAT(JsonError(R"({"steps": [{"id": "a", "shell": "x"}], "retry": {"retry_on": [[1]]}})"),
             Contains("retry.retry_on[0]") && Contains("array"));
}

TEST_CASE("JSON: keys may come in any order and a step retry builds on a group retry given after it",
          "[spec][json]") {
  GroupSpec g;
  REQUIRE(ParseGroupSpecJson(R"({"steps": [{"retry": {"jitter": 0.5}, "shell": "x", "id": "a",
                                            "env": {"Z": "1", "A": "2"}},
                                           {"id": "b", "shell": "y"}],
                                 "retry": {"max_attempts": 4, "retry_on": ["timeout"]}, "id": "late"})",
                             &g)
              .ok());
  CHECK(g.id == "late");
  REQUIRE(g.steps[0].retry);
  CHECK(g.steps[0].retry->jitter == 0.5);
  CHECK(g.steps[0].retry->max_attempts == 4);  // from the group, read after the step
  CHECK(g.steps[0].retry->retry_on == static_cast<uint8_t>(FailureKind::kTimeout));
  CHECK(g.steps[0].retry->retry_on_given);
  CHECK_FALSE(g.steps[1].retry);
  CHECK(EffectiveRetry(g, g.steps[1]).max_attempts == 4);
  // A JSON object's members have no order: env comes out sorted by name.
  CHECK(g.steps[0].env == std::vector<std::pair<std::string, std::string>>{{"A", "2"}, {"Z", "1"}});
}

TEST_CASE("JSON: a key given twice is refused, naming it", "[spec][json]") {
  using Catch::Matchers::Contains;
  CHECK_THAT(JsonError(R"({"max_parallel": 2, "max_parallel": 3, "steps": [{"id": "a", "shell": "x"}]})"),
             Contains("max_parallel: given more than once"));
  CHECK_THAT(JsonError(R"({"steps": [{"id": "a", "shell": "x"}], "steps": [{"id": "b", "shell": "y"}]})"),
             Contains("steps: given more than once"));
  CHECK_THAT(JsonError(R"({"steps": [{"id": "a", "id": "b", "shell": "x"}]})"), Contains("steps[0].id: given more"));
  CHECK_THAT(JsonError(R"({"steps": [{"id": "a", "shell": "x", "env": {"K": "1", "J": "0", "K": "2"}}]})"),
             Contains("steps[0].env.K: given more than once"));
  CHECK_THAT(JsonError(R"({"steps": [{"id": "a", "shell": "x", "retry": {"jitter": 0.1, "jitter": 0.2}}]})"),
             Contains("steps[0].retry.jitter: given more than once"));
  CHECK_THAT(JsonError(R"({"steps": [{"id": "a", "shell": "x", "command": "y"}]})"),
             Contains("steps[0].shell") && Contains("not both"));
}

TEST_CASE("JSON: every field of a generated spec reads back", "[spec][json]") {
  // Specs written by nlohmann::json (so escapes, numbers and key order are
  // its own), read back field by field.
  for (int n = 0; n < 50; ++n) {
    nlohmann::json steps = nlohmann::json::array();
    for (int i = 0; i < n + 1; ++i) {
      nlohmann::json st = {{"id", "s\"" + std::to_string(i) + "\\\xC3\xA9"}};
      if (i % 2) st["command"] = {"prog", "arg " + std::to_string(i), ""};
      else st["shell"] = "echo " + std::to_string(i);
      if (i % 3 == 0) st["env"] = {{"V" + std::to_string(i), "x"}, {"A", ""}};
      if (i % 4 == 0) st["timeout_s"] = 0.25 * (i + 1);
      if (i % 5 == 0) st["retry"] = {{"max_attempts", i + 2}, {"retry_on", {"exit"}}};
      if (i % 7 == 0) st["agent"] = "gpu";
      if (i % 11 == 0) st["cwd"] = "/tmp/" + std::to_string(i);
      steps.push_back(st);
    }
    nlohmann::json doc = {{"id", "gen" + std::to_string(n)}, {"max_parallel", n + 1}, {"steps", steps},
                          {"retry", {{"backoff_s", 0.125}}}};
    GroupSpec g;
    Status s = ParseGroupSpecJson(doc.dump(), &g);
    INFO(s.message());
    REQUIRE(s.ok());
    CHECK(g.id == doc["id"]);
    CHECK(*g.max_parallel == n + 1);
    CHECK(g.retry.backoff_s == 0.125);
    REQUIRE(g.steps.size() == steps.size());
    for (size_t i = 0; i < steps.size(); ++i) {
      const nlohmann::json& st = steps[i];
      const StepSpec& got = g.steps[i];
      CHECK(got.id == st["id"]);
      if (st.contains("command")) CHECK(got.argv == st["command"].get<std::vector<std::string>>());
      else CHECK(got.shell == st["shell"]);
      if (st.contains("env")) {
        REQUIRE(got.env.size() == 2);
        CHECK(got.env[0].first == "A");
        CHECK(got.env[1].second == "x");
      } else {
        CHECK(got.env.empty());
      }
      CHECK(got.timeout_s.has_value() == st.contains("timeout_s"));
      if (st.contains("retry")) {
        REQUIRE(got.retry);
        CHECK(got.retry->max_attempts == st["retry"]["max_attempts"]);
        CHECK(got.retry->backoff_s == 0.125);
      }
      CHECK(got.agent == st.value("agent", ""));
      CHECK(got.cwd == st.value("cwd", ""));
    }
  }
}

// Found while writing fuzz/group_spec_fuzzer: a whole number past int64
// wrapped negative, so the error named a number the user never wrote
// ("max_parallel must be at least 1 ..., got -1" for 18446744073709551615).
TEST_CASE("JSON: whole numbers past int64 are refused as written", "[spec][json][fuzz]") {
  using Catch::Matchers::Contains;
  for (const char* field : {"max_parallel", "retry.max_attempts"}) {
    INFO(field);
    for (const char* number : {"18446744073709551615", "9223372036854775808"}) {
      std::string text = std::string(field) == "max_parallel"
                             ? std::string(R"({"max_parallel": )") + number
                             : std::string(R"({"retry": {"max_attempts": )") + number + "}";
      text += R"(, "steps": [{"id": "a", "shell": "x"}]})";
      GroupSpec g;
      Status s = ParseGroupSpecJson(text, &g);
      REQUIRE_FALSE(s.ok());
      CHECK_THAT(s.message(), Contains(field) && Contains(std::string("got ") + number) && !Contains("-"));
    }
  }
  GroupSpec g;
  REQUIRE(ParseGroupSpecJson(R"({"max_parallel": 9223372036854775807, "steps": [{"id": "a", "shell": "x"}]})", &g)
              .ok());
  CHECK(*g.max_parallel == INT64_MAX);
}

TEST_CASE("JSON: reading stops at the first step past the given limit", "[spec][json]") {
  using Catch::Matchers::Contains;
  std::string text = R"({"steps": [)";
  for (int i = 0; i < 5; ++i) text += std::string(i ? "," : "") + R"({"id": "s)" + std::to_string(i) + R"(", "shell": "x"})";
  text += "]}";
  GroupSpec g;
  CHECK(ParseGroupSpecJson(text, &g, 5).ok());
  Status s = ParseGroupSpecJson(text, &g, 4, "--max-steps-per-group");
  CHECK_THAT(s.message(), Contains("steps: more than 4 steps; the limit is 4 (--max-steps-per-group)"));
  // Past the limit the rest is not read: a syntax error after it is never seen.
  CHECK_THAT(ParseGroupSpecJson(text.substr(0, text.size() - 2) + "}oops", &g, 4).message(), Contains("the limit is 4"));
}

TEST_CASE("JSON: a command string is a shell line", "[spec][json]") {
  GroupSpec g;
  REQUIRE(ParseGroupSpecJson(R"({"steps": [{"id": "a", "command": "echo hi | wc -c"}]})", &g).ok());
  CHECK(g.steps[0].shell == "echo hi | wc -c");
  CHECK(g.steps[0].argv.empty());
  CHECK(g.id.empty());
  CHECK_FALSE(g.max_parallel);
}

}  // namespace
}  // namespace cohort::common
