#include "cli/admin_commands.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <thread>

#include "cli/command_line.h"
#include "common/messages.h"
#include "common/secure_options.h"
#include "common/time.h"

namespace cohort::cli {

namespace po = boost::program_options;
using common::Status;
using Json = nlohmann::json;

namespace {

std::string Text(const Json& j, const char* key) {
  if (!j.is_object() || !j.contains(key)) return "";
  return j[key].is_string() ? j[key].get<std::string>() : j[key].dump();
}

// "3h 12m", "42 s": an uptime at a glance.
std::string Uptime(int64_t ms) {
  const int64_t s = ms / 1000;
  if (s < 60) return std::to_string(s) + " s";
  if (s < 3600) return std::to_string(s / 60) + "m " + std::to_string(s % 60) + "s";
  if (s < 86400) return std::to_string(s / 3600) + "h " + std::to_string(s % 3600 / 60) + "m";
  return std::to_string(s / 86400) + "d " + std::to_string(s % 86400 / 3600) + "h";
}

// The worker named `name` in a WORKERS reply, or null.
Json FindWorker(const Json& list, const std::string& name) {
  if (!list.is_array()) return nullptr;
  for (const Json& w : list) {
    if (Text(w, "name") == name) return w;
  }
  return nullptr;
}

}  // namespace

int Ping(const std::vector<std::string>& args) {
  Common c;
  po::options_description opts("Options");
  opts.add_options()("help,h", "show this help");
  opts.add(CommonOptions(&c));
  po::variables_map vm;
  const std::string usage =
      "Usage: cohort ping [--coordinator EP[,EP...]]\n\n"
      "Asks each coordinator endpoint, on its own, for its version, protocol and uptime,\n"
      "and whether it leads or stands by; a standby is healthy and says who leads. Exit 0\n"
      "when every endpoint answered within --connect-timeout, 3 naming each that did not.\n"
      "For a health check, e.g. `cohort ping --coordinator tcp://node1:5700 --connect-timeout 2`.";
  if (int rc = Parse(args, usage, opts, {}, &vm); rc >= 0) return rc;
  if (int rc = LoadKeys(&c); rc >= 0) return rc;
  int rc = kExitOk;
  Json all = Json::array();
  for (const std::string& endpoint : common::SplitEndpoints(c.coordinator)) {
    Common one = c;
    one.coordinator = endpoint;
    Client client = MakeClient(one);
    const auto start = std::chrono::steady_clock::now();
    common::ReplyMsg reply;
    Status s = client.Call(common::PingMsg{0}, &reply);
    if (s.ok()) s = ReplyStatus(reply);
    const auto ms = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - start)
                        .count() / 1000.0;
    if (!s.ok()) {
      rc = kExitUnreachable;
      std::cerr << "cohort: " << endpoint << ": " << s.message() << "\n";
      if (c.json) all.push_back({{"endpoint", endpoint}, {"error", s.message()}});
      continue;
    }
    Json j = ParseBody(reply.body);
    if (c.json) {
      j["endpoint"] = endpoint;
      j["round_trip_ms"] = ms;
      all.push_back(j);
      continue;
    }
    char rtt[32];
    std::snprintf(rtt, sizeof rtt, "%.1f ms", ms);
    std::string role = Text(j, "role");
    if (role == "standby") {
      const std::string leader = Text(j, "leader");
      role += leader.empty() ? " (no leader known)" : " (leader at " + leader + ")";
    } else if (Text(j, "epoch") != "0" && !Text(j, "epoch").empty()) {
      role += " (epoch " + Text(j, "epoch") + ")";
    }
    int64_t up = 0;
    if (j.is_object() && j.contains("uptime_ms") && j["uptime_ms"].is_number_integer()) up = j["uptime_ms"];
    std::cout << endpoint << ": " << Text(j, "name") << " cohort-coordinator " << Text(j, "version") << ", protocol "
              << Text(j, "protocol") << ", up " << Uptime(up) << ", " << role << " (" << rtt << ")\n";
  }
  if (c.json) std::cout << all.dump() << "\n";
  return rc;
}

