// The daemons' exit codes as systemd sees them (common/exit_codes.h): 2 for
// what only a change of options mends, 6 for what this host must change,
// each with a message on stderr that names the cause; and --check-config,
// which says the same without binding, locking or connecting.
#include <sys/stat.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "tests/integration/cluster.h"

namespace cohort::testing {
namespace {

using namespace std::chrono_literals;

const std::string kBin = COHORT_BIN_DIR;

// `program` with `extra`, and each of `defaults` (flag, value) that `extra`
// does not give.
RunOutput Run(const std::string& program, std::vector<std::pair<std::string, std::string>> defaults,
              const std::vector<std::string>& extra) {
  std::vector<std::string> argv = {kBin + "/" + program};
  for (const auto& [flag, value] : defaults) {
    if (std::find(extra.begin(), extra.end(), flag) == extra.end()) argv.insert(argv.end(), {flag, value});
  }
  argv.insert(argv.end(), extra.begin(), extra.end());
  return RunProgram(argv, 30s);
}

// The coordinator on ipc:// endpoints and a state directory of its own in `dir`.
RunOutput RunCoordinator(const std::string& dir, const std::vector<std::string>& extra) {
  return Run("cohort-coordinator",
             {{"--client-endpoint", "ipc://" + dir + "/c2"}, {"--worker-endpoint", "ipc://" + dir + "/w2"},
              {"--cancel-endpoint", "ipc://" + dir + "/p2"}, {"--state-dir", dir + "/state2"}},
             extra);
}

RunOutput RunWorker(const std::string& dir, const std::vector<std::string>& extra) {
  return Run("cohort-worker",
             {{"--coordinator", "ipc://" + dir + "/nobody"}, {"--name", "exit-codes"},
              {StepUserFlags()[0], StepUserFlags()[1]}, {"--state-dir", dir + "/worker-state2"}},
             extra);
}

bool Says(const RunOutput& r, const std::string& text) { return r.err.find(text) != std::string::npos; }

// A coordinator key pair from `cohort keygen` and two empty allowlists.
struct Keys {
  std::string dir;
  explicit Keys(const std::string& parent) : dir(parent + "/keys") {
    ::mkdir(dir.c_str(), 0700);
    ::mkdir((dir + "/clients").c_str(), 0755);
    ::mkdir((dir + "/workers").c_str(), 0755);
    RunOutput r = RunProgram({kBin + "/cohort", "keygen", "coordinator", "--dir", dir}, 30s);
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
  }
  std::vector<std::string> CoordinatorFlags() const {
    return {"--curve-secret-key", dir + "/coordinator.key_secret", "--authorized-clients", dir + "/clients",
            "--authorized-workers", dir + "/workers"};
  }
};

}  // namespace

TEST_CASE("a bad option or config value exits 2, naming it", "[e2e][exit]") {
  Cluster c;
  RunOutput r = RunCoordinator(c.dir(), {"--heartbeat-ms", "soon"});
  INFO(r.err);
  CHECK(r.exit_code == 2);
  CHECK(Says(r, "--heartbeat-ms"));
  RunOutput w = RunWorker(c.dir(), {"--no-such-option"});
  INFO(w.err);
  CHECK(w.exit_code == 2);
  CHECK(Says(w, "no-such-option"));

  const std::string conf = c.dir() + "/worker.conf";
  WriteFile(conf, "# a worker\nslots = 2\n\nheartbeat_ms = 500\n");
  w = RunWorker(c.dir(), {"--config", conf});
  INFO(w.err);
  CHECK(w.exit_code == 2);
  CHECK(Says(w, conf + ":4: unknown option \"heartbeat_ms\" (did you mean \"heartbeat-ms\"?)"));

  WriteFile(conf, "slots = 2\nslots = 3\n");
  w = RunWorker(c.dir(), {"--config", conf});
  CHECK(w.exit_code == 2);
  CHECK(Says(w, conf + ":2: option \"slots\" given twice (first on line 1)"));

  // The command line wins over the file, but a bad value is reported where it is.
  WriteFile(conf, "slots = many\n");
  w = RunWorker(c.dir(), {"--config", conf, "--slots", "2"});
  CHECK(w.exit_code == 2);
  CHECK(Says(w, conf + ":1: bad value \"many\" for option \"slots\""));

  WriteFile(conf, "[worker]\n");
  w = RunWorker(c.dir(), {"--config", conf});
  CHECK(w.exit_code == 2);
  CHECK(Says(w, conf + ":1: malformed line \"[worker]\""));

  // A value each option accepts, that the checks after parsing refuse: the
  // message says where it was set.
  const std::string cconf = c.dir() + "/coordinator.conf";
  WriteFile(cconf, "liveness = 3\nsync = sometimes\n");
  r = RunCoordinator(c.dir(), {"--config", cconf});
  INFO(r.err);
  CHECK(r.exit_code == 2);
  CHECK(Says(r, "--sync: unknown mode \"sometimes\""));
  CHECK(Says(r, "(in " + cconf + ": line 2 sync = sometimes)"));

  // More labels than a REGISTER may carry: refused here, not dropped there.
  std::string labels = "l0";
  for (int i = 1; i < 65; ++i) labels += ",l" + std::to_string(i);
  w = RunWorker(c.dir(), {"--agents", labels});
  CHECK(w.exit_code == 2);
  CHECK(Says(w, "--agents lists 65 labels; a worker may offer at most 64"));
}

TEST_CASE("an unreadable or unprotected key file or allowlist exits 2, naming it", "[e2e][exit][security]") {
  Cluster c;
  Keys keys(c.dir());
  std::vector<std::string> flags = keys.CoordinatorFlags();
  flags[1] = keys.dir + "/missing.key_secret";
  RunOutput r = RunCoordinator(c.dir(), flags);
  INFO(r.err);
  CHECK(r.exit_code == 2);
  CHECK(Says(r, keys.dir + "/missing.key_secret"));

  // Whoever may write an allowlist decides whom the coordinator trusts.
  REQUIRE(::chmod((keys.dir + "/workers").c_str(), 0777) == 0);
  r = RunCoordinator(c.dir(), keys.CoordinatorFlags());
  INFO(r.err);
  CHECK(r.exit_code == 2);
  CHECK(Says(r, "--authorized-workers: key directory " + keys.dir + "/workers has mode"));

  RunOutput w = RunWorker(c.dir(), {"--coordinator-key", keys.dir + "/nothing.key", "--curve-secret-key",
                                    keys.dir + "/coordinator.key_secret"});
  INFO(w.err);
  CHECK(w.exit_code == 2);
  CHECK(Says(w, keys.dir + "/nothing.key"));
}

TEST_CASE("an address in use exits 6, naming it", "[e2e][exit]") {
  Cluster c;
  c.StartCoordinator();
  const std::string taken = "tcp://127.0.0.1:" + std::to_string(c.port(0));
  RunOutput r = RunCoordinator(c.dir(), {"--client-endpoint", taken});
  INFO(r.err);
  CHECK(r.exit_code == 6);
  CHECK(Says(r, "cannot bind " + taken));
  CHECK(Says(r, "Address already in use"));
  CHECK(c.Cli({"groups"}).exit_code == 0);  // the first one serves on
}

TEST_CASE("a state directory locked by a running daemon exits 6, naming the holder", "[e2e][exit]") {
  Cluster c;
  c.StartCoordinator();
  RunOutput r = RunCoordinator(c.dir(), {"--state-dir", c.dir() + "/coordinator-state"});
  INFO(r.err);
  CHECK(r.exit_code == 6);
  CHECK(Says(r, c.dir() + "/coordinator-state/lock is locked by another cohort-coordinator (pid " +
                    std::to_string(c.coordinator().pid()) + ")"));

  Daemon& first = c.StartWorker("w1", 1, {"--state-dir", c.dir() + "/w1-state"});
  RunOutput w = RunWorker(c.dir(), {"--state-dir", c.dir() + "/w1-state"});
  INFO(w.err);
  CHECK(w.exit_code == 6);
  CHECK(Says(w, c.dir() + "/w1-state/lock is locked by another cohort-worker (pid " + std::to_string(first.pid()) +
                    ")"));
}

TEST_CASE("a configuration check says OK or the errors without binding, locking or connecting", "[e2e][exit]") {
  Cluster c;
  c.StartCoordinator();
  // The running coordinator holds its state directory and its ports: a
  // check of the same configuration passes beside it.
  RunOutput r = RunProgram({kBin + "/cohort-coordinator", "--client-endpoint", c.client_endpoint(),
                            "--state-dir", c.dir() + "/coordinator-state", "--check-config"},
                           30s);
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out == "cohort-coordinator: configuration OK (the command line)\n");
  CHECK(r.err.empty());

