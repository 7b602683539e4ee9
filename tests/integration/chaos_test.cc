// Chaos: a coordinator and three workers, a few hundred
// mixed groups from several concurrent clients (some fail, some time out,
// some are cancelled by their client), while workers are SIGKILLed and
// restarted at random moments. Afterwards every group has ended, every step
// has exactly one final result, nothing of a failed or cancelled group still
// runs, no process of any step is left, and the coordinator's memory is back
// near where it started once retention has passed.
//
// Randomness is seeded: COHORT_CHAOS_SEED=N replays a run's plan (the groups,
// their kinds, the clients' cancel delays, the kill schedule); the seed is
// printed first. COHORT_CHAOS_GROUPS=N (default 300) and COHORT_CHAOS_CLIENTS=N
// (default 5) make a longer manual run, e.g. COHORT_CHAOS_GROUPS=3000.
// Timing between processes is not replayable; the plan is.
#include <signal.h>

#include <atomic>
#include <cstdlib>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include <catch2/catch.hpp>

#include "tests/integration/chaos_common.h"
#include "tests/integration/cluster.h"
#include "tests/integration/peer.h"

namespace cohort::testing {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;


struct Outcome {
  Kind kind;
  std::string id;
  Json result;  // the WAIT's document
  std::string error;  // set when the client could not get one
  bool leftovers = false;  // processes of a failed or cancelled group outlived its end
};

Json Step(const std::string& id, Json body, const std::string& mark) {
  body["id"] = id;
  body["env"] = {{"COHORT_TEST_MARK", mark}};
  return body;
}

Json MakeGroup(Kind kind, const std::string& id, const std::string& mark, const std::string& dir,
               std::mt19937_64& rng) {
  Json steps = Json::array();
  const int n = 1 + static_cast<int>(rng() % 4);
  auto short_step = [&](int i) {
    return Step("s" + std::to_string(i),
                {{"shell", "sleep 0.0" + std::to_string(1 + rng() % 9) + "; echo ok"}}, mark);
  };
  // Half the long steps run without a shell; the others keep two background
  // children, which a SIGKILLed worker leaves orphaned until it starts again
  // and kills them (worker/leftovers.h).
  auto long_step = [&](int i) {
    Json body = rng() % 2 ? Json{{"command", {"sleep", "30"}}} : Json{{"shell", "sleep 30 & sleep 30 & wait"}};
    return Step("long" + std::to_string(i), body, mark);
  };
  Json g = {{"id", id}, {"max_parallel", 1 + rng() % 3}};
  switch (kind) {
    case Kind::kOk:
      for (int i = 0; i < n; ++i) steps.push_back(short_step(i));
      break;
    case Kind::kFailing:
      for (int i = 0; i < n; ++i) steps.push_back(long_step(i));
      steps.push_back(Step("bad", {{"shell", "sleep 0.2; echo boom >&2; exit 3"}}, mark));
      g["max_parallel"] = n + 1;
      break;
    case Kind::kTimeout:
      for (int i = 0; i < n; ++i) steps.push_back(short_step(i));
      steps.push_back(Step("slow", {{"command", {"sleep", "30"}}, {"timeout_s", 0.3}}, mark));
      break;
    case Kind::kCancelled:
      for (int i = 0; i < n; ++i) steps.push_back(long_step(i));
      g["max_parallel"] = n;
      break;
    case Kind::kFlaky: {
      // Fails on its first two runs, wherever they happen.
      const std::string f = dir + "/" + id + ".count";
      steps.push_back(Step("flaky",
                           {{"shell", "n=$(cat " + f + " 2>/dev/null || echo 0); echo $((n+1)) > " + f +
                                          "; [ $n -ge 2 ]"},
                            {"retry", {{"max_attempts", 5}, {"backoff_s", 0.05}}}},
                           mark));
      break;
    }
  }
  g["steps"] = steps;
  return g;
}

// Every step final, its history closed and consistent with its state.
void CheckStepsFinal(const Outcome& o) {
  INFO("group " << o.id << " (" << KindName(o.kind) << "): " << o.result.dump());
  for (const Json& s : o.result["steps"]) {
    CheckStepHistory(s);
  }
}

// One client's share of the plan: group i, submitted, maybe cancelled, waited
// for, and its leftovers checked. The plan depends only on the seed and i.
Outcome RunGroup(Cluster& c, uint64_t seed, int i, const std::string& mark) {
  std::mt19937_64 rng(seed * 1000003 + static_cast<uint64_t>(i));
  const Kind kind = static_cast<Kind>(rng() % 5);
  Outcome o{kind, "chaos-" + std::to_string(i), Json(), "", false};
  const std::string gmark = mark + "/" + o.id + "/";
  const std::string file = c.dir() + "/" + o.id + ".json";
  WriteFile(file, MakeGroup(kind, o.id, gmark, c.dir(), rng).dump());
  RunOutput sub = c.Cli({"submit", file});
  if (sub.exit_code != 0) {
    o.error = "submit: " + sub.err;
    return o;
  }
  if (kind == Kind::kCancelled) {
    // A random moment in the group's life, part of the replayable plan.
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 1500));
    RunOutput cancel = c.Cli({"cancel", o.id});
    // Its workers' deaths may have failed the group first; the check of its
    // final state below allows that.
    const bool ended_first = cancel.err.find("has already finished failed") != std::string::npos;
    if (cancel.exit_code != 0 && !ended_first) o.error = "cancel: " + cancel.err;
  }
  RunOutput w = c.Cli({"wait", o.id, "--json"}, 180s);
  o.result = Json::parse(w.out, nullptr, false);
  if (o.result.is_discarded() || !o.result.is_object()) o.error += " wait: " + w.err;
  const std::string state = o.result.is_object() ? o.result.value("state", "") : "";
  if (state == "failed" || state == "cancelled") {
    o.leftovers = !WaitUntil([&] { return ProcessesWith(gmark).empty(); }, 3s);
  }
  return o;
}

