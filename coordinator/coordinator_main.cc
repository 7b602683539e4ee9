// cohort-coordinator: accepts groups from clients, schedules their steps on
// workers, and cancels the rest of a group when one of its steps fails.
#include <cstdio>
#include <iostream>
#include <random>

#include "common/daemon.h"
#include "common/log.h"
#include "common/options.h"
#include "common/secure_options.h"
#include "coordinator/server.h"

namespace {

namespace po = boost::program_options;
using cohort::coordinator::ServerOptions;

// The command line: the server's options and what is converted before it
// gets them.
struct Flags {
  ServerOptions o;
  double backstop_s = 30, retention_s = 3600, cancel_resend_s = 1;
  std::string log_level = "info", secret_key_file;
  bool insecure = false;
  size_t max_groups = o.scheduler.max_groups, max_steps = o.scheduler.max_steps;
};

po::options_description Describe(Flags& f) {
  ServerOptions& o = f.o;
  double& backstop_s = f.backstop_s;
  double& retention_s = f.retention_s;
  double& cancel_resend_s = f.cancel_resend_s;
  std::string& log_level = f.log_level;
  size_t& max_groups = f.max_groups;
  size_t& max_steps = f.max_steps;
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
      ("backstop-grace", po::value(&backstop_s)->default_value(backstop_s)->value_name("S"),
       "seconds past a step's timeout (or a cancel) to wait for its worker's report before declaring that "
       "worker lost; keep it above the workers' kill grace plus 10 s")
      ("cancel-resend", po::value(&cancel_resend_s)->default_value(cancel_resend_s)->value_name("S"),
       "seconds between repeats of an unconfirmed cancel")
      ("retention", po::value(&retention_s)->default_value(retention_s)->value_name("S"),
       "seconds a finished group stays queryable")
      ("max-groups", po::value(&max_groups)->default_value(max_groups)->value_name("N"),
       "groups held at most, running and finished; finished ones are forgotten early to make room, and a "
       "submit is refused when running groups fill it")
      ("max-steps", po::value(&max_steps)->default_value(max_steps)->value_name("N"),
       "steps held at most over all groups (about 1 KiB each), with the same rule")
      ("log-level", po::value(&log_level)->default_value(log_level)->value_name("LEVEL"),
       "debug, info, warn or error");
  po::options_description security("Security (docs/SECURITY.md)");
  security.add_options()
      ("curve-secret-key", po::value(&f.secret_key_file)->value_name("FILE"),
       "this coordinator's secret key (NAME.key_secret from `cohort keygen`, mode 0600): all three sockets "
       "become CURVE servers, encrypted, and admit only the keys in the two allowlists")
      ("authorized-clients", po::value(&o.authorized_clients)->value_name("DIR"),
       "directory of public key files (only NAME.key files count) of the clients allowed to submit; "
       "owned by root or this user and not writable by group or others; reread on SIGHUP")
      ("authorized-workers", po::value(&o.authorized_workers)->value_name("DIR"),
       "directory of public key files (NAME.key) of the workers allowed to register, held to the same "
       "rules; reread on SIGHUP")
      ("insecure", po::bool_switch(&f.insecure),
       "allow binding a non-loopback address without CURVE: then anyone who reaches the client port runs "
       "commands on every worker")
      ("max-groups-per-client", po::value(&o.max_groups_per_client)->default_value(0)->value_name("N"),
       "groups one client may have in flight (0: no limit); without CURVE all clients count as one")
      ("max-steps-per-group", po::value(&o.max_steps_per_group)->default_value(0)->value_name("N"),
       "steps a group may have (0: no limit)");
  opts.add(security);
  return opts;
}

// Loads the CURVE key named on the command line, or refuses to expose the
// client port without one; an exit code, or -1 to go on.
int Secure(Flags& f) {
  ServerOptions& o = f.o;
  if (!f.secret_key_file.empty()) {
    if (o.authorized_clients.empty() || o.authorized_workers.empty()) {
      std::cerr << "cohort-coordinator: --curve-secret-key needs --authorized-clients DIR and "
                   "--authorized-workers DIR (directories of public key files; may be empty)\n";
      return 2;
    }
    if (!cohort::common::HasCurve()) {
      std::cerr << "cohort-coordinator: this libzmq was built without CURVE support\n";
      return 2;
    }
    cohort::common::CurveKeyPair keys;
    if (auto s = cohort::common::LoadSecretKey(f.secret_key_file, &keys); !s.ok()) {
      std::cerr << "cohort-coordinator: --curve-secret-key: " << s.message() << "\n";
      return 2;
    }
    o.curve = keys;
  } else if (!o.authorized_clients.empty() || !o.authorized_workers.empty()) {
    std::cerr << "cohort-coordinator: --authorized-clients and --authorized-workers need --curve-secret-key\n";
    return 2;
  } else if (auto open = cohort::common::NonLoopback({o.client_endpoint, o.worker_endpoint, o.cancel_endpoint});
             !open.empty() && !f.insecure) {
    // Like Redis's protected mode: reaching the client port means running
    // anything on every worker, so the network needs keys or an explicit "yes".
    std::cerr << "cohort-coordinator: refusing to bind " << open.front()
              << " without CURVE: anyone who can reach it could run commands on every worker.\n"
                 "  Secure it: " << cohort::common::KeygenHint()
              << ", then give --curve-secret-key,\n"
                 "  --authorized-clients and --authorized-workers.\n"
                 "  Or bind 127.0.0.1 / ipc:// only, or pass --insecure on a network you fully trust.\n";
    return 2;
  }
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  ServerOptions& o = f.o;
  po::options_description opts = Describe(f);
  po::variables_map vm;
  int rc = cohort::common::ParseCommandLine(
      argc, argv, "cohort-coordinator",
      "Usage: cohort-coordinator [options]\n\n"
      "Accepts groups of steps from `cohort submit`, runs them on cohort-worker daemons\n"
      "with their concurrency limits, timeouts, deadlines and retries, and cancels the\n"
      "rest of a group as soon as one step fails for good. With no options it serves\n"
      "one machine on 127.0.0.1 ports 5700-5702. Logs one line per event to stderr.\n"
      "Binding a non-loopback address needs CURVE keys (--curve-secret-key and the\n"
      "allowlists) or --insecure. SIGHUP rereads the allowlists.",
      opts, &vm);
  if (rc >= 0) return rc;
  if (!cohort::common::ApplyLogLevel("cohort-coordinator", f.log_level)) return 2;
  cohort::common::HardenProcess();
  if (o.heartbeat_ms < 1 || o.liveness < 1 || !(f.backstop_s > 0) || !(f.retention_s >= 0) ||
      !(f.cancel_resend_s > 0) || f.max_groups < 1 || f.max_steps < 1) {
    std::cerr << "cohort-coordinator: --heartbeat-ms, --liveness, --backstop-grace, --cancel-resend, --max-groups and "
                 "--max-steps must be positive, --retention non-negative\n";
    return 2;
  }
  if (int secure = Secure(f); secure >= 0) return secure;
  o.scheduler.backstop_grace = cohort::common::SecondsToDuration(f.backstop_s);
  o.scheduler.retention = cohort::common::SecondsToDuration(f.retention_s);
  o.scheduler.cancel_resend = cohort::common::SecondsToDuration(f.cancel_resend_s);
  o.scheduler.max_groups = f.max_groups;
  o.scheduler.max_steps = f.max_steps;
  o.scheduler.seed = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) ^
                     static_cast<uint64_t>(std::random_device{}());
  {
    char prefix[16];
    std::snprintf(prefix, sizeof prefix, "g%04x.", static_cast<unsigned>(o.scheduler.seed & 0xffff));
    o.scheduler.id_prefix = prefix;
  }

  cohort::common::StopSignal stop;
  cohort::common::RaiseOnTermination(&stop);
  cohort::common::StopSignal reload;
  cohort::common::RaiseOnHangup(&reload);
  cohort::coordinator::Server server(o);
  if (auto s = server.Bind(); !s.ok() || !stop.valid()) {
    std::cerr << "cohort-coordinator: " << (s.ok() ? "eventfd failed" : s.message()) << "\n";
    return 1;
  }
  if (!o.curve) cohort::common::LogWarn("no_authentication").Kv("detail", "no --curve-secret-key: whoever reaches the client endpoint may submit");
  return server.Run(stop, reload.valid() ? &reload : nullptr);
}
