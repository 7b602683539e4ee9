// Log lines as a reader of stderr gets them: each format to the byte, the
// journal told apart by JOURNAL_STREAM, and JSON that parses whatever bytes a
// value holds. stderr is a temp file for the length of each check.
#include "common/log.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <limits>
#include <string>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/unit/temp_dir.h"

namespace cohort::common {
namespace {

using cohort::testing::TempDir;

std::chrono::system_clock::time_point FixedNow() {
  return std::chrono::system_clock::time_point(std::chrono::milliseconds(1796308521123));  // 2026-12-03T14:35:21.123Z
}

// stderr goes to a file until Take(); the log's settings are restored after.
class StderrCapture {
 public:
  StderrCapture() : path_(dir_.path + "/stderr") {
    ::unsetenv("JOURNAL_STREAM");
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    REQUIRE(fd_ >= 0);
    saved_ = ::dup(STDERR_FILENO);
    REQUIRE(::dup2(fd_, STDERR_FILENO) == STDERR_FILENO);
    SetLogClock(&FixedNow);
  }
  ~StderrCapture() {
    Restore();
    ::close(fd_);
    ::unsetenv("JOURNAL_STREAM");
    SetLogClock(nullptr);
    SetLogLevel(LogLevel::kInfo);
    SetLogFormat(LogFormat::kText);
  }

  // JOURNAL_STREAM as systemd sets it for this stderr (or, with
  // `inode_offset`, for another file on the same device).
  void PretendJournal(int inode_offset) {
    struct stat st {};
    REQUIRE(::fstat(fd_, &st) == 0);
    const std::string value = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino + inode_offset);
    ::setenv("JOURNAL_STREAM", value.c_str(), 1);
  }

  std::string Take() {
    Restore();
    std::string text;
    char buf[4096];
    ssize_t n;
    off_t at = 0;
    while ((n = ::pread(fd_, buf, sizeof buf, at)) > 0) {
      text.append(buf, static_cast<size_t>(n));
      at += n;
    }
    return text;
  }

 private:
  void Restore() {
    if (saved_ < 0) return;
    ::dup2(saved_, STDERR_FILENO);
    ::close(saved_);
    saved_ = -1;
  }

  TempDir dir_;
  std::string path_;
  int fd_ = -1;
  int saved_ = -1;
};

void LogSample() {
  LogInfo("worker_joined").Kv("name", "n1").Kv("slots", 8).Kv("curve", true).Kv("detail", "two words");
}

}  // namespace

TEST_CASE("log: text lines start with the time, as logfmt", "[unit][log]") {
  StderrCapture capture;
  SetLogFormat(LogFormat::kText);
  LogSample();
  LogDebug("hidden").Kv("k", 1);  // below the level: nothing
  LogWarn("odd").Kv("empty", "").Kv("quoted", "a\"b\\c=d\n").Kv("ratio", 0.5).Kv("delta", -3);
  CHECK(capture.Take() ==
        "ts=2026-12-03T14:35:21.123Z level=info event=worker_joined name=n1 slots=8 curve=true detail=\"two words\"\n"
        "ts=2026-12-03T14:35:21.123Z level=warn event=odd empty=\"\" quoted=\"a\\\"b\\\\c=d\\x0a\" ratio=0.500000 "
        "delta=-3\n");
}

TEST_CASE("log: json lines are one object each, numbers as numbers", "[unit][log]") {
  StderrCapture capture;
  SetLogFormat(LogFormat::kJson);
  LogSample();
  LogError("bad")
      .Kv("ratio", 0.5)
      .Kv("inf", std::numeric_limits<double>::infinity())
      .Kv("count", uint64_t{18446744073709551615u});
  CHECK(capture.Take() ==
        "{\"ts\":\"2026-12-03T14:35:21.123Z\",\"level\":\"info\",\"event\":\"worker_joined\",\"name\":\"n1\","
        "\"slots\":8,\"curve\":true,\"detail\":\"two words\"}\n"
        "{\"ts\":\"2026-12-03T14:35:21.123Z\",\"level\":\"error\",\"event\":\"bad\",\"ratio\":0.500000,"
        "\"inf\":\"inf\",\"count\":18446744073709551615}\n");
}