  const std::string conf = c.dir() + "/worker.conf";
  WriteFile(conf, "slots = 2\n");
  RunOutput w = RunWorker(c.dir(), {"--config", conf, "--check-config"});
  INFO(w.err);
  CHECK(w.exit_code == 0);
  CHECK(w.out == "cohort-worker: configuration OK (" + conf + " and the command line)\n");
  struct stat st {};
  CHECK(::stat((c.dir() + "/worker-state2").c_str(), &st) != 0);  // nothing created

  // Every independent error, not only the first.
  WriteFile(c.dir() + "/plain-file", "x");
  r = RunCoordinator(c.dir(), {"--sync", "sometimes", "--state-dir", c.dir() + "/plain-file", "--worker-endpoint",
                               "tcp://127.0.0.1", "--check-config"});
  INFO(r.err);
  CHECK(r.exit_code == 2);
  CHECK(r.out.empty());
  CHECK(Says(r, "--sync: unknown mode"));
  CHECK(Says(r, "--worker-endpoint: endpoint \"tcp://127.0.0.1\""));
  w = RunWorker(c.dir(), {"--coordinator", "tcp://127.0.0.1:99999", "--check-config"});
  CHECK(w.exit_code == 2);
  CHECK(Says(w, "--coordinator: endpoint \"tcp://127.0.0.1:99999\": port \"99999\" is not a port number"));
}

}  // namespace cohort::testing
