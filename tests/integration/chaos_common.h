// What the two chaos tests share: the kinds of group they run, the seed and
// sizes they read from the environment, and the check every ended step must
// pass (one final state, one history record per attempt, exactly one
// success for a completed step, the last).
#ifndef COHORT_TESTS_INTEGRATION_CHAOS_COMMON_H_
#define COHORT_TESTS_INTEGRATION_CHAOS_COMMON_H_

#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <random>
#include <string>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

namespace cohort::testing {

enum class Kind { kOk, kFailing, kTimeout, kCancelled, kFlaky };

inline const char* KindName(Kind k) {
  switch (k) {
    case Kind::kOk: return "ok";
    case Kind::kFailing: return "failing";
    case Kind::kTimeout: return "timeout";
    case Kind::kCancelled: return "cancelled";
    case Kind::kFlaky: return "flaky";
  }
  return "?";
}

inline uint64_t EnvNumber(const std::string& name, uint64_t fallback) {
  const char* v = std::getenv(name.c_str());
  return v && *v ? std::strtoull(v, nullptr, 10) : fallback;
}

// A run's seed and size, from PREFIX_SEED (random if unset), PREFIX_GROUPS
// and PREFIX_CLIENTS, printed first ("LABEL: PREFIX_SEED=... ...") so that
// a failing run can be replayed.
struct ChaosRun {
  uint64_t seed = 0;
  int groups = 0;
  int clients = 0;
};
inline ChaosRun ReadChaosRun(const std::string& label, const std::string& prefix, int default_clients) {
  ChaosRun r;
  r.seed = EnvNumber(prefix + "_SEED", std::random_device{}());
  r.groups = static_cast<int>(EnvNumber(prefix + "_GROUPS", 300));
  r.clients = static_cast<int>(EnvNumber(prefix + "_CLIENTS", default_clients));
  std::cout << label << ": " << prefix << "_SEED=" << r.seed << " " << prefix << "_GROUPS=" << r.groups << " "
            << prefix << "_CLIENTS=" << r.clients << std::endl;
  return r;
}

// One step of a result document (`cohort status --json`).
inline void CheckStepHistory(const nlohmann::json& s) {
  const std::string state = s["state"];
  CHECK((state == "completed" || state == "failed" || state == "cancelled"));
  const nlohmann::json& h = s["history"];
  CHECK(h.size() == s["attempts"].get<size_t>());
  size_t succeeded = 0;
  for (const nlohmann::json& a : h) {
    CHECK(a["status"] != "running");
    succeeded += a["status"] == "succeeded";
  }
  if (state == "completed") {
    CHECK(succeeded == 1);
    CHECK(h.back()["status"] == "succeeded");
  } else {
    CHECK(succeeded == 0);
  }
}

}  // namespace cohort::testing

#endif  // COHORT_TESTS_INTEGRATION_CHAOS_COMMON_H_
