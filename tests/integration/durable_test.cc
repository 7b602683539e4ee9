// The durable coordinator, as an operator meets it: SIGKILLed and started
// again on the same state directory, it comes back with every acknowledged
// group and result, running steps go on where they run and count once, and a
// client waiting across the restart gets its result. A state directory it
// cannot use stops it with a message naming the file, never an empty start.
#include <signal.h>
#include <sys/stat.h>

#include <filesystem>
#include <future>
#include <thread>

#include <catch2/catch.hpp>

#include "tests/integration/cluster.h"

namespace cohort::testing {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;

// SIGKILL, then the same command line again after `down`: a crash and its
// restart, with the downtime the scenario asks for (not a wait for anything
// to settle).
void CrashAndRestart(Cluster& c, std::chrono::milliseconds down) {
  c.coordinator().Kill(SIGKILL);
  REQUIRE(c.coordinator().Wait(5s) >= 0);
  std::this_thread::sleep_for(down);
  c.StartCoordinator();
}

// What must read the same before and after a restart: everything but the
// fields that describe the moment of reading.
Json Stable(Json status) {
  for (Json& s : status["steps"]) s.erase("waiting");
  return status;
}

// The coordinator's own command line on another set of ports, for a second
// one that must be refused.
RunOutput RunSecondCoordinator(Cluster& c, const std::string& state_dir) {
  const std::string d = c.dir();
  return RunProgram({COHORT_BIN_DIR "/cohort-coordinator", "--client-endpoint", "ipc://" + d + "/c2",
                     "--worker-endpoint", "ipc://" + d + "/w2", "--cancel-endpoint", "ipc://" + d + "/p2",
                     "--state-dir", state_dir},
                    30s);
}

}  // namespace

TEST_CASE("a step running across a coordinator crash completes with one attempt, and wait prints it",
          "[e2e][durable]") {
  Cluster c;
  c.StartCoordinator();
  c.StartWorker("w1", 1);
  Json g = {{"id", "long"}, {"steps", {{{"id", "s"}, {"shell", "sleep 5; echo done"}}}}};
  REQUIRE(c.SubmitJson(g, {}).exit_code == 0);
  REQUIRE(WaitUntil([&] { return c.Status("long")["steps"][0]["state"] == "running"; }, 20s));
  auto waiting = std::async(std::launch::async, [&] { return c.Cli({"wait", "long", "--json"}, 90s); });
  CrashAndRestart(c, 1s);

  REQUIRE(waiting.wait_for(60s) == std::future_status::ready);
  RunOutput w = waiting.get();
  INFO(w.err << "\ncoordinator:\n" << c.coordinator().Log() << "\nworker:\n" << c.worker("w1").Log());
  REQUIRE(w.exit_code == 0);
  Json res = Json::parse(w.out);
  CHECK(res["state"] == "completed");
  REQUIRE(res["steps"].size() == 1);
  CHECK(res["steps"][0]["attempts"] == 1);
  CHECK(res["steps"][0]["stdout"] == "done\n");
  CHECK(c.coordinator().Log().find("unclaimed-attempts=1") != std::string::npos);
}

