// The core as an event stream: refused events change nothing, the same
// events give the same actions, Handle() accepts every event kind as the
// typed calls do, and rule 8 (cost) at scale.
#include <map>
#include <set>

#include "tests/unit/scheduler_harness.h"

namespace cohort::testing {
namespace {

TEST_CASE("events from strangers and bad submissions are refused and change nothing", "[core]") {
  Harness h;
  CHECK(h.core.Heartbeat("ghost", h.now).code() == common::Status::Code::kNotFound);
  CHECK(h.core.Lose("ghost", "x", h.now, &h.out).code() == common::Status::Code::kNotFound);
  coordinator::WorkerJoined bad;
  bad.name = "w";
  bad.slots = 0;
  CHECK(h.core.Join(bad, h.now, &h.out).code() == common::Status::Code::kInvalidArgument);
  common::GroupSpec empty;
  auto s = h.Submit(empty);
  CHECK(s.code() == common::Status::Code::kInvalidArgument);
  CHECK(s.message().find("steps") != std::string::npos);
  REQUIRE(h.Submit(MakeGroup("g", 1)).ok());
  auto other = h.Submit(MakeGroup("g", 2));
  CHECK(other.code() == common::Status::Code::kAlreadyExists);
  CHECK(other.message().find("with another spec") != std::string::npos);
  CHECK(h.core.group_count() == 1);
  // A report about a group nobody knows is fenced, not a crash.
  h.out.clear();
  coordinator::StepFinished stray;
  stray.ref = {"nope", 7, 1};
  stray.worker = "w";
  stray.outcome = Exit(0);
  REQUIRE(h.core.Finished(stray, h.now, &h.out).ok());
  stray.ref = {"g", 99, 1, 1};
  REQUIRE(h.core.Finished(stray, h.now, &h.out).ok());
  CHECK(h.core.stale_reports() == 2);
}

TEST_CASE("the same client sending the same spec again attaches to its group, another spec is refused", "[core]") {
  SchedulerOptions o = Quiet();
  o.journal = true;
  Harness h(o);
  h.Join("w1", 1);
  coordinator::SubmitGroup first{MakeGroup("g", 2), "{}", "alice"};
  std::string id;
  bool attached = true;
  h.out.clear();
  REQUIRE(h.core.Submit(first, h.now, &h.out, &id, &attached).ok());
  CHECK_FALSE(attached);
  const auto d = h.DispatchOf("step1");
  std::vector<coordinator::Record> journal;
  h.core.TakeJournal(&journal);

  // A repeat (its answer was lost): the same group, nothing new, nothing
  // journalled, nothing dispatched again.
  h.out.clear();
  REQUIRE(h.core.Submit(first, h.now, &h.out, &id, &attached).ok());
  CHECK(attached);
  CHECK(id == "alice/g");
  CHECK(h.core.group_count() == 1);
  CHECK(h.Dispatches().empty());
  journal.clear();
  h.core.TakeJournal(&journal);
  CHECK(journal.empty());
  // Still the same group once it has finished.
  h.Finish(d, Exit(0));
  h.Finish(h.DispatchOf("step2"), Exit(0));
  REQUIRE(h.State("alice/g") == GroupState::kCompleted);
  h.out.clear();
  REQUIRE(h.core.Submit(first, h.now, &h.out, &id, &attached).ok());
  CHECK(attached);

  // Another spec under that id: refused.
  coordinator::SubmitGroup changed{MakeGroup("g", 3), "{}", "alice"};
  auto s = h.core.Submit(changed, h.now, &h.out, &id, &attached);
  CHECK(s.code() == common::Status::Code::kAlreadyExists);
  CHECK(s.message().find("another spec") != std::string::npos);
  CHECK(h.core.group_count() == 1);
  // Another client's "g" is a group of its own (group_access.h).
  coordinator::SubmitGroup bob{MakeGroup("g", 2), "{}", "bob"};
  REQUIRE(h.core.Submit(bob, h.now, &h.out, &id, &attached).ok());
  CHECK_FALSE(attached);
  CHECK(id == "bob/g");
  CHECK(h.core.group_count() == 2);
}

TEST_CASE("groups without an id get one: finished groups are forgotten after retention", "[core]") {
  SchedulerOptions o = Quiet();
  o.retention = 60s;
  Harness h(o);
  h.Join("w", 1);
  auto g = MakeGroup("", 1);
  std::string id;
  h.out.clear();
  REQUIRE(h.core.Submit(g, h.now, &h.out, &id).ok());
  CHECK_FALSE(id.empty());
  h.Finish(h.DispatchOf("step1"), Exit(0));
  CHECK(h.GroupFinishedIn(id));
  h.Advance(59s);
  CHECK(h.core.Result(id));
  h.Advance(1s);
  CHECK_FALSE(h.core.Result(id));
  CHECK(h.core.group_count() == 0);
}

TEST_CASE("the event stream decides everything: the same events give the same actions", "[core]") {
  auto run = [] {
    SchedulerOptions o = Quiet();
    o.seed = 42;
    Harness h(o);
    std::vector<std::string> log;
    auto record = [&] {
      for (auto& a : h.out) {
        if (auto* d = std::get_if<Dispatch>(&a)) {
          log.push_back(d->ref.group + "/" + std::to_string(d->ref.step) + "#" +
                        std::to_string(d->ref.attempt) + "@" + d->worker);
        }
      }
    };
    h.Join("a", 2);
    h.Join("b", 3);
    auto g = MakeGroup("x", 20);
    g.retry.max_attempts = 3;
    g.retry.jitter = 0.3;
    REQUIRE(h.Submit(g).ok());
    record();
    REQUIRE(h.Submit(MakeGroup("y", 5)).ok());
    record();
    for (int round = 0; round < 200 && h.core.Result("x")->state == GroupState::kRunning; ++round) {
      auto x = *h.core.Result("x");
      auto y = *h.core.Result("y");
      for (const auto* r : {&x, &y}) {
        for (uint32_t i = 0; i < r->steps.size(); ++i) {
          const auto& s = r->steps[i];
          if (s.state != StepState::kRunning) continue;
          const auto& a = s.attempts.back();
          h.out.clear();
          REQUIRE(h.core
                      .Finished({{r->id, i, a.attempt, r->submission}, a.worker, Exit((i + a.attempt) % 3 == 0 ? 1 : 0)}, h.now,
                                &h.out)
                      .ok());
          record();
        }
      }
      h.Advance(1s);
      record();
    }
    return log;
  };
  auto first = run();
  CHECK(first.size() > 25);
  CHECK(first == run());
}

TEST_CASE("Handle() feeds journaled events exactly as the direct calls do", "[core]") {
  // Two cores: one driven by the typed calls, one by Event values (what a
  // journal would replay). Their actions must match one for one.
  auto describe = [](const std::vector<Action>& out) {
    std::string s;
    for (const Action& a : out) {
      if (auto* d = std::get_if<Dispatch>(&a)) s += "D" + d->ref.group + std::to_string(d->ref.step) + d->worker;
      if (auto* c = std::get_if<CancelAttempt>(&a)) s += "C" + std::to_string(c->ref.step);
      if (std::holds_alternative<coordinator::BroadcastCancel>(a)) s += "B";
      if (auto* f = std::get_if<coordinator::GroupFinished>(&a)) s += "F" + f->group;
    }
    return s;
  };
  Harness direct, replayed;
  std::vector<Action> out;
  auto both = [&](auto call, coordinator::Event event) {
    direct.out.clear();
    out.clear();
    REQUIRE(call().ok());
    REQUIRE(replayed.core.Handle(std::move(event), replayed.now, &out).ok());
    CHECK(describe(direct.out) == describe(out));
  };
  coordinator::WorkerJoined w;
  w.name = "w1";
  w.slots = 2;
  both([&] { return direct.core.Join(w, direct.now, &direct.out); }, w);
  both([&] { return direct.core.Submit(MakeGroup("g", 3), direct.now, &direct.out); },
       coordinator::SubmitGroup{MakeGroup("g", 3), "", ""});
  // Member by member: from a braced initializer, GCC 12 at -O3 takes the
  // group's string for uninitialized (-Wmaybe-uninitialized, a false alarm).
  coordinator::StepFinished failed;
  failed.ref = {"g", 0, 1, 1};
  failed.worker = "w1";
  failed.outcome = Exit(1);
  both([&] { return direct.core.Finished(failed, direct.now, &direct.out); }, failed);
  coordinator::StepFinished stopped = failed;
  stopped.ref.step = 1;
  stopped.outcome = Cancelled();
  both([&] { return direct.core.Finished(stopped, direct.now, &direct.out); }, stopped);
  CHECK(replayed.State("g") == GroupState::kFailed);
  CHECK(describe(out) == "Fg");
  both([&] { return direct.core.Heartbeat("w1", direct.now); }, coordinator::WorkerHeartbeat{"w1", std::nullopt});
  both([&] { return direct.core.Lose("w1", "bye", direct.now, &direct.out); }, coordinator::WorkerLost{"w1", "bye"});
  CHECK(replayed.core.Workers().empty());
}

TEST_CASE("scale: 200000 steps and 2000 small groups run to completion", "[core][cost]") {
  Harness h;
  h.Join("w1", 64);
  h.Join("w2", 64);
  REQUIRE(h.Submit(MakeGroup("big", 200000)).ok());
  for (int i = 0; i < 2000; ++i) REQUIRE(h.Submit(MakeGroup("s" + std::to_string(i), 3)).ok());
  // Play the workers: finish the oldest running attempt, collect new dispatches.
  std::deque<Dispatch> running;
  std::vector<Action> out;
  h.out.clear();
  // Every dispatch so far came from the submits; gather them from the results.
  for (const auto& sum : h.core.Groups()) {
    auto r = h.core.Result(sum.id);
    for (uint32_t i = 0; i < r->steps.size(); ++i) {
      if (r->steps[i].state == StepState::kRunning) {
        const auto& a = r->steps[i].attempts.back();
        running.push_back({{sum.id, i, a.attempt, sum.submission}, a.worker, std::nullopt, {}, {}});
      }
    }
  }
  REQUIRE(running.size() == 128);
  size_t finished = 0;
  while (!running.empty()) {
    Dispatch d = running.front();
    running.pop_front();
    out.clear();
    REQUIRE(h.core.Finished({d.ref, d.worker, Exit(0)}, h.now, &out).ok());
    for (auto& a : out) {
      if (auto* nd = std::get_if<Dispatch>(&a)) running.push_back(*nd);
      if (std::holds_alternative<coordinator::GroupFinished>(a)) ++finished;
    }
  }
  CHECK(finished == 2001);
  CHECK(h.core.Summary("big")->count(StepState::kCompleted) == 200000);
  CHECK(h.core.Summary("big")->state == GroupState::kCompleted);
}


TEST_CASE("a dispatch holds its own step: actions stay valid after the group is forgotten", "[core]") {
  SchedulerOptions o = Quiet();
  o.retention = 1s;
  Harness h(o);
  h.Join("w", 1);
  common::GroupSpec g;
  g.id = "g";
  common::StepSpec step;
  step.id = "s";
  step.argv = {"echo", std::string(100, 'x')};
  step.env = {{"K", "V"}};
  step.cwd = "/tmp";
  g.steps.push_back(step);
  REQUIRE(h.Submit(g).ok());
  const std::vector<Action> kept = h.out;
  h.Finish(h.DispatchOf("s"), Exit(0));
  h.Advance(2s);
  REQUIRE(h.core.group_count() == 0);
  const auto* d = std::get_if<Dispatch>(&kept.at(0));
  REQUIRE(d);
  CHECK(d->spec.id == "s");
  CHECK(d->spec.argv == step.argv);
  CHECK(d->spec.env == step.env);
  CHECK(d->spec.cwd == "/tmp");
}

}  // namespace
}  // namespace cohort::testing
