// Shared command-line plumbing for the three programs: --config INI files
// (every flag can also be a `name = value` line), --version, and turning
// Boost.Program_options' exceptions into one clear line and exit code 2.
#ifndef COHORT_COMMON_OPTIONS_H_
#define COHORT_COMMON_OPTIONS_H_

#include <string>

#include <boost/program_options.hpp>

#include "common/version.h"

namespace cohort::common {

// Parses argv (and the file named by --config, whose values the command line
// overrides) into `vm`. Prints help/version when asked. Returns -1 to go on,
// or the exit code to leave with (0 after --help/--version, 2 on bad usage).
int ParseCommandLine(int argc, char** argv, const std::string& program, const std::string& usage,
                     const boost::program_options::options_description& visible,
                     boost::program_options::variables_map* vm);

// Sets the log level from --log-level's text; false (after printing why) if
// it is not debug, info, warn or error.
bool ApplyLogLevel(const std::string& program, const std::string& text);

}  // namespace cohort::common

#endif  // COHORT_COMMON_OPTIONS_H_