TEST_CASE("log: an integer given as text is a number only when it is one", "[unit][log]") {
  StderrCapture capture;
  SetLogFormat(LogFormat::kJson);
  LogInfo("n").KvNumber("a", "42").KvNumber("b", "-7").KvNumber("c", "0").KvNumber("d", "007").KvNumber("e", "1e3")
      .KvNumber("f", "").KvNumber("g", "-");
  CHECK(capture.Take() ==
        "{\"ts\":\"2026-12-03T14:35:21.123Z\",\"level\":\"info\",\"event\":\"n\",\"a\":42,\"b\":-7,\"c\":0,"
        "\"d\":\"007\",\"e\":\"1e3\",\"f\":\"\",\"g\":\"-\"}\n");
}

TEST_CASE("log: on the journal's stream, a priority instead of a time", "[unit][log]") {
  StderrCapture capture;
  capture.PretendJournal(0);
  CHECK(StderrIsJournal());
  SetLogLevel(LogLevel::kDebug);
  SetLogFormat(LogFormat::kText);
  LogDebug("a");
  LogInfo("b").Kv("k", "v");
  LogWarn("c");
  LogError("d");
  SetLogFormat(LogFormat::kJson);
  LogWarn("e").Kv("n", 1);
  CHECK(capture.Take() ==
        "<7>level=debug event=a\n"
        "<6>level=info event=b k=v\n"
        "<4>level=warn event=c\n"
        "<3>level=error event=d\n"
        "<4>{\"level\":\"warn\",\"event\":\"e\",\"n\":1}\n");
}

TEST_CASE("log: a JOURNAL_STREAM that names another file is not the journal", "[unit][log]") {
  StderrCapture capture;
  capture.PretendJournal(1);  // inherited by a process whose stderr was redirected
  CHECK_FALSE(StderrIsJournal());
  SetLogFormat(LogFormat::kText);
  LogInfo("x");
  for (const char* bad : {"", "12", "12:", ":34", "a:b", "1:2:3", "99999999999999999999999:1"}) {
    ::setenv("JOURNAL_STREAM", bad, 1);
    INFO(bad);
    CHECK_FALSE(StderrIsJournal());
  }
  CHECK(capture.Take() == "ts=2026-12-03T14:35:21.123Z level=info event=x\n");
}

TEST_CASE("log: json stays parsable whatever bytes a value holds", "[unit][log]") {
  StderrCapture capture;
  SetLogFormat(LogFormat::kJson);
  const std::string hostile = std::string("q\"b\\s/\b\f\n\r\t\x01\x1f\x7f nul:") + std::string(1, '\0') +
                              " bad:\xff\xc3 cut:\xe2\x82 ok:\xc3\xa9";
  const std::string long_value = std::string(511, 'x') + "\xc3\xa9\xc3\xa9";  // é straddles the cap
  LogInfo("hostile").Kv("v", hostile).Kv("k\"ey", "x").Kv("long", long_value);
  const std::string text = capture.Take();
  REQUIRE(text.size() > 1);
  CHECK(text.back() == '\n');
  CHECK(text.find('\n') == text.size() - 1);  // one line
  const nlohmann::json j = nlohmann::json::parse(text);
  CHECK(j["v"] == std::string("q\"b\\s/\b\f\n\r\t\x01\x1f\x7f nul:") + std::string(1, '\0') +
                      " bad:\xef\xbf\xbd\xef\xbf\xbd cut:\xef\xbf\xbd\xef\xbf\xbd ok:\xc3\xa9");
  CHECK(j["k\"ey"] == "x");
  CHECK(j["long"] == std::string(511, 'x') + "...");  // cut before a character, never through it
  CHECK(j["event"] == "hostile");
}

TEST_CASE("log: times are UTC, RFC 3339, in milliseconds", "[unit][log]") {
  using std::chrono::milliseconds;
  using std::chrono::system_clock;
  CHECK(FormatLogTime(system_clock::time_point(milliseconds(0))) == "1970-01-01T00:00:00.000Z");
  CHECK(FormatLogTime(FixedNow()) == "2026-12-03T14:35:21.123Z");
  CHECK(FormatLogTime(system_clock::time_point(std::chrono::microseconds(1999))) == "1970-01-01T00:00:00.001Z");
  CHECK(FormatLogTime(system_clock::time_point(milliseconds(-1))) == "1969-12-31T23:59:59.999Z");
}

TEST_CASE("log: formats by name", "[unit][log]") {
  LogFormat f = LogFormat::kText;
  CHECK(ParseLogFormat("json", &f));
  CHECK(f == LogFormat::kJson);
  CHECK(ParseLogFormat("text", &f));
  CHECK(f == LogFormat::kText);
  CHECK_FALSE(ParseLogFormat("JSON", &f));
  CHECK_FALSE(ParseLogFormat("", &f));
}

}  // namespace cohort::common
