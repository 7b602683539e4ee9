// cohort-worker: runs the steps a cohort-coordinator sends it, as real
// processes, and stops them for sure when told.
#include <sys/stat.h>
#include <unistd.h>

#include <iostream>
#include <sstream>

#include "common/curve_keys.h"
#include "common/daemon.h"
#include "common/systemd_notify.h"
#include "common/metrics_server.h"
#include "common/exit_codes.h"
#include "common/log.h"
#include "common/options.h"
#include "common/state_dir.h"
#include "common/transport.h"
#include "worker/leftovers.h"
#include "worker/life_record.h"
#include "worker/spawn.h"
#include "worker/worker_loop.h"

namespace {

std::vector<std::string> SplitList(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

namespace po = boost::program_options;
using cohort::worker::WorkerOptions;
using cohort::common::UsageError;

constexpr const char* kProgram = "cohort-worker";

constexpr const char* kUsage =
    "Usage: cohort-worker [options]\n\n"
    "Connects to a cohort-coordinator, offers it --slots step slots, and runs the steps it\n"
    "is sent as child processes (each in its own PID namespace, or process group without\n"
    "one, stdin from /dev/null, a clean environment plus the step's env). Timeouts and\n"
    "cancels send SIGTERM to every process of the step, then SIGKILL after\n"
    "--kill-grace-ms; nothing a step starts outlives it in a PID namespace. If the coordinator\n"
    "goes away the worker keeps its steps running, reconnects with backoff and reports\n"
    "them when it is back; past the coordinator's --worker-lease without an answer it\n"
    "stops them, so that they never run twice. SIGTERM drains the worker: it takes no new\n"
    "steps and lets its running ones finish for up to --drain-timeout, then stops what is\n"
    "left (SIGTERM, SIGKILL after --kill-grace-ms), tells the coordinator, which retries\n"
    "those on other workers, and exits. A second SIGTERM skips the rest of the drain.\n"
    "Off loopback it needs CURVE keys (--coordinator-key, --curve-secret-key) or\n"
    "--insecure; started as root it needs --run-as.\n\n"
    "Exit status: 0 stopped cleanly (or --check-config found no error); 1 a failure a\n"
    "restart may cure (a runtime error); 2 bad usage (an option or config value, a key\n"
    "file or the --allowed-commands file unreadable or not protected, an unknown --run-as\n"
    "user); 6 cannot start as configured on this host (the state directory locked by\n"
    "another worker or unusable).";

// What the command line sets, before it is checked and turned into options.
struct Flags {
  WorkerOptions worker;
  std::string agents, log_level = "info", log_format = "text", secret_key_file, coordinator_key_file, run_as,
      allowed_commands, allowed_env, state_dir, client_users, step_isolation = "pid-namespace";
  bool insecure = false, allow_shell = true;
  int64_t kill_grace_ms = 5000;
  double drain_timeout_s = 30;
  std::string metrics_endpoint;
  size_t tail_kib = 64;
  size_t unconfirmed_mib = 64;
  size_t spill_mib = 1024;
};

po::options_description OptionTable(Flags* f) {
  WorkerOptions& o = f->worker;
  po::options_description opts("Options");
  opts.add_options()
      ("coordinator", po::value(&o.coordinator)->default_value(o.coordinator)->value_name("EP"),
       "the coordinator's worker endpoint; everything else is learned when registering. Several, separated "
       "by commas, for coordinators sharing a PostgreSQL database: the worker finds the leader among them")
      ("name", po::value(&o.name)->value_name("NAME"), "this worker's name (default: the host name); "
       "unique in the cluster, so run several workers per host with distinct names")
      ("slots", po::value(&o.slots)->default_value(0)->value_name("N"),
       "steps run at once (default 0: the number of CPUs)")
      ("agents", po::value(&f->agents)->value_name("A,B"), "agent labels this worker offers (steps with an "
       "\"agent\" run only on workers offering it)")
      ("kill-grace-ms", po::value(&f->kill_grace_ms)->default_value(f->kill_grace_ms)->value_name("MS"),
       "time between SIGTERM and SIGKILL when a step is timed out or cancelled")
      ("metrics-endpoint", po::value(&f->metrics_endpoint)->value_name("HOST:PORT"),
       "serve Prometheus metrics over HTTP at /metrics there (a bare PORT means 127.0.0.1; off by default; "
       "docs/OPERATIONS.md, Monitoring)")
      ("drain-timeout", po::value(&f->drain_timeout_s)->default_value(f->drain_timeout_s)->value_name("S"),
       "on SIGTERM, seconds to let running steps finish (no new ones are taken) before stopping the rest; "
       "0 stops them at once. A stop takes at most this plus --kill-grace-ms plus 10 s")
      ("heartbeat-ms", po::value(&o.heartbeat_ms)->default_value(o.heartbeat_ms)->value_name("MS"),
       "heartbeat interval until the coordinator sends its own")
      ("state-dir", po::value(&f->state_dir)->value_name("DIR"),
       "this worker's own directory, locked while it runs: it records what the worker started, so that after "
       "a crash it stops exactly that (default: $STATE_DIRECTORY under systemd, else /var/lib/cohort-worker/NAME "
       "for root, $XDG_STATE_HOME/cohort-worker/NAME or ~/.local/state/cohort-worker/NAME)")
      ("output-tail-kib", po::value(&f->tail_kib)->default_value(f->tail_kib)->value_name("KIB"),
       "KiB kept of each step's stdout and of its stderr (the end)")
      ("unconfirmed-mib", po::value(&f->unconfirmed_mib)->default_value(f->unconfirmed_mib)->value_name("MIB"),
       "MiB of results the coordinator has not yet confirmed (while it is unreachable) held in memory")
      ("spill-mib", po::value(&f->spill_mib)->default_value(f->spill_mib)->value_name("MIB"),
       "MiB more of them kept on disk, in STATE_DIR/unconfirmed, once memory is full; past both, the oldest "
       "are dropped with a warning (0: none on disk)")
      ("log-level", po::value(&f->log_level)->default_value(f->log_level)->value_name("LEVEL"),
       "debug, info, warn or error")
      ("log-format", po::value(&f->log_format)->default_value(f->log_format)->value_name("FORMAT"),
       "text (key=value pairs) or json (one object per line); each line starts with its time, or with its "
       "priority when stderr is the journal");
  po::options_description security("Security (docs/SECURITY.md)");
  security.add_options()
      ("coordinator-key", po::value(&f->coordinator_key_file)->value_name("FILE"),
       "the coordinator's public key file: connect with CURVE (encrypted) and only to the holder of that key")
      ("curve-secret-key", po::value(&f->secret_key_file)->value_name("FILE"),
       "this worker's secret key file (NAME.key_secret, mode 0600); its public key must be in the "
       "coordinator's --authorized-workers")
      ("insecure", po::bool_switch(&f->insecure),
       "allow a non-loopback coordinator without CURVE (then anyone on the path can send this worker steps)")
      ("run-as", po::value(&f->run_as)->value_name("USER"),
       "run steps as USER (a worker started as root must name one; `--run-as root` keeps root)")
      ("client-users", po::value(&f->client_users)->value_name("FILE"),
       "run the steps of each client as a Unix user of its own: lines `CLIENT-NAME USER` (the client's key "
       "name), `* USER` for clients not listed; without `*` an unlisted client's steps are refused. Root only; "
       "the file is checked like a key file; steps of a RUN without a client run as --run-as")
      ("step-isolation", po::value(&f->step_isolation)->default_value(f->step_isolation)->value_name("MODE"),
       "pid-namespace: each step in a PID namespace of its own, so that nothing it starts (setsid, double "
       "forks) outlives it; needs root, else the worker warns and uses process-group: each step in its own "
       "process group, which a process can leave")
      ("allow-shell", po::value(&f->allow_shell)->default_value(true, "true")->value_name("BOOL"),
       "accept steps given as a shell line; false accepts only \"command\" lists (which may still name a "
       "shell: pair it with --allowed-commands)")
      ("allowed-commands", po::value(&f->allowed_commands)->value_name("FILE"),
       "file of the only executables (absolute paths, one per line) steps may run, owned by root or the "
       "worker's user and not writable by group or others. It limits the program, not its arguments or what it "
       "runs in turn; steps may then set only the variables of --allowed-env, and never PATH or HOME")
      ("allowed-env", po::value(&f->allowed_env)->value_name("A,B_*"),
       "with --allowed-commands, the environment variables a step may set (names separated by commas; a "
       "trailing * allows a prefix). Default none. Never PATH or HOME, nor variables that make an allowed "
       "program run other code (LD_*, SHELLOPTS, BASH_FUNC_*, MAKEFLAGS, GIT_CONFIG_*, ...)");
  opts.add(security);
  return opts;
}

// Ranges, keys and the secure-by-default rule. Exit code 2 and a line on
// stderr for flags that cannot work; -1 if they can.
int CheckFlags(Flags* f) {
  WorkerOptions& o = f->worker;
  if (!(f->drain_timeout_s >= 0 && f->drain_timeout_s <= 86400)) {
    std::cerr << "cohort-worker: --drain-timeout must be from 0 to 86400 seconds, got " << f->drain_timeout_s << "\n";
    return cohort::common::kExitUsage;
  }
  if (o.slots < 0 || f->kill_grace_ms < 0 || f->kill_grace_ms > cohort::common::kMaxKillGraceMs ||
      o.heartbeat_ms < 1 || f->tail_kib > 16 * 1024 ||
      f->unconfirmed_mib > (size_t{1} << 30) || f->spill_mib > (size_t{1} << 30)) {
    return UsageError(kProgram, "--slots and --kill-grace-ms must be >= 0 (--kill-grace-ms at most 3600000), "
                                "--heartbeat-ms >= 1, --output-tail-kib <= 16384, --unconfirmed-mib and --spill-mib "
                                "<= 1073741824");
  }
  if (size_t n = SplitList(f->agents).size(); n > cohort::common::kMaxAgents) {
    return UsageError(kProgram, "--agents lists " + std::to_string(n) + " labels; a worker may offer at most " +
                                    std::to_string(cohort::common::kMaxAgents));
  }
  for (const std::string& endpoint : cohort::common::SplitEndpoints(o.coordinator)) {
    if (auto s = cohort::common::CheckEndpoint(endpoint, false); !s.ok()) {
      return UsageError(kProgram, "--coordinator: " + s.message());
    }
  }
  if (auto s = cohort::common::LoadPeerCurve(f->secret_key_file, f->coordinator_key_file, &o.curve); !s.ok()) {
    return UsageError(kProgram, s.message());
  }
  if (auto open = cohort::common::NonLoopback(cohort::common::SplitEndpoints(o.coordinator));
      !o.curve && !open.empty() && !f->insecure) {
    return UsageError(kProgram, "refusing to connect to " + open.front() +
                                    " without CURVE: anyone on the way could send this worker commands.\n"
                                    "  Give --coordinator-key and --curve-secret-key (" +
                                    cohort::common::KeygenHint() + "),\n  or --insecure on a network you fully trust.");
  }
  return -1;
}

// Whom steps run as: never root unless asked for. -1, or exit code 2.
int ChooseStepUser(Flags* f) {
  WorkerOptions& o = f->worker;
  if (!f->run_as.empty()) {
    cohort::worker::RunAsUser user;
    if (auto s = cohort::worker::LookUpUser(f->run_as, &user); !s.ok()) return UsageError(kProgram, s.message());
    if (::geteuid() != 0 && user.credentials.uid != ::geteuid()) {
      return UsageError(kProgram, "--run-as " + f->run_as + " needs a worker started as root");
    }
    // Already that user: nothing to drop (and setgroups would need root).
    if (user.credentials.uid != ::geteuid()) o.run_as = std::move(user);
  } else if (::geteuid() == 0) {
    // Steps are never root unless asked for, on loopback too: there, any
    // local user who can reach the coordinator would otherwise be root.
    return UsageError(kProgram, "running as root: give --run-as USER for the steps "
                                "(or --run-as root to really run them as root)");
  }
  return -1;
}

// --client-users: root only, as it switches users; every user looked up now.
int LoadClientUsers(Flags* f) {
  if (f->client_users.empty()) return -1;
  if (::geteuid() != 0) return UsageError(kProgram, "--client-users needs a worker started as root");
  cohort::worker::ClientUsers users;
  if (auto s = cohort::worker::ClientUsers::Load(f->client_users, &users); !s.ok()) {
    return UsageError(kProgram, s.message());
  }
  f->worker.client_users = std::move(users);
  return -1;
}

// --step-isolation, falling back to process groups where this host gives the
// worker no PID namespaces (not root, a container that forbids them).
int ChooseIsolation(Flags* f) {
  if (f->step_isolation == "process-group") {
    f->worker.isolation = cohort::worker::StepIsolation::kProcessGroup;
    return -1;
  }
  if (f->step_isolation != "pid-namespace") {
    return UsageError(kProgram, "--step-isolation must be pid-namespace or process-group, got \"" +
                                    f->step_isolation + "\"");
  }
  if (auto s = cohort::worker::Spawner::ProbePidNamespace(); !s.ok()) {
    cohort::common::LogWarn("step_isolation_unavailable")
        .Kv("error", s.message())
        .Kv("lost", "processes a step starts with setsid or a double fork can outlive it; steps run in process "
                    "groups, and only the leftover scan at the next start finds what escapes them")
        .Kv("hint", "run the worker as root, or allow it CAP_SYS_ADMIN (docs/OPERATIONS.md, Step isolation)");
    f->worker.isolation = cohort::worker::StepIsolation::kProcessGroup;
    return -1;
  }
  f->worker.isolation = cohort::worker::StepIsolation::kPidNamespace;
  return -1;
}

// Warnings about what the flags leave open, then the worker's step policy.
int LoadPolicy(Flags* f) {
  WorkerOptions& o = f->worker;
  if (!f->secret_key_file.empty()) {
    // Steps can read what their uid can: if that includes the worker's own
    // secret key, any authorized client can copy it with a step.
    const uid_t step_uid = o.run_as ? o.run_as->credentials.uid : ::geteuid();
    struct stat st {};
    if (::stat(f->secret_key_file.c_str(), &st) == 0 && (st.st_uid == step_uid || step_uid == 0)) {
      cohort::common::LogWarn("steps_can_read_secret_key")
          .Kv("file", f->secret_key_file)
          .Kv("step-uid", step_uid)
          .Kv("hint", "run the worker as root with --run-as a user that owns no keys (docs/SECURITY.md)");
    }
  }
  if (!f->allow_shell && f->allowed_commands.empty()) {
    // A "command" list may still be ["/bin/sh", "-c", ...]: without a list
    // of programs the rule stops only the "shell" form.
    cohort::common::LogWarn("allow_shell_without_list")
        .Kv("hint", "--allow-shell=false alone does not stop [\"/bin/sh\", \"-c\", ...]; add --allowed-commands");
  }
  cohort::worker::StepPolicyConfig config;
  config.allow_shell = f->allow_shell;
  config.allowed_commands_file = f->allowed_commands;
  config.allowed_env = f->allowed_env;
  config.shell = cohort::worker::RunnerOptions{}.shell;
  // Whoever may rewrite the list chooses what steps run: the key files' rule.
  config.check_file = [](const struct stat& st, const std::string& path) {
    return cohort::common::CheckTrusted(st, "--allowed-commands file", path, false);
  };
  if (auto s = cohort::worker::StepPolicy::Load(config, &o.policy); !s.ok()) return UsageError(kProgram, s.message());
  return -1;
}

// The state directory when --state-dir is not given: systemd names one per
// worker instance; otherwise one per worker name, apart from the
// coordinator's (whose user must not be able to touch a root worker's).
std::string DefaultWorkerStateDir(const std::string& name, bool make_base) {
  const std::string base = cohort::common::DefaultStateDir("cohort-worker");
  if (const char* d = std::getenv("STATE_DIRECTORY"); (d && *d) || base.empty()) return base;
  if (make_base) ::mkdir(base.c_str(), 0700);  // its parent, /var/lib or the XDG one, exists
  std::string safe;
  for (char ch : name) {
    const bool plain = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                       ch == '.' || ch == '-' || ch == '_';
    safe += plain ? ch : '_';
  }
  return base + "/" + safe;
}

// Locks the state directory and kills what this worker's previous life left
// running there, then records this life's token in f->worker.life. The exit
// code and a line on stderr when it cannot, -1 when it did.
int BeginLife(Flags* f, cohort::worker::LifeRecord* record) {
  WorkerOptions& o = f->worker;
  const std::string dir = f->state_dir.empty() ? DefaultWorkerStateDir(o.name, true) : f->state_dir;
  if (dir.empty()) return UsageError(kProgram, "no --state-dir given and no HOME to default to; give --state-dir DIR");
  if (auto s = cohort::worker::LifeRecord::Open(dir, record); !s.ok()) {
    std::cerr << "cohort-worker: " << s.message() << "\n";
    return cohort::common::StartFailureExitCode(s);
  }
  // What the previous life left running (it was SIGKILLed, and no cgroup
  // cleaned up) belongs to attempts the coordinator has moved on from.
  if (int n = cohort::worker::KillLeftovers(record->previous()); n > 0) {
    cohort::common::LogWarn("leftovers_killed").Kv("worker", o.name).Kv("processes", n).Kv("state-dir", dir);
  }
  if (auto s = record->Begin(&o.life); !s.ok()) {
    std::cerr << "cohort-worker: " << s.message() << "\n";
    return cohort::common::kExitFailure;
  }
  return -1;
}

// --check-config's look at the state directory, creating and locking
// nothing. -1, or exit code 2.
int CheckStateDirOnly(const Flags& f) {
  const std::string dir =
      f.state_dir.empty() ? DefaultWorkerStateDir(cohort::worker::WithDefaults(f.worker).name, false) : f.state_dir;
  if (dir.empty()) return UsageError(kProgram, "no --state-dir given and no HOME to default to; give --state-dir DIR");
  if (auto s = cohort::common::CheckStateDir(dir, kProgram); !s.ok()) return UsageError(kProgram, s.message());
  return -1;
}

// Each returns -1, or the exit code and a line on stderr.
constexpr int (*kFlagSteps[])(Flags*) = {CheckFlags, ChooseStepUser, LoadClientUsers, ChooseIsolation, LoadPolicy};

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  po::variables_map vm;
  int rc = cohort::common::ParseCommandLine(argc, argv, "cohort-worker", kUsage, OptionTable(&f), &vm);
  if (rc >= 0) return rc;
  if (!cohort::common::ApplyLogOptions(kProgram, f.log_level, f.log_format)) return cohort::common::kExitUsage;
  cohort::common::HardenProcess();
  if (cohort::common::CheckConfigOnly(vm)) {
    int errors = 0;
    for (int (*step)(Flags*) : kFlagSteps) errors += step(&f) >= 0;
    errors += CheckStateDirOnly(f) >= 0;
    return cohort::common::ConfigChecked(kProgram, errors);
  }
  for (int (*step)(Flags*) : kFlagSteps) {
    if (rc = step(&f); rc >= 0) return rc;
  }
  f.worker = cohort::worker::WithDefaults(std::move(f.worker));
  WorkerOptions& o = f.worker;
  o.agents = SplitList(f.agents);
  o.kill_grace = std::chrono::milliseconds(f.kill_grace_ms);
  o.tail_bytes = f.tail_kib * 1024;
  o.max_unconfirmed_bytes = f.unconfirmed_mib << 20;
  o.max_spilled_bytes = f.spill_mib << 20;
  o.drain_timeout = cohort::common::SecondsToDuration(f.drain_timeout_s);
  if (auto s = cohort::worker::StepRunner::BecomeSubreaper(); !s.ok()) {
    cohort::common::LogWarn("subreaper_failed").Kv("error", s.message());
  }
  cohort::common::StopSignal stop;
  if (!stop.valid()) {
    std::cerr << "cohort-worker: eventfd failed\n";
    return cohort::common::kExitFailure;
  }
  cohort::common::RaiseOnTermination(&stop);
  cohort::worker::LifeRecord life;
  if (rc = BeginLife(&f, &life); rc >= 0) return rc;
  cohort::worker::ResultSpill spill;
  if (f.spill_mib > 0) {
    size_t discarded = 0;
    if (auto s = cohort::worker::ResultSpill::Open(life.dir() + "/unconfirmed", &discarded, &spill); !s.ok()) {
      std::cerr << "cohort-worker: " << s.message() << "\n";
      return cohort::common::StartFailureExitCode(s);
    }
    if (discarded > 0) {
      cohort::common::LogWarn("kept_results_discarded")
          .Kv("results", discarded)
          .Kv("reason", "an earlier life kept them, and the coordinator takes that life's attempts for lost");
    }
  }
  cohort::common::SystemdNotifier notifier = cohort::common::SystemdNotifier::FromEnvironment();
  o.notifier = &notifier;
  std::unique_ptr<cohort::common::MetricsServer> metrics;
  if (!f.metrics_endpoint.empty()) {
    if (auto s = cohort::common::MetricsServer::Listen(f.metrics_endpoint, &metrics); !s.ok()) {
      std::cerr << "cohort-worker: --metrics-endpoint: " << s.message() << "\n";
      // An endpoint it cannot read is a usage error; one it cannot bind (in
      // use, not on this host) a restart does not cure either.
      return s.code() == cohort::common::Status::Code::kInvalidArgument ? cohort::common::kExitUsage
                                                                        : cohort::common::kExitNotConfigured;
    }
    cohort::common::LogInfo("metrics").Kv("endpoint", metrics->endpoint());
    o.metrics = metrics.get();
  }
  cohort::worker::WorkerLoop loop(o, f.spill_mib > 0 ? &spill : nullptr);
  return loop.Run(stop);
}
