#include "common/options.h"

#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <vector>

#include "common/exit_codes.h"
#include "common/log.h"

namespace cohort::common {

namespace po = boost::program_options;

namespace {

// Where an option's value came from, when that was the config file.
struct Origin {
  int line = 0;
  std::string value;
};

// Set once by ParseCommandLine on main's thread, read by UsageError.
std::string g_config_path;
std::map<std::string, Origin> g_origins;

std::string Trimmed(const std::string& s) {
  const size_t begin = s.find_first_not_of(" \t\r");
  if (begin == std::string::npos) return "";
  return s.substr(begin, s.find_last_not_of(" \t\r") + 1 - begin);
}

// A near miss for an unknown name: heartbeat_ms, --slots.
std::string Suggestion(const std::string& name, const po::options_description& visible) {
  std::string guess = name;
  while (!guess.empty() && guess[0] == '-') guess.erase(0, 1);
  for (char& c : guess) {
    if (c == '_') c = '-';
  }
  if (guess != name && visible.find_nothrow(guess, false, false, false) != nullptr) {
    return " (did you mean \"" + guess + "\"?)";
  }
  return "";
}

// Reads `path` into `vm` (options already there, from the command line,
// win). Prints the first error, naming the file and the line; false then.
bool StoreConfigFile(const std::string& program, const std::string& path, const po::options_description& visible,
                     po::variables_map* vm) {
  std::ifstream in(path);
  if (!in) {
    std::cerr << program << ": cannot read config file " << path << ": " << std::strerror(errno) << "\n";
    return false;
  }
  auto fail = [&](int line, const std::string& what) {
    std::cerr << program << ": " << path << ":" << line << ": " << what << "\n";
    return false;
  };
  po::parsed_options parsed(&visible);
  std::map<std::string, int> first_line;
  std::string text;
  for (int n = 1; std::getline(in, text); ++n) {
    // As Boost's own config parser: a value can never hold `#`.
    if (size_t hash = text.find('#'); hash != std::string::npos) text.erase(hash);
    text = Trimmed(text);
    if (text.empty()) continue;
    const size_t eq = text.find('=');
    if (eq == std::string::npos || Trimmed(text.substr(0, eq)).empty()) {
      return fail(n, "malformed line \"" + text + "\": expected `name = value`");
    }
    const std::string name = Trimmed(text.substr(0, eq));
    const std::string value = Trimmed(text.substr(eq + 1));
    const po::option_description* option = visible.find_nothrow(name, false, false, false);
    if (option == nullptr) return fail(n, "unknown option \"" + name + "\"" + Suggestion(name, visible));
    if (auto [at, fresh] = first_line.emplace(name, n); !fresh) {
      return fail(n, "option \"" + name + "\" given twice (first on line " + std::to_string(at->second) + ")");
    }
    // Parsed here, whether or not the command line overrides it, so that a
    // bad value is reported where it is.
    try {
      boost::any parsed_value;
      option->semantic()->parse(parsed_value, {value}, true);
    } catch (const po::error&) {
      return fail(n, "bad value \"" + value + "\" for option \"" + name + "\"");
    }
    po::option opt(name, {value});
    opt.original_tokens = {name, value};
    parsed.options.push_back(std::move(opt));
    g_origins[name] = Origin{n, value};
  }
  // Options the command line gave keep its values: forget their origins.
  for (auto it = g_origins.begin(); it != g_origins.end();) {
    const auto found = vm->find(it->first);
    it = found != vm->end() && !found->second.defaulted() ? g_origins.erase(it) : std::next(it);
  }
  po::store(parsed, *vm);
  return true;
}

}  // namespace

int ParseCommandLine(int argc, char** argv, const std::string& program, const std::string& usage,
                     const po::options_description& visible, po::variables_map* vm) {
  po::options_description all;
  all.add(visible);
  po::options_description generic("General");
  generic.add_options()
      ("help,h", "show this help and exit")
      ("version", "print the version and exit")
      ("config", po::value<std::string>()->value_name("FILE"),
       "read options from an INI file (`name = value` per line; the command line wins)")
      ("check-config", po::bool_switch(),
       "check the options and the files they name (keys, allowlists, state directory), print OK or the "
       "errors, and exit 0 or 2 without binding, locking or connecting anything");
  all.add(generic);
  g_config_path.clear();
  g_origins.clear();
  try {
    po::store(po::parse_command_line(argc, argv, all), *vm);
    if (vm->count("help")) {
      std::cout << usage << "\n" << visible << "\n" << generic << "\n";
      return kExitOk;
    }
    if (vm->count("version")) {
      std::cout << program << " " << kVersion << "\n";
      return kExitOk;
    }
    if (vm->count("config")) {
      g_config_path = (*vm)["config"].as<std::string>();
      if (!StoreConfigFile(program, g_config_path, visible, vm)) return kExitUsage;
    }
    po::notify(*vm);
  } catch (const po::error& e) {
    std::cerr << program << ": " << e.what() << "\n(see " << program << " --help)\n";
    return kExitUsage;
  }
  return -1;
}

bool CheckConfigOnly(const po::variables_map& vm) {
  const auto it = vm.find("check-config");
  return it != vm.end() && it->second.as<bool>();
}

int ConfigChecked(const std::string& program, int errors) {
  if (errors > 0) return kExitUsage;
  std::cout << program << ": configuration OK ("
            << (g_config_path.empty() ? "the command line" : g_config_path + " and the command line") << ")\n";
  return kExitOk;
}

int UsageError(const std::string& program, const std::string& message) {
  std::cerr << program << ": " << message << "\n";
  std::string from;
  for (const auto& [name, origin] : g_origins) {
    const std::string flag = "--" + name;
    // Whole names only: --store is not --store-max-mb.
    for (size_t at = message.find(flag); at != std::string::npos; at = message.find(flag, at + 1)) {
      const size_t end = at + flag.size();
      const bool whole = end == message.size() || !(std::isalnum(static_cast<unsigned char>(message[end])) ||
                                                    message[end] == '-');
      if (whole) {
        from += (from.empty() ? "" : ", ") + std::string("line ") + std::to_string(origin.line) + " " + name +
                " = " + origin.value;
        break;
      }
    }
  }
  if (!from.empty()) std::cerr << "  (in " << g_config_path << ": " << from << ")\n";
  return kExitUsage;
}

bool ApplyLogOptions(const std::string& program, const std::string& level, const std::string& format) {
  LogLevel l;
  if (!ParseLogLevel(level, &l)) {
    UsageError(program, "--log-level must be debug, info, warn or error, got \"" + level + "\"");
    return false;
  }
  LogFormat f;
  if (!ParseLogFormat(format, &f)) {
    UsageError(program, "--log-format must be text or json, got \"" + format + "\"");
    return false;
  }
  SetLogLevel(l);
  SetLogFormat(f);
  return true;
}

}  // namespace cohort::common
