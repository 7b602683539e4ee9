// The worker core's test harness (worker/worker_core.h): a fake clock, the
// actions of the last call, and helpers that play the coordinator's and the
// runner's parts.
#ifndef COHORT_TESTS_UNIT_WORKER_CORE_HARNESS_H_
#define COHORT_TESTS_UNIT_WORKER_CORE_HARNESS_H_

#include <string>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "tests/unit/actions_of.h"
#include "worker/worker_core.h"

// Its own namespace: scheduler_harness.h has a Harness of its own, in the
// same test binary.
namespace cohort::testing::worker_core {

using namespace std::chrono_literals;
using common::AttemptId;
using common::FinishedMsg;
using common::Message;
using worker::Action;
using worker::WorkerCore;
using worker::WorkerCoreOptions;

inline WorkerCoreOptions Options() {
  WorkerCoreOptions o;
  o.coordinator = "tcp://coord.example:5701";
  o.name = "w1";
  o.slots = 2;
  o.heartbeat_ms = 1000;
  o.liveness = 3;
  o.max_reconnect_backoff = 8s;
  o.kill_grace = 5s;
  return o;
}

class Harness {
 public:
  explicit Harness(WorkerCoreOptions o = Options()) : core(std::move(o)) {}

  WorkerCore core;
  common::Time now{};  // the fake clock
  std::vector<Action> out;  // actions of the last call only

  void Connect() {
    out.clear();
    core.Connect(now, &out);
  }
  void Advance(common::Duration d) {
    now += d;
    out.clear();
    core.Tick(now, &out);
  }
  void From(Message msg) {
    out.clear();
    core.OnCoordinator(msg, now, &out);
  }
  void Welcome(uint32_t heartbeat_ms = 1000, uint32_t liveness = 3) {
    common::WelcomeMsg w;
    w.heartbeat_ms = heartbeat_ms;
    w.liveness = liveness;
    w.cancel_endpoint = "tcp://0.0.0.0:5702";
    From(w);
  }
  void Broadcast(std::string group, uint64_t submission = 1) {
    out.clear();
    core.OnBroadcast(common::CancelGroupMsg{std::move(group), submission, 0}, now, &out);
  }
  // Sends RUN g/step/attempt of `submission`; if the core asks to start it,
  // reports it started and returns its runner key (0 if the core did not ask).
  uint64_t Run(const std::string& group, uint32_t step = 0, uint32_t attempt = 1, uint64_t submission = 1) {
    From(RunOf(group, step, attempt, submission));
    auto starts = Of<worker::StartStep>();
    if (starts.empty()) return 0;
    REQUIRE(starts.size() == 1);
    out.clear();
    core.StepStarted(starts[0].request.key, now, &out);
    return starts[0].request.key;
  }
  void End(uint64_t key, int exit_code = 0, std::string stdout_tail = "") {
    worker::RunResult r;
    r.key = key;
    r.kind = worker::RunResult::Kind::kExited;
    r.exit_code = exit_code;
    r.stdout_tail = std::move(stdout_tail);
    r.start = r.end = now;
    out.clear();
    core.StepEnded(r, now, &out);
  }

  static common::RunMsg RunOf(const std::string& group, uint32_t step, uint32_t attempt, uint64_t submission = 1) {
    common::RunMsg run;
    run.id = {group, step, attempt, submission};
    run.step_id = "s" + std::to_string(step);
    run.shell = "true";
    return run;
  }

  template <typename T>
  std::vector<T> Of() const {
    return testing::ActionsOf<T>(out);
  }
  // The messages of type T the last call sent to the coordinator.
  template <typename T>
  std::vector<T> Sent() const {
    std::vector<T> r;
    for (const auto& s : Of<worker::SendToCoordinator>()) {
      if (const T* t = std::get_if<T>(s.msg.get())) r.push_back(*t);
    }
    return r;
  }
  bool Noticed(const std::string& event) const { return NoticeOf(event) != nullptr; }
  // The last call's notice `event`, or null.
  const worker::Notice* NoticeOf(const std::string& event) const {
    for (const Action& a : out) {
      const auto* n = std::get_if<worker::Notice>(&a);
      if (n != nullptr && n->event == event) return n;
    }
    return nullptr;
  }
};

}  // namespace cohort::testing::worker_core

#endif  // COHORT_TESTS_UNIT_WORKER_CORE_HARNESS_H_
