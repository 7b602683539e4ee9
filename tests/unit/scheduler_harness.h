// A small harness around the Scheduler for unit tests: a fake clock, the
// actions of the last call, and helpers that play a worker's part.
#ifndef COHORT_TESTS_UNIT_SCHEDULER_HARNESS_H_
#define COHORT_TESTS_UNIT_SCHEDULER_HARNESS_H_

#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "coordinator/scheduler.h"
#include "tests/unit/actions_of.h"

namespace cohort::testing {

using common::GroupState;
using common::StepState;
using coordinator::Action;
using coordinator::AttemptRef;
using coordinator::CancelAttempt;
using coordinator::Dispatch;
using coordinator::Scheduler;
using coordinator::SchedulerOptions;
using namespace std::chrono_literals;

inline common::StepSpec ShellStep(std::string id, std::string shell = "true") {
  common::StepSpec s;
  s.id = std::move(id);
  s.shell = std::move(shell);
  return s;
}

inline common::GroupSpec MakeGroup(std::string id, int steps) {
  common::GroupSpec g;
  g.id = std::move(id);
  for (int i = 1; i <= steps; ++i) g.steps.push_back(ShellStep("step" + std::to_string(i)));
  return g;
}

inline common::AttemptOutcome Exit(int code) {
  common::AttemptOutcome o;
  o.exit_code = code;
  return o;
}

inline common::AttemptOutcome Cancelled() {
  common::AttemptOutcome o;
  o.signal = 15;
  o.cancelled = true;
  return o;
}

inline common::AttemptOutcome TimedOut() {
  common::AttemptOutcome o;
  o.signal = 15;
  o.timed_out = true;
  return o;
}

// Options for tests that are not about heartbeats: workers stay alive for a
// day of fake time without sending any.
inline SchedulerOptions Quiet(SchedulerOptions o = {}) {
  o.heartbeat_interval = std::chrono::hours(24);
  return o;
}

class Harness {
 public:
  explicit Harness(SchedulerOptions options = Quiet()) : core(options) {}

  Scheduler core;
  common::Time now{};  // the fake clock
  std::vector<Action> out;  // actions of the last call only

  void Advance(common::Duration d) {
    now += d;
    out.clear();
    core.Tick(now, &out);
  }

  common::Status Submit(common::GroupSpec g) {
    out.clear();
    return core.Submit(std::move(g), now, &out);
  }

  void Join(std::string name, int slots, std::vector<std::string> agents = {}) {
    out.clear();
    coordinator::WorkerJoined j;
    j.name = std::move(name);
    j.slots = slots;
    j.agents = std::move(agents);
    REQUIRE(core.Join(j, now, &out).ok());
  }

  // Reports the end of the attempt `d` (a dispatch seen earlier).
  void Finish(const coordinator::Dispatch& d, common::AttemptOutcome o) {
    out.clear();
    REQUIRE(core.Finished({d.ref, d.worker, std::move(o)}, now, &out).ok());
  }

  template <typename T>
  std::vector<T> Of() const {
    return testing::ActionsOf<T>(out);
  }

  std::vector<coordinator::Dispatch> Dispatches() const { return Of<coordinator::Dispatch>(); }

  // The dispatch of step `id` among the last actions; fails the test if absent.
  coordinator::Dispatch DispatchOf(const std::string& step_id) const {
    for (const auto& d : Dispatches()) {
      if (d.spec.id == step_id) return d;
    }
    FAIL("no dispatch of " << step_id);
    return {};
  }

  common::StepResult Step(const std::string& group, const std::string& step_id) const {
    auto r = core.Result(group);
    REQUIRE(r);
    for (const auto& s : r->steps) {
      if (s.id == step_id) return s;
    }
    FAIL("no step " << step_id);
    return {};
  }

  common::GroupState State(const std::string& group) const {
    auto r = core.Result(group);
    REQUIRE(r);
    return r->state;
  }

  bool GroupFinishedIn(const std::string& group) const {
    for (const auto& f : Of<coordinator::GroupFinished>()) {
      if (f.group == group) return true;
    }
    return false;
  }
};

}  // namespace cohort::testing

#endif  // COHORT_TESTS_UNIT_SCHEDULER_HARNESS_H_
