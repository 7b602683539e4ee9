#include "common/log.h"

#include <unistd.h>

#include <atomic>

namespace cohort::common {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};

std::string_view LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarn: return "warn";
    case LogLevel::kError: return "error";
  }
  return "info";
}

bool NeedsQuotes(std::string_view v) {
  if (v.empty()) return true;
  for (unsigned char c : v) {
    if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c >= 0x7f) return true;
  }
  return false;
}

void AppendValue(std::string* out, std::string_view v) {
  constexpr size_t kMaxValue = 512;  // a log line must stay a line, whatever a peer sent
  if (!NeedsQuotes(v) && v.size() <= kMaxValue) {
    out->append(v);
    return;
  }
  out->push_back('"');
  size_t n = 0;
  for (unsigned char c : v) {
    if (++n > kMaxValue) {
      out->append("...");
      break;
    }
    if (c == '"' || c == '\\') {
      out->push_back('\\');
      out->push_back(static_cast<char>(c));
    } else if (c < 0x20 || c == 0x7f) {
      static const char* kHex = "0123456789abcdef";
      out->append("\\x");
      out->push_back(kHex[c >> 4]);
      out->push_back(kHex[c & 15]);
    } else {
      out->push_back(static_cast<char>(c));
    }
  }
  out->push_back('"');
}

}  // namespace

void SetLogLevel(LogLevel level) { g_level.store(static_cast<int>(level)); }
LogLevel GetLogLevel() { return static_cast<LogLevel>(g_level.load()); }

bool ParseLogLevel(std::string_view text, LogLevel* out) {
  for (LogLevel l : {LogLevel::kDebug, LogLevel::kInfo, LogLevel::kWarn, LogLevel::kError}) {
    if (text == LevelName(l)) {
      *out = l;
      return true;
    }
  }
  return false;
}

LogLine::LogLine(LogLevel level, std::string_view event)
    : enabled_(static_cast<int>(level) >= g_level.load(std::memory_order_relaxed)) {
  if (!enabled_) return;
  line_.reserve(128);
  line_ += "level=";
  line_ += LevelName(level);
  line_ += " event=";
  line_ += event;
}

LogLine& LogLine::Kv(std::string_view key, std::string_view value) {
  if (!enabled_) return *this;
  line_ += ' ';
  line_ += key;
  line_ += '=';
  AppendValue(&line_, value);
  return *this;
}

LogLine::~LogLine() {
  if (!enabled_) return;
  line_ += '\n';
  // One write per line; a short write to a full pipe is not worth retrying
  // at the cost of blocking the event loop.
  ssize_t ignored = ::write(STDERR_FILENO, line_.data(), line_.size());
  (void)ignored;
}

bool RateLimiter::Allow(Time now, uint64_t* suppressed) {
  if (now - window_start_ >= window_) {
    window_start_ = now;
    used_ = 0;
  }
  if (used_ >= burst_) {
    ++suppressed_;
    return false;
  }
  ++used_;
  *suppressed = suppressed_;
  suppressed_ = 0;
  return true;
}

}  // namespace cohort::common
