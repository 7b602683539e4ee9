// Structured logging for the daemons: one line per event on stderr, as
// `level=info event=worker_joined name=n1 slots=8`, which journald stamps
// with the time. Each line goes out in one write(2), so lines from one
// process never interleave. RateLimiter keeps a flood of bad input from
// turning into a flood of log lines.
//
// Thread contract: SetLogLevel before starting threads; LogLine is safe to
// use from any thread.
#ifndef COHORT_COMMON_LOG_H_
#define COHORT_COMMON_LOG_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>

#include "common/time.h"

namespace cohort::common {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();
// Parses debug|info|warn|error.
bool ParseLogLevel(std::string_view text, LogLevel* out);

class LogLine {
 public:
  LogLine(LogLevel level, std::string_view event);
  ~LogLine();
  LogLine(const LogLine&) = delete;
  LogLine& operator=(const LogLine&) = delete;

  LogLine& Kv(std::string_view key, std::string_view value);
  LogLine& Kv(std::string_view key, const char* value) { return Kv(key, std::string_view(value)); }
  LogLine& Kv(std::string_view key, const std::string& value) { return Kv(key, std::string_view(value)); }
  template <typename T, typename = std::enable_if_t<std::is_arithmetic_v<T>>>
  LogLine& Kv(std::string_view key, T value) {
    if constexpr (std::is_same_v<T, bool>) return Kv(key, std::string_view(value ? "true" : "false"));
    else return Kv(key, std::string_view(std::to_string(value)));
  }

 private:
  bool enabled_;
  std::string line_;
};

inline LogLine LogDebug(std::string_view event) { return LogLine(LogLevel::kDebug, event); }
inline LogLine LogInfo(std::string_view event) { return LogLine(LogLevel::kInfo, event); }
inline LogLine LogWarn(std::string_view event) { return LogLine(LogLevel::kWarn, event); }
inline LogLine LogError(std::string_view event) { return LogLine(LogLevel::kError, event); }

// Allows `burst` events per `window`; Allow() reports how many were
// suppressed since the last allowed one so the log can say so.
class RateLimiter {
 public:
  RateLimiter(int burst, Duration window) : burst_(burst), window_(window) {}
  bool Allow(Time now, uint64_t* suppressed);

 private:
  int burst_;
  Duration window_;
  Time window_start_{};
  int used_ = 0;
  uint64_t suppressed_ = 0;
};

}  // namespace cohort::common

#endif  // COHORT_COMMON_LOG_H_