// The killer: SIGKILLs a random worker at a random moment and brings it back
// after a random pause, until the clients are done. Returns the kills.
int KillWorkers(Cluster& c, uint64_t seed, const std::vector<std::string>& names,
                const std::atomic<int>& clients_left) {
  int kills = 0;
  std::mt19937_64 rng(seed);
  while (clients_left > 0) {
    const auto pause = std::chrono::milliseconds(300 + rng() % 1200);
    WaitUntil([&] { return clients_left == 0; }, pause);  // the chaos's own random rhythm
    if (clients_left == 0) break;
    const std::string& victim = names[rng() % names.size()];
    c.worker(victim).Kill(SIGKILL);
    c.worker(victim).Wait(10s);
    ++kills;
    WaitUntil([&] { return clients_left == 0; }, std::chrono::milliseconds(rng() % 800));
    c.StartWorker(victim, 3);
  }
  return kills;
}

// Checks 1 to 3 below on one group; counts its attempts lost with a worker.
size_t CheckOutcome(const Outcome& o, std::map<std::string, int>* tally) {
  size_t lost_attempts = 0;
  if (o.result.is_object()) {
    for (const Json& s : o.result["steps"]) {
      for (const Json& a : s["history"]) lost_attempts += a["status"] == "worker_lost";
    }
  }
  INFO("group " << o.id << " (" << KindName(o.kind) << "): " << o.error);
  REQUIRE(o.error.empty());
  const std::string state = o.result["state"];
  ++(*tally)[std::string(KindName(o.kind)) + "/" + state];
  // 1. Every group ended, with a result document.
  CHECK(state != "running");
  // 2. Every step has exactly one final result.
  CheckStepsFinal(o);
  // Kinds that cannot complete did not.
  if (o.kind == Kind::kFailing || o.kind == Kind::kTimeout || o.kind == Kind::kCancelled) {
    CHECK(state != "completed");
  }
  if (o.kind == Kind::kCancelled) CHECK((state == "cancelled" || state == "failed"));
  // 3. Nothing of a failed or cancelled group ran on after its end.
  CHECK_FALSE(o.leftovers);
  return lost_attempts;
}

