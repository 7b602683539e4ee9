// Structured logging for the daemons: one line per event on stderr, in one of
// two formats (SetLogFormat):
//   text: `ts=2026-12-03T14:35:21.123Z level=info event=worker_joined name=n1 slots=8`
//   json: `{"ts":"2026-12-03T14:35:21.123Z","level":"info","event":"worker_joined","name":"n1","slots":8}`
// When stderr is the journal (StderrIsJournal) a line starts with a syslog
// priority (`<6>level=info ...`) instead of a timestamp: journald stamps
// lines itself and files them by that priority. Each line goes out in one
// write(2), so lines from one process never interleave. RateLimiter keeps a
// flood of bad input from turning into a flood of log lines.
//
// Thread contract: SetLogLevel, SetLogFormat and SetLogClock before starting
// threads; LogLine is safe to use from any thread.
#ifndef COHORT_COMMON_LOG_H_
#define COHORT_COMMON_LOG_H_

#include <chrono>
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

// text: logfmt, `key=value` pairs; json: one JSON object per line, for log
// shippers (every line parses, whatever bytes a peer put in a value).
enum class LogFormat { kText, kJson };
// Parses text|json.
bool ParseLogFormat(std::string_view text, LogFormat* out);

// Sets the format, and looks once whether stderr is the journal (see
// StderrIsJournal). Until it is called: text, with timestamps. Call it again
// after stderr is redirected.
void SetLogFormat(LogFormat format);

// True when stderr is connected to the journal: $JOURNAL_STREAM holds
// "DEV:INODE" and they are stderr's device and inode (systemd.exec(5)). A
// JOURNAL_STREAM inherited by a process whose stderr goes elsewhere (a
// service's script running `cohort-worker 2>file`) names another file.
bool StderrIsJournal();

// "2026-12-03T14:35:21.123Z": UTC, RFC 3339, milliseconds (rounded down).
std::string FormatLogTime(std::chrono::system_clock::time_point t);

// The clock that stamps lines: the system clock unless a test sets another.
using LogClock = std::chrono::system_clock::time_point (*)();
void SetLogClock(LogClock now);

class LogLine {
 public:
  LogLine(LogLevel level, std::string_view event);
  ~LogLine();
  LogLine(const LogLine&) = delete;
  LogLine& operator=(const LogLine&) = delete;

  // Values are cut at 512 bytes (a line must stay a line, whatever a peer sent).
  LogLine& Kv(std::string_view key, std::string_view value);
  LogLine& Kv(std::string_view key, const char* value) { return Kv(key, std::string_view(value)); }
  LogLine& Kv(std::string_view key, const std::string& value) { return Kv(key, std::string_view(value)); }
  // An integer already in decimal (a leading '-' allowed), such as a value
  // that came through a pure core as text: a JSON number in the json format.
  // Anything else is written as a string.
  LogLine& KvNumber(std::string_view key, std::string_view digits);
  // Numbers and booleans: JSON numbers and true/false in the json format.
  template <typename T, typename = std::enable_if_t<std::is_arithmetic_v<T>>>
  LogLine& Kv(std::string_view key, T value) {
    if constexpr (std::is_same_v<T, bool>) {
      return Literal(key, value ? "true" : "false");
    } else if constexpr (std::is_floating_point_v<T>) {
      // NaN and infinities are no JSON numbers.
      return value == value && value - value == 0 ? Literal(key, std::to_string(value))
                                                  : Kv(key, std::string_view(std::to_string(value)));
    } else {
      return Literal(key, std::to_string(value));
    }
  }

 private:
  // A value written bare in both formats: a number, true or false.
  LogLine& Literal(std::string_view key, std::string_view text);
  void Key(std::string_view key);

  bool enabled_;
  bool json_ = false;
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
