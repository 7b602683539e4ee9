#include "cli/command_line.h"

#include <algorithm>
#include <cstdlib>
#include <iostream>

#include "common/group_spec.h"
#include "common/protocol.h"
#include "common/result_json.h"
#include "common/time.h"

namespace cohort::cli {

namespace po = boost::program_options;
using common::Status;
using Json = nlohmann::json;

namespace {

std::string EnvOr(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

}  // namespace

po::options_description CommonOptions(Common* c) {
  c->coordinator = EnvOr("COHORT_COORDINATOR", cohort::common::kDefaultClientEndpoint);
  c->coordinator_key = EnvOr("COHORT_COORDINATOR_KEY", "");
  c->secret_key = EnvOr("COHORT_SECRET_KEY", "");
  po::options_description d("Connection");
  d.add_options()
      ("coordinator", po::value(&c->coordinator)->default_value(c->coordinator)->value_name("EP"),
       "the coordinator's client endpoint (default: $COHORT_COORDINATOR or tcp://127.0.0.1:5700); HOST:PORT "
       "means tcp://HOST:PORT; several, separated by commas, for coordinators sharing a PostgreSQL database: "
       "the leader is found among them")
      ("connect-timeout", po::value(&c->timeout_s)->default_value(c->timeout_s)->value_name("S"),
       "seconds to wait for the coordinator to answer before giving up (exit 3); while waiting for a "
       "group (wait, submit --wait), the longest the coordinator may stay unreachable: the wait goes on "
       "across a coordinator restart")
      ("json", po::bool_switch(&c->json), "print the coordinator's JSON document and nothing else on stdout; for "
       "a group, one document with every step, however many (read page by page)")
      ("jsonl", po::bool_switch(&c->jsonl), "for a group: one JSON object per step per line, then the group's "
       "summary as the last line (for jq -c and log shippers)")
      ("coordinator-key", po::value(&c->coordinator_key)->value_name("FILE"),
       "the coordinator's public key file: talk CURVE, only to it (default: $COHORT_COORDINATOR_KEY)")
      ("curve-secret-key", po::value(&c->secret_key)->value_name("FILE"),
       "your secret key file (NAME.key_secret, mode 0600), whose public key the coordinator authorized "
       "(default: $COHORT_SECRET_KEY)");
  return d;
}

int Fail(int code, const std::string& message) {
  std::cerr << "cohort: " << message << "\n";
  return code;
}

size_t CommandIndex(const std::vector<std::string>& args, std::string* error) {
  Common ignored;
  const po::options_description common = CommonOptions(&ignored);
  size_t i = 0;
  while (i < args.size() && args[i].starts_with("--") && args[i] != "--help" && args[i] != "--version") {
    const std::string& arg = args[i];
    const size_t eq = arg.find('=');
    const std::string name = arg.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
    // Abbreviations are matched as the command's own parser will match them.
    const po::option_description* o = name.empty() ? nullptr : common.find_nothrow(name, true);
    if (!o) {
      *error = "unknown option " + arg + " before the command (only the connection options, shown by "
               "`cohort status --help`, may come first; see cohort --help)";
      return args.size();
    }
    const bool takes_value = o->semantic()->max_tokens() > 0 && eq == std::string::npos;
    if (takes_value && i + 1 >= args.size()) {
      *error = "option " + arg + " needs a value (see cohort --help)";
      return args.size();
    }
    i += takes_value ? 2 : 1;
  }
  return i;
}

namespace {

// The long names a positional description fills: internal names such as
// "group" that the usage line already shows as GROUP.
std::vector<std::string> PositionalNames(const po::positional_options_description& pos) {
  std::vector<std::string> names;
  // Unlimited positions repeat the last name: a distinct name each is enough.
  for (unsigned i = 0; i < pos.max_total_count() && i < 64; ++i) {
    const std::string& name = pos.name_for_position(i);
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  }
  return names;
}

// The options a person can type, in two parts: the command's own, then the
// connection options every command shares. Positional options, and those
// without a description, are left out: they are internal names filled from
// the words after the command.
void PrintOptions(const po::options_description& opts, const po::positional_options_description& pos,
                  std::ostream& out) {
  Common ignored;
  const po::options_description common = CommonOptions(&ignored);
  const std::vector<std::string> hidden = PositionalNames(pos);
  po::options_description own("Options"), connection("Connection");
  for (const auto& o : opts.options()) {
    if (o->description().empty() || std::find(hidden.begin(), hidden.end(), o->long_name()) != hidden.end()) {
      continue;
    }
    (common.find_nothrow(o->long_name(), false) ? connection : own).add(o);
  }
  const unsigned width = std::max(own.get_option_column_width(), connection.get_option_column_width());
  own.print(out, width);
  if (!connection.options().empty()) {
    out << "\n";
    connection.print(out, width);
  }
}

}  // namespace

int Parse(const std::vector<std::string>& args, const std::string& usage, po::options_description& opts,
          const po::positional_options_description& pos, po::variables_map* vm) {
  try {
    po::store(po::command_line_parser(args).options(opts).positional(pos).run(), *vm);
    if (vm->count("help")) {
      std::cout << usage << "\n\n";
      PrintOptions(opts, pos, std::cout);
      return kExitOk;
    }
    po::notify(*vm);
  } catch (const po::error& e) {
    return Fail(kExitUsage, std::string(e.what()) + " (see --help)");
  }
  return -1;
}

Json ParseBody(const std::string& body) {
  Json j;
  std::string error;
  return cohort::common::ParseJsonBounded(body, &j, &error) ? j : Json();
}
int LoadKeys(Common* c) {
  if (Status s = cohort::common::LoadPeerCurve(c->secret_key, c->coordinator_key, &c->curve); !s.ok()) {
    return Fail(kExitUsage, s.message());
  }
  return -1;
}

Client MakeClient(const Common& c) {
  return Client(c.coordinator, cohort::common::SecondsToDuration(c.timeout_s > 0 ? c.timeout_s : 5), c.curve);
}

}  // namespace cohort::cli
