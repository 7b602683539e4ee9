// Crash chaos: a durable coordinator and three workers, a few hundred mixed
// groups from several concurrent clients, while the coordinator is SIGKILLed
// at random moments and started again on the same state directory, and
// workers are SIGKILLed and restarted too (now and then while the
// coordinator is down). The same runs on PostgreSQL with two coordinators,
// where each crash kills the leader, the standby takes over, and the killed
// one comes back as a standby. Afterwards:
//   1. every group whose SUBMIT was acknowledged has ended, and so has every
//      group the coordinator lists;
//   2. every step has one final state, its history one record per attempt,
//      none running; a completed step has exactly one succeeded attempt, the
//      last;
//   3. what ran agrees with the history: each step appends a line to its own
//      file when an attempt starts (and when it succeeds), so no attempt ran
//      twice, every attempt with an exit code ran, a succeeded attempt ran
//      to its end, nothing of a completed step ran after its success, and an
//      attempt that succeeded but is recorded lost with its worker is
//      explained by that worker's death before it could report (else the
//      coordinator lost a result, and the step ran again after succeeding);
//   4. every client waiting across a restart got its result (their
//      --connect-timeout is far longer than any outage here);
//   5. no process of any step is left;
//   6. no attempt waited in vain for its worker to come back (the reattach
//      window is well above the time workers take to register again); every
//      result reads the same after one more restart, and no step ran again
//      meanwhile.
//
// Randomness is seeded: COHORT_CRASH_CHAOS_SEED=N (COHORT_HA_CHAOS_SEED=N on
// PostgreSQL) replays a run's plan (the
// groups, how their clients wait, the cancel delays, the kill and crash
// schedule, each outage's length); the seed is printed first.
// COHORT_CRASH_CHAOS_GROUPS=N (default 300) and COHORT_CRASH_CHAOS_CLIENTS=N
// (default 8) make a longer manual run. Timing between processes is not
// replayable; the plan is.
#include <signal.h>
#include <sys/stat.h>

#include <atomic>
#include <cstdlib>
#include <functional>
#include <iomanip>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <catch2/catch.hpp>

#include "tests/integration/chaos_common.h"
#include "tests/integration/crash_chaos_runs.h"
#include "tests/integration/cluster.h"
#include "tests/integration/ha_cluster.h"

