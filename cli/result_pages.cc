#include "cli/result_pages.h"

#include <map>
#include <optional>
#include <vector>

#include "cli/display.h"
#include "common/messages.h"
#include "common/result_json.h"

namespace cohort::cli {
namespace {

using common::Status;
using Json = nlohmann::json;

// Fields that describe the page rather than the group.
constexpr const char* kPageKeys[] = {"steps", "next_cursor", "steps_omitted"};

Status ParsePage(const std::string& body, Json* page) {
  std::string error;
  if (!common::ParseJsonBounded(body, page, &error) || !page->is_object() || !page->contains("steps") ||
      !(*page)["steps"].is_array()) {
    return Status::Corruption("the coordinator sent a result page that is not a result document" +
                              (error.empty() ? std::string() : ": " + error));
  }
  return Status::Ok();
}

std::optional<uint64_t> NextCursor(const Json& page) {
  auto it = page.find("next_cursor");
  if (it == page.end() || !it->is_number_unsigned()) return std::nullopt;
  return it->get<uint64_t>();
}

Status NextPage(Client& client, const std::string& group, uint64_t cursor, Json* page) {
  common::StatusMsg m{0, group};
  m.cursor = cursor;
  common::ReplyMsg reply;
  if (Status s = client.CallRepeating(m, &reply); !s.ok()) return s;
  if (Status s = ReplyStatus(reply); !s.ok()) {
    return Status::FromCode(s.code(), "reading the steps of group " + group + " from step " + std::to_string(cursor) +
                                " on: " + s.message());
  }
  return ParsePage(reply.body, page);
}

// The table's rows: the steps that need attention (not completed) first,
// then completed ones, at most kTableRows in all, without their output.
class TableRows {
 public:
  void Add(Json step) {
    for (const char* k : {"stdout", "stderr", "history"}) step.erase(k);
    const bool matters = !(step.contains("state") && step["state"] == "completed");
    std::vector<Json>& into = matters ? attention_ : completed_;
    if (attention_.size() + (matters ? 0 : completed_.size()) < kTableRows) into.push_back(std::move(step));
    ++seen_;
  }
  Json Document(Json summary) {
    Json steps = Json::array();
    for (Json& s : attention_) steps.push_back(std::move(s));
    for (Json& s : completed_) {
      if (steps.size() >= kTableRows) break;
      steps.push_back(std::move(s));
    }
    summary["steps_omitted"] = seen_ - steps.size();
    summary["steps"] = std::move(steps);
    return summary;
  }

 private:
  std::vector<Json> attention_, completed_;
  size_t seen_ = 0;
};

// What a group's end shows, kept as the pages go by: the first failed
// steps, and the cancelled ones counted by reason.
class EndRows {
 public:
  void Add(Json step) {
    const auto state = step.find("state");
    if (state == step.end() || !state->is_string()) return;
    if (*state == "failed") {
      if (end_.failed.size() >= kEndSteps) {
        ++end_.failed_more;
        return;
      }
      step.erase("history");
      end_.failed.push_back(std::move(step));
    } else if (*state == "cancelled") {
      const auto error = step.find("error");
      std::string reason = error != step.end() && error->is_string() ? error->get<std::string>() : "cancelled";
      // Each step may give its own reason: past a few, they are one line anyway.
      if (!index_.contains(reason) && index_.size() >= kMaxReasons) reason = "for other reasons";
      auto [it, added] = index_.try_emplace(reason, end_.cancelled.size());
      if (added) end_.cancelled.emplace_back(reason, 0);
      ++end_.cancelled[it->second].second;
    }
  }

  // Reads the last lines of each failed step's stderr, or of its stdout when
  // its stderr is empty.
  GroupEnd Finish(Client& client, const std::string& group, Json summary) {
    for (Json& step : end_.failed) {
      std::string text, stream = "stderr";
      Status read = StepOutput(client, group, step, stream, &text);
      if (read.ok() && text.empty()) {
        stream = "stdout";
        read = StepOutput(client, group, step, stream, &text);
      }
      step.erase("stdout");
      step.erase("stderr");
      if (!read.ok()) {
        step["tail"] = Json::array({"(cannot read its output: " + read.message() + ")"});
        step["tail_stream"] = "output";
        continue;
      }
      step["tail"] = LastLines(text, kTailLines);
      step["tail_stream"] = stream;
    }
    end_.summary = std::move(summary);
    return std::move(end_);
  }

