// cohort: the command-line client. Submits groups, watches them, cancels them.
// Exit status: see cli/exit_codes.h (and kUsage below).
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <iostream>
#include <optional>
#include <sstream>

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include "cli/client.h"
#include "cli/command_line.h"
#include "cli/admin_commands.h"
#include "cli/display.h"
#include "cli/group_list.h"
#include "cli/group_waiter.h"
#include "cli/one_step.h"
#include "cli/result_pages.h"
#include "common/group_spec.h"
#include "common/options.h"
#include "common/protocol.h"
#include "common/result_json.h"
#include "common/secure_options.h"

namespace {

namespace po = boost::program_options;
using cohort::cli::Client;
using cohort::cli::Common;
using cohort::cli::CommonOptions;
using cohort::cli::Fail;
using cohort::cli::kExitFailed;
using cohort::cli::kExitOk;
using cohort::cli::kExitUsage;
using cohort::cli::LoadKeys;
using cohort::cli::MakeClient;
using cohort::cli::Parse;
using cohort::cli::ParseBody;
using cohort::cli::StatusExit;
using cohort::common::Status;
using Json = nlohmann::json;

const char* kUsage =
    "Usage: cohort [connection options] COMMAND [options]\n"
    "\n"
    "Runs groups of shell commands on a cohort cluster. A group succeeds or fails as a\n"
    "whole: when one step fails for good, the coordinator cancels the others.\n"
    "\n"
    "Commands:\n"
    "  submit FILE.json       submit a group file (see docs/PROTOCOL.md for its format)\n"
    "  submit --commands F    submit one step per line of F (ids 1, 2, ...)\n"
    "  submit -- CMD ARG...   submit a one-step group\n"
    "  status GROUP           show a group's steps\n"
    "  wait GROUP             wait until a group ends, then show it\n"
    "  logs GROUP STEP        print a step's kept output (--stderr, --attempt N)\n"
    "  cancel GROUP [STEP]    cancel a whole group, or one of its steps\n"
    "  groups                 list the groups the coordinator knows\n"
    "  workers                list the workers: state, slots, version, last seen\n"
    "  cordon WORKER          place no new steps on a worker (running ones go on)\n"
    "  drain WORKER           cordon a worker and wait until its steps have ended\n"
    "  uncordon WORKER        place steps on a worker again\n"
    "  ping                   check that the coordinator answers: version, uptime,\n"
    "                         leader or standby (exit 0; 3 when it does not answer)\n"
    "  keygen NAME            write a CURVE key pair: NAME.key (public) and\n"
    "                         NAME.key_secret (mode 0600); see docs/SECURITY.md\n"
    "\n"
    "Run `cohort COMMAND --help` for a command's options. The connection options\n"
    "(--coordinator, --connect-timeout, --json, --jsonl, --coordinator-key,\n"
    "--curve-secret-key) go before the command or after it.\n"
    "\n"
    "Exit status:\n"
    "  0  done: the group completed, or the command did what it was asked (cancel\n"
    "     of a group that had already finished says so and exits 0)\n"
    "  1  the group failed or was cancelled, or the coordinator refused the request\n"
    "  2  bad usage: an unknown option, an invalid group, a wrong port\n"
    "  3  the coordinator did not answer in time, or is full (try again later)\n"
    "  4  no such group, step or worker (or not one of yours)\n"
    "  124, 128+N, 130  submit --wait -- CMD: the step timed out, was killed by\n"
    "     signal N; or Ctrl-C cancelled (or left) the wait; otherwise the step's\n"
    "     own exit code (see cohort submit --help)\n"
    "\n"
    "Environment: COHORT_COORDINATOR, COHORT_COORDINATOR_KEY and COHORT_SECRET_KEY are\n"
    "the defaults for --coordinator, --coordinator-key and --curve-secret-key.\n";

int ExitForState(const Json& result) {
  std::string state = result.is_object() && result.contains("state") && result["state"].is_string()
                          ? result["state"].get<std::string>()
                          : "";
  return state == "completed" || state == "running" ? kExitOk : kExitFailed;
}

cohort::cli::ResultFormat FormatOf(const Common& c) {
  return c.jsonl ? cohort::cli::ResultFormat::kJsonl
         : c.json ? cohort::cli::ResultFormat::kJson
                  : cohort::cli::ResultFormat::kTable;
}

// Shows the group's whole result, from its first page in `body` on; the exit
// code for its state. `end`: for a person, the group's end summary instead
// of the table of its steps.
int ShowResult(Client& client, const std::string& group, const std::string& body, const Common& c,
               bool end = false) {
  Json summary;
  cohort::cli::ResultFormat format = FormatOf(c);
  if (end && format == cohort::cli::ResultFormat::kTable) format = cohort::cli::ResultFormat::kEnd;
  if (Status s = cohort::cli::WriteResult(client, group, body, format, std::cout, &summary); !s.ok()) {
    return Fail(StatusExit(s), s.message());
  }
  return ExitForState(summary);
}

// Waits for the group's end, through coordinator restarts (see
// cli/group_waiter.h), then shows its result. `submitted`: this client has
// just submitted the group, so the coordinator had it. `one_step`: the group
// is `submit -- CMD`, shown as the command's own output (cli/one_step.h).
// `all`: end with the table of every step rather than the summary.
int WaitFor(Client& client, const std::string& group, const Common& c, bool submitted, bool one_step, bool all) {
  cohort::cli::WaitSettings settings;
  settings.progress = !c.json && !c.jsonl && ::isatty(STDERR_FILENO);
  settings.known = submitted;
  settings.cancel_on_interrupt = true;
  cohort::common::ReplyMsg reply;
  cohort::cli::WaitOutcome outcome;
  if (Status s = cohort::cli::WaitForGroup(client, group, settings, &reply, &outcome); !s.ok()) {
    return Fail(StatusExit(s), s.message());
  }
  if (outcome == cohort::cli::WaitOutcome::kDetached) return cohort::cli::kExitInterrupted;
  if (Status s = cohort::cli::ReplyStatus(reply); !s.ok()) return Fail(StatusExit(s), s.message());
  const int code = one_step && !all && !c.json && !c.jsonl ? cohort::cli::FinishOneStep(client, group, reply.body)
                                                           : ShowResult(client, group, reply.body, c, !all);
  // Interrupted, it exits as a command stopped by Ctrl-C does, unless the
  // group completed before the cancel reached it.
  return outcome == cohort::cli::WaitOutcome::kInterrupted && code != kExitOk ? cohort::cli::kExitInterrupted
                                                                                : code;
}

int Keygen(const std::vector<std::string>& args) {
  std::string name, dir = ".";
  po::options_description opts("Options");
  opts.add_options()("help,h", "show this help")
      ("dir", po::value(&dir)->default_value(dir)->value_name("DIR"), "where to write the two files")
      ("name", po::value(&name));
  po::positional_options_description pos;
  pos.add("name", 1);
  po::variables_map vm;
  const std::string usage =
      "Usage: cohort keygen NAME [--dir DIR]\n\n"
      "Writes a new CURVE key pair in the ZPL certificate format of CZMQ's zcert:\n"
      "DIR/NAME.key, the public key, to copy into the coordinator's allowlist (or to\n"
      "give to peers, for the coordinator's own), and DIR/NAME.key_secret, created\n"
      "with mode 0600, that never leaves this machine. Existing files are never\n"
      "overwritten.";
  if (int rc = Parse(args, usage, opts, pos, &vm); rc >= 0) return rc;
  if (name.empty()) return Fail(kExitUsage, "keygen needs a NAME (see --help)");
  cohort::common::CurveKeyPair keys;
  if (Status s = cohort::common::GenerateKeyPair(&keys); !s.ok()) return Fail(kExitFailed, s.message());
  std::string public_path, secret_path;
  if (Status s = cohort::common::WriteKeyFiles(dir, name, keys, &public_path, &secret_path); !s.ok()) {
    return Fail(s.code() == Status::Code::kIoError ? kExitFailed : kExitUsage, s.message());
  }
  std::cout << "public key: " << public_path << " (" << keys.public_z85 << ")\n"
            << "secret key: " << secret_path << " (mode 0600; keep it private)\n";
  return kExitOk;
}

// The group as JSON from whichever source was given: a group file, a file
// of shell lines, or one command. -1 to go on, else the exit code.
int ReadSpec(const std::string& file, const std::string& commands_file, const std::vector<std::string>& command,
             Json* out) {
  Json& spec = *out;
  if (!file.empty()) {
    std::ifstream in(file, std::ios::binary);
    if (!in) return Fail(kExitUsage, "cannot read " + file);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::string error;
    if (!cohort::common::ParseJsonBounded(text, &spec, &error)) {
      return Fail(kExitUsage, file + ": not valid JSON: " + error);
    }
    if (!spec.is_object()) return Fail(kExitUsage, file + ": a group file holds a JSON object");
    // The tree keeps one of a key given twice, so the text sent would hide
    // what the coordinator refuses in a file: the file is read strictly too.
    cohort::common::GroupSpec strict;
    if (Status s = cohort::common::ParseGroupSpecJson(text, &strict);
        !s.ok() && s.message().find("given more than once") != std::string::npos) {
      return Fail(kExitUsage, "invalid group: " + file + ": " + s.message());
    }
  } else if (!commands_file.empty()) {
    std::ifstream in(commands_file);
    if (!in) return Fail(kExitUsage, "cannot read " + commands_file);
    spec = Json{{"steps", Json::array()}};
    std::string line;
    while (std::getline(in, line)) {
      size_t start = line.find_first_not_of(" \t\r");
      if (start == std::string::npos || line[start] == '#') continue;
      spec["steps"].push_back(
          {{"id", std::to_string(spec["steps"].size() + 1)}, {"shell", line}});
    }
  } else {
    spec = Json{{"steps", Json::array({Json{{"id", "1"}, {"command", command}}})}};
  }
  return -1;
}

// --cwd DIR as the steps' directory: a relative DIR is taken from here, as
// Slurm's sbatch takes the submitting shell's, since the steps run on other
// hosts that share the file system. The path is not resolved further: a
// symbolic link on this host may be a mount on theirs.
int AbsoluteCwd(const std::string& dir, std::string* out) {
  if (dir.empty()) return Fail(kExitUsage, "--cwd needs a directory");
  std::error_code error;
  std::filesystem::path path = std::filesystem::absolute(dir, error);
  if (error) return Fail(kExitUsage, "--cwd " + dir + ": " + error.message());
  path = path.lexically_normal();
  // "/tmp/x/." normalizes to "/tmp/x/"; the steps see "/tmp/x".
  if (path.has_relative_path() && !path.has_filename()) path = path.parent_path();
  *out = path.string();
  return -1;
}

// Flags override the file: the group's settings, and a step's own timeout,
// retry block or cwd too. -1 to go on, else the exit code.
int ApplyFlags(const po::variables_map& vm, const std::string& id, const std::string& on_failure, Json* out) {
  Json& spec = *out;
  std::string cwd;
  if (vm.count("cwd")) {
    if (int rc = AbsoluteCwd(vm["cwd"].as<std::string>(), &cwd); rc >= 0) return rc;
  }
  if (!id.empty()) spec["id"] = id;
  if (vm.count("max-parallel")) spec["max_parallel"] = vm["max-parallel"].as<int64_t>();
  if (vm.count("timeout")) spec["timeout_s"] = vm["timeout"].as<double>();
  if (vm.count("deadline")) spec["deadline_s"] = vm["deadline"].as<double>();
  if (!on_failure.empty()) spec["on_failure"] = on_failure;
  if (vm.count("retries") || vm.count("backoff")) {
    if (!spec.contains("retry") || !spec["retry"].is_object()) spec["retry"] = Json::object();
    if (vm.count("retries")) spec["retry"]["max_attempts"] = vm["retries"].as<int64_t>() + 1;
    if (vm.count("backoff")) spec["retry"]["backoff_s"] = vm["backoff"].as<double>();
  }
  if (spec.contains("steps") && spec["steps"].is_array()) {
    for (Json& step : spec["steps"]) {
      if (!step.is_object()) continue;
      if (vm.count("timeout") && step.contains("timeout_s")) step["timeout_s"] = vm["timeout"].as<double>();
      if (!cwd.empty()) step["cwd"] = cwd;
      if (step.contains("retry") && step["retry"].is_object()) {
        if (vm.count("retries")) step["retry"]["max_attempts"] = vm["retries"].as<int64_t>() + 1;
        if (vm.count("backoff")) step["retry"]["backoff_s"] = vm["backoff"].as<double>();
      }
    }
  }
  return -1;
}

int Submit(std::vector<std::string> args) {
  std::vector<std::string> command;
  if (auto dash = std::find(args.begin(), args.end(), "--"); dash != args.end()) {
    command.assign(dash + 1, args.end());
    args.erase(dash, args.end());
  }
  Common c;
  std::string file, commands_file, id, on_failure;
  bool wait = false, all = false, detach = false;
  po::options_description opts("Options");
  opts.add_options()("help,h", "show this help")
      ("wait", po::bool_switch(&wait), "wait for the group to end, show progress and the result: counts, "
       "then the steps that failed, with their last lines of output")
      ("all", po::bool_switch(&all), "with --wait: end with a table of every step instead")
      ("detach", po::bool_switch(&detach), "submit and leave, printing the group id: what submit does without "
       "--wait, said outright (for scripts)")
      ("commands", po::value(&commands_file)->value_name("FILE"), "one shell command per line (blank lines and "
       "lines starting with # are skipped); step ids are 1, 2, ...")
      ("id", po::value(&id)->value_name("ID"), "the group's id (default: from the file, else assigned)")
      ("max-parallel", po::value<int64_t>()->value_name("N"), "steps of the group running at once")
      ("timeout", po::value<double>()->value_name("S"), "default timeout of each step's attempts")
      ("retries", po::value<int64_t>()->value_name("N"), "retries after the first attempt (max_attempts = N+1)")
      ("backoff", po::value<double>()->value_name("S"), "delay before the first retry (doubling after)")
      ("deadline", po::value<double>()->value_name("S"), "the whole group's deadline, from submission")
      ("cwd", po::value<std::string>()->value_name("DIR"), "every step's working directory; a relative DIR (such as "
       ".) is made absolute here, for workers that share this file system. Without it a step without a cwd of "
       "its own starts in its worker's working directory (the packaged worker's: /var/lib/cohort-run)")
      ("on-failure", po::value(&on_failure)->value_name("MODE"),
       "cancel (default: stop the group at the first failure) or continue (run everything)")
      ("file", po::value(&file), "the group file");
  opts.add(CommonOptions(&c));
  po::positional_options_description pos;
  pos.add("file", 1);
  po::variables_map vm;
  const std::string usage =
      "Usage: cohort submit FILE.json [options]\n"
      "       cohort submit --commands FILE [options]\n"
      "       cohort submit [options] -- CMD ARG...\n\n"
      "Submits a group. Without --wait, prints the group id once the coordinator has\n"
      "accepted it. Flags override the file. With --wait, waits as `cohort wait` does,\n"
      "across a coordinator restart too (see cohort wait --help).\n\n"
      "`submit --wait -- CMD ARG...` reads like running CMD: once its step ends, the\n"
      "step's kept stdout goes to stdout and its stderr to stderr, byte for byte\n"
      "(the last --output-tail-kib the worker kept), and cohort's own words go to\n"
      "stderr. Its exit status is the step's:\n"
      "  0      the step completed\n"
      "  N      the step exited with code N; but 2 and 3, cohort's own codes for bad\n"
      "         usage and an unreachable coordinator, become 1\n"
      "  124    the step timed out (as timeout(1))\n"
      "  128+N  the step was killed by signal N (as a shell)\n"
      "  1      it was cancelled, never started, or its worker was lost\n"
      "  2, 3   cohort's usage error, coordinator unreachable (as for any command)\n"
      "With --json or --jsonl it prints the result document instead, as for a group.\n\n"
      "Ctrl-C during --wait cancels the group and waits until its steps have stopped,\n"
      "then exits 130; a second Ctrl-C leaves at once (exit 130), the group going on.\n"
      "Without --wait, submit leaves at once: the group runs on its own.";
  if (int rc = Parse(args, usage, opts, pos, &vm); rc >= 0) return rc;
  if (all && !wait) return Fail(kExitUsage, "--all goes with --wait: it says how the group's end is shown");
  if (detach && wait) return Fail(kExitUsage, "--detach and --wait contradict each other: leave, or wait");
  int sources = !file.empty() + !commands_file.empty() + !command.empty();
  if (sources != 1) return Fail(kExitUsage, "submit needs exactly one of FILE.json, --commands FILE or -- CMD");

  Json spec;
  if (int rc = ReadSpec(file, commands_file, command, &spec); rc >= 0) return rc;
  if (int rc = ApplyFlags(vm, id, on_failure, &spec); rc >= 0) return rc;
  const std::string text = cohort::common::DumpJson(spec);
  if (text.size() > cohort::common::kMaxDocumentBytes) {
    return Fail(kExitUsage, "invalid group: the group is " + std::to_string(text.size()) +
                                " bytes of JSON; the limit is " + std::to_string(cohort::common::kMaxDocumentBytes));
  }
  cohort::common::GroupSpec checked;
  if (Status s = cohort::common::ParseGroupSpecJson(text, &checked); !s.ok()) {
    return Fail(kExitUsage, "invalid group: " + s.message());
  }

  if (int rc = LoadKeys(&c); rc >= 0) return rc;
  Client client = MakeClient(c);
  cohort::common::ReplyMsg reply;
  // With an id the SUBMIT is sent again while unanswered: the coordinator
  // attaches a repeat of the same spec to the group the first one made.
  // Without one, a repeat would make a second group: it is sent once.
  const cohort::common::SubmitMsg msg{0, text};
  int sent = 1;
  if (Status s = checked.id.empty() ? client.Call(msg, &reply) : client.CallRepeating(msg, &reply, &sent);
      !s.ok()) {
    return Fail(StatusExit(s), s.message());
  }
  if (Status s = cohort::cli::ReplyStatus(reply); !s.ok()) {
    return Fail(StatusExit(s), "group refused: " + s.message());
  }
  Json body = ParseBody(reply.body);
  std::string group = body.is_object() && body.contains("group") && body["group"].is_string()
                          ? body["group"].get<std::string>()
                          : "";
  if (group.empty()) return Fail(kExitFailed, "the coordinator accepted the group but sent no id");
  // (A repeat of our own SUBMIT that finds the group is no news.)
  if (body.value("existing", false) && sent == 1 && !c.json) {
    std::cerr << "cohort: group " << group << " already exists with this spec (submitted by you): following it\n";
  }
  if (body.contains("warning") && body["warning"].is_string() && !c.json) {
    std::cerr << "cohort: warning: group " << group << ": " << body["warning"].get<std::string>() << "\n";
  }
  if (!wait) {
    if (c.json) {
      std::cout << reply.body << "\n";
    } else {
      std::cout << group << "\n";
    }
    return kExitOk;
  }
  return WaitFor(client, group, c, true, !command.empty(), all);
}

// `cohort status GROUP STEP`: the step from the group's result, whose first
// page is `body`.
int ShowStep(Client& client, const std::string& group, const std::string& id, const std::string& body,
             const Common& c) {
  Json step;
  if (Status s = cohort::cli::FindStep(client, group, body, id, &step); !s.ok()) return Fail(StatusExit(s), s.message());
  if (c.json || c.jsonl) {
    std::cout << step.dump() << "\n";
    return std::cout ? kExitOk : kExitFailed;
  }
  std::string out, err;
  for (auto [stream, text] : {std::pair{"stdout", &out}, std::pair{"stderr", &err}}) {
    if (Status s = cohort::cli::StepOutput(client, group, step, stream, text); !s.ok()) {
      std::cerr << "cohort: cannot read the step's " << stream << ": " << s.message() << "\n";
    }
  }
  cohort::cli::PrintStep(group, step, out, err, std::cout);
  const std::string state = step.contains("state") && step["state"].is_string() ? step["state"].get<std::string>() : "";
  return state == "failed" || state == "cancelled" ? kExitFailed : kExitOk;
}

int GroupCommand(const std::string& name, std::vector<std::string> args) {
  Common c;
  std::string group, step;
  bool all = false;
  po::options_description opts("Options");
  opts.add_options()("help,h", "show this help")("group", po::value(&group))("step", po::value(&step));
  if (name == "wait") {
    opts.add_options()("all", po::bool_switch(&all), "end with a table of every step instead of the summary");
  }
  opts.add(CommonOptions(&c));
  po::positional_options_description pos;
  pos.add("group", 1);
  if (name != "wait") pos.add("step", 1);
  po::variables_map vm;
  std::string usage = name == "cancel" ? "Usage: cohort cancel GROUP [STEP]\n\nCancels the whole group (it ends "
                                         "cancelled), or only STEP (the group goes on)."
                    : name == "wait" ? "Usage: cohort wait GROUP [options]\n\n"
                                       "Waits until the group ends, then shows its counts by state and the steps\n"
                                       "that failed, with their last lines of output (--all: every step). Exit 0 if\n"
                                       "it completed, 1 if not. If the coordinator goes away meanwhile, waits for\n"
                                       "it to come back (for up to --connect-timeout, else exit 3) and waits again;\n"
                                       "exit 4 if it restarted and no longer knows the group.\n\n"
                                       "Ctrl-C cancels the group and waits until its steps have stopped, then\n"
                                       "exits 130; a second Ctrl-C leaves at once (exit 130), the group going on."
                                     : "Usage: cohort status GROUP [STEP] [options]\n\nShows the group's steps now, or "
                                       "one STEP in detail: its attempts (worker,\noutcome, times) and the last "
                                       "lines of its output.";
  if (int rc = Parse(args, usage, opts, pos, &vm); rc >= 0) return rc;
  if (group.empty()) return Fail(kExitUsage, name + " needs a GROUP (see --help)");
  // A step named and then ignored would show a whole group as if it were the step.
  if (name == "wait" && !step.empty()) {
    return Fail(kExitUsage, "wait follows a whole group, not a step; `cohort status " + group + " " + step +
                                "` shows the step");
  }
  if (int rc = LoadKeys(&c); rc >= 0) return rc;
  Client client = MakeClient(c);
  if (name == "wait") return WaitFor(client, group, c, false, false, all);
  cohort::common::ReplyMsg reply;
  cohort::common::Message req = cohort::common::StatusMsg{0, group};
  if (name == "cancel") req = cohort::common::CancelRequestMsg{0, group, step};
  // Both are safe to send again while unanswered: STATUS reads, and a
  // second CANCEL of a group being stopped changes nothing.
  int sent = 1;
  if (Status s = client.CallRepeating(req, &reply, &sent); !s.ok()) return Fail(StatusExit(s), s.message());
  Status refused = cohort::cli::ReplyStatus(reply);
  if (name == "cancel") return cohort::cli::CancelOutcome(refused, group, step, sent, c.json, std::cerr);
  if (!refused.ok()) return Fail(StatusExit(refused), refused.message());
  if (!step.empty()) return ShowStep(client, group, step, reply.body, c);
  return ShowResult(client, group, reply.body, c);
}

int Logs(std::vector<std::string> args) {
  Common c;
  std::string group, step;
  uint32_t attempt = 0;
  bool stderr_stream = false;
  po::options_description opts("Options");
  opts.add_options()("help,h", "show this help")
      ("attempt", po::value(&attempt)->value_name("N"), "that attempt (1, 2, ...; default: the last)")
      ("stderr", po::bool_switch(&stderr_stream), "its stderr instead of its stdout")
      ("group", po::value(&group))("step", po::value(&step));
  opts.add(CommonOptions(&c));
  po::positional_options_description pos;
  pos.add("group", 1).add("step", 1);
  po::variables_map vm;
  const std::string usage =
      "Usage: cohort logs GROUP STEP [--attempt N] [--stderr]\n\n"
      "Prints the end of a step's output that the worker kept (--output-tail-kib,\n"
      "64 KiB by default), byte for byte as the step wrote it, e.g.\n"
      "  cohort logs build-42 test | less";
  if (int rc = Parse(args, usage, opts, pos, &vm); rc >= 0) return rc;
  if (group.empty() || step.empty()) return Fail(kExitUsage, "logs needs a GROUP and a STEP (see --help)");
  if (int rc = LoadKeys(&c); rc >= 0) return rc;
  Client client = MakeClient(c);
  cohort::common::ReplyMsg reply;
  const cohort::common::LogsMsg req{0, group, step, attempt, stderr_stream ? "stderr" : "stdout"};
  if (Status s = client.CallRepeating(req, &reply); !s.ok()) return Fail(StatusExit(s), s.message());
  if (Status s = cohort::cli::ReplyStatus(reply); !s.ok()) return Fail(StatusExit(s), s.message());
  std::cout.write(reply.body.data(), static_cast<std::streamsize>(reply.body.size()));
  std::cout.flush();
  return std::cout ? kExitOk : kExitFailed;
}

int ListCommand(const std::string& name, std::vector<std::string> args) {
  Common c;
  std::string state;
  int64_t limit = cohort::cli::kGroupsShown;
  po::options_description opts("Options");
  opts.add_options()("help,h", "show this help");
  std::string usage = "Usage: cohort " + name + " [options]";
  if (name == "groups") {
    opts.add_options()
        ("state", po::value(&state)->value_name("STATE"), "only the groups in STATE: running, completed, failed "
         "or cancelled")
        ("limit", po::value(&limit)->value_name("N"), "show the newest N groups (default 50; 0: all); with "
         "--json, every group unless --limit is given");
    usage =
        "Usage: cohort groups [--state STATE] [--limit N] [options]\n\n"
        "Lists the groups the coordinator holds, newest first: each one's steps by\n"
        "state (pending: not started yet) and its elapsed time, from submission to\n"
        "its end, or to now while it runs.";
  }
  opts.add(CommonOptions(&c));
  po::variables_map vm;
  if (int rc = Parse(args, usage, opts, {}, &vm); rc >= 0) return rc;
  if (limit < 0) return Fail(kExitUsage, "--limit takes a count of groups, 0 for all");
  if (!state.empty() && !cohort::cli::IsGroupState(state)) {
    return Fail(kExitUsage, "--state takes running, completed, failed or cancelled, not \"" + state + "\"");
  }
  // Scripts read the whole list as before unless they ask for less.
  if (c.json && !vm.count("limit")) limit = 0;
  if (int rc = LoadKeys(&c); rc >= 0) return rc;
  Client client = MakeClient(c);
  cohort::common::ReplyMsg reply;
  cohort::common::Message req = cohort::common::GroupsMsg{0};
  if (name == "workers") req = cohort::common::WorkersMsg{0};
  if (Status s = client.Call(req, &reply); !s.ok()) return Fail(StatusExit(s), s.message());
  if (Status s = cohort::cli::ReplyStatus(reply); !s.ok()) return Fail(StatusExit(s), s.message());
  if (name == "workers") {
    if (c.json) {
      std::cout << reply.body << "\n";
    } else {
      cohort::cli::PrintWorkers(ParseBody(reply.body), std::cout);
    }
    return kExitOk;
  }
  size_t more = 0;
  const Json groups = cohort::cli::SelectGroups(ParseBody(reply.body), state, static_cast<size_t>(limit), &more);
  if (c.json) {
    std::cout << cohort::common::DumpJson(groups) << "\n";
  } else {
    const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch()).count();
    cohort::cli::PrintGroups(groups, now, std::cout);
  }
  // On stderr, so that the JSON on stdout stays one document.
  if (more) (c.json ? std::cerr : std::cout) << "(" << more << " more; --limit 0 shows all)\n";
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  std::string error;
  const size_t at = cohort::cli::CommandIndex(args, &error);
  if (!error.empty()) return Fail(kExitUsage, error);
  if (at == args.size() || args[at] == "--help" || args[at] == "-h" || args[at] == "help") {
    std::cout << kUsage;
    return at == args.size() ? kExitUsage : kExitOk;
  }
  if (args[at] == "--version") {
    std::cout << "cohort " << cohort::common::kVersion << "\n";
    return kExitOk;
  }
  const std::string cmd = args[at];
  // The connection options given before the command go to its parser, as
  // if given after it.
  args.erase(args.begin() + static_cast<std::ptrdiff_t>(at));
  try {
    if (cmd == "submit") return Submit(args);
    if (cmd == "status" || cmd == "wait" || cmd == "cancel") return GroupCommand(cmd, args);
    if (cmd == "groups" || cmd == "workers") return ListCommand(cmd, args);
    if (cmd == "keygen") return Keygen(args);
    if (cmd == "logs") return Logs(args);
    if (cmd == "ping") return cohort::cli::Ping(args);
    if (cmd == "cordon" || cmd == "uncordon" || cmd == "drain") return cohort::cli::SetWorkerMode(cmd, args);
  } catch (const std::exception& e) {
    return Fail(kExitFailed, std::string("unexpected error: ") + e.what());
  }
  return Fail(kExitUsage, "unknown command \"" + cmd + "\" (see cohort --help)");
}
