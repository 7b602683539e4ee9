#include "coordinator/store_plan.h"

#include <variant>

namespace cohort::coordinator::schema {

using common::Status;

namespace {

int64_t Signed(uint64_t v) { return static_cast<int64_t>(v); }  // CheckRecord keeps v <= INT64_MAX

class Planner {
 public:
  explicit Planner(std::vector<Op>* out) : out_(out) {}

  void Plan(const Record& record, size_t index) {
    index_ = index;
    std::visit([this](const auto& r) { Add(r); }, record);
  }

 private:
  void Push(Dml which, std::vector<Param> params, std::string missing = {}) {
    out_->push_back(Op{which, std::move(params), std::move(missing), index_});
  }

  void Add(const GroupAccepted& r) {
    // The counter refuses a submission at or below the highest given out,
    // even one whose rows were forgotten since.
    Push(Dml::kRaiseMaxSubmission, {Param::Int(Signed(r.submission))},
         "submission " + std::to_string(r.submission) + " was given out already (at or below the highest so far)");
    Push(Dml::kAcceptGroup, {Param::Int(Signed(r.submission)), Param::Text(r.group_id), Param::Text(r.client),
                             Param::Int(r.submitted_unix_ms), Param::Int(Signed(r.step_count))});
    Push(Dml::kStoreSpec, {Param::Int(Signed(r.submission)), Param::Text(r.spec_json)});
  }

  void Add(const AttemptStarted& r) {
    Push(Dml::kStartAttempt,
         {Param::Int(Signed(r.submission)), Param::Int(r.step), Param::Int(r.attempt), Param::Text(r.worker),
          Param::Int(r.dispatched_unix_ms)},
         "no such group, or no such step in it");
  }

  void Add(const AttemptEnded& r) {
    auto maybe = [](const std::optional<int64_t>& v) { return v ? Param::Int(*v) : Param::Null(); };
    auto maybe_int = [](const std::optional<int>& v) { return v ? Param::Int(*v) : Param::Null(); };
    Push(Dml::kEndAttempt,
         {Param::Int(Signed(r.submission)), Param::Int(r.step), Param::Int(r.attempt), Param::Int(r.ended_unix_ms),
          Param::Text(common::AttemptStatusName(r.status)), maybe_int(r.exit_code), maybe_int(r.signal),
          Param::Int(r.timed_out ? 1 : 0), Param::Int(r.cancelled ? 1 : 0), Param::Text(r.error),
          Param::Bytes(r.stdout_tail), Param::Bytes(r.stderr_tail), Param::Int(Signed(r.stdout_bytes)),
          Param::Int(Signed(r.stderr_bytes)), maybe(r.started_unix_ms)},
         "no such attempt was started, or it has ended already");
  }

  void Add(const StepEnded& r) {
    Push(Dml::kEndStep,
         {Param::Int(Signed(r.submission)), Param::Int(r.step), Param::Text(common::StepStateName(r.state)),
          Param::Text(r.error), Param::Int(r.unix_ms)},
         "no such group, or no such step in it");
  }

  void Add(const CancelRequested& r) {
    Push(Dml::kRequestCancel,
         {Param::Int(Signed(r.submission)), r.step ? Param::Int(*r.step) : Param::Null(), Param::Text(r.who),
          Param::Int(r.unix_ms)},
         "no such group, or no such step in it");
  }

  // A group stops once: a second GroupStopped, or one after GroupEnded, does
  // not fit what is stored (the core asking twice is its bug, and the first
  // stop's state is the one the group ends in), so it fails the batch the
  // way a second GroupEnded does.
  void Add(const GroupStopped& r) {
    Push(Dml::kStopGroup,
         {Param::Int(Signed(r.submission)), Param::Text(common::GroupStateName(r.state)), Param::Int(r.unix_ms)},
         "no such group, or it is stopping or has ended already");
  }

  void Add(const ErrorAdded& r) {
    Push(Dml::kAddError,
         {Param::Int(Signed(r.submission)), Param::Int(r.seq), Param::Text(r.step_id), Param::Text(r.error),
          Param::Int(r.unix_ms)},
         "no such group");
  }

  void Add(const GroupEnded& r) {
    Push(Dml::kEndGroup,
         {Param::Int(Signed(r.submission)), Param::Text(common::GroupStateName(r.state)), Param::Int(r.unix_ms)},
         "no such group, or it has ended already");
  }

  void Add(const GroupForgotten& r) {
    // Children first: their rows refer to the group's.
    for (Dml which :
         {Dml::kForgetAttempts, Dml::kForgetStepEnds, Dml::kForgetCancels, Dml::kForgetErrors, Dml::kForgetSpec}) {
      Push(which, {Param::Int(Signed(r.submission))});
    }
    Push(Dml::kForgetGroup, {Param::Int(Signed(r.submission))}, "no such group");
  }

  void Add(const WorkerModeSet& r) {
    if (r.mode == "ready") {
      Push(Dml::kClearWorkerMode, {Param::Text(r.worker)});
    } else {
      Push(Dml::kSetWorkerMode, {Param::Text(r.worker), Param::Text(r.mode), Param::Text(r.who), Param::Int(r.unix_ms)});
    }
  }

  std::vector<Op>* out_;
  size_t index_ = 0;
};

}  // namespace

std::vector<Op> PlanBatch(const std::vector<Record>& batch) {
  std::vector<Op> ops;
  ops.reserve(batch.size() + 2);
  Planner planner(&ops);
  for (size_t i = 0; i < batch.size(); ++i) planner.Plan(batch[i], i);
  return ops;
}

Status RecordError(const std::vector<Record>& batch, size_t index, const Status& cause) {
  return Status::FromCode(cause.code(), Describe(batch[index]) + " (record " + std::to_string(index + 1) + " of " +
                                            std::to_string(batch.size()) + "): " + cause.message());
}

}  // namespace cohort::coordinator::schema