namespace cohort::testing {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using namespace crash_chaos;

// Every CLI call may outlive an outage of the coordinator: none here lasts
// more than a few seconds, so an exit 3 is a client that lost its way.
const std::string kConnectTimeout = "30";
// Short, to keep the test short, but a worker keeps its steps 7 s past its
// last acknowledged message (less the 2 s kill grace and a second): well
// above the time it takes to register again at the cluster's 200 ms
// heartbeat after an outage of up to kMaxOutageMs (ZeroMQ redials with a
// backoff that reaches about the outage's length; the REGISTERs queued
// meanwhile go out with the redial).
const std::string kWorkerLease = "10";
constexpr int kMaxOutageMs = 2000;
constexpr int kSlots = 4;

// The workers' names. Each has its own state directory in the cluster's
// (Cluster::LaunchWorker), so another run on this machine never counts our
// steps as its leftovers, whatever the names.
std::vector<std::string> WorkerNames() {
  return {"crash-w0", "crash-w1", "crash-w2"};
}

double Since(Clock::time_point t0, Clock::time_point t) {
  return std::chrono::duration<double>(t - t0).count();
}

// A client command that did not answer as it should, and when.
struct ClientError {
  std::string what;
  double from_s, to_s;  // since the test's start
};

struct Outcome {
  int index = 0;
  Kind kind = Kind::kOk;
  bool submit_wait = false;  // `submit --wait`, else `submit` then `wait`
  std::string id;
  bool acknowledged = false;  // the CLI said the coordinator accepted it
  Json result;                // the document its client got
  std::vector<ClientError> errors;
  bool leftovers = false;  // processes of a failed or cancelled group outlived its end
  double wait_from_s = 0, wait_to_s = 0;  // the client's wait, since the test's start
  std::map<std::string, std::string> runs;  // step id -> its run file when the client got the result
};

// Runs a CLI command, noting an error unless `answered` accepts its output.
template <typename C>
RunOutput Client(C& c, Outcome& o, std::vector<std::string> args,
                 const std::function<bool(const RunOutput&)>& answered, Clock::time_point t0,
                 std::chrono::milliseconds timeout = 60s) {
  args.push_back("--connect-timeout");
  args.push_back(kConnectTimeout);
  const auto from = Clock::now();
  RunOutput r = c.Cli(args, timeout);
  if (!answered(r)) {
    o.errors.push_back({args[0] + " exited " + std::to_string(r.exit_code) + ": " + r.err, Since(t0, from),
                        Since(t0, Clock::now())});
  }
  return r;
}

// One client's share of the plan: group i, submitted, maybe cancelled,
// waited for. The plan depends only on the seed and i.
template <typename C>
Outcome RunGroup(C& c, uint64_t seed, int i, const std::string& mark, const std::string& runs,
                 Clock::time_point t0) {
  std::mt19937_64 rng(seed * 1000003 + static_cast<uint64_t>(i));
  const Kind kind = static_cast<Kind>(rng() % 5);
  const bool submit_wait = kind != Kind::kCancelled && rng() % 2;
  Outcome o;
  o.index = i;
  o.kind = kind;
  o.submit_wait = submit_wait;
  o.id = "crash-" + std::to_string(i);
  const std::string gmark = mark + "/" + o.id + "/";
  const Json spec = MakeGroup(kind, o.id, gmark, runs, rng);
  const std::string file = c.dir() + "/" + o.id + ".json";
  WriteFile(file, spec.dump());
  // A result, also of a group that did not complete (exit 1).
  auto result = [](const RunOutput& r) {
    return (r.exit_code == 0 || r.exit_code == 1) && Json::parse(r.out, nullptr, false).is_object();
  };
  RunOutput w;
  o.wait_from_s = Since(t0, Clock::now());
  if (submit_wait) {
    w = Client(c, o, {"submit", file, "--wait", "--json"}, result, t0, 240s);
    // Failing after the acknowledgement, the CLI names the group it waits for.
    o.acknowledged = Json::parse(w.out, nullptr, false).is_object() ||
                     w.err.find("while waiting for group " + o.id) != std::string::npos;
  } else {
    RunOutput sub = Client(c, o, {"submit", file}, [](const RunOutput& r) { return r.exit_code == 0; }, t0);
    o.acknowledged = sub.exit_code == 0 && sub.out == o.id + "\n";
    if (!o.acknowledged) return o;
    if (kind == Kind::kCancelled) {
      // A random moment in the group's life, part of the replayable plan.
      std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 1500));
      // Refused only for a group its workers' deaths failed first, which
      // the final check of its state allows.
      Client(c, o, {"cancel", o.id}, [](const RunOutput& r) {
        return r.exit_code == 0 ||
               (r.exit_code == 1 && r.err.find("has already finished failed") != std::string::npos);
      }, t0);
    }
    o.wait_from_s = Since(t0, Clock::now());
    w = Client(c, o, {"wait", o.id, "--json"}, result, t0, 240s);
  }
  o.wait_to_s = Since(t0, Clock::now());
  o.result = Json::parse(w.out, nullptr, false);
  if (!o.result.is_object()) return o;
  for (const Json& s : spec["steps"]) {
    const std::string id = s["id"];
    o.runs[id] = ReadFile(RunFile(runs, o.id, id));
  }
  const std::string state = o.result.value("state", "");
  if (state == "failed" || state == "cancelled") {
    o.leftovers = !WaitUntil([&] { return ProcessesWith(gmark).empty(); }, 3s);
  }
  return o;
}

// The coordinators' flags, the same on every start. Sharing a database, a
// leader's lease of 2 s: a takeover then fits well inside the workers'
// lease, as a restart does.
template <typename C>
std::vector<std::string> CoordinatorFlags(const C&) {
  std::vector<std::string> flags = {"--worker-lease", kWorkerLease, "--cancel-resend", "0.5", "--backstop-grace",
                                    "15"};
  if constexpr (std::is_same_v<C, HaCluster>) {
    flags.push_back("--leader-lease-ms");
    flags.push_back("2000");
  }
  return flags;
}

// A worker started again, once the coordinator lists it.
template <typename C>
void StartJoined(C& c, const std::string& name) {
  if constexpr (std::is_same_v<C, HaCluster>) {
    c.StartWorkerJoined(name, kSlots);
  } else {
    c.StartWorker(name, kSlots);
  }
}

// Throws, naming the daemon and quoting its log, if it exited by itself: a
// coordinator that stopped on a store error, or a worker that crashed, would
// otherwise only show as a kill that hit nothing.
void EnsureAlive(Daemon& d, const std::string& what) {
  if (d.Wait(0ms) == -1) return;
  const std::string log = d.Log();
  throw std::runtime_error(what + " exited by itself; the end of its log:\n" +
                           log.substr(log.size() - std::min<size_t>(log.size(), 8000)));
}

