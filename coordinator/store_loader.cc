#include "coordinator/store_loader.h"

#include <algorithm>
#include <limits>
#include <map>
#include <optional>
#include <unordered_map>
#include <vector>

namespace cohort::coordinator::schema {

using common::Status;

namespace {

// Reads one table at a time, in key order, into groups indexed by
// submission. Steps are gathered in ordered maps first (attempts and step
// ends arrive from separate tables) and flattened at the end. Which groups
// it reads is the statements it is given: Load's (the unfinished ones, then
// the finished ones' summaries) or LoadGroup's (one, bound to $1).
class Loader {
 public:
  struct Tables {
    Dml groups, attempts, step_ends, cancels, errors;
  };
  static constexpr Tables kRunning = {Dml::kLoadGroups, Dml::kLoadAttempts, Dml::kLoadStepEnds, Dml::kLoadCancels,
                                      Dml::kLoadErrors};
  static constexpr Tables kOne = {Dml::kLoadGroup, Dml::kLoadGroupAttempts, Dml::kLoadGroupStepEnds,
                                  Dml::kLoadGroupCancels, Dml::kLoadGroupErrors};

  // `submission` is bound to every statement that takes one.
  Loader(RowSource* source, LoadedState* out, const Tables& tables, uint64_t submission = 0)
      : source_(source), out_(out), tables_(tables), submission_(submission) {}

  Status Run() {
    out_->groups.clear();
    out_->finished.clear();
    out_->max_submission = 0;
    Status s = Groups();
    if (s.ok()) s = Attempts();
    if (s.ok()) s = StepEnds();
    if (s.ok()) s = Cancels();
    if (s.ok()) s = Errors();
    if (!s.ok()) return s;
    for (size_t i = 0; i < out_->groups.size(); ++i) {
      for (auto& [index, step] : steps_[i]) out_->groups[i].steps.push_back(std::move(step));
    }
    return Status::Ok();
  }

  // Load's second part: the finished groups, summarized.
  Status RunFinished() {
    Status s = Finished();
    if (s.ok()) s = Counts();
    if (s.ok()) s = MaxSubmission();
    if (s.ok()) s = WorkerModes();
    return s;
  }

 private:
  template <typename Fn>
  Status ForEachRow(Dml which, Fn fn) {
    return source_->ForEachRow(which, submission_, fn);
  }

  Status Bad(const std::string& what) const {
    return Status::Corruption(source_->where() + " is not a cohort state database or is damaged (" + what +
                              "); restore it from a backup (docs/OPERATIONS.md) or move it away");
  }

  template <typename T>
  static bool Fits(int64_t v, T* out) {
    using Limits = std::numeric_limits<T>;
    if constexpr (Limits::is_signed) {
      if (v < static_cast<int64_t>(Limits::min()) || v > static_cast<int64_t>(Limits::max())) return false;
    } else {
      if (v < 0 || static_cast<uint64_t>(v) > static_cast<uint64_t>(Limits::max())) return false;
    }
    *out = static_cast<T>(v);
    return true;
  }

  Status Groups() {
    return ForEachRow(tables_.groups, [this](const Row& st) {
      LoadedGroup g;
      GroupAccepted& a = g.accepted;
      if (!Fits(st.Int(0), &a.submission) || a.submission == 0 || !Fits(st.Int(5), &a.step_count)) {
        return Bad("submissions row " + std::to_string(st.Int(0)) + " has a bad submission or step count");
      }
      a.group_id = st.Text(1);
      a.spec_json = st.Text(2);
      a.client = st.Text(3);
      a.submitted_unix_ms = st.Int(4);
      Status s = StateAt(st, 6, "stop_state", schema::IsStopState, a.submission, &g.stopped);
      if (s.ok()) s = StateAt(st, 8, "end_state", IsEndState, a.submission, &g.ended);
      if (!s.ok()) return s;
      index_[a.submission] = out_->groups.size();
      out_->groups.push_back(std::move(g));
      steps_.emplace_back();
      return Status::Ok();
    });
  }

  static bool IsEndState(common::GroupState state) { return state != common::GroupState::kRunning; }

  // A group state column of submissions (stop_state, end_state) at `column`,
  // its time in the next: absent while NULL, and set with both or neither.
  template <typename Mark>
  Status StateAt(const Row& st, int column, const char* name, bool (*allowed)(common::GroupState),
                 uint64_t submission, std::optional<Mark>* out) {
    if (st.IsNull(column)) return Status::Ok();
    const std::string what = "submissions row " + std::to_string(submission) + " has " + name + " \"" +
                             st.Text(column) + "\"";
    Mark mark{submission, {}, st.Int(column + 1)};
    if (!schema::ParseGroupState(st.Text(column), &mark.state) || !allowed(mark.state)) return Bad(what);
    if (st.IsNull(column + 1)) return Bad(what + " but no time");
    *out = mark;
    return Status::Ok();
  }

