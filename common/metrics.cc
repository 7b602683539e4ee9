#include "common/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <utility>

#include "common/protocol.h"
#include "common/quote.h"
#include "common/utf8.h"
#include "common/version.h"

namespace cohort::common {

namespace {

constexpr std::string_view kHistogramSuffixes[] = {"_bucket", "_sum", "_count"};

bool NameChar(char c, bool first, bool colon) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') return true;
  if (c == ':') return colon;
  return !first && c >= '0' && c <= '9';
}

bool ValidName(std::string_view name, bool colon) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    if (!NameChar(name[i], i == 0, colon)) return false;
  }
  return true;
}

// A label value (`quote`) or a HELP text: the backslash and the newline are
// escaped in both, the double quote in a label value only (the format's
// rules), and bytes that are not UTF-8 become U+FFFD, since Prometheus
// refuses a whole scrape over one invalid label value.
void AppendEscaped(std::string_view s, bool quote, std::string* out) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  for (size_t i = 0; i < s.size();) {
    const size_t n = Utf8SequenceLength(p + i, s.size() - i);
    if (n == 0) {
      out->append("\xEF\xBF\xBD");
      ++i;
      continue;
    }
    if (n == 1 && s[i] == '\\') out->append("\\\\");
    else if (n == 1 && s[i] == '\n') out->append("\\n");
    else if (n == 1 && s[i] == '"' && quote) out->append("\\\"");
    else out->append(s.data() + i, n);
    i += n;
  }
}

std::string_view TypeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter: return "counter";
    case MetricType::kGauge: return "gauge";
    case MetricType::kHistogram: return "histogram";
  }
  return "untyped";
}

// One sample line: name, labels and an extra label (le) if any, value.
void AppendSample(std::string* out, std::string_view name, std::string_view suffix, const std::string& labels,
                  std::string_view extra, std::string_view value) {
  out->append(name).append(suffix);
  if (!labels.empty() || !extra.empty()) {
    out->push_back('{');
    out->append(labels);
    if (!labels.empty() && !extra.empty()) out->push_back(',');
    out->append(extra);
    out->push_back('}');
  }
  out->push_back(' ');
  out->append(value);
  out->push_back('\n');
}

}  // namespace

bool ValidMetricName(std::string_view name) { return ValidName(name, true); }

bool ValidLabelName(std::string_view name) { return ValidName(name, false) && !name.starts_with("__"); }

Histogram::Histogram(std::vector<double> upper_bounds) : bounds_(std::move(upper_bounds)) {
  std::erase_if(bounds_, [](double b) { return !std::isfinite(b); });
  std::sort(bounds_.begin(), bounds_.end());
  bounds_.erase(std::unique(bounds_.begin(), bounds_.end()), bounds_.end());
  counts_.assign(bounds_.size() + 1, 0);
}

std::vector<double> Histogram::DefaultSecondsBounds() {
  return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

void Histogram::Observe(double value) {
  if (std::isnan(value)) return;
  // The first bucket whose bound is >= value: buckets are "less or equal".
  const auto it = std::lower_bound(bounds_.begin(), bounds_.end(), value);
  ++counts_[static_cast<size_t>(it - bounds_.begin())];
  ++count_;
  sum_ += value;
}

std::string Exposition::FormatDouble(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, value);
  return std::string(buf, r.ptr);
}

std::string Exposition::FormatInteger(int64_t value) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, value);
  return std::string(buf, r.ptr);
}

std::string Exposition::FormatInteger(uint64_t value) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, value);
  return std::string(buf, r.ptr);
}

Status Exposition::Declare(std::string_view name, MetricType type, std::string_view help) {
  if (!ValidMetricName(name)) return Status::InvalidArgument("metric name " + Quote(name) + " is not valid");
  if (const auto it = names_.find(name); it != names_.end()) {
    const Family& f = families_[it->second];
    if (f.name != name) {
      return Status::AlreadyExists("metric name " + Quote(name) + " is a sample of " + Quote(f.name));
    }
    if (f.type != type || f.help != help) {
      return Status::AlreadyExists("metric " + Quote(name) + " was declared as a " + std::string(TypeName(f.type)) +
                                   " with other help");
    }
    return Status::Ok();
  }
  std::vector<std::string> used = {std::string(name)};
  if (type == MetricType::kHistogram) {
    for (std::string_view suffix : kHistogramSuffixes) used.push_back(std::string(name).append(suffix));
  }
  for (const std::string& n : used) {
    if (const auto it = names_.find(n); it != names_.end()) {
      return Status::AlreadyExists("metric " + Quote(name) + " would write " + Quote(n) + ", which " +
                                   Quote(families_[it->second].name) + " uses");
    }
  }
  for (std::string& n : used) names_.emplace(std::move(n), families_.size());
  families_.push_back(Family{std::string(name), type, std::string(help), {}, {}});
  return Status::Ok();
}

