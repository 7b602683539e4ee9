// Measures what the scheduling core costs in memory: resident bytes per
// pending step of one 1,000,000-step group, and per group for 10,000 small
// groups, and the time to run them all through a simulated cluster.
// Usage: core_memory [steps] [groups]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <string>

#include "coordinator/scheduler.h"

namespace {

using cohort::coordinator::Action;
using cohort::coordinator::Dispatch;
using cohort::coordinator::Scheduler;

long RssKiB() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return -1;
}

cohort::common::GroupSpec Group(const std::string& id, int steps) {
  cohort::common::GroupSpec g;
  g.id = id;
  g.steps.resize(steps);
  for (int i = 0; i < steps; ++i) {
    g.steps[i].id = "step-" + std::to_string(i);
    g.steps[i].shell = "true";
  }
  return g;
}

}  // namespace

int main(int argc, char** argv) {
  const int steps = argc > 1 ? std::atoi(argv[1]) : 1'000'000;
  const int groups = argc > 2 ? std::atoi(argv[2]) : 10'000;
  cohort::coordinator::SchedulerOptions options;
  options.heartbeat_interval = std::chrono::hours(24);
  Scheduler core(options);
  cohort::common::Time now{};
  std::vector<Action> out;

  long before_spec = RssKiB();
  cohort::common::GroupSpec big = Group("big", steps);
  long before = RssKiB();
  auto t0 = std::chrono::steady_clock::now();
  if (!core.Submit(std::move(big), now, &out).ok()) return 1;
  long after_big = RssKiB();
  for (int i = 0; i < groups; ++i) {
    if (!core.Submit(Group("small-" + std::to_string(i), 3), now, &out).ok()) return 1;
  }
  long after_small = RssKiB();
  std::printf("pending steps: %d in one group: %.0f bytes/step in all (%.0f for the spec, %.0f of core state)\n",
              steps, (after_big - before_spec) * 1024.0 / steps, (before - before_spec) * 1024.0 / steps,
              (after_big - before) * 1024.0 / steps);
  std::printf("small groups: %d x 3 steps: %.0f bytes/group\n", groups,
              (after_small - after_big) * 1024.0 / groups);

  cohort::coordinator::WorkerJoined w;
  for (int i = 0; i < 100; ++i) {
    w.name = "w" + std::to_string(i);
    w.slots = 8;
    out.clear();
    if (!core.Join(w, now, &out).ok()) return 1;
  }
  std::deque<Dispatch> running;
  for (auto& a : out) {
    if (auto* d = std::get_if<Dispatch>(&a)) running.push_back(std::move(*d));
  }
  // Join's actions were cleared between workers; collect the placed attempts.
  for (const auto& s : core.Groups()) {
    auto r = core.Result(s.id);
    if (s.id != "big") continue;
    for (uint32_t i = 0; i < r->steps.size() && running.size() < 800; ++i) {
      if (r->steps[i].state == cohort::common::StepState::kRunning) {
        Dispatch d;
        d.ref.group = s.id;
        d.ref.step = i;
        d.ref.attempt = 1;
        d.worker = r->steps[i].attempts.back().worker;
        running.push_back(std::move(d));
      }
    }
  }
  size_t done = 0;
  auto t1 = std::chrono::steady_clock::now();
  while (!running.empty()) {
    Dispatch d = std::move(running.front());
    running.pop_front();
    out.clear();
    cohort::common::AttemptOutcome ok;
    ok.exit_code = 0;
    if (!core.Finished({d.ref, d.worker, ok}, now, &out).ok()) return 1;
    ++done;
    for (auto& a : out) {
      if (auto* nd = std::get_if<Dispatch>(&a)) running.push_back(std::move(*nd));
    }
  }
  auto t2 = std::chrono::steady_clock::now();
  double secs = std::chrono::duration<double>(t2 - t1).count();
  std::printf("ran %zu attempts through the core in %.2fs: %.0f steps/s (submit took %.2fs)\n", done, secs,
              done / secs, std::chrono::duration<double>(t1 - t0).count());
  std::printf("peak RSS %ld KiB\n", RssKiB());
  return 0;
}
