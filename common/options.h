// Shared command-line plumbing for the daemons: --config INI files (every
// flag can also be a `name = value` line), --version, --check-config, and
// turning bad usage into one clear line and exit code 2 (common/exit_codes.h).
//
// Thread contract: main's thread, before it starts any other (ParseCommandLine
// records where each option was set, for UsageError).
#ifndef COHORT_COMMON_OPTIONS_H_
#define COHORT_COMMON_OPTIONS_H_

#include <string>

#include <boost/program_options.hpp>

#include "common/version.h"

namespace cohort::common {

// Parses argv (and the file named by --config, whose values the command line
// overrides) into `vm`. Prints help/version when asked. Returns -1 to go on,
// or the exit code to leave with (0 after --help/--version, 2 on bad usage).
//
// The file has one `name = value` per line; `#` starts a comment, anywhere
// on a line; blank lines are ignored. Each value is parsed by its option's
// own semantic, exactly as on the command line. An unknown option, a bad
// value, a line that is not `name = value` and an option given twice are
// errors naming the file and the line ("/etc/cohort/worker.conf:12: unknown
// option \"heartbeat_ms\"").
int ParseCommandLine(int argc, char** argv, const std::string& program, const std::string& usage,
                     const boost::program_options::options_description& visible,
                     boost::program_options::variables_map* vm);

// True when the command line asked for --check-config: check the options and
// the files they name, print the verdict, and exit without starting.
bool CheckConfigOnly(const boost::program_options::variables_map& vm);

// --check-config's verdict: "PROGRAM: configuration OK (FILE and the command
// line)" on stdout and 0 when `errors` is 0; else 2 (the errors are already
// on stderr).
int ConfigChecked(const std::string& program, int errors);

// Prints "PROGRAM: MESSAGE" on stderr and, when the message names options
// (`--heartbeat-ms`) whose values came from the config file, where:
// "  (in /etc/cohort/worker.conf: line 12 heartbeat-ms = 0)". Returns 2.
int UsageError(const std::string& program, const std::string& message);

// Sets the log level and format from --log-level's and --log-format's text;
// false (after printing why) if one is not a known name.
bool ApplyLogOptions(const std::string& program, const std::string& level, const std::string& format);

}  // namespace cohort::common

#endif  // COHORT_COMMON_OPTIONS_H_