int SetWorkerMode(const std::string& name, const std::vector<std::string>& args) {
  Common c;
  std::string worker;
  double timeout_s = 0;  // negative is refused below
  po::options_description opts("Options");
  opts.add_options()("help,h", "show this help")("worker", po::value(&worker));
  if (name == "drain") {
    opts.add_options()("timeout", po::value(&timeout_s)->default_value(timeout_s)->value_name("S"),
                       "give up waiting after S seconds (exit 1; the worker stays draining); 0 waits as long as "
                       "it takes");
  }
  opts.add(CommonOptions(&c));
  po::positional_options_description pos;
  pos.add("worker", 1);
  po::variables_map vm;
  const std::string usage =
      name == "cordon"   ? "Usage: cohort cordon WORKER\n\n"
                           "No new steps are placed on WORKER; those it runs go on. It stays cordoned across its\n"
                           "own restarts until `cohort uncordon WORKER`. `cohort workers` shows it."
      : name == "drain" ? "Usage: cohort drain WORKER [--timeout S]\n\n"
                           "Cordons WORKER and waits until the steps it runs have ended, e.g. before\n"
                           "maintenance of its node. Exit 0 once it runs nothing (or is lost). Undo with\n"
                           "`cohort uncordon WORKER`."
                        : "Usage: cohort uncordon WORKER\n\nPlaces steps on WORKER again.";
  if (int rc = Parse(args, usage, opts, pos, &vm); rc >= 0) return rc;
  if (worker.empty()) return Fail(kExitUsage, name + " needs a WORKER (see --help; `cohort workers` lists them)");
  if (!(timeout_s >= 0)) return Fail(kExitUsage, "--timeout must be 0 (no limit) or a number of seconds");
  if (int rc = LoadKeys(&c); rc >= 0) return rc;
  Client client = MakeClient(c);
  const std::string mode = name == "cordon" ? "cordoned" : name == "drain" ? "draining" : "ready";
  common::ReplyMsg reply;
  // Setting a mode twice is setting it once: safe to send again.
  if (Status s = client.CallRepeating(common::CordonMsg{0, worker, mode}, &reply); !s.ok()) {
    return Fail(StatusExit(s), s.message());
  }
  if (Status s = ReplyStatus(reply); !s.ok()) return Fail(StatusExit(s), s.message());
  if (name != "drain") {
    std::cerr << "worker " << worker << (name == "cordon" ? " cordoned: no new steps go to it\n"
                                                          : " uncordoned: steps may go to it again\n");
    return kExitOk;
  }
  const bool tty = ::isatty(STDERR_FILENO);
  const auto deadline = std::chrono::steady_clock::now() + common::SecondsToDuration(timeout_s);
  std::string last_running;
  while (true) {
    Status s = client.CallRepeating(common::WorkersMsg{0}, &reply);
    if (s.ok()) s = ReplyStatus(reply);
    if (s.code() == Status::Code::kUnavailable) {
      // A coordinator restart or a takeover: the mode is in its store, so
      // the drain goes on; wait for it to answer again.
      std::cerr << (tty ? "\r" : "") << "draining " << worker << ": " << s.message() << "; still waiting\n";
      last_running.clear();
    } else if (!s.ok()) {
      return Fail(StatusExit(s), s.message());
    }
    if (!s.ok()) {
      if (timeout_s > 0 && std::chrono::steady_clock::now() >= deadline) return Fail(StatusExit(s), s.message());
      std::this_thread::sleep_for(std::chrono::seconds(1));
      continue;
    }
    const Json w = FindWorker(ParseBody(reply.body), worker);
    const std::string state = Text(w, "state");
    if (w.is_null() || state == "drained" || state == "lost") {
      std::cerr << "worker " << worker << (state == "lost" ? " was lost while draining" : " drained: it runs nothing")
                << "; `cohort uncordon " << worker << "` to use it again\n";
      return kExitOk;
    }
    if (state != "draining") {
      return Fail(kExitFailed, "worker " + worker + " is " + state + " now: someone else changed it");
    }
    const std::string running = Text(w, "running");
    if (running != last_running) {
      std::cerr << (tty ? "\r" : "") << "draining " << worker << ": " << running << " steps still running"
                << (tty ? "  " : "\n");
      last_running = running;
    }
    if (timeout_s > 0 && std::chrono::steady_clock::now() >= deadline) {
      if (tty) std::cerr << "\n";
      char waited[32];
      std::snprintf(waited, sizeof waited, "%g s", timeout_s);
      return Fail(kExitFailed, "worker " + worker + " still runs " + running + " steps after " + waited +
                                   "; it stays draining (`cohort uncordon " + worker + "` to undo)");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
}

}  // namespace cohort::cli