TEST_CASE("every acknowledged group and result reads the same after a crash", "[e2e][durable]") {
  Cluster c;
  c.StartCoordinator();
  c.StartWorker("w1", 2);
  Json ok = {{"id", "ok"}, {"steps", {{{"id", "a"}, {"shell", "echo out; echo err >&2"}}, {{"id", "b"}, {"shell", "true"}}}}};
  Json bad = {{"id", "bad"},
              {"steps", {{{"id", "x"}, {"shell", "exit 7"}}, {{"id", "y"}, {"shell", "sleep 60"}}}}};
  REQUIRE(c.SubmitJson(ok, {"--wait"}).exit_code == 0);
  REQUIRE(c.SubmitJson(bad, {"--wait"}).exit_code != 0);
  Json pending = {{"id", "pending"}, {"steps", {{{"id", "p"}, {"shell", "true"}, {"agent", "nobody"}}}}};
  REQUIRE(c.SubmitJson(pending, {}).exit_code == 0);
  const Json before_ok = Stable(c.Status("ok"));
  const Json before_bad = Stable(c.Status("bad"));
  REQUIRE(before_bad["state"] == "failed");
  const Json before_list = Json::parse(c.Cli({"groups", "--json"}).out);

  CrashAndRestart(c, 0ms);

  // Finished groups come back as summaries; each is read from the store
  // when it is asked for, whichever request asks first.
  CHECK(Json::parse(c.Cli({"groups", "--json"}).out) == before_list);
  RunOutput waited = c.Cli({"wait", "bad", "--json"});
  CHECK(waited.exit_code != 0);
  CHECK(Stable(Json::parse(waited.out)) == before_bad);
  CHECK(Stable(c.Status("ok")) == before_ok);
  CHECK(Stable(c.Status("bad")) == before_bad);
  CHECK(c.Status("pending")["state"] == "running");
  // The ids stay taken while their groups are kept: the same spec from the
  // same client attaches to the restored group, another spec is refused.
  RunOutput again = c.SubmitJson(ok, {});
  CHECK(again.exit_code == 0);
  CHECK(again.err.find("already exists with this spec") != std::string::npos);
  ok["steps"][1]["shell"] = "false";
  CHECK(c.SubmitJson(ok, {}).exit_code == 2);
  CHECK(Stable(c.Status("ok")) == before_ok);
}

TEST_CASE("a second coordinator on the same state directory is refused, naming the lock and its holder",
          "[e2e][durable]") {
  Cluster c;
  c.StartCoordinator();
  RunOutput r = RunSecondCoordinator(c, c.dir() + "/coordinator-state");
  INFO(r.err);
  CHECK(r.exit_code == 6);  // cannot start as configured: no restart
  CHECK(r.err.find(c.dir() + "/coordinator-state/lock") != std::string::npos);
  CHECK(r.err.find("locked by another cohort-coordinator") != std::string::npos);
  // The first one serves on.
  CHECK(c.Cli({"groups"}).exit_code == 0);
}

TEST_CASE("a state directory the coordinator cannot use stops it with the file and what to do", "[e2e][durable]") {
  Cluster c;
  SECTION("a damaged database") {
    const std::string dir = c.dir() + "/damaged";
    REQUIRE(::mkdir(dir.c_str(), 0700) == 0);
    WriteFile(dir + "/cohort.db", std::string(8192, 'x'));
    RunOutput r = RunSecondCoordinator(c, dir);
    INFO(r.err);
    CHECK(r.exit_code == 1);
    CHECK(r.err.find(dir + "/cohort.db") != std::string::npos);
    CHECK(r.err.find("event=listening") == std::string::npos);
    CHECK(ReadFile(dir + "/cohort.db") == std::string(8192, 'x'));  // left as found
  }
  SECTION("a path that is not a directory") {
    const std::string file = c.dir() + "/plain-file";
    WriteFile(file, "x");
    RunOutput r = RunSecondCoordinator(c, file);
    INFO(r.err);
    CHECK(r.exit_code == 6);
    CHECK(r.err.find(file) != std::string::npos);
    CHECK(r.err.find("event=listening") == std::string::npos);
  }
}