template <typename C>
void SigkillWorker(C& c, const std::string& name, Clock::time_point t0, ChaosLog* n) {
  EnsureAlive(c.worker(name), "worker " + name);
  n->kills[name].push_back(Since(t0, Clock::now()));
  c.worker(name).Kill(SIGKILL);
  if (c.worker(name).Wait(10s) < 0) throw std::runtime_error("worker " + name + " outlived a SIGKILL for 10 s");
}

// Crashes the coordinator: SIGKILL, an outage whose length is part of the
// plan, during which a worker may die and come back too, then the same
// command line on the same state directory.
template <typename C>
void CrashCoordinator(C& c, const std::vector<std::string>& workers, std::mt19937_64& rng,
                      Clock::time_point t0, ChaosLog* n) {
  Daemon& leader = c.coordinator();
  EnsureAlive(leader, "the coordinator");
  const auto from = Clock::now();
  leader.Kill(SIGKILL);
  if (leader.Wait(10s) < 0) throw std::runtime_error("the coordinator outlived a SIGKILL for 10 s");
  const auto outage = std::chrono::milliseconds(rng() % kMaxOutageMs);
  std::string victim;
  if (n->crashes % 2 == 1) {
    // A worker that restarts meanwhile registers without its attempts, so
    // they are lost at once rather than at the end of the reattach window.
    victim = workers[rng() % workers.size()];
    SigkillWorker(c, victim, t0, n);
    c.LaunchWorker(victim, kSlots);
    ++n->kills_during_outage;
  }
  std::this_thread::sleep_for(outage);  // the outage itself
  c.StartCoordinator(CoordinatorFlags(c));
  n->outages.push_back({Since(t0, from), Since(t0, Clock::now())});
  ++n->crashes;
  if (!victim.empty() && !WaitUntil([&] { return c.HasWorker(victim); }, 20s)) {
    throw std::runtime_error("worker " + victim + " started during the outage did not join:\n" +
                             c.worker(victim).Log());
  }
}

// The chaos: every 0.3-1.5 s a random worker is SIGKILLed and restarted
// 0-0.8 s later, and every 6-14 s the coordinator crashes instead, until the
// clients are done. What went wrong, if anything, is in `broken`, and
// `stop` tells the clients to take no more groups: nothing may throw while
// their threads run.
template <typename C>
ChaosLog Chaos(C& c, const std::vector<std::string>& workers, uint64_t seed,
               const std::atomic<int>& clients_left, std::atomic<bool>* stop, Clock::time_point t0) {
  ChaosLog n;
  std::mt19937_64 rng(seed);
  auto next_crash = Clock::now() + std::chrono::milliseconds(3000 + rng() % 5000);
  try {
    while (clients_left > 0) {
      const auto pause = std::chrono::milliseconds(300 + rng() % 1200);
      WaitUntil([&] { return clients_left == 0; }, pause);  // the chaos's own random rhythm
      if (clients_left == 0) break;
      if (Clock::now() >= next_crash) {
        CrashCoordinator(c, workers, rng, t0, &n);
        next_crash = Clock::now() + std::chrono::milliseconds(6000 + rng() % 8000);
        continue;
      }
      const std::string& victim = workers[rng() % workers.size()];
      SigkillWorker(c, victim, t0, &n);
      ++n.worker_kills;
      WaitUntil([&] { return clients_left == 0; }, std::chrono::milliseconds(rng() % 800));
      StartJoined(c, victim);
    }
  } catch (const std::exception& e) {
    n.broken = e.what();
    *stop = true;
  }
  return n;
}

// What must read the same before and after a restart: everything but the
// fields that describe the moment of reading.
Json Stable(Json status) {
  if (status.is_object()) {
    for (Json& s : status["steps"]) s.erase("waiting");
  }
  return status;
}

// Every group the coordinator holds, by id, read one by one.
template <typename C>
std::map<std::string, Json> ReadAll(C& c, const std::set<std::string>& ids) {
  std::map<std::string, Json> out;
  for (const std::string& id : ids) out[id] = Stable(c.Status(id));
  return out;
}

template <typename C>
std::set<std::string> Listed(C& c) {
  std::set<std::string> ids;
  Json list = Json::parse(c.Cli({"groups", "--json"}).out, nullptr, false);
  REQUIRE(list.is_array());
  for (const Json& g : list) ids.insert(g["group"].get<std::string>());
  return ids;
}

std::string Describe(const std::vector<ClientError>& errors) {
  std::string out;
  for (const ClientError& e : errors) {
    std::ostringstream when;
    when << std::fixed << std::setprecision(1) << " [" << e.from_s << " s .. " << e.to_s << " s]";
    out += e.what + when.str() + "\n";
  }
  return out;
}

