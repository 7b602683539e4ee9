#include "coordinator/store.h"

#include "common/quote.h"

namespace cohort::coordinator {

namespace {

std::string Key(const char* kind, uint64_t submission) {
  return std::string(kind) + " submission=" + std::to_string(submission);
}

std::string Key(const char* kind, uint64_t submission, uint32_t step) {
  return Key(kind, submission) + " step=" + std::to_string(step);
}

std::string Key(const char* kind, uint64_t submission, uint32_t step, uint32_t attempt) {
  return Key(kind, submission, step) + " attempt=" + std::to_string(attempt);
}

struct Describer {
  std::string operator()(const GroupAccepted& r) const {
    return Key("GroupAccepted", r.submission) + " group=" + common::Quote(r.group_id);
  }
  std::string operator()(const AttemptStarted& r) const {
    return Key("AttemptStarted", r.submission, r.step, r.attempt);
  }
  std::string operator()(const AttemptEnded& r) const {
    return Key("AttemptEnded", r.submission, r.step, r.attempt);
  }
  std::string operator()(const StepEnded& r) const { return Key("StepEnded", r.submission, r.step); }
  std::string operator()(const CancelRequested& r) const {
    return r.step ? Key("CancelRequested", r.submission, *r.step) : Key("CancelRequested", r.submission);
  }
  std::string operator()(const GroupStopped& r) const { return Key("GroupStopped", r.submission); }
  std::string operator()(const ErrorAdded& r) const {
    return Key("ErrorAdded", r.submission) + " seq=" + std::to_string(r.seq);
  }
  std::string operator()(const GroupEnded& r) const { return Key("GroupEnded", r.submission); }
  std::string operator()(const GroupForgotten& r) const { return Key("GroupForgotten", r.submission); }
  std::string operator()(const WorkerModeSet& r) const {
    return "WorkerModeSet worker=" + common::Quote(r.worker) + " mode=" + r.mode;
  }
};

}  // namespace

std::string Describe(const Record& record) { return std::visit(Describer{}, record); }

}  // namespace cohort::coordinator