 private:
  static constexpr size_t kMaxReasons = 64;
  GroupEnd end_;
  std::map<std::string, size_t> index_;  // reason -> its place in end_.cancelled
};

}  // namespace

Status StepOutput(Client& client, const std::string& group, const Json& step, const std::string& stream,
                  std::string* out) {
  out->clear();
  if (!step.is_object() || !step.contains("id") || !step["id"].is_string()) return Status::Ok();
  const auto attempts = step.find("attempts");
  if (attempts == step.end() || !attempts->is_number_unsigned() || attempts->get<uint64_t>() == 0) {
    return Status::Ok();
  }
  const auto text = step.find(stream);
  const auto flag = step.find("output_omitted");
  const bool omitted = flag != step.end() && flag->is_boolean() && flag->get<bool>();
  const bool has_text = text != step.end() && text->is_string();
  if (!omitted && has_text && text->get_ref<const std::string&>().find("\xEF\xBF\xBD") == std::string::npos) {
    *out = text->get<std::string>();
    return Status::Ok();
  }
  if (!omitted && (!has_text || text->get_ref<const std::string&>().empty())) return Status::Ok();
  common::ReplyMsg reply;
  const common::LogsMsg req{0, group, step["id"].get<std::string>(), 0, stream};
  if (Status s = client.CallRepeating(req, &reply); !s.ok()) return s;
  if (Status s = ReplyStatus(reply); !s.ok()) return s;
  *out = std::move(reply.body);
  return Status::Ok();
}

Status FindStep(Client& client, const std::string& group, const std::string& first_body, const std::string& id,
                Json* step) {
  Json page;
  if (Status s = ParsePage(first_body, &page); !s.ok()) return s;
  std::optional<uint64_t> cursor;
  while (true) {
    for (Json& s : page["steps"]) {
      if (s.is_object() && s.contains("id") && s["id"] == id) {
        *step = std::move(s);
        return Status::Ok();
      }
    }
    std::optional<uint64_t> next = NextCursor(page);
    if (!next) return Status::NotFound("group " + group + " has no step " + id);
    if (cursor && *next <= *cursor) return Status::Corruption("the coordinator's result pages do not advance");
    cursor = next;
    if (Status s = NextPage(client, group, *next, &page); !s.ok()) return s;
  }
}

Status WriteResult(Client& client, const std::string& group, const std::string& first_body, ResultFormat format,
                   std::ostream& out, Json* summary) {
  Json page;
  if (Status s = ParsePage(first_body, &page); !s.ok()) return s;
  *summary = page;
  for (const char* k : kPageKeys) summary->erase(k);
  if (format == ResultFormat::kJson) {
    out << "{";
    for (const auto& [key, value] : summary->items()) out << Json(key).dump() << ":" << value.dump() << ",";
    out << "\"next_cursor\":null,\"steps_omitted\":0,\"steps\":[";
  }
  TableRows table;
  EndRows end;
  size_t written = 0;
  std::optional<uint64_t> cursor;
  while (true) {
    for (Json& step : page["steps"]) {
      if (format == ResultFormat::kJson) {
        out << (written ? "," : "") << step.dump();
      } else if (format == ResultFormat::kJsonl) {
        step["group"] = (*summary)["group"];
        out << step.dump() << "\n";
      } else if (format == ResultFormat::kEnd) {
        end.Add(std::move(step));
      } else {
        table.Add(std::move(step));
      }
      ++written;
    }
    std::optional<uint64_t> next = NextCursor(page);
    if (!next) break;
    // Each page starts after the one before: a coordinator that says
    // otherwise would keep us reading for ever.
    if (cursor && *next <= *cursor) return Status::Corruption("the coordinator's result pages do not advance");
    cursor = next;
    if (Status s = NextPage(client, group, *next, &page); !s.ok()) return s;
    // The same acceptance of the id: a group forgotten and submitted again
    // under it meanwhile is another group.
    if (page.value("submitted_at", Json()) != summary->value("submitted_at", Json())) {
      return Status::FailedPrecondition("group " + group + " was replaced by a new submission while its steps "
                                        "were being read; read it again");
    }
  }
  if (format == ResultFormat::kJson) out << "]}\n";
  if (format == ResultFormat::kJsonl) out << summary->dump() << "\n";
  if (format == ResultFormat::kTable) PrintResult(table.Document(*summary), out);
  if (format == ResultFormat::kEnd) PrintGroupEnd(end.Finish(client, group, *summary), out);
  out.flush();
  return Status::Ok();
}

}  // namespace cohort::cli
