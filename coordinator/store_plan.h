// The writing half every Store implementation shares: a batch of records
// turned into the statements of store_schema.h, each with its parameters
// and what it means when it changes no row. An engine runs the plan inside
// its transaction, as it can best: SqliteStore one statement after another,
// PostgresStore all of them in one pipelined round trip, checking the row
// counts when the results come back. So both engines write exactly the
// same rows for the same batch.
//
// Parameters view the batch's strings: a plan must not outlive its batch.
//
// Thread contract: plain data and a pure function.
#ifndef COHORT_COORDINATOR_STORE_PLAN_H_
#define COHORT_COORDINATOR_STORE_PLAN_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "coordinator/store.h"
#include "coordinator/store_schema.h"

namespace cohort::coordinator::schema {

struct Param {
  enum class Kind { kNull, kInt, kText, kBytes };
  Kind kind = Kind::kNull;
  int64_t integer = 0;
  std::string_view text;  // kText and kBytes

  static Param Null() { return {}; }
  static Param Int(int64_t v) { return {Kind::kInt, v, {}}; }
  static Param Text(std::string_view v) { return {Kind::kText, 0, v}; }
  static Param Bytes(std::string_view v) { return {Kind::kBytes, 0, v}; }
};

struct Op {
  Dml which;
  std::vector<Param> params;  // $1, $2, ... in order
  // When not empty: changing no row fails the batch with FailedPrecondition
  // and this message (the record does not fit what is stored).
  std::string missing;
  size_t record = 0;  // the record's index in the batch
};

// The statements for `batch`, in order. Records are not checked here: call
// CheckRecord on each first.
std::vector<Op> PlanBatch(const std::vector<Record>& batch);

// The batch's error for record `index` that failed with `cause`: the
// record named, its place in the batch, the cause's code and message.
common::Status RecordError(const std::vector<Record>& batch, size_t index, const common::Status& cause);

}  // namespace cohort::coordinator::schema

#endif  // COHORT_COORDINATOR_STORE_PLAN_H_
