#include "common/options.h"

#include <fstream>
#include <iostream>

#include "common/log.h"

namespace cohort::common {

namespace po = boost::program_options;

int ParseCommandLine(int argc, char** argv, const std::string& program, const std::string& usage,
                     const po::options_description& visible, po::variables_map* vm) {
  po::options_description all;
  all.add(visible);
  po::options_description generic("General");
  generic.add_options()
      ("help,h", "show this help and exit")
      ("version", "print the version and exit")
      ("config", po::value<std::string>()->value_name("FILE"),
       "read options from an INI file (`name = value` per line; the command line wins)");
  all.add(generic);
  try {
    po::store(po::parse_command_line(argc, argv, all), *vm);
    if (vm->count("help")) {
      std::cout << usage << "\n" << visible << "\n" << generic << "\n";
      return 0;
    }
    if (vm->count("version")) {
      std::cout << program << " " << kVersion << "\n";
      return 0;
    }
    if (vm->count("config")) {
      const std::string path = (*vm)["config"].as<std::string>();
      std::ifstream in(path);
      if (!in) {
        std::cerr << program << ": cannot read config file " << path << "\n";
        return 2;
      }
      po::store(po::parse_config_file(in, visible), *vm);
    }
    po::notify(*vm);
  } catch (const po::error& e) {
    std::cerr << program << ": " << e.what() << "\n(see " << program << " --help)\n";
    return 2;
  }
  return -1;
}

bool ApplyLogLevel(const std::string& program, const std::string& text) {
  LogLevel level;
  if (!ParseLogLevel(text, &level)) {
    std::cerr << program << ": --log-level must be debug, info, warn or error, got \"" << text << "\"\n";
    return false;
  }
  SetLogLevel(level);
  return true;
}

}  // namespace cohort::common