TEST_CASE("a full store refuses new groups saying why, and loses nothing once it has room", "[e2e][durable]") {
  Cluster c;
  // A 1 MiB quota stands in for a full disk: the store fails the same way.
  c.StartCoordinator({"--store-max-mb", "1"});
  c.StartWorker("w1", 4);
  // 40 steps of 64 KiB of output each: 2.5 MiB of tails, past the quota.
  Json steps = Json::array();
  for (int i = 0; i < 40; ++i) {
    steps.push_back({{"id", "s" + std::to_string(i)}, {"shell", "head -c 65536 /dev/zero | tr '\\0' a"}});
  }
  REQUIRE(c.SubmitJson({{"id", "big"}, {"steps", steps}}, {}).exit_code == 0);
  REQUIRE(WaitUntil([&] { return c.coordinator().Log().find("event=store_full") != std::string::npos; }, 60s));

  // A new group is refused, and the refusal says why.
  RunOutput refused = c.Cli({"submit", "--", "true"});
  CHECK(refused.exit_code == 3);
  CHECK(refused.err.find("cannot write its state store") != std::string::npos);
  CHECK(refused.err.find("disk full") != std::string::npos);

  // Restarted with room, it has "big" (acknowledged before the store filled)
  // and gets every result the worker kept unconfirmed meanwhile.
  c.coordinator().Kill(SIGKILL);
  REQUIRE(c.coordinator().Wait(5s) >= 0);
  c.StartCoordinator();
  RunOutput w = c.Cli({"wait", "big", "--json"}, 120s);
  INFO(w.err);
  REQUIRE(w.exit_code == 0);
  Json res = Json::parse(w.out);
  CHECK(res["state"] == "completed");
  REQUIRE(res["steps"].size() == 40);
  for (const Json& s : res["steps"]) {
    INFO(s.dump());
    CHECK(s["state"] == "completed");
    CHECK(s["stdout"].get<std::string>().size() == 65536);
  }
}

TEST_CASE("results a worker cannot deliver past its memory bound wait on its disk, and every one arrives",
          "[e2e][durable]") {
  Cluster c;
  c.StartCoordinator();
  // 1 MiB in memory; 16 steps of 200 kB each need its disk.
  c.StartWorker("w1", 16, {"--unconfirmed-mib", "1", "--output-tail-kib", "256"});
  const std::string gate = c.dir() + "/gate";
  Json steps = Json::array();
  for (int i = 0; i < 16; ++i) {
    steps.push_back({{"id", "s" + std::to_string(i)},
                     {"shell", "while [ ! -e " + gate + " ]; do sleep 0.05; done; head -c 200000 /dev/zero | tr '\\0' a"}});
  }
  REQUIRE(c.SubmitJson({{"id", "big"}, {"steps", steps}}, {}).exit_code == 0);
  REQUIRE(WaitUntil([&] { return c.Status("big")["counts"]["running"] == 16; }, 30s));

  // The steps end while the coordinator is down: nobody confirms them.
  c.coordinator().Kill(SIGKILL);
  REQUIRE(c.coordinator().Wait(5s) >= 0);
  WriteFile(gate, "");
  const std::string spill_dir = c.dir() + "/worker-w1-state/unconfirmed";
  auto files = [&] {
    size_t n = 0;
    for (const auto& e : std::filesystem::directory_iterator(spill_dir)) n += e.is_regular_file() ? 1 : 0;
    return n;
  };
  REQUIRE(WaitUntil([&] { return files() >= 11; }, 30s));

  c.StartCoordinator();
  RunOutput w = c.Cli({"wait", "big", "--json"}, 120s);
  INFO(w.err << "\nworker:\n" << c.worker("w1").Log());
  REQUIRE(w.exit_code == 0);
  Json res = Json::parse(w.out);
  CHECK(res["state"] == "completed");
  REQUIRE(res["steps"].size() == 16);
  for (const Json& s : res["steps"]) {
    INFO(s.dump());
    CHECK(s["state"] == "completed");
    CHECK(s["attempts"] == 1);
    CHECK(s["stdout"].get<std::string>() == std::string(200000, 'a'));
  }
  CHECK(c.worker("w1").Log().find("unconfirmed_dropped") == std::string::npos);
  // Confirmed, so deleted.
  CHECK(WaitUntil([&] { return files() == 0; }, 30s));
}

}  // namespace cohort::testing
