#include "cli/display.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <map>
#include <vector>

#include "cli/table.h"

namespace cohort::cli {
namespace {

using Json = nlohmann::json;

}  // namespace

std::string ProgressLine(const Json& r) {
  if (!r.is_object()) return "";
  // Counts are never negative, and the sum saturates: a broken or hostile
  // body must not overflow it (fuzz/regressions/cli_json/).
  auto n = [&](const char* key) -> uint64_t {
    if (!r.contains(key) || !r[key].is_number_integer()) return 0;
    if (r[key].is_number_unsigned()) return r[key].get<uint64_t>();
    return static_cast<uint64_t>(std::max<int64_t>(r[key].get<int64_t>(), 0));
  };
  std::map<std::string, uint64_t> c;
  for (const char* k : {"completed", "failed", "cancelled", "running", "retrying"}) c[k] = n(k);
  uint64_t done = 0;
  for (const char* k : {"completed", "failed", "cancelled"}) {
    done = c[k] > UINT64_MAX - done ? UINT64_MAX : done + c[k];
  }
  std::string line = Text(r, "group") + ": " + std::to_string(done) + "/" + std::to_string(n("total")) +
                     " done, " + std::to_string(c["running"]) + " running";
  if (c["retrying"]) line += ", " + std::to_string(c["retrying"]) + " retrying";
  if (c["failed"]) line += ", " + std::to_string(c["failed"]) + " failed";
  if (c["cancelled"]) line += ", " + std::to_string(c["cancelled"]) + " cancelled";
  return line;
}

namespace {

// "1:05", "1:02:03".
std::string Clock(double s) {
  const uint64_t t = s > 0 && s < 1e9 ? static_cast<uint64_t>(s) : 0;
  char buf[32];
  if (t >= 3600) {
    std::snprintf(buf, sizeof buf, "%llu:%02llu:%02llu", static_cast<unsigned long long>(t / 3600),
                  static_cast<unsigned long long>(t / 60 % 60), static_cast<unsigned long long>(t % 60));
  } else {
    std::snprintf(buf, sizeof buf, "%llu:%02llu", static_cast<unsigned long long>(t / 60),
                  static_cast<unsigned long long>(t % 60));
  }
  return buf;
}

}  // namespace

std::string ProgressBar(const Json& r, double elapsed_s) {
  if (!r.is_object()) return "";
  auto n = [&](const char* key) -> uint64_t {
    if (!r.contains(key) || !r[key].is_number_integer()) return 0;
    if (r[key].is_number_unsigned()) return r[key].get<uint64_t>();
    return static_cast<uint64_t>(std::max<int64_t>(r[key].get<int64_t>(), 0));
  };
  const uint64_t total = n("total");
  uint64_t done = 0;
  for (const char* k : {"completed", "failed", "cancelled"}) done = n(k) > UINT64_MAX - done ? UINT64_MAX : done + n(k);
  constexpr size_t kWidth = 20;
  const size_t filled = total == 0 ? 0 : static_cast<size_t>(static_cast<double>(std::min(done, total)) * kWidth /
                                                             static_cast<double>(total));
  // Named, as several waits may share a terminal.
  std::string line = (r.contains("group") && r["group"].is_string() ? r["group"].get<std::string>() + ": " : "") +
                     "[" + std::string(filled, '#') + std::string(kWidth - filled, '.') + "] " +
                     std::to_string(done) + "/" + std::to_string(total) + " done, " + std::to_string(n("running")) +
                     " running";
  if (n("retrying")) line += ", " + std::to_string(n("retrying")) + " retrying";
  if (n("failed")) line += ", " + std::to_string(n("failed")) + " failed";
  line += "  " + Clock(elapsed_s);
  if (done > 0 && elapsed_s > 0) {
    const double rate = static_cast<double>(done) / elapsed_s;
    char buf[64];
    std::snprintf(buf, sizeof buf, "  %.1f/s", rate);
    line += buf;
    if (total > done) line += "  ETA " + Clock(static_cast<double>(total - done) / rate);
  }
  // Steps that wait say why, or a stalled bar looks like a hung cluster.
  if (r.contains("waiting") && r["waiting"].is_string() && !r["waiting"].get_ref<const std::string&>().empty()) {
    line += "  waiting: " + Cell(r["waiting"].get<std::string>(), 80);
  }
  return line;
}

void PrintResult(const Json& r, std::ostream& out) {
  out << "group " << Text(r, "group") << ": " << Text(r, "state");
  if (r.is_object() && r.contains("duration_s") && r["duration_s"].is_number()) {
    out << " in " << Text(r, "duration_s");
  }
  out << "\n";
  std::vector<std::vector<std::string>> rows;
  if (r.is_object() && r.contains("steps") && r["steps"].is_array()) {
    for (const Json& s : r["steps"]) {
      std::string code = Text(s, "exit_code");
      if (code == "-" && Text(s, "signal") != "-") code = "sig " + Text(s, "signal");
      std::string note = Text(s, "error");
      if (note == "-") note = Text(s, "waiting");
      rows.push_back({Cell(Text(s, "id"), 40), Text(s, "state"), Text(s, "attempts"), Cell(Text(s, "worker"), 30),
                      code, Text(s, "duration_s"), Cell(note == "-" ? "" : note, 70)});
    }
  }
  Table({"STEP", "STATE", "ATTEMPTS", "WORKER", "EXIT", "DURATION", "ERROR"}, rows, out);
  if (std::string omitted = Text(r, "steps_omitted"); omitted != "-" && omitted != "0") {
    out << "(" << omitted << " more steps not shown: `cohort status " << Text(r, "group")
        << " --jsonl` lists every step)\n";
  }
  if (r.is_object() && r.contains("errors") && r["errors"].is_array() && !r["errors"].empty()) {
    out << r["errors"].size() << (r["errors"].size() == 1 ? " error" : " errors") << ":\n";
    for (const Json& e : r["errors"]) {
      std::string step = Text(e, "step");
      out << "  " << (step == "-" ? "(group)" : step) << ": " << Cell(Text(e, "error"), 200) << "\n";
    }
  }
}

std::vector<std::string> LastLines(const std::string& text, size_t n) {
  std::vector<std::string> lines;
  size_t end = text.size();
  if (end > 0 && text[end - 1] == '\n') --end;
  while (end > 0 && lines.size() < n) {
    const size_t start = text.rfind('\n', end - 1);
    const size_t from = start == std::string::npos ? 0 : start + 1;
    lines.push_back(Cell(text.substr(from, end - from), 160));
    if (start == std::string::npos) break;
    end = start;
  }
  std::reverse(lines.begin(), lines.end());
  return lines;
}

namespace {

// "998 completed, 2 failed": the group's counts by state, the empty ones left out.
std::string Counts(const Json& summary) {
  const Json* counts = summary.is_object() && summary.contains("counts") ? &summary["counts"] : nullptr;
  std::string text;
  for (const char* state : {"completed", "failed", "cancelled", "running", "retrying", "pending"}) {
    if (!counts || !counts->is_object() || !counts->contains(state)) continue;
    const std::string n = Text(*counts, state);
    if (n == "-" || n == "0") continue;
    text += (text.empty() ? "" : ", ") + n + " " + state;
  }
  return text.empty() ? "no steps" : text;
}

void PrintFailedStep(const Json& s, std::ostream& out) {
  const std::string attempts = Text(s, "attempts");
  out << "  " << Cell(Text(s, "id"), 40) << ": " << Cell(Text(s, "error"), 100) << " (worker "
      << Cell(Text(s, "worker"), 30) << ", " << attempts << (attempts == "1" ? " attempt" : " attempts");
  const bool tail = s.contains("tail") && s["tail"].is_array() && !s["tail"].empty();
  out << (tail ? "), last " + Text(s, "tail_stream") + ":" : ")") << "\n";
  if (!tail) return;
  for (const Json& line : s["tail"]) out << "      | " << (line.is_string() ? line.get<std::string>() : "") << "\n";
}

}  // namespace

void PrintGroupEnd(const GroupEnd& end, std::ostream& out) {
  const Json& r = end.summary;
  const std::string group = Text(r, "group");
  out << "group " << group << ": " << Text(r, "state");
  if (r.is_object() && r.contains("duration_s") && r["duration_s"].is_number()) out << " in " << Text(r, "duration_s");
  out << ": " << Counts(r);
  if (std::string total = Text(r, "total"); total != "-") out << " (" << total << (total == "1" ? " step)" : " steps)");
  out << "\n";
  if (r.is_object() && r.contains("errors") && r["errors"].is_array()) {
    for (const Json& e : r["errors"]) {
      if (Text(e, "step") == "-") out << "group error: " << Cell(Text(e, "error"), 200) << "\n";
    }
  }
  if (!end.failed.empty()) {
    const uint64_t failed = end.failed.size() + end.failed_more;
    out << failed << (failed == 1 ? " failed step:\n" : " failed steps:\n");
    for (const Json& s : end.failed) PrintFailedStep(s, out);
    if (end.failed_more) out << "  and " << end.failed_more << " more\n";
  }
  uint64_t other = 0;
  for (size_t i = 0; i < end.cancelled.size(); ++i) {
    const auto& [reason, n] = end.cancelled[i];
    if (i >= kEndReasons) {
      other += n;
      continue;
    }
    out << n << " cancelled: " << Cell(reason, 120) << "\n";
  }
  if (other) out << other << " cancelled for other reasons\n";
  if (!end.failed.empty() || !end.cancelled.empty()) {
    out << "every step: cohort status " << group << "; one step: cohort status " << group << " STEP\n";
  }
}

void PrintStep(const std::string& group, const Json& s, const std::string& stdout_text,
               const std::string& stderr_text, std::ostream& out) {
  const std::string id = Text(s, "id");
  out << "step " << Cell(id, 80) << " of group " << group << ": " << Text(s, "state");
  if (std::string error = Text(s, "error"); error != "-") out << ": " << Cell(error, 200);
  out << "\n";
  if (std::string waiting = Text(s, "waiting"); waiting != "-") out << "waiting: " << Cell(waiting, 200) << "\n";
  std::vector<std::vector<std::string>> rows;
  if (s.is_object() && s.contains("history") && s["history"].is_array()) {
    for (const Json& a : s["history"]) {
      std::string code = Text(a, "exit_code");
      if (code == "-" && Text(a, "signal") != "-") code = "sig " + Text(a, "signal");
      const std::string error = Text(a, "error");
      rows.push_back({Text(a, "attempt"), Cell(Text(a, "worker"), 30), Text(a, "status"), code,
                      Text(a, "started_at"), Text(a, "finished_at"), Cell(error == "-" ? "" : error, 70)});
    }
  }
  if (rows.empty()) {
    out << "no attempt yet\n";
  } else {
    Table({"ATTEMPT", "WORKER", "STATUS", "EXIT", "STARTED", "FINISHED", "ERROR"}, rows, out);
  }
  for (const auto& [name, text] : {std::pair{"stdout", &stdout_text}, std::pair{"stderr", &stderr_text}}) {
    if (text->empty()) continue;
    const std::vector<std::string> lines = LastLines(*text, kStepTailLines);
    out << name << ", last " << lines.size() << (lines.size() == 1 ? " line" : " lines") << " (all of it: cohort logs "
        << group << " " << id << (std::string(name) == "stderr" ? " --stderr" : "") << "):\n";
    for (const std::string& line : lines) out << "  | " << line << "\n";
  }
}

namespace {

// "2 s ago", "5 min ago": how long since, from the coordinator's own count.
std::string Ago(const Json& w, const char* key) {
  if (!w.is_object() || !w.contains(key) || !w[key].is_number_integer()) return "";
  const int64_t s = w[key].get<int64_t>() / 1000;
  if (s < 120) return std::to_string(s) + " s ago";
  if (s < 7200) return std::to_string(s / 60) + " min ago";
  return std::to_string(s / 3600) + " h ago";
}

}  // namespace

void PrintWorkers(const Json& list, std::ostream& out) {
  std::vector<std::vector<std::string>> rows;
  if (list.is_array()) {
    for (const Json& w : list) {
      std::string state = Text(w, "state");
      // How long a worker has been lost (or cordoned, or draining) is what
      // an operator asks first.
      if (!state.empty() && state != "ready") state += " " + Ago(w, "state_age_ms");
      rows.push_back({Cell(Text(w, "name"), 40), Cell(state, 30), Text(w, "slots"), Text(w, "running"),
                      Cell(Text(w, "agents")), Cell(Text(w, "version"), 20), Ago(w, "last_heartbeat_age_ms")});
    }
  }
  Table({"NAME", "STATE", "SLOTS", "RUNNING", "AGENTS", "VERSION", "LAST SEEN"}, rows, out);
}

}  // namespace cohort::cli