template <typename C>
void RunCrashChaos(C& c, const ChaosRun& run, const std::string& label) {
  const uint64_t seed = run.seed;
  const int groups = run.groups, clients = run.clients;
  std::cout << label << ": in " << c.dir() << " (COHORT_KEEP_TEST_DIRS=1 keeps it)" << std::endl;
  const std::string runs = c.dir() + "/runs";
  REQUIRE(::mkdir(runs.c_str(), 0700) == 0);
  c.StartCoordinator(CoordinatorFlags(c));
  const std::vector<std::string> workers = WorkerNames();
  for (const auto& w : workers) StartJoined(c, w);
  const std::string mark = c.Marker();
  const auto t0 = Clock::now();
  const double wall_t0 =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();

  std::atomic<int> next{0};
  std::atomic<int> clients_left{clients};
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::vector<Outcome> outcomes;
  std::vector<std::thread> threads;
  for (int t = 0; t < clients; ++t) {
    threads.emplace_back([&] {
      for (int i = next++; i < groups && !stop; i = next++) {
        Outcome o = RunGroup(c, seed, i, mark, runs, t0);
        std::lock_guard<std::mutex> lock(mu);
        outcomes.push_back(std::move(o));
      }
      --clients_left;
    });
  }
  const ChaosLog chaos = Chaos(c, workers, seed, clients_left, &stop, t0);
  for (auto& th : threads) th.join();
  const double ran_s = Since(t0, Clock::now());
  std::cout << label << ": " << static_cast<int>(ran_s) << " s, " << chaos.crashes << " coordinator crashes, "
            << chaos.worker_kills << " worker kills (+" << chaos.kills_during_outage
            << " during an outage); outages (s since start):" << std::fixed << std::setprecision(1);
  for (const Outage& o : chaos.outages) std::cout << " " << o.from_s << "-" << o.to_s;
  std::cout << std::endl;
  REQUIRE(chaos.broken == "");
  REQUIRE(outcomes.size() == static_cast<size_t>(groups));
  std::sort(outcomes.begin(), outcomes.end(), [](const Outcome& a, const Outcome& b) { return a.index < b.index; });
  for (const Outcome& o : outcomes) {
    if (!o.errors.empty()) {
      std::cout << label << ": group " << o.id << " (" << KindName(o.kind)
                << (o.submit_wait ? ", submit --wait" : ", submit + wait") << "):\n"
                << Describe(o.errors);
    }
  }

  // The coordinator's account, read once every process of a step is gone.
  CHECK(WaitUntil([&] { return ProcessesWith(mark).empty(); }, 20s));
  std::set<std::string> ids = Listed(c);
  for (const Outcome& o : outcomes) {
    if (o.acknowledged) ids.insert(o.id);
  }
  const std::map<std::string, Json> before = ReadAll(c, ids);
  std::map<std::string, std::string> run_files;  // by path
  for (const auto& [id, status] : before) {
    if (!status.is_object()) continue;
    for (const Json& s : status["steps"]) {
      const std::string path = RunFile(runs, id, s["id"]);
      run_files[path] = ReadFile(path);
    }
  }

  std::map<std::string, int> tally;
  size_t lost_attempts = 0, client_errors = 0, unacknowledged = 0, waits_across = 0;
  // Attempts the restarts lost: their worker came back without them (it
  // had restarted too), or did not come back within the reattach window.
  size_t lost_came_back = 0, lost_window = 0;
  for (const Outcome& o : outcomes) {
    INFO("group " << o.id << " (" << KindName(o.kind) << (o.submit_wait ? ", submit --wait" : ", submit + wait")
                  << ")\nclient errors:\n"
                  << Describe(o.errors) << "its result: " << o.result.dump());
    client_errors += o.errors.size();
    for (const Outage& out : chaos.outages) {
      waits_across += o.wait_from_s < out.from_s && out.to_s < o.wait_to_s;
    }
    // 4. Every client got its answer.
    CHECK(o.errors.empty());
    if (!o.acknowledged) {
      ++unacknowledged;
      continue;
    }
    const Json& now = before.at(o.id);
    REQUIRE(now.is_object());
    const std::string state = now["state"];
    ++tally[std::string(KindName(o.kind)) + "/" + state];
    // 1. It ended, and its client saw the end the coordinator holds.
    CHECK(state != "running");
    if (o.result.is_object()) CHECK(Stable(o.result) == now);
    if (o.kind == Kind::kFailing || o.kind == Kind::kTimeout || o.kind == Kind::kCancelled) {
      CHECK(state != "completed");
    }
    if (o.kind == Kind::kCancelled) CHECK((state == "cancelled" || state == "failed"));
    CHECK_FALSE(o.leftovers);
    // 2 and 3, with the runs as they were when the client got the result:
    // nothing ran after that.
    for (const Json& s : now["steps"]) {
      const std::string step = s["id"];
      const std::string& ran = run_files.at(RunFile(runs, o.id, step));
      CheckStep(s, ran, chaos, wall_t0);
      if (o.result.is_object()) CHECK(o.runs.at(step) == ran);
      for (const Json& a : s["history"]) {
        if (a["status"] != "worker_lost") continue;
        ++lost_attempts;
        const std::string error = a["error"].is_string() ? a["error"].get<std::string>() : "";
        lost_came_back += error.find("came back after the coordinator restarted") != std::string::npos;
        lost_window += error.find("did not register again within") != std::string::npos;
      }
    }
  }
  const std::string log = c.CoordinatorLogs();
  size_t restored_unclaimed = 0;
  for (size_t at = log.find("unclaimed-attempts="); at != std::string::npos;
       at = log.find("unclaimed-attempts=", at + 1)) {
    restored_unclaimed += std::strtoul(log.c_str() + at + 19, nullptr, 10);
  }
  std::cout << label << ": " << groups << " groups (" << unacknowledged << " not acknowledged), "
            << restored_unclaimed << " attempts restored running, " << lost_attempts
            << " attempts lost with their worker (" << lost_came_back << " to a worker back without them, "
            << lost_window << " to the reattach window), " << waits_across << " waits across an outage, "
            << client_errors << " client errors\n";
  for (const auto& [k, count] : tally) std::cout << "  " << k << ": " << count << "\n";
  CHECK(chaos.crashes >= 2);
  CHECK(chaos.kills_during_outage > 0);
  CHECK(waits_across > 0);
  CHECK(restored_unclaimed > 0);  // the crashes hit running steps
  // Every live worker registered again well within the window: no attempt
  // waited for it in vain.
  CHECK(lost_window == 0);
  // Every group the coordinator holds ended, also those whose SUBMIT its
  // client never saw acknowledged.
  for (const auto& [id, status] : before) {
    INFO("group " << id << ": " << status.dump());
    REQUIRE(status.is_object());
    CHECK(status["state"] != "running");
  }

  // 6. Once more, a restart; the workers come back and claim nothing.
  std::mt19937_64 rng(seed + 1);
  const bool clean = rng() % 2;
  std::cout << label << ": the last restart after a " << (clean ? "SIGTERM" : "SIGKILL") << std::endl;
  Daemon& leader = c.coordinator();
  EnsureAlive(leader, "the coordinator");
  leader.Kill(clean ? SIGTERM : SIGKILL);
  REQUIRE(leader.Wait(15s) >= 0);
  c.StartCoordinator(CoordinatorFlags(c));
  for (const auto& w : workers) CHECK(WaitUntil([&] { return c.HasWorker(w); }, 20s));
  const std::map<std::string, Json> after = ReadAll(c, ids);
  for (const auto& [id, status] : before) {
    INFO("group " << id);
    CHECK(after.at(id) == status);
  }
  for (const auto& [path, text] : run_files) {
    INFO("run file " << path);
    CHECK(ReadFile(path) == text);
  }
  // 5. No process of any step is left anywhere on the machine.
  CHECK(ProcessesWith(mark).empty());
}

TEST_CASE("crash chaos - the coordinator and workers SIGKILLed and restarted under mixed groups from "
          "concurrent clients",
          "[e2e][chaos][durable]") {
  const ChaosRun run = ReadChaosRun("crash chaos", "COHORT_CRASH_CHAOS", 8);
  INFO("replay with COHORT_CRASH_CHAOS_SEED=" << run.seed);
  Cluster c;
  RunCrashChaos(c, run, "crash chaos");
}

// The same chaos on PostgreSQL with two coordinators: each crash SIGKILLs
// the one leading, the other takes over, and the killed one comes back as
// a standby (and leads again at a later crash).
TEST_CASE("crash chaos on PostgreSQL - the leader and workers SIGKILLed, standbys taking over, under mixed "
          "groups from concurrent clients",
          "[e2e][chaos][durable][ha]") {
  const ChaosRun run = ReadChaosRun("crash chaos on PostgreSQL", "COHORT_HA_CHAOS", 8);
  INFO("replay with COHORT_HA_CHAOS_SEED=" << run.seed);
  HaCluster c(2);
  RunCrashChaos(c, run, "crash chaos on PostgreSQL");
}

}  // namespace
}  // namespace cohort::testing