Status Exposition::Find(std::string_view name, bool histogram, Family** family) {
  const auto it = names_.find(name);
  if (it == names_.end() || families_[it->second].name != name) {
    return Status::NotFound("metric " + Quote(name) + " was not declared");
  }
  Family& f = families_[it->second];
  if ((f.type == MetricType::kHistogram) != histogram) {
    return Status::InvalidArgument("metric " + Quote(name) + " is a " + std::string(TypeName(f.type)) +
                                   (histogram ? ", not a histogram" : ": add it with AddHistogram"));
  }
  *family = &f;
  return Status::Ok();
}

Status Exposition::LabelText(std::span<const Label> labels, bool histogram, std::string* text, std::string* key) {
  std::vector<Label> sorted(labels.begin(), labels.end());
  std::sort(sorted.begin(), sorted.end(), [](const Label& a, const Label& b) { return a.name < b.name; });
  for (size_t i = 0; i < sorted.size(); ++i) {
    const std::string_view name = sorted[i].name;
    if (!ValidLabelName(name)) return Status::InvalidArgument("label name " + Quote(name) + " is not valid");
    if (histogram && name == "le") return Status::InvalidArgument("label le is the histogram's own");
    if (i > 0 && sorted[i - 1].name == name) return Status::InvalidArgument("label " + Quote(name) + " given twice");
    if (sorted[i].value.empty()) continue;
    key->append(name).append("=\"");
    AppendEscaped(sorted[i].value, true, key);
    key->append("\",");
  }
  for (const Label& l : labels) {
    if (!text->empty()) text->push_back(',');
    text->append(l.name).append("=\"");
    AppendEscaped(l.value, true, text);
    text->push_back('"');
  }
  return Status::Ok();
}

Status Exposition::AddValue(std::string_view name, std::span<const Label> labels, const std::string& text,
                            double value) {
  Family* f = nullptr;
  if (Status s = Find(name, false, &f); !s.ok()) return s;
  if (f->type == MetricType::kCounter && !(value >= 0)) {
    return Status::InvalidArgument("counter " + Quote(name) + " may not be " + text);
  }
  std::string label_text, key;
  if (Status s = LabelText(labels, false, &label_text, &key); !s.ok()) return s;
  if (!f->seen.insert(std::move(key)).second) {
    return Status::AlreadyExists("metric " + Quote(name) + " has the series {" + label_text + "} already");
  }
  AppendSample(&f->samples, name, "", label_text, "", text);
  return Status::Ok();
}

Status Exposition::AddHistogram(std::string_view name, std::span<const Label> labels, const Histogram& histogram) {
  Family* f = nullptr;
  if (Status s = Find(name, true, &f); !s.ok()) return s;
  std::string label_text, key;
  if (Status s = LabelText(labels, true, &label_text, &key); !s.ok()) return s;
  if (!f->seen.insert(std::move(key)).second) {
    return Status::AlreadyExists("histogram " + Quote(name) + " has the series {" + label_text + "} already");
  }
  uint64_t cumulative = 0;
  const std::vector<double>& bounds = histogram.upper_bounds();
  for (size_t i = 0; i <= bounds.size(); ++i) {
    cumulative += histogram.counts()[i];
    const std::string le = i < bounds.size() ? FormatDouble(bounds[i]) : "+Inf";
    AppendSample(&f->samples, name, "_bucket", label_text, "le=\"" + le + "\"", FormatInteger(cumulative));
  }
  AppendSample(&f->samples, name, "_sum", label_text, "", FormatDouble(histogram.sum()));
  AppendSample(&f->samples, name, "_count", label_text, "", FormatInteger(histogram.count()));
  return Status::Ok();
}

std::string Exposition::Text() const {
  size_t size = 0;
  for (const Family& f : families_) size += f.samples.size() + f.help.size() + 2 * f.name.size() + 32;
  std::string out;
  out.reserve(size);
  for (const Family& f : families_) {
    if (f.samples.empty()) continue;
    out.append("# HELP ").append(f.name).push_back(' ');
    AppendEscaped(f.help, false, &out);
    out.append("\n# TYPE ").append(f.name).push_back(' ');
    out.append(TypeName(f.type)).push_back('\n');
    out.append(f.samples);
  }
  return out;
}

void AddGauge(Exposition& e, std::string_view name, std::string_view help, double value) {
  e.Declare(name, MetricType::kGauge, help).IgnoreError();
  e.Add(name, {}, value).IgnoreError();
}

void AddProcessMetrics(Exposition& e, Time started, Time now) {
  e.Declare("cohort_build_info", MetricType::kGauge, "This build's version and protocol (always 1).").IgnoreError();
  e.Add("cohort_build_info", {{"version", kVersion}, {"protocol", kProtocol}}, 1).IgnoreError();
  AddGauge(e, "cohort_uptime_seconds", "Seconds since this process started.", DurationToSeconds(now - started));
}

}  // namespace cohort::common
