#include "common/log.h"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <ctime>

#include "common/json_writer.h"

namespace cohort::common {
namespace {

constexpr size_t kMaxValue = 512;  // a log line must stay a line, whatever a peer sent

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
std::atomic<bool> g_json{false};
std::atomic<bool> g_journal{false};
std::chrono::system_clock::time_point SystemNow() { return std::chrono::system_clock::now(); }
std::atomic<LogClock> g_clock{&SystemNow};

std::string_view LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarn: return "warn";
    case LogLevel::kError: return "error";
  }
  return "info";
}

// sd-daemon(3)'s SD_DEBUG, SD_INFO, SD_WARNING and SD_ERR.
std::string_view JournalPriority(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return "<7>";
    case LogLevel::kInfo: return "<6>";
    case LogLevel::kWarn: return "<4>";
    case LogLevel::kError: return "<3>";
  }
  return "<6>";
}

bool NeedsQuotes(std::string_view v) {
  if (v.empty()) return true;
  for (unsigned char c : v) {
    if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c >= 0x7f) return true;
  }
  return false;
}

void AppendTextValue(std::string* out, std::string_view v) {
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

void AppendJsonValue(std::string* out, std::string_view v) {
  if (v.size() <= kMaxValue) {
    AppendJsonString(v, out);
    return;
  }
  // Cut before a character that starts within the cap rather than through
  // it, so a valid value stays valid.
  size_t cut = kMaxValue;
  for (int back = 0; back < 3 && cut > 0 && (static_cast<unsigned char>(v[cut]) & 0xC0) == 0x80; ++back) --cut;
  std::string capped(v.substr(0, cut));
  capped += "...";
  AppendJsonString(capped, out);
}

// Parses a whole unsigned decimal number; false on anything else.
bool ParseDecimal(std::string_view text, uintmax_t* out) {
  if (text.empty() || text.size() > 20) return false;
  uintmax_t n = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + static_cast<uintmax_t>(c - '0');
  }
  *out = n;
  return true;
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

bool ParseLogFormat(std::string_view text, LogFormat* out) {
  if (text == "text") *out = LogFormat::kText;
  else if (text == "json") *out = LogFormat::kJson;
  else return false;
  return true;
}

void SetLogFormat(LogFormat format) {
  g_json.store(format == LogFormat::kJson);
  g_journal.store(StderrIsJournal());
}

bool StderrIsJournal() {
  const char* stream = std::getenv("JOURNAL_STREAM");
  if (stream == nullptr) return false;
  const std::string_view text(stream);
  const size_t colon = text.find(':');
  uintmax_t dev = 0, ino = 0;
  if (colon == std::string_view::npos || !ParseDecimal(text.substr(0, colon), &dev) ||
      !ParseDecimal(text.substr(colon + 1), &ino)) {
    return false;
  }
  struct stat st {};
  if (::fstat(STDERR_FILENO, &st) != 0) return false;
  return static_cast<uintmax_t>(st.st_dev) == dev && static_cast<uintmax_t>(st.st_ino) == ino;
}

std::string FormatLogTime(std::chrono::system_clock::time_point t) {
  using std::chrono::milliseconds;
  const auto ms = std::chrono::floor<milliseconds>(t.time_since_epoch()).count();
  const auto secs = static_cast<time_t>(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
  const int frac = static_cast<int>(ms - static_cast<int64_t>(secs) * 1000);
  struct tm tm {};
  ::gmtime_r(&secs, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
  return buf;
}

void SetLogClock(LogClock now) { g_clock.store(now ? now : &SystemNow); }

LogLine::LogLine(LogLevel level, std::string_view event)
    : enabled_(static_cast<int>(level) >= g_level.load(std::memory_order_relaxed)) {
  if (!enabled_) return;
  json_ = g_json.load(std::memory_order_relaxed);
  const bool journal = g_journal.load(std::memory_order_relaxed);
  line_.reserve(160);
  if (journal) line_ += JournalPriority(level);
  if (json_) {
    line_ += '{';
    if (!journal) {
      line_ += "\"ts\":\"";
      line_ += FormatLogTime(g_clock.load(std::memory_order_relaxed)());
      line_ += "\",";
    }
    line_ += "\"level\":\"";
    line_ += LevelName(level);
    line_ += "\",\"event\":";
    AppendJsonString(event, &line_);
    return;
  }
  if (!journal) {
    line_ += "ts=";
    line_ += FormatLogTime(g_clock.load(std::memory_order_relaxed)());
    line_ += ' ';
  }
  line_ += "level=";
  line_ += LevelName(level);
  line_ += " event=";
  line_ += event;
}

void LogLine::Key(std::string_view key) {
  if (json_) {
    line_ += ',';
    AppendJsonString(key, &line_);
    line_ += ':';
  } else {
    line_ += ' ';
    line_ += key;
    line_ += '=';
  }
}

LogLine& LogLine::Kv(std::string_view key, std::string_view value) {
  if (!enabled_) return *this;
  Key(key);
  if (json_) AppendJsonValue(&line_, value);
  else AppendTextValue(&line_, value);
  return *this;
}

LogLine& LogLine::KvNumber(std::string_view key, std::string_view digits) {
  const std::string_view magnitude = !digits.empty() && digits[0] == '-' ? digits.substr(1) : digits;
  const bool integer = !magnitude.empty() && magnitude.find_first_not_of("0123456789") == std::string_view::npos &&
                       (magnitude.size() == 1 || magnitude[0] != '0');
  return integer ? Literal(key, digits) : Kv(key, digits);
}

LogLine& LogLine::Literal(std::string_view key, std::string_view text) {
  if (!enabled_) return *this;
  Key(key);
  line_ += text;
  return *this;
}

LogLine::~LogLine() {
  if (!enabled_) return;
  if (json_) line_ += '}';
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