  // Where the group of a child table's `row` is in out_->groups.
  Status GroupOf(const std::string& row, int64_t submission, size_t* group) {
    auto it = index_.find(static_cast<uint64_t>(submission));
    if (submission <= 0 || it == index_.end()) return Bad(row + " belongs to no group");
    *group = it->second;
    return Status::Ok();
  }

  // Where a child row's group is in out_->groups, after checking that the
  // group exists and holds the step.
  Status Locate(const char* table, int64_t submission, int64_t step, size_t* group, uint32_t* index) {
    const std::string row = std::string(table) + " row (submission " + std::to_string(submission) + ", step " +
                            std::to_string(step) + ")";
    Status s = GroupOf(row, submission, group);
    if (!s.ok()) return s;
    if (!Fits(step, index) || *index >= out_->groups[*group].accepted.step_count) {
      return Bad(row + " is past the group's step count");
    }
    return Status::Ok();
  }

  Status StepOf(const char* table, int64_t submission, int64_t step, LoadedStep** out) {
    size_t group = 0;
    uint32_t index = 0;
    Status s = Locate(table, submission, step, &group, &index);
    if (!s.ok()) return s;
    LoadedStep& found = steps_[group][index];
    found.step = index;
    *out = &found;
    return Status::Ok();
  }

  Status Attempts() {
    return ForEachRow(tables_.attempts, [this](const Row& st) {
      LoadedStep* step = nullptr;
      Status s = StepOf("attempts", st.Int(0), st.Int(1), &step);
      if (!s.ok()) return s;
      LoadedAttempt a;
      a.started = {static_cast<uint64_t>(st.Int(0)), step->step, 0, st.Text(3), st.Int(4)};
      if (!Fits(st.Int(2), &a.started.attempt)) return Bad("attempt number " + std::to_string(st.Int(2)));
      if (!st.IsNull(5)) {
        s = Ended(st, a.started, &a.ended.emplace());
        if (!s.ok()) return s;
      }
      step->attempts.push_back(std::move(a));
      return Status::Ok();
    });
  }

  Status Ended(const Row& st, const AttemptStarted& started, AttemptEnded* e) {
    const std::string what = "attempt (submission " + std::to_string(started.submission) + ", step " +
                             std::to_string(started.step) + ", attempt " + std::to_string(started.attempt) + ")";
    e->submission = started.submission;
    e->step = started.step;
    e->attempt = started.attempt;
    e->ended_unix_ms = st.Int(5);
    if (!st.IsNull(16)) e->started_unix_ms = st.Int(16);
    if (!schema::ParseAttemptStatus(st.Text(6), &e->status) || e->status == common::AttemptStatus::kRunning) {
      return Bad(what + " has status \"" + st.Text(6) + "\"");
    }
    int v = 0;
    if (!st.IsNull(7)) {
      if (!Fits(st.Int(7), &v)) return Bad(what + " has exit code " + std::to_string(st.Int(7)));
      e->exit_code = v;
    }
    if (!st.IsNull(8)) {
      if (!Fits(st.Int(8), &v)) return Bad(what + " has signal " + std::to_string(st.Int(8)));
      e->signal = v;
    }
    e->timed_out = st.Int(9) != 0;
    e->cancelled = st.Int(10) != 0;
    e->error = st.Text(11);
    e->stdout_tail = st.Bytes(12);
    e->stderr_tail = st.Bytes(13);
    if (!Fits(st.Int(14), &e->stdout_bytes) || !Fits(st.Int(15), &e->stderr_bytes)) {
      return Bad(what + " has a negative byte count");
    }
    return Status::Ok();
  }

  Status StepEnds() {
    return ForEachRow(tables_.step_ends, [this](const Row& st) {
      LoadedStep* step = nullptr;
      Status s = StepOf("step_ends", st.Int(0), st.Int(1), &step);
      if (!s.ok()) return s;
      StepEnded e{static_cast<uint64_t>(st.Int(0)), step->step, {}, st.Text(3), st.Int(4)};
      if (!schema::ParseStepState(st.Text(2), &e.state) || !common::IsFinal(e.state)) {
        return Bad("step_ends row (submission " + std::to_string(e.submission) + ", step " +
                   std::to_string(e.step) + ") has state \"" + st.Text(2) + "\"");
      }
      step->ended = std::move(e);
      return Status::Ok();
    });
  }

  Status Cancels() {
    return ForEachRow(tables_.cancels, [this](const Row& st) {
      CancelRequested c{static_cast<uint64_t>(st.Int(0)), std::nullopt, st.Text(3), st.Int(4)};
      size_t group = 0;
      uint32_t index = 0;
      Status s = st.IsNull(2) ? GroupOf(KeyedRow("cancels", st), st.Int(0), &group)
                              : Locate("cancels", st.Int(0), st.Int(2), &group, &index);
      if (!s.ok()) return s;
      if (!st.IsNull(2)) c.step = index;
      out_->groups[group].cancels.push_back(std::move(c));
      return Status::Ok();
    });
  }