// A result read again later is the same: no late report changed a step.
void CheckResultsStable(Cluster& c, const std::vector<Outcome>& outcomes, int groups) {
  for (int i = 0; i < groups; i += 17) {
    const Outcome* o = nullptr;
    for (const Outcome& x : outcomes) o = x.id == "chaos-" + std::to_string(i) ? &x : o;
    Json again = c.Status(o->id);
    if (!again.is_object()) continue;  // already forgotten by retention
    CHECK(again["state"] == o->result["state"]);
    for (size_t s = 0; s < again["steps"].size(); ++s) {
      CHECK(again["steps"][s]["state"] == o->result["steps"][s]["state"]);
      CHECK(again["steps"][s]["attempts"] == o->result["steps"][s]["attempts"]);
    }
  }
}

TEST_CASE("chaos - mixed groups from concurrent clients while workers are SIGKILLed and restarted",
          "[e2e][chaos]") {
  const ChaosRun run = ReadChaosRun("chaos", "COHORT_CHAOS", 5);
  const uint64_t seed = run.seed;
  const int groups = run.groups, clients = run.clients;
  INFO("replay with COHORT_CHAOS_SEED=" << seed);

  Cluster c;
  c.StartCoordinator({"--retention", "10", "--cancel-resend", "0.5", "--backstop-grace", "15"});
  const std::vector<std::string> names = {"w0", "w1", "w2"};
  for (const auto& n : names) c.StartWorker(n, 3);
  const pid_t coord = c.coordinator().pid();
  // The baseline is taken once the coordinator has served a group, so
  // one-time allocations (sockets, the first pipes) are in it.
  REQUIRE(c.Cli({"submit", "--wait", "--", "true"}).exit_code == 0);
  const long base_kib = RssKiB(coord);
  const std::string mark = c.Marker();
  const auto t0 = Clock::now();

  std::atomic<int> next{0};
  std::atomic<int> clients_left{clients};
  std::mutex mu;
  std::vector<Outcome> outcomes;
  std::vector<std::thread> threads;
  for (int t = 0; t < clients; ++t) {
    threads.emplace_back([&] {
      for (int i = next++; i < groups; i = next++) {
        Outcome o = RunGroup(c, seed, i, mark);
        std::lock_guard<std::mutex> lock(mu);
        outcomes.push_back(std::move(o));
      }
      --clients_left;
    });
  }
  const int kills = KillWorkers(c, seed, names, clients_left);
  for (auto& th : threads) th.join();
  const auto ran = Clock::now() - t0;

  REQUIRE(outcomes.size() == static_cast<size_t>(groups));
  std::map<std::string, int> tally;
  size_t lost_attempts = 0;
  for (const Outcome& o : outcomes) lost_attempts += CheckOutcome(o, &tally);
  // The coordinator agrees: nothing is running.
  RunOutput list = c.Cli({"groups", "--json"});
  for (const Json& g : Json::parse(list.out)) CHECK(g["state"] != "running");
  CheckResultsStable(c, outcomes, groups);
  // 4. No process of any step is left anywhere on the machine.
  CHECK(WaitUntil([&] { return ProcessesWith(mark).empty(); }, 20s));
  // 5. Once retention has passed, the coordinator holds nothing and its
  // memory is back near its start.
  REQUIRE(WaitUntil(
      [&] {
        Json l = Json::parse(c.Cli({"groups", "--json"}).out, nullptr, false);
        return l.is_array() && l.empty();
      },
      60s));
  const long end_kib = RssKiB(coord);
  std::cout << "chaos: " << groups << " groups, " << kills << " worker kills, " << lost_attempts
            << " attempts lost with their worker, in "
            << std::chrono::duration_cast<std::chrono::seconds>(ran).count() << " s; coordinator RSS "
            << base_kib << " KiB at start, " << end_kib << " KiB after retention, peak " << PeakRssKiB(coord)
            << " KiB\n";
  for (const auto& [k, n] : tally) std::cout << "  " << k << ": " << n << "\n";
  CHECK(kills > 0);
  CHECK(lost_attempts > 0);  // the kills hit running steps
  if (kRssMeaningful) CHECK(end_kib < base_kib + 16 * 1024);
}

}  // namespace
}  // namespace cohort::testing
