// What every `cohort` command shares: the connection options (endpoint,
// timeout, CURVE keys, output format), parsing a command's arguments, and
// turning a Status into one line on stderr and an exit code.
#ifndef COHORT_CLI_COMMAND_LINE_H_
#define COHORT_CLI_COMMAND_LINE_H_

#include <optional>
#include <string>
#include <vector>

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include "cli/client.h"
#include "cli/exit_codes.h"
#include "common/secure_options.h"
#include "common/status.h"

namespace cohort::cli {

struct Common {
  std::string coordinator;
  double timeout_s = 5;
  bool json = false;
  bool jsonl = false;
  std::string coordinator_key, secret_key;
  std::optional<common::PeerCurve> curve;
};

// The "Connection" options, their defaults read from the environment.
boost::program_options::options_description CommonOptions(Common* c);
// Prints "cohort: MESSAGE" on stderr; returns `code`.
int Fail(int code, const std::string& message);
// The index in `args` (argv after the program name) of the command word:
// connection options may come before it, as git and kubectl take theirs
// (`cohort --coordinator EP status G`). args.size() when there is none, or
// when `*error` is set: an option before the command that is not one of the
// connection options, or lacks its value. "--help" and "--version" count as
// the command word.
size_t CommandIndex(const std::vector<std::string>& args, std::string* error);
// Parses a subcommand's arguments; --help prints `usage` and the options a
// person types (not the positional ones). Returns -1 to go on, else an exit code.
int Parse(const std::vector<std::string>& args, const std::string& usage,
          boost::program_options::options_description& opts,
          const boost::program_options::positional_options_description& pos,
          boost::program_options::variables_map* vm);
// A reply's JSON body, or null when it is not JSON.
nlohmann::json ParseBody(const std::string& body);
// Loads the CURVE keys the flags name. -1 to go on, else an exit code.
int LoadKeys(Common* c);
Client MakeClient(const Common& c);

}  // namespace cohort::cli

#endif  // COHORT_CLI_COMMAND_LINE_H_
