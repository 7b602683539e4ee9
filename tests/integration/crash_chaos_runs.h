// The crash chaos's groups and what their steps leave behind: each step
// appends a line to a file of its own when an attempt starts (and when it
// succeeds), and CheckStep holds a step's recorded history against those
// lines and against the chaos's kills (tests/integration/crash_chaos_test.cc).
#ifndef COHORT_TESTS_INTEGRATION_CRASH_CHAOS_RUNS_H_
#define COHORT_TESTS_INTEGRATION_CRASH_CHAOS_RUNS_H_

#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/integration/chaos_common.h"

namespace cohort::testing::crash_chaos {

using Json = nlohmann::json;

// The file a step appends its runs to.
inline std::string RunFile(const std::string& runs_dir, const std::string& group, const std::string& step) {
  return runs_dir + "/" + group + "." + step;
}

// A step as a shell script that first notes its attempt's start, with its
// own marker in its environment for the process scans.
inline Json Step(const std::string& id, const std::string& file, const std::string& script, const std::string& mark) {
  return {{"id", id},
          {"shell", "echo \"$COHORT_ATTEMPT start $COHORT_WORKER\" >> " + file + "; " + script},
          {"env", {{"COHORT_TEST_MARK", mark}}}};
}

// A step that ends well also notes the end of its run, with the wall-clock
// time: it tells whether a worker's death can explain a success that never
// reached the coordinator (ChaosLog::ExplainedLoss).
inline std::string Ended(const std::string& file) {
  return "echo \"$COHORT_ATTEMPT end $(date +%s.%N)\" >> " + file;
}

inline Json MakeGroup(Kind kind, const std::string& id, const std::string& mark, const std::string& runs,
               std::mt19937_64& rng) {
  Json steps = Json::array();
  const int n = 1 + static_cast<int>(rng() % 4);
  auto file = [&](const std::string& step) { return RunFile(runs, id, step); };
  // Long enough that a coordinator crash finds many of them running.
  auto short_step = [&](int i) {
    const std::string s = "s" + std::to_string(i);
    return Step(s, file(s), "sleep 0." + std::to_string(1 + rng() % 9) + " && " + Ended(file(s)), mark);
  };
  // Half keep two background children, which a SIGKILLed worker leaves
  // orphaned until it starts again and kills them (worker/leftovers.h).
  auto long_step = [&](int i) {
    const std::string s = "long" + std::to_string(i);
    return Step(s, file(s), rng() % 2 ? "exec sleep 30" : "sleep 30 & sleep 30 & wait", mark);
  };
  Json g = {{"id", id}, {"max_parallel", 1 + rng() % 3}};
  switch (kind) {
    case Kind::kOk:
      for (int i = 0; i < n; ++i) steps.push_back(short_step(i));
      break;
    case Kind::kFailing:
      // on_failure is "cancel" by default: the failure stops the long steps.
      for (int i = 0; i < n; ++i) steps.push_back(long_step(i));
      steps.push_back(Step("bad", file("bad"), "sleep 0.3; echo boom >&2; exit 3", mark));
      g["max_parallel"] = n + 1;
      break;
    case Kind::kTimeout:
      for (int i = 0; i < n; ++i) steps.push_back(short_step(i));
      steps.push_back(Step("slow", file("slow"), "exec sleep 30", mark));
      steps.back()["timeout_s"] = 0.5;
      break;
    case Kind::kCancelled:
      for (int i = 0; i < n; ++i) steps.push_back(long_step(i));
      g["max_parallel"] = n;
      break;
    case Kind::kFlaky:
      // Fails until it has started three times, wherever those ran.
      steps.push_back(Step("flaky", file("flaky"),
                           "[ $(grep -c start " + file("flaky") + ") -ge 3 ] && " + Ended(file("flaky")), mark));
      steps.back()["retry"] = {{"max_attempts", 5}, {"backoff_s", 0.05}};
      break;
  }
  g["steps"] = steps;
  return g;
}

// The runs noted in a step's file, by attempt number: how many "start"
// lines name it, and when each "end" line was written.
struct Runs {
  std::map<uint64_t, int> starts;
  std::map<uint64_t, std::vector<double>> ends;  // seconds since the test's start
};
inline Runs ParseRuns(const std::string& text, double wall_t0) {
  Runs r;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    uint64_t attempt = 0;
    std::string what;
    double at = 0;
    words >> attempt >> what;
    if (what == "end") {
      words >> at;
      r.ends[attempt].push_back(at - wall_t0);
    } else {
      r.starts[attempt]++;
    }
  }
  return r;
}

