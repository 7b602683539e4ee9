// cohort-coordinator: accepts groups from clients, schedules their steps on
// workers, and cancels the rest of a group when one of its steps fails.
#include <grp.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <random>
#include <tuple>
#include <vector>

#include "common/daemon.h"
#include "common/systemd_notify.h"
#include "common/metrics_server.h"
#include "common/exit_codes.h"
#include "common/log.h"
#include "common/options.h"
#include "common/secure_options.h"
#include "common/state_dir.h"
#include "common/transport.h"
#include "coordinator/postgres_store.h"
#include "coordinator/server.h"
#include "coordinator/shared_run.h"
#include "coordinator/sqlite_store.h"

namespace {

namespace po = boost::program_options;
using cohort::coordinator::ServerOptions;
using cohort::common::UsageError;

constexpr const char* kProgram = "cohort-coordinator";

constexpr const char* kUsage =
    "Usage: cohort-coordinator [options]\n\n"
    "Accepts groups of steps from `cohort submit`, runs them on cohort-worker daemons\n"
    "with their concurrency limits, timeouts, deadlines and retries, and cancels the\n"
    "rest of a group as soon as one step fails for good. With no options it serves\n"
    "one machine on 127.0.0.1 ports 5700-5702. Logs one line per event to stderr.\n"
    "Binding a non-loopback address needs CURVE keys (--curve-secret-key and the\n"
    "allowlists) or --insecure. SIGHUP rereads the allowlists.\n\n"
    "Every accepted group and every result is kept in a SQLite database under\n"
    "--state-dir, so a restart (or a crash) loses nothing and running steps go on:\n"
    "their workers claim them again when they reconnect (docs/OPERATIONS.md).\n\n"
    "Exit status: 0 stopped cleanly (or --check-config found no error); 1 a failure a\n"
    "restart may cure (the store unreachable, a runtime error); 2 bad usage (an option or\n"
    "config value, a key file or allowlist unreadable or not protected); 6 cannot start\n"
    "as configured on this host (an address in use, the state directory locked by\n"
    "another coordinator or unusable).";

// What the command line sets, before it is checked and turned into options.
struct Flags {
  ServerOptions server;
  double backstop_s = 30, retention_s = 3600, cancel_resend_s = 1, lease_s = 60;
  std::string log_level = "info", log_format = "text", secret_key_file;
  std::string state_dir, store = "sqlite", sync = "normal";
  std::string name, advertise_client, advertise_worker, metrics_endpoint;
  int leader_lease_ms = 4000;
  int handshake_timeout_ms = 10000;
  size_t max_handshakes = cohort::common::ConnectionLimits{}.max_handshakes, max_connections = 0;
  std::string ipc_mode, ipc_group;
  uint64_t store_max_mb = 0;
  bool insecure = false;
  size_t max_groups = cohort::coordinator::SchedulerOptions{}.max_groups, max_steps = cohort::coordinator::SchedulerOptions{}.max_steps;
  size_t max_output_mb = cohort::coordinator::SchedulerOptions{}.max_output_bytes >> 20;
  size_t max_tail_kib = cohort::coordinator::kDefaultMaxTailBytes >> 10;
};

po::options_description OptionTable(Flags* f) {
  ServerOptions& o = f->server;
  po::options_description opts("Options");
  opts.add_options()
      ("client-endpoint", po::value(&o.client_endpoint)->default_value(o.client_endpoint)->value_name("EP"),
       "where the cohort CLI connects (ZeroMQ endpoint to bind)")
      ("worker-endpoint", po::value(&o.worker_endpoint)->default_value(o.worker_endpoint)->value_name("EP"),
       "where workers connect")
      ("cancel-endpoint", po::value(&o.cancel_endpoint)->default_value(o.cancel_endpoint)->value_name("EP"),
       "where cancel broadcasts are published (workers learn it when they register)")
      ("heartbeat-ms", po::value(&o.heartbeat_ms)->default_value(o.heartbeat_ms)->value_name("MS"),
       "heartbeat interval to and from workers")
      ("liveness", po::value(&o.liveness)->default_value(o.liveness)->value_name("N"),
       "missed heartbeats before a worker is declared lost and its steps retried elsewhere")
      ("backstop-grace", po::value(&f->backstop_s)->default_value(f->backstop_s)->value_name("S"),
       "seconds past a step's timeout (or a cancel) to wait for its worker's report before declaring that "
       "worker lost; keep it above the workers' kill grace plus 10 s")
      ("cancel-resend", po::value(&f->cancel_resend_s)->default_value(f->cancel_resend_s)->value_name("S"),
       "seconds between repeats of an unconfirmed cancel")
      ("retention", po::value(&f->retention_s)->default_value(f->retention_s)->value_name("S"),
       "seconds a finished group stays queryable")
      ("max-groups", po::value(&f->max_groups)->default_value(f->max_groups)->value_name("N"),
       "groups held at most, running and finished; finished ones are forgotten early to make room, and a "
       "submit is refused when running groups fill it")
      ("max-steps", po::value(&f->max_steps)->default_value(f->max_steps)->value_name("N"),
       "steps held in memory at most over all groups (about 1 KiB each); with a state store, finished "
       "groups leave memory first and are read back from the store when asked for")
      ("max-output-mb", po::value(&f->max_output_mb)->default_value(f->max_output_mb)->value_name("MIB"),
       "MiB of the steps' kept output held in memory, over all groups; past it finished groups leave memory "
       "as for --max-steps, and while running groups alone hold more, submissions are refused")
      ("log-level", po::value(&f->log_level)->default_value(f->log_level)->value_name("LEVEL"),
       "debug, info, warn or error")
      ("log-format", po::value(&f->log_format)->default_value(f->log_format)->value_name("FORMAT"),
       "text (key=value pairs) or json (one object per line); each line starts with its time, or with its "
       "priority when stderr is the journal")
      ("metrics-endpoint", po::value(&f->metrics_endpoint)->value_name("HOST:PORT"),
       "serve Prometheus metrics over HTTP at /metrics there (a bare PORT means 127.0.0.1; off by default; "
       "docs/OPERATIONS.md, Monitoring); a standby serves them too");
  po::options_description state("State (docs/OPERATIONS.md)");
  state.add_options()
      ("state-dir", po::value(&f->state_dir)->value_name("DIR"),
       "where groups and results are kept (cohort.db, locked while this runs); default /var/lib/cohort for "
       "root or a systemd service ($STATE_DIRECTORY), else $XDG_STATE_HOME/cohort or ~/.local/state/cohort")
      ("store", po::value(&f->store)->default_value(f->store)->value_name("KIND"),
       "sqlite (durable, in --state-dir), memory (nothing survives a restart: for throwaway use and "
       "benchmarks), or a postgresql:// URI: a database that several coordinators share, one leading and "
       "the others standing by to take over (docs/OPERATIONS.md); its password comes from PGPASSFILE or "
       "PGPASSWORD, never the URI")
      ("store-max-mb", po::value(&f->store_max_mb)->default_value(f->store_max_mb)->value_name("MIB"),
       "a quota for cohort.db, in MiB (0: none; never below its current size). At the quota the coordinator "
       "acts as on a full disk: it refuses new groups (unavailable, saying why) and holds results "
       "unconfirmed, so the workers keep them; restarted with a higher quota it goes on, nothing lost")
      ("sync", po::value(&f->sync)->default_value(f->sync)->value_name("MODE"),
       "normal: what was acknowledged survives a crash of this process; full: also a power loss, at a cost "
       "in throughput (docs/BENCHMARKS.md)")
      ("worker-lease", po::value(&f->lease_s)->default_value(f->lease_s)->value_name("S"),
       "seconds a worker keeps its steps running without an answer from this coordinator; after that it "
       "stops them. So a lost worker's steps run elsewhere only this long after its last message (unless "
       "it comes back without them), and after a restart workers have this long to reconnect and claim "
       "their running steps. Longer: longer coordinator outages survived; shorter: faster recovery from "
       "a dead worker. Keep it above twice the workers' --kill-grace-ms plus 2 s (docs/OPERATIONS.md)");
  opts.add(state);
  po::options_description ha("Several coordinators on one PostgreSQL database (docs/OPERATIONS.md)");
  ha.add_options()
      ("name", po::value(&f->name)->value_name("NAME"),
       "this coordinator's name in the leadership row and in standbys' answers; default the host name")
      ("advertise-client", po::value(&f->advertise_client)->value_name("EP"),
       "the client endpoint standbys send clients to while this one leads; default --client-endpoint with a "
       "wildcard address replaced by the host name")
      ("advertise-worker", po::value(&f->advertise_worker)->value_name("EP"),
       "the worker endpoint standbys send workers to while this one leads; default as for --advertise-client")
      ("leader-lease-ms", po::value(&f->leader_lease_ms)->default_value(f->leader_lease_ms)->value_name("MS"),
       "how long the leader's lease lasts without renewal (it renews every quarter): a dead leader is "
       "replaced within about this long, and a leader that cannot reach the database for nine tenths of "
       "it stops leading");
  opts.add(ha);
  po::options_description security("Security (docs/SECURITY.md)");
  security.add_options()
      ("curve-secret-key", po::value(&f->secret_key_file)->value_name("FILE"),
       "this coordinator's secret key (NAME.key_secret from `cohort keygen`, mode 0600): all three sockets "
       "become CURVE servers, encrypted, and admit only the keys in the two allowlists")
      ("authorized-clients", po::value(&o.authorized_clients)->value_name("DIR"),
       "directory of public key files (only NAME.key files count) of the clients allowed to submit; "
       "owned by root or this user and not writable by group or others; reread on SIGHUP")
      ("authorized-workers", po::value(&o.authorized_workers)->value_name("DIR"),
       "directory of public key files (NAME.key) of the workers allowed to register, held to the same "
       "rules; reread on SIGHUP")
      ("admin-clients", po::value(&o.admin_clients)->value_name("DIR"),
       "directory of public key files (NAME.key) of admin clients, held to the same rules: they reach every "
       "client's groups (by full id, CLIENT/ID) and may cordon, drain and uncordon workers; other clients "
       "reach only their own groups; reread on SIGHUP")
      ("insecure", po::bool_switch(&f->insecure),
       "allow binding a non-loopback address without CURVE: then anyone who reaches the client port runs "
       "commands on every worker")
      ("max-groups-per-client", po::value(&o.max_groups_per_client)->default_value(0)->value_name("N"),
       "groups one client may have in flight (0: no limit); without CURVE all clients count as one")
      ("max-steps-per-group", po::value(&o.max_steps_per_group)->default_value(0)->value_name("N"),
       "steps a group may have (0: no limit)")
      ("max-waits-per-client", po::value(&o.max_waits_per_client)->default_value(o.max_waits_per_client)
           ->value_name("N"),
       "WAITs one client key may hold at once (0: no limit but the coordinator's 100000, the only limit "
       "without CURVE); a client refused one polls instead")
      ("max-output-tail-kib", po::value(&f->max_tail_kib)->default_value(f->max_tail_kib)->value_name("KIB"),
       "the most of each output stream kept per attempt, whatever a worker sends (its --output-tail-kib "
       "should not be larger); the start of a longer tail is cut");
  opts.add(security);
  po::options_description peers("Connections before they authenticate (docs/OPERATIONS.md)");
  peers.add_options()
      ("handshake-timeout-ms", po::value(&f->handshake_timeout_ms)->default_value(f->handshake_timeout_ms)
           ->value_name("MS"),
       "a connection that has not finished its handshake (CURVE or not) this long after it was accepted is closed")
      ("max-handshakes", po::value(&f->max_handshakes)->default_value(f->max_handshakes)->value_name("N"),
       "connections each port may have in their handshake at once; past it the newest is closed. Each may "
       "hold one frame before it authenticates (64 MiB on the client port, 40 MiB on the worker port), so "
       "this bounds what peers without a key can make the coordinator hold")
      ("max-connections", po::value(&f->max_connections)->default_value(f->max_connections)->value_name("N"),
       "connections open at once over all ports; past it the newest is closed (0: the descriptor limit, "
       "RLIMIT_NOFILE, less 256 for the store, the log and ZeroMQ)")
      ("ipc-mode", po::value(&f->ipc_mode)->value_name("MODE"),
       "octal permissions of the ipc:// socket files bound, e.g. 0660 (default: as the umask leaves them); "
       "with --ipc-group, the file-system access control of a shared single machine")
      ("ipc-group", po::value(&f->ipc_group)->value_name("GROUP"),
       "group given the ipc:// socket files bound (default: this process's group)");
  opts.add(peers);
  return opts;
}

// The connection limits and the ipc:// permissions into the server's
// options; -1, or exit code 2.
int CheckConnectionFlags(Flags* f) {
  ServerOptions& o = f->server;
  if (f->handshake_timeout_ms < 100 || f->handshake_timeout_ms > 600000 || f->max_handshakes < 1) {
    return UsageError(kProgram, "--handshake-timeout-ms must be from 100 to 600000 and --max-handshakes at least 1");
  }
  o.connection_limits.handshake_limit = std::chrono::milliseconds(f->handshake_timeout_ms);
  o.connection_limits.max_handshakes = f->max_handshakes;
  o.connection_limits.max_connections = f->max_connections;
  if (f->max_connections == 0) {
    rlimit nofile{};
    const uint64_t limit = ::getrlimit(RLIMIT_NOFILE, &nofile) == 0 ? nofile.rlim_cur : 1024;
    o.connection_limits.max_connections = cohort::common::ConnectionsFromFileLimit(limit);
  }
  if (f->ipc_mode.empty() && f->ipc_group.empty()) return -1;
  if (!cohort::common::IsIpcFile(o.client_endpoint) && !cohort::common::IsIpcFile(o.worker_endpoint) &&
      !cohort::common::IsIpcFile(o.cancel_endpoint)) {
    return UsageError(kProgram, "--ipc-mode and --ipc-group apply to ipc:// endpoints in the file system, and no "
                                "endpoint is one");
  }
  if (!f->ipc_mode.empty()) {
    char* end = nullptr;
    const unsigned long mode = std::strtoul(f->ipc_mode.c_str(), &end, 8);
    if (*end != '\0' || mode > 0777) {
      return UsageError(kProgram, "--ipc-mode: \"" + f->ipc_mode + "\" is not an octal mode such as 0660");
    }
    o.ipc.mode = static_cast<mode_t>(mode);
  }
  if (!f->ipc_group.empty()) {
    const group* g = ::getgrnam(f->ipc_group.c_str());
    if (g == nullptr) return UsageError(kProgram, "--ipc-group: no group named \"" + f->ipc_group + "\"");
    o.ipc.group = g->gr_gid;
  }
  return -1;
}

// Exit code 2 and a line on stderr for flags that cannot work together; -1 if
// they can. Fills the server's CURVE keys.
int CheckFlags(Flags* f) {
  ServerOptions& o = f->server;
  if (o.heartbeat_ms < 1 || o.liveness < 1 || !(f->backstop_s > 0) || !(f->retention_s >= 0) || !(f->cancel_resend_s > 0) ||
      f->max_groups < 1 || f->max_steps < 1 || f->max_output_mb < 1 || f->max_output_mb > (size_t{1} << 30) ||
      f->max_tail_kib < 1 || f->max_tail_kib > (cohort::common::kMaxOutputBytes >> 10) ||
      !(f->lease_s > 0 && f->lease_s <= 86400)) {
    return UsageError(kProgram, "--heartbeat-ms, --liveness, --backstop-grace, --cancel-resend, --max-groups, "
                                "--max-steps, --max-output-mb, --max-output-tail-kib and --worker-lease must be "
                                "positive (--worker-lease at most 86400, --max-output-mb at most 1073741824, "
                                "--max-output-tail-kib at most 16384), --retention non-negative");
  }
  const bool shared = cohort::coordinator::PostgresStore::IsConnInfo(f->store);
  if (f->store != "sqlite" && f->store != "memory" && !shared) {
    return UsageError(kProgram, "--store: unknown kind \"" + f->store + "\" (sqlite, memory, or a postgresql:// URI)");
  }
  if (shared) {
    if (auto s = cohort::coordinator::PostgresStore::CheckConnInfo(f->store); !s.ok()) {
      return UsageError(kProgram, "--store: " + s.message());
    }
    if (!f->state_dir.empty() || f->store_max_mb > 0 || f->sync != "normal") {
      return UsageError(kProgram, "--state-dir, --store-max-mb and --sync are for --store sqlite; "
                                  "PostgreSQL has its own settings for where and how it writes");
    }
  } else if (!f->name.empty() || !f->advertise_client.empty() || !f->advertise_worker.empty()) {
    return UsageError(kProgram, "--name and --advertise-* are for coordinators sharing a postgresql:// --store");
  }
  if (f->leader_lease_ms < 100 || f->leader_lease_ms > 600000) {
    return UsageError(kProgram,
                      "--leader-lease-ms must be from 100 to 600000, got " + std::to_string(f->leader_lease_ms));
  }
  if (f->sync != "normal" && f->sync != "full") {
    return UsageError(kProgram, "--sync: unknown mode \"" + f->sync + "\" (normal or full)");
  }
  if (f->store == "memory" && !f->state_dir.empty()) {
    return UsageError(kProgram, "--state-dir has no use with --store memory");
  }
  if (f->store == "memory" && f->store_max_mb > 0) {
    return UsageError(kProgram, "--store-max-mb has no use with --store memory");
  }
  if (f->store_max_mb > (uint64_t{1} << 30)) {
    return UsageError(kProgram,
                      "--store-max-mb must be at most 1073741824 (1 PiB), got " + std::to_string(f->store_max_mb));
  }
  if (!f->secret_key_file.empty()) {
    if (o.authorized_clients.empty() || o.authorized_workers.empty()) {
      return UsageError(kProgram, "--curve-secret-key needs --authorized-clients DIR and --authorized-workers DIR "
                                  "(directories of public key files; may be empty)");
    }
    if (!cohort::common::HasCurve()) {
      return UsageError(kProgram, "this libzmq was built without CURVE support");
    }
    cohort::common::CurveKeyPair keys;
    if (auto s = cohort::common::LoadSecretKey(f->secret_key_file, &keys); !s.ok()) {
      return UsageError(kProgram, "--curve-secret-key: " + s.message());
    }
    o.curve = keys;
  } else if (!o.authorized_clients.empty() || !o.authorized_workers.empty() || !o.admin_clients.empty()) {
    return UsageError(kProgram,
                      "--authorized-clients, --authorized-workers and --admin-clients need --curve-secret-key");
  } else if (auto open = cohort::common::NonLoopback({o.client_endpoint, o.worker_endpoint, o.cancel_endpoint});
             !open.empty() && !f->insecure) {
    // Like Redis's protected mode: reaching the client port means running
    // anything on every worker, so the network needs keys or an explicit "yes".
    return UsageError(kProgram, "refusing to bind " + open.front() +
                                    " without CURVE: anyone who can reach it could run commands on every worker.\n"
                                    "  Secure it: " + cohort::common::KeygenHint() +
                                    ", then give --curve-secret-key,\n"
                                    "  --authorized-clients and --authorized-workers.\n"
                                    "  Or bind 127.0.0.1 / ipc:// only, or pass --insecure on a network you fully "
                                    "trust.");
  }
  return CheckConnectionFlags(f);
}

// The allowlists must be readable and protected before anything binds: a
// bad one is a usage error, which a restart cannot mend. -1, or exit code 2.
int CheckAllowlists(const Flags& f) {
  for (const auto& [flag, dir] : {std::pair{"--authorized-clients", &f.server.authorized_clients},
                                  {"--authorized-workers", &f.server.authorized_workers},
                                  {"--admin-clients", &f.server.admin_clients}}) {
    if (dir->empty()) continue;
    std::map<std::string, std::string> keys;
    std::vector<std::string> problems;  // files the handler skips, with a warning, when it loads them
    if (auto s = cohort::common::LoadAllowlist(*dir, &keys, &problems); !s.ok()) {
      return UsageError(kProgram, std::string(flag) + ": " + s.message());
    }
  }
  return -1;
}

// --check-config's checks beyond CheckFlags: the endpoints' syntax and the
// state directory, without binding, creating or locking anything. -1, or 2.
int CheckWithoutStarting(const Flags& f) {
  for (const auto& [flag, endpoint, bind] :
       {std::tuple{"--client-endpoint", &f.server.client_endpoint, true},
        {"--worker-endpoint", &f.server.worker_endpoint, true}, {"--cancel-endpoint", &f.server.cancel_endpoint, true},
        {"--advertise-client", &f.advertise_client, false}, {"--advertise-worker", &f.advertise_worker, false}}) {
    if (endpoint->empty() && !bind) continue;
    if (auto s = cohort::common::CheckEndpoint(*endpoint, bind); !s.ok()) {
      return UsageError(kProgram, std::string(flag) + ": " + s.message());
    }
  }
  if (f.store != "sqlite") return -1;
  const std::string dir = f.state_dir.empty() ? cohort::common::DefaultStateDir("cohort") : f.state_dir;
  if (dir.empty()) return UsageError(kProgram, "no --state-dir given and no HOME to default to; give --state-dir DIR");
  if (auto s = cohort::common::CheckStateDir(dir, kProgram); !s.ok()) return UsageError(kProgram, s.message());
  return -1;
}

// The scheduler's settings from the flags, and what makes this run's group
// ids its own: a seed from the clock and the system's random source.
void FinishSchedulerOptions(Flags* f) {
  ServerOptions& o = f->server;
  o.scheduler.backstop_grace = cohort::common::SecondsToDuration(f->backstop_s);
  o.scheduler.retention = cohort::common::SecondsToDuration(f->retention_s);
  o.scheduler.cancel_resend = cohort::common::SecondsToDuration(f->cancel_resend_s);
  o.scheduler.max_groups = f->max_groups;
  o.scheduler.max_steps = f->max_steps;
  o.scheduler.max_output_bytes = f->max_output_mb << 20;
  o.max_tail_bytes = f->max_tail_kib << 10;
  o.scheduler.worker_lease = cohort::common::SecondsToDuration(f->lease_s);
  o.scheduler.seed = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) ^
                     static_cast<uint64_t>(std::random_device{}());
  char prefix[16];
  std::snprintf(prefix, sizeof prefix, "g%04x.", static_cast<unsigned>(o.scheduler.seed & 0xffff));
  o.scheduler.id_prefix = prefix;
}

