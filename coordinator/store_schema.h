// The state store's schema, its migrations and its statements, written once
// for every Store implementation: the SQL here runs unchanged on SQLite 3.40
// and PostgreSQL 15. The one type the two spell differently (raw bytes:
// BLOB, BYTEA) is written {bytes} and filled in by ForDialect; nothing else
// differs. Statements take their parameters as $1, $2, ... (both engines
// accept that spelling) and an implementation binds them by name, so a
// parameter may appear more than once and in any order.
//
// Also here: how record fields map to columns that need an encoding (the
// state enums are stored by their names, so the file reads well in sqlite3
// and survives a reordering of the enums) and the checks every record passes
// before any implementation writes it.
//
// Plain functions and constants; safe from any thread.
#ifndef COHORT_COORDINATOR_STORE_SCHEMA_H_
#define COHORT_COORDINATOR_STORE_SCHEMA_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "common/status.h"
#include "coordinator/store.h"

namespace cohort::coordinator::schema {

enum class Dialect { kSqlite, kPostgres };

// Replaces {bytes} with the dialect's raw-bytes type. A statement that
// starts {postgres} is PostgreSQL's alone (a storage setting SQLite has no
// words for): "" for SQLite, which a migration skips.
std::string ForDialect(std::string_view sql, Dialect dialect);

// ---- Versions and migrations -------------------------------------------------

// Bookkeeping every version has: one row, the version the tables are at.
// An empty table (or none) is version 0, a new database.
extern const char kCreateVersionTable[];
extern const char kSelectVersion[];
extern const char kDeleteVersion[];
extern const char kInsertVersion[];  // $1: the version

// Migration i (1-based) takes a database from version i-1 to i. An
// implementation runs each, with the version update, in one transaction.
// Entries are never edited once released: a change is a new migration.
const std::vector<std::vector<std::string_view>>& Migrations();
inline int SupportedVersion() { return static_cast<int>(Migrations().size()); }

// The refusal of a database written by a newer cohort-coordinator;
// `instead` is the other way out ("start with another --state-dir").
std::string NewerVersionMessage(const std::string& db, int64_t found, std::string_view instead);

// ---- Statements, indexed by Dml -------------------------------------------------

enum class Dml : int {
  kAcceptGroup,      // GroupAccepted: the group's row, then its spec
  kStoreSpec,
  kRaiseMaxSubmission,
  kSelectMaxSubmission,
  kStartAttempt,     // AttemptStarted
  kEndAttempt,       // AttemptEnded
  kEndStep,          // StepEnded
  kRequestCancel,    // CancelRequested
  kStopGroup,        // GroupStopped
  kAddError,         // ErrorAdded
  kEndGroup,         // GroupEnded
  kForgetAttempts,   // GroupForgotten: the five deletes, groups last
  kForgetStepEnds,
  kForgetCancels,
  kForgetErrors,
  kForgetSpec,
  kForgetGroup,
  kLoadGroups,       // Load: the groups still running, each table in turn
  kLoadAttempts,
  kLoadStepEnds,
  kLoadCancels,
  kLoadErrors,
  kLoadFinished,     // Load: the finished groups' rows, then their steps counted
  kCountFinished,
  kLoadGroup,        // LoadGroup: one group ($1), each table in turn
  kLoadGroupAttempts,
  kLoadGroupStepEnds,
  kLoadGroupCancels,
  kLoadGroupErrors,
  kLoadOutput,       // LoadOutput: one ended attempt's tails ($1 submission, $2 step, $3 attempt)
  kSetWorkerMode,    // WorkerModeSet: cordoned or draining ($1 worker, $2 mode, $3 who, $4 unix_ms)
  kClearWorkerMode,  // WorkerModeSet: ready ($1 worker)
  kLoadWorkerModes,  // Load: every mode in force
  kCount,
};
constexpr int kDmlCount = static_cast<int>(Dml::kCount);
std::string_view DmlText(Dml which);

// ---- Encodings ---------------------------------------------------------------------

// Names as common/result.h spells them; Parse* return false for an unknown one.
bool ParseAttemptStatus(std::string_view name, common::AttemptStatus* out);
bool ParseStepState(std::string_view name, common::StepState* out);
bool ParseGroupState(std::string_view name, common::GroupState* out);

// Whether a group may stop to end in `state` (GroupStopped): cancelled or
// failed.
bool IsStopState(common::GroupState state);

// InvalidArgument when a record can never be stored: submission 0, an
// unsigned value past kMaxStoredUnsigned, a state that is not final, a
// GroupStopped state that is not a stop state.
common::Status CheckRecord(const Record& record);

}  // namespace cohort::coordinator::schema

#endif  // COHORT_COORDINATOR_STORE_SCHEMA_H_