// An outage of the coordinator, in seconds since the test's start.
struct Outage {
  double from_s, to_s;
};

// What the chaos did, and when (seconds since the test's start).
struct ChaosLog {
  int crashes = 0, worker_kills = 0, kills_during_outage = 0;
  std::vector<Outage> outages;
  std::map<std::string, std::vector<double>> kills;  // by worker
  std::string broken;  // why the chaos stopped early

  // An attempt that ran to its end at `end_s` on `worker` but was recorded
  // lost: only the worker's death before its report was confirmed explains
  // that, so the worker must have been killed soon after, or, if the
  // coordinator was down meanwhile, soon after it came back (the worker
  // keeps the result and reports it when it registers again). Anything else
  // is a result the coordinator lost, and a step that may run again after
  // it succeeded.
  bool ExplainedLoss(const std::string& worker, double end_s) const {
    // Generous for a loaded machine: a report and its commit take
    // milliseconds, re-registering after an outage well under a second.
    double until = end_s + 2;
    for (const Outage& o : outages) {
      if (o.from_s <= until && o.to_s >= end_s) until = std::max(until, o.to_s + 3);
    }
    auto it = kills.find(worker);
    if (it == kills.end()) return false;
    for (double k : it->second) {
      // A kill just before the line was written can still let it through.
      if (k >= end_s - 0.1 && k <= until) return true;
    }
    return false;
  }
};

// Checks 2 and 3 on one step of a final result, given what its file held
// when the client got the result.
inline void CheckStep(const Json& s, const std::string& runs_text, const ChaosLog& chaos, double wall_t0) {
  INFO("step " << s["id"] << ", its runs:\n" << runs_text);
  CheckStepHistory(s);
  const std::string state = s["state"];
  const Json& h = s["history"];
  // What ran. An attempt lost with its worker may or may not have started
  // its process, so it may or may not have a line; every other record says
  // for sure whether it ran.
  const Runs r = ParseRuns(runs_text, wall_t0);
  for (const auto& [attempt, count] : r.starts) {
    CHECK(count == 1);  // no attempt ran twice, on one worker or two
    CHECK(attempt >= 1);
    CHECK(attempt <= h.size());  // nothing ran that the coordinator did not place
  }
  for (const auto& [attempt, times] : r.ends) CHECK(times.size() == 1);
  for (const Json& a : h) {
    const uint64_t n = a["attempt"];
    if (!a["exit_code"].is_null()) CHECK(r.starts.count(n) == 1);
    if (a["status"] == "succeeded") CHECK(r.ends.count(n) == 1);
    if (a["status"] == "worker_lost" && r.ends.count(n)) {
      INFO("attempt " << n << " succeeded at " << r.ends.at(n).front() << " s but was recorded " << a.dump());
      CHECK(chaos.ExplainedLoss(a["worker"], r.ends.at(n).front()));
    }
  }
  if (state == "completed" && !r.starts.empty() && !r.ends.empty()) {
    // Nothing ran after the attempt that succeeded.
    const uint64_t last = h.back()["attempt"];
    CHECK(r.starts.rbegin()->first == last);
    CHECK(r.ends.rbegin()->first == last);
  }
}

}  // namespace cohort::testing::crash_chaos

#endif  // COHORT_TESTS_INTEGRATION_CRASH_CHAOS_RUNS_H_