  Status Errors() {
    return ForEachRow(tables_.errors, [this](const Row& st) {
      const std::string row = KeyedRow("group_errors", st);
      size_t group = 0;
      Status s = GroupOf(row, st.Int(0), &group);
      if (!s.ok()) return s;
      ErrorAdded e{static_cast<uint64_t>(st.Int(0)), 0, st.Text(2), st.Text(3), st.Int(4)};
      if (!Fits(st.Int(1), &e.seq)) return Bad(row + " has a seq no error list reaches");
      out_->groups[group].errors.push_back(std::move(e));
      return Status::Ok();
    });
  }

  // "cancels row (submission 7, seq 2)", for a table keyed (submission, seq)
  // in its first two columns.
  static std::string KeyedRow(const char* table, const Row& st) {
    return std::string(table) + " row (submission " + std::to_string(st.Int(0)) + ", seq " +
           std::to_string(st.Int(1)) + ")";
  }

  Status Finished() {
    return ForEachRow(Dml::kLoadFinished, [this](const Row& st) {
      FinishedSummary f;
      if (!Fits(st.Int(0), &f.submission) || f.submission == 0 || !Fits(st.Int(4), &f.step_count)) {
        return Bad("submissions row " + std::to_string(st.Int(0)) + " has a bad submission or step count");
      }
      f.group_id = st.Text(1);
      f.client = st.Text(2);
      f.submitted_unix_ms = st.Int(3);
      std::optional<GroupEnded> ended;
      Status s = StateAt(st, 5, "end_state", IsEndState, f.submission, &ended);
      if (!s.ok()) return s;
      f.ended = *ended;  // the statement selects rows with an end_state
      finished_index_[f.submission] = out_->finished.size();
      out_->finished.push_back(std::move(f));
      return Status::Ok();
    });
  }

  Status Counts() {
    Status s = ForEachRow(Dml::kCountFinished, [this](const Row& st) {
      const std::string row = "step_ends of submission " + std::to_string(st.Int(0));
      auto it = finished_index_.find(static_cast<uint64_t>(st.Int(0)));
      common::StepState state{};
      if (it == finished_index_.end()) return Bad(row + " belong to no group");
      if (!schema::ParseStepState(st.Text(1), &state) || !common::IsFinal(state)) {
        return Bad(row + " have state \"" + st.Text(1) + "\"");
      }
      out_->finished[it->second].counts[static_cast<int>(state)] = static_cast<uint64_t>(st.Int(2));
      return Status::Ok();
    });
    return s;
  }

  Status WorkerModes() {
    return ForEachRow(Dml::kLoadWorkerModes, [this](const Row& st) {
      WorkerModeSet m{st.Text(0), st.Text(1), st.Text(2), st.Int(3)};
      if (m.worker.empty() || (m.mode != "cordoned" && m.mode != "draining")) {
        return Bad("worker_modes row \"" + m.worker + "\" has mode \"" + m.mode + "\"");
      }
      out_->worker_modes.push_back(std::move(m));
      return Status::Ok();
    });
  }

  // The counter, and never below a group still held (a counter lost to a
  // hand edit must not let a submission be given out twice).
  Status MaxSubmission() {
    Status s = ForEachRow(Dml::kSelectMaxSubmission, [this](const Row& st) {
      if (!Fits(st.Int(0), &out_->max_submission)) return Bad("max_submission " + std::to_string(st.Int(0)));
      return Status::Ok();
    });
    if (!out_->groups.empty()) {
      out_->max_submission = std::max(out_->max_submission, out_->groups.back().accepted.submission);
    }
    if (!out_->finished.empty()) {
      out_->max_submission = std::max(out_->max_submission, out_->finished.back().submission);
    }
    return s;
  }

  RowSource* source_;
  LoadedState* out_;
  Tables tables_;
  uint64_t submission_;
  std::unordered_map<uint64_t, size_t> index_;              // submission -> position in out_->groups
  std::unordered_map<uint64_t, size_t> finished_index_;     // submission -> position in out_->finished
  std::vector<std::map<uint32_t, LoadedStep>> steps_;      // per group, by step index
};

}  // namespace

Status LoadState(RowSource* source, LoadedState* out) {
  LoadedState loaded;
  Loader loader(source, &loaded, Loader::kRunning);
  Status s = loader.Run();
  if (s.ok()) s = loader.RunFinished();
  if (s.ok()) *out = std::move(loaded);
  return s;
}

Status LoadOneGroup(RowSource* source, uint64_t submission, LoadedGroup* out) {
  if (submission == 0 || submission > kMaxStoredUnsigned) {
    return Status::NotFound("no stored group has submission " + std::to_string(submission));
  }
  LoadedState loaded;
  Status s = Loader(source, &loaded, Loader::kOne, submission).Run();
  if (!s.ok()) return s;
  if (loaded.groups.size() != 1) {
    return Status::NotFound("no stored group has submission " + std::to_string(submission) +
                            " (it was forgotten)");
  }
  *out = std::move(loaded.groups.front());
  return Status::Ok();
}

}  // namespace cohort::coordinator::schema
