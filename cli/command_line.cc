#include "cli/command_line.h"

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
       "the coordinator's client endpoint (default: $COHORT_COORDINATOR or tcp://127.0.0.1:5700); several, "
       "separated by commas, for coordinators sharing a PostgreSQL database: the leader is found among them")
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

// Parses a subcommand's arguments. Returns -1 to go on, else an exit code.
int Parse(const std::vector<std::string>& args, const std::string& usage, po::options_description& opts,
          const po::positional_options_description& pos, po::variables_map* vm) {
  try {
    po::store(po::command_line_parser(args).options(opts).positional(pos).run(), *vm);
    if (vm->count("help")) {
      std::cout << usage << "\n" << opts << "\n";
      return kExitOk;
    }
    po::notify(*vm);
  } catch (const po::error& e) {
    return Fail(kExitUsage, std::string(e.what()) + " (see --help)");
  }
  return -1;
}

int StatusExit(const Status& s) {
  switch (s.code()) {
    case Status::Code::kOk: return kExitOk;
    case Status::Code::kUnavailable: return kExitUnreachable;
    case Status::Code::kInvalidArgument:
    case Status::Code::kAlreadyExists: return kExitUsage;
    default: return kExitFailed;
  }
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
