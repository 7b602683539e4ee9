// The Prometheus text writer: exact text for each kind of family, values,
// escaping, and everything a scrape would refuse refused here instead.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "common/metrics.h"

namespace cohort::common {
namespace {

TEST_CASE("Exposition writes each family once, in declaration order, whatever the order of adds",
          "[unit][metrics]") {
  Exposition e;
  REQUIRE(e.Declare("cohort_steps_running", MetricType::kGauge, "Steps running now.").ok());
  REQUIRE(e.Declare("cohort_steps_finished_total", MetricType::kCounter, "Steps finished.").ok());
  REQUIRE(e.Declare("cohort_unused", MetricType::kGauge, "Never added to.").ok());
  REQUIRE(e.Add("cohort_steps_finished_total", {{"group", "a"}}, 7).ok());
  REQUIRE(e.Add("cohort_steps_running", {{"group", "a"}}, 2).ok());
  REQUIRE(e.Add("cohort_steps_finished_total", {{"group", "b"}}, uint64_t{0}).ok());
  REQUIRE(e.Add("cohort_steps_running", {{"group", "b"}}, 0.5).ok());
  // Declaring again as it goes is fine when nothing changes.
  REQUIRE(e.Declare("cohort_steps_running", MetricType::kGauge, "Steps running now.").ok());
  CHECK(e.Text() ==
        "# HELP cohort_steps_running Steps running now.\n"
        "# TYPE cohort_steps_running gauge\n"
        "cohort_steps_running{group=\"a\"} 2\n"
        "cohort_steps_running{group=\"b\"} 0.5\n"
        "# HELP cohort_steps_finished_total Steps finished.\n"
        "# TYPE cohort_steps_finished_total counter\n"
        "cohort_steps_finished_total{group=\"a\"} 7\n"
        "cohort_steps_finished_total{group=\"b\"} 0\n");
}

TEST_CASE("Exposition writes a sample without labels without braces", "[unit][metrics]") {
  Exposition e;
  REQUIRE(e.Declare("up_seconds", MetricType::kGauge, "").ok());
  REQUIRE(e.Add("up_seconds", {}, 12.25).ok());
  CHECK(e.Text() == "# HELP up_seconds \n# TYPE up_seconds gauge\nup_seconds 12.25\n");
  CHECK(Exposition().Text().empty());
}

TEST_CASE("Exposition writes integers exactly and doubles so that they read back the same", "[unit][metrics]") {
  CHECK(Exposition::FormatInteger(uint64_t{18446744073709551615u}) == "18446744073709551615");
  CHECK(Exposition::FormatInteger(int64_t{-9223372036854775807 - 1}) == "-9223372036854775808");
  CHECK(Exposition::FormatInteger(42) == "42");
  CHECK(Exposition::FormatDouble(0.1) == "0.1");
  CHECK(Exposition::FormatDouble(1.0) == "1");
  CHECK(Exposition::FormatDouble(-2.5) == "-2.5");
  CHECK(Exposition::FormatDouble(1e300) == "1e+300");
  CHECK(Exposition::FormatDouble(5e-324) == "5e-324");
  CHECK(Exposition::FormatDouble(0.30000000000000004) == "0.30000000000000004");
  CHECK(Exposition::FormatDouble(std::numeric_limits<double>::infinity()) == "+Inf");
  CHECK(Exposition::FormatDouble(-std::numeric_limits<double>::infinity()) == "-Inf");
  CHECK(Exposition::FormatDouble(std::nan("")) == "NaN");
  for (double v : {0.1, 1.0 / 3, 123456789.123456789, 6.02214076e23, 1e-9}) {
    CHECK(std::stod(Exposition::FormatDouble(v)) == v);
  }

  Exposition e;
  REQUIRE(e.Declare("g", MetricType::kGauge, "h").ok());
  REQUIRE(e.Add("g", {{"k", "big"}}, uint64_t{9007199254740993u}).ok());  // 2^53 + 1: no double holds it
  REQUIRE(e.Add("g", {{"k", "nan"}}, std::nan("")).ok());
  REQUIRE(e.Add("g", {{"k", "neg"}}, -std::numeric_limits<double>::infinity()).ok());
  REQUIRE(e.Add("g", {{"k", "bool"}}, true).ok());
  CHECK(e.Text() ==
        "# HELP g h\n# TYPE g gauge\n"
        "g{k=\"big\"} 9007199254740993\n"
        "g{k=\"nan\"} NaN\n"
        "g{k=\"neg\"} -Inf\n"
        "g{k=\"bool\"} 1\n");
}

TEST_CASE("Exposition escapes label values and help, and repairs bytes that are not UTF-8", "[unit][metrics]") {
  Exposition e;
  REQUIRE(e.Declare("g", MetricType::kGauge, "a \"quoted\" back\\slash\nand a new line").ok());
  REQUIRE(e.Add("g", {{"id", "say \"hi\"\\o/\nbye"}, {"name", "caf\xc3\xa9 \xff!"}}, 1).ok());
  CHECK(e.Text() ==
        "# HELP g a \"quoted\" back\\\\slash\\nand a new line\n"
        "# TYPE g gauge\n"
        "g{id=\"say \\\"hi\\\"\\\\o/\\nbye\",name=\"caf\xc3\xa9 \xef\xbf\xbd!\"} 1\n");
}

TEST_CASE("Histogram counts each observation in the first bucket whose bound holds it", "[unit][metrics]") {
  Histogram h({1, 0.1, std::numeric_limits<double>::infinity(), 0.5, 0.1, std::nan("")});
  CHECK(h.upper_bounds() == std::vector<double>{0.1, 0.5, 1});
  for (double v : {0.05, 0.1, 0.2, 0.5, 0.7, 3.0, -1.0}) h.Observe(v);
  h.Observe(std::nan(""));  // ignored
  CHECK(h.counts() == std::vector<uint64_t>{3, 2, 1, 1});
  CHECK(h.count() == 7);
  CHECK(h.sum() == Approx(3.55));
  CHECK(Histogram::DefaultSecondsBounds().size() == 11);

  Exposition e;
  REQUIRE(e.Declare("cohort_step_seconds", MetricType::kHistogram, "How long steps ran.").ok());
  Histogram small({0.25, 2});
  small.Observe(0.125);
  small.Observe(1);
  small.Observe(1);
  small.Observe(4);
  REQUIRE(e.AddHistogram("cohort_step_seconds", {{"worker", "w1"}}, small).ok());
  REQUIRE(e.AddHistogram("cohort_step_seconds", {}, Histogram({1})).ok());
  CHECK(e.Text() ==
        "# HELP cohort_step_seconds How long steps ran.\n"
        "# TYPE cohort_step_seconds histogram\n"
        "cohort_step_seconds_bucket{worker=\"w1\",le=\"0.25\"} 1\n"
        "cohort_step_seconds_bucket{worker=\"w1\",le=\"2\"} 3\n"
        "cohort_step_seconds_bucket{worker=\"w1\",le=\"+Inf\"} 4\n"
        "cohort_step_seconds_sum{worker=\"w1\"} 6.125\n"
        "cohort_step_seconds_count{worker=\"w1\"} 4\n"
        "cohort_step_seconds_bucket{le=\"1\"} 0\n"
        "cohort_step_seconds_bucket{le=\"+Inf\"} 0\n"
        "cohort_step_seconds_sum 0\n"
        "cohort_step_seconds_count 0\n");
}

TEST_CASE("Exposition refuses names Prometheus refuses", "[unit][metrics]") {
  CHECK(ValidMetricName("cohort:steps_total"));
  CHECK(ValidMetricName("_x9"));
  CHECK_FALSE(ValidMetricName(""));
  CHECK_FALSE(ValidMetricName("9lives"));
  CHECK_FALSE(ValidMetricName("steps-total"));
  CHECK_FALSE(ValidMetricName("caf\xc3\xa9"));
  CHECK(ValidLabelName("group_id"));
  CHECK(ValidLabelName("_x"));
  CHECK_FALSE(ValidLabelName("__name__"));
  CHECK_FALSE(ValidLabelName("a:b"));
  CHECK_FALSE(ValidLabelName("1a"));

  Exposition e;
  CHECK(e.Declare("bad name", MetricType::kGauge, "").code() == Status::Code::kInvalidArgument);
  REQUIRE(e.Declare("g", MetricType::kGauge, "").ok());
  CHECK(e.Add("g", {{"bad-label", "x"}}, 1).code() == Status::Code::kInvalidArgument);
  CHECK(e.Add("g", {{"__reserved", "x"}}, 1).code() == Status::Code::kInvalidArgument);
  CHECK(e.Add("g", {{"a", "x"}, {"a", "y"}}, 1).code() == Status::Code::kInvalidArgument);
  CHECK(e.Text().empty());
}

TEST_CASE("Exposition refuses a family declared twice differently, or one whose samples collide",
          "[unit][metrics]") {
  Exposition e;
  REQUIRE(e.Declare("x", MetricType::kHistogram, "h").ok());
  CHECK(e.Declare("x", MetricType::kGauge, "h").code() == Status::Code::kAlreadyExists);
  CHECK(e.Declare("x", MetricType::kHistogram, "other").code() == Status::Code::kAlreadyExists);
  CHECK(e.Declare("x_count", MetricType::kGauge, "").code() == Status::Code::kAlreadyExists);
  CHECK(e.Declare("x_bucket", MetricType::kCounter, "").code() == Status::Code::kAlreadyExists);
  REQUIRE(e.Declare("y_sum", MetricType::kGauge, "").ok());
  CHECK(e.Declare("y", MetricType::kHistogram, "").code() == Status::Code::kAlreadyExists);
  // The refused declaration left nothing behind.
  REQUIRE(e.Declare("y", MetricType::kGauge, "").ok());
}

TEST_CASE("Exposition refuses a sample for the wrong family, a series twice, a negative counter",
          "[unit][metrics]") {
  Exposition e;
  REQUIRE(e.Declare("c_total", MetricType::kCounter, "").ok());
  REQUIRE(e.Declare("h", MetricType::kHistogram, "").ok());
  CHECK(e.Add("nope", {}, 1).code() == Status::Code::kNotFound);
  CHECK(e.Add("h_count", {}, 1).code() == Status::Code::kNotFound);
  CHECK(e.Add("h", {}, 1).code() == Status::Code::kInvalidArgument);
  CHECK(e.AddHistogram("c_total", {}, Histogram({1})).code() == Status::Code::kInvalidArgument);
  CHECK(e.AddHistogram("h", {{"le", "1"}}, Histogram({1})).code() == Status::Code::kInvalidArgument);
  CHECK(e.Add("c_total", {}, -1).code() == Status::Code::kInvalidArgument);
  CHECK(e.Add("c_total", {}, std::nan("")).code() == Status::Code::kInvalidArgument);

  REQUIRE(e.Add("c_total", {{"a", "1"}, {"b", "2"}}, 1).ok());
  // The same label set in another order, or with an empty label more, is
  // the same series to Prometheus.
  CHECK(e.Add("c_total", {{"b", "2"}, {"a", "1"}}, 1).code() == Status::Code::kAlreadyExists);
  CHECK(e.Add("c_total", {{"a", "1"}, {"b", "2"}, {"c", ""}}, 1).code() == Status::Code::kAlreadyExists);
  REQUIRE(e.AddHistogram("h", {}, Histogram({1})).ok());
  CHECK(e.AddHistogram("h", {}, Histogram({2})).code() == Status::Code::kAlreadyExists);
  CHECK(e.Text() ==
        "# HELP c_total \n# TYPE c_total counter\nc_total{a=\"1\",b=\"2\"} 1\n"
        "# HELP h \n# TYPE h histogram\n"
        "h_bucket{le=\"1\"} 0\nh_bucket{le=\"+Inf\"} 0\nh_sum 0\nh_count 0\n");
}

TEST_CASE("Exposition takes labels built at run time", "[unit][metrics]") {
  Exposition e;
  REQUIRE(e.Declare("g", MetricType::kGauge, "").ok());
  std::vector<std::string> groups = {"a", "b"};
  for (const std::string& g : groups) {
    const std::vector<Label> labels = {{"group", g}};
    REQUIRE(e.Add("g", labels, static_cast<int>(g.size())).ok());
  }
  CHECK(e.Text() == "# HELP g \n# TYPE g gauge\ng{group=\"a\"} 1\ng{group=\"b\"} 1\n");
}

}  // namespace
}  // namespace cohort::common
