// The PostgreSQL store's fast path for the records a busy coordinator
// writes most: AttemptStarted, AttemptEnded and StepEnded. Statement by
// statement, a loop turn of a few hundred results costs PostgreSQL a
// thousand executions; here each kind becomes one statement over arrays
// (unnest), checked on the server to change exactly one row per record.
//
// Order: a batch runs as its GroupAccepted records first, then the started
// attempts, the ended attempts and the ended steps, then every other record
// in its own order. No record of the first four kinds depends on one of the
// others coming earlier (groups are accepted before anything names them,
// attempts start before they end, and forgetting, cancelling, stopping and
// ending a group come after), so the rows written are the same. When the
// fast path fails a check, the store runs the batch again record by record,
// which names the record at fault.
//
// Thread contract: plain functions and data.
#ifndef COHORT_COORDINATOR_POSTGRES_BULK_H_
#define COHORT_COORDINATOR_POSTGRES_BULK_H_

#include <array>
#include <string>
#include <string_view>
#include <vector>

#include "coordinator/store.h"
#include "coordinator/store_plan.h"

namespace cohort::coordinator::bulk {

enum class Kind { kStartAttempts, kEndAttempts, kEndSteps, kCount };
constexpr int kKinds = static_cast<int>(Kind::kCount);

// The statement for `kind`, checked: it fails with 22012 unless it changed
// as many rows as its last parameter says.
std::string_view Sql(Kind kind);

// A batch arranged for the fast path: the plan's statements for the
// records that stay single (`head` before the bulk statements, `tail`
// after), and each bulk statement's parameters (empty: no such record).
struct Arranged {
  std::vector<const schema::Op*> head, tail;
  std::array<std::vector<std::string>, kKinds> arrays;  // parameter texts, kept alive for the params
  std::array<std::vector<schema::Param>, kKinds> params;
  std::array<size_t, kKinds> rows{};
};

// `ops` is PlanBatch(batch); the result points into it.
void Arrange(const std::vector<Record>& batch, const std::vector<schema::Op>& ops, Arranged* out);

}  // namespace cohort::coordinator::bulk

#endif  // COHORT_COORDINATOR_POSTGRES_BULK_H_