// Opens the store the flags ask for into the server's options; the exit
// code and a line on stderr when it cannot be opened, -1 when it is.
int OpenStore(Flags* f) {
  if (f->store == "memory" || cohort::coordinator::PostgresStore::IsConnInfo(f->store)) return -1;
  std::string dir = f->state_dir.empty() ? cohort::common::DefaultStateDir("cohort") : f->state_dir;
  if (dir.empty()) return UsageError(kProgram, "no --state-dir given and no HOME to default to; give --state-dir DIR");
  auto sync = f->sync == "full" ? cohort::coordinator::SyncMode::kFull : cohort::coordinator::SyncMode::kNormal;
  std::unique_ptr<cohort::coordinator::Store> store;
  if (auto s = cohort::coordinator::SqliteStore::Open(dir, sync, &store); !s.ok()) {
    std::cerr << "cohort-coordinator: " << s.message() << "\n";
    return cohort::common::StartFailureExitCode(s);
  }
  f->server.store = std::move(store);
  if (f->store_max_mb > 0) {
    // Open made a SqliteStore; only it has a size to cap.
    auto* sqlite = static_cast<cohort::coordinator::SqliteStore*>(f->server.store.get());
    if (auto s = sqlite->LimitSize(f->store_max_mb << 20); !s.ok()) {
      std::cerr << "cohort-coordinator: " << s.message() << "\n";
      return cohort::common::StartFailureExitCode(s);
    }
  }
  f->server.store_description = "sqlite " + dir + "/cohort.db sync=" + f->sync +
                                (f->store_max_mb > 0 ? " max_mb=" + std::to_string(f->store_max_mb) : "");
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  po::variables_map vm;
  int rc = cohort::common::ParseCommandLine(argc, argv, "cohort-coordinator", kUsage, OptionTable(&f), &vm);
  if (rc >= 0) return rc;
  if (!cohort::common::ApplyLogOptions(kProgram, f.log_level, f.log_format)) return cohort::common::kExitUsage;
  cohort::common::HardenProcess();
  if (cohort::common::CheckConfigOnly(vm)) {
    int errors = CheckFlags(&f) >= 0;
    errors += CheckAllowlists(f) >= 0;
    errors += CheckWithoutStarting(f) >= 0;
    return cohort::common::ConfigChecked(kProgram, errors);
  }
  if (rc = CheckFlags(&f); rc >= 0) return rc;
  if (rc = CheckAllowlists(f); rc >= 0) return rc;
  FinishSchedulerOptions(&f);
  if (rc = OpenStore(&f); rc >= 0) return rc;
  const bool curve = f.server.curve.has_value();

  // Taken before anything can start a process that would inherit it.
  cohort::common::SystemdNotifier notifier = cohort::common::SystemdNotifier::FromEnvironment();
  f.server.notifier = &notifier;
  f.server.name = cohort::common::HostName("localhost");
  std::unique_ptr<cohort::common::MetricsServer> metrics;
  if (!f.metrics_endpoint.empty()) {
    if (auto s = cohort::common::MetricsServer::Listen(f.metrics_endpoint, &metrics); !s.ok()) {
      std::cerr << "cohort-coordinator: --metrics-endpoint: " << s.message() << "\n";
      // An endpoint it cannot read is a usage error; one it cannot bind (in
      // use, not on this host) a restart does not cure either.
      return s.code() == cohort::common::Status::Code::kInvalidArgument ? cohort::common::kExitUsage
                                                                        : cohort::common::kExitNotConfigured;
    }
    cohort::common::LogInfo("metrics").Kv("endpoint", metrics->endpoint());
    f.server.metrics = metrics.get();
  }
  cohort::common::StopSignal stop;
  cohort::common::RaiseOnTermination(&stop);
  cohort::common::StopSignal reload;
  cohort::common::RaiseOnHangup(&reload);
  if (cohort::coordinator::PostgresStore::IsConnInfo(f.store)) {
    cohort::coordinator::SharedOptions shared;
    shared.conninfo = f.store;
    shared.name = f.name;
    shared.advertise_client = f.advertise_client;
    shared.advertise_worker = f.advertise_worker;
    shared.lease = std::chrono::milliseconds(f.leader_lease_ms);
    if (!curve) {
      cohort::common::LogWarn("no_authentication")
          .Kv("detail", "no --curve-secret-key: whoever reaches the client endpoint may submit");
    }
    return cohort::coordinator::RunShared(std::move(shared), f.server, stop,
                                          reload.valid() ? &reload : nullptr);
  }
  cohort::coordinator::Server server(std::move(f.server));
  if (auto s = server.Bind(); !s.ok() || !stop.valid()) {
    std::cerr << "cohort-coordinator: " << (s.ok() ? "eventfd failed" : s.message()) << "\n";
    return s.ok() ? cohort::common::kExitFailure : cohort::common::StartFailureExitCode(s);
  }
  if (!curve) {
    cohort::common::LogWarn("no_authentication")
        .Kv("detail", "no --curve-secret-key: whoever reaches the client endpoint may submit");
  }
  return server.Run(stop, reload.valid() ? &reload : nullptr);
}
