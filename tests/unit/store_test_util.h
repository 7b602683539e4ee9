// What the state store's tests share: opening a store on a real file, and
// requiring a Status to be OK with its message in the failure.
#ifndef COHORT_TESTS_UNIT_STORE_TEST_UTIL_H_
#define COHORT_TESTS_UNIT_STORE_TEST_UTIL_H_

#include <memory>
#include <string>

#include <catch2/catch.hpp>

#include "common/status.h"
#include "coordinator/sqlite_store.h"
#include "coordinator/store.h"

#define REQUIRE_OK(expr)                  \
  do {                                    \
    const ::cohort::common::Status s_ = (expr); \
    INFO(s_.ToString());                  \
    REQUIRE(s_.ok());                     \
  } while (0)

namespace cohort::testing {

inline std::unique_ptr<coordinator::Store> OpenOk(const std::string& dir,
                                                  coordinator::SyncMode sync = coordinator::SyncMode::kNormal) {
  std::unique_ptr<coordinator::Store> store;
  REQUIRE_OK(coordinator::SqliteStore::Open(dir, sync, &store));
  REQUIRE(store);
  return store;
}

}  // namespace cohort::testing

#endif  // COHORT_TESTS_UNIT_STORE_TEST_UTIL_H_
