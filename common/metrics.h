// Metrics in the Prometheus text exposition format, version 0.0.4, written
// by us rather than by prometheus-cpp: the daemons are single-threaded poll
// loops whose gauges are best computed from the core's state when a scrape
// arrives, so no metric needs to live between scrapes, behind an atomic or a
// lock (docs/ARCHITECTURE.md, Metrics).
//
// Exposition collects one scrape's families and samples and writes the text
// at the end: each family's `# HELP` and `# TYPE` once, then all of its
// samples, in the order the families were declared, however the caller
// interleaves its Add calls (one pass over the groups may add to several
// families). Everything a scrape would refuse is refused here with a Status
// instead: a metric or label name Prometheus does not accept, a label given
// twice, the same series added twice, a name that collides with another
// family's samples (a histogram `x` writes `x_bucket`, `x_sum`, `x_count`),
// a negative counter. Label values are escaped and any bytes that are not
// UTF-8 replaced, so a hostile group id cannot break the text.
//
// Histogram is a value: fixed upper bounds (seconds, by convention), counts
// per bucket, sum and count, kept by whoever observes and handed to
// Exposition::AddHistogram at scrape time.
//
// Thread contract: plain values, no shared state; not thread-safe.
#ifndef COHORT_COMMON_METRICS_H_
#define COHORT_COMMON_METRICS_H_

#include <concepts>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "common/status.h"
#include "common/time.h"

namespace cohort::common {

enum class MetricType { kCounter, kGauge, kHistogram };

struct Label {
  std::string_view name;
  std::string_view value;
};

class Histogram {
 public:
  // Upper bounds as given after sorting; duplicates, NaN and infinities are
  // dropped (the +Inf bucket is always there), so any list makes a valid
  // histogram.
  explicit Histogram(std::vector<double> upper_bounds);
  // 5 ms to 10 s, the bounds Prometheus's client libraries default to.
  static std::vector<double> DefaultSecondsBounds();

  // A NaN is ignored: it would make _sum NaN for good.
  void Observe(double value);

  const std::vector<double>& upper_bounds() const { return bounds_; }
  // Not cumulative: counts()[i] observations fell in (bounds[i-1], bounds[i]];
  // the last entry is the +Inf bucket.
  const std::vector<uint64_t>& counts() const { return counts_; }
  uint64_t count() const { return count_; }
  double sum() const { return sum_; }

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;
  uint64_t count_ = 0;
  double sum_ = 0;
};

class Exposition {
 public:
  // A family must be declared before samples are added to it. Declaring it
  // again with the same type and help is a no-op, so a caller may declare as
  // it goes; another type or help is AlreadyExists, as is a name that
  // collides with another family's sample names. InvalidArgument for a name
  // Prometheus refuses.
  Status Declare(std::string_view name, MetricType type, std::string_view help);

  // One sample of a counter or gauge. Integers are written exactly; doubles
  // in the shortest text that reads back the same, +Inf, -Inf or NaN.
  Status Add(std::string_view name, std::span<const Label> labels, double value) {
    return AddValue(name, labels, FormatDouble(value), value);
  }
  template <std::integral T>
  Status Add(std::string_view name, std::span<const Label> labels, T value) {
    return AddValue(name, labels, FormatInteger(value), static_cast<double>(value));
  }
  template <typename T>
  Status Add(std::string_view name, std::initializer_list<Label> labels, T value) {
    return Add(name, std::span<const Label>(labels.begin(), labels.size()), value);
  }

  // One series of a histogram family: cumulative _bucket{le=...} lines, +Inf
  // last, then _sum and _count. `le` may not be among the labels.
  Status AddHistogram(std::string_view name, std::span<const Label> labels, const Histogram& histogram);
  Status AddHistogram(std::string_view name, std::initializer_list<Label> labels, const Histogram& histogram) {
    return AddHistogram(name, std::span<const Label>(labels.begin(), labels.size()), histogram);
  }

  // The exposition text. Families without a sample are left out, as
  // Prometheus's client libraries do.
  std::string Text() const;

  // How values are written: exposed for the tests and for callers that
  // write a value elsewhere (a label such as le).
  static std::string FormatDouble(double value);
  static std::string FormatInteger(int64_t value);
  static std::string FormatInteger(uint64_t value);
  template <std::integral T>
  static std::string FormatInteger(T value) {
    if constexpr (std::is_signed_v<T>) return FormatInteger(static_cast<int64_t>(value));
    else return FormatInteger(static_cast<uint64_t>(value));
  }

 private:
  struct Family {
    std::string name;
    MetricType type;
    std::string help;
    std::string samples;         // the family's sample lines, as written
    std::set<std::string> seen;  // each series' labels, sorted, to refuse one twice
  };

  Status AddValue(std::string_view name, std::span<const Label> labels, const std::string& text, double value);
  // The family `name` names, checked against the kind of Add that names it.
  Status Find(std::string_view name, bool histogram, Family** family);
  // Checks the labels and writes them as `a="x",b="y"` into *text, and the
  // series' identity (sorted, empty values left out as Prometheus does) into
  // *key. Refuses bad or repeated names, and `le` in a histogram.
  static Status LabelText(std::span<const Label> labels, bool histogram, std::string* text, std::string* key);

  std::vector<Family> families_;
  // Every name a family declares or its samples use -> the family's index.
  std::map<std::string, size_t, std::less<>> names_;
};

// Whether Prometheus accepts `name` as a metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)
// or as a label name ([a-zA-Z_][a-zA-Z0-9_]*, and not starting with "__",
// which Prometheus keeps for itself).
bool ValidMetricName(std::string_view name);
bool ValidLabelName(std::string_view name);

// One unlabelled gauge, declared and set. For the daemons' fixed metric
// names: a failure would be a programming error, and is ignored.
void AddGauge(Exposition& e, std::string_view name, std::string_view help, double value);
// What every cohort daemon exposes: cohort_build_info{version,protocol} and
// cohort_uptime_seconds since `started`.
void AddProcessMetrics(Exposition& e, Time started, Time now);

}  // namespace cohort::common

#endif  // COHORT_COMMON_METRICS_H_
