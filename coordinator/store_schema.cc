#include "coordinator/store_schema.h"

#include <variant>

namespace cohort::coordinator::schema {

using common::Status;

std::string ForDialect(std::string_view sql, Dialect dialect) {
  constexpr std::string_view kPostgresOnly = "{postgres}";
  if (sql.starts_with(kPostgresOnly)) {
    if (dialect != Dialect::kPostgres) return "";
    sql.remove_prefix(kPostgresOnly.size());
  }
  constexpr std::string_view kBytes = "{bytes}";
  const std::string_view type = dialect == Dialect::kSqlite ? "BLOB" : "BYTEA";
  std::string out;
  out.reserve(sql.size());
  for (size_t at = 0;;) {
    size_t hit = sql.find(kBytes, at);
    if (hit == std::string_view::npos) {
      out.append(sql.substr(at));
      return out;
    }
    out.append(sql.substr(at, hit - at));
    out.append(type);
    at = hit + kBytes.size();
  }
}

const char kCreateVersionTable[] = "CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)";
const char kSelectVersion[] = "SELECT version FROM schema_version";
const char kDeleteVersion[] = "DELETE FROM schema_version";
const char kInsertVersion[] = "INSERT INTO schema_version (version) VALUES ($1)";

// Version 1. One row per accepted group (submissions), per attempt, per
// ended step, per cancel request and per entry of a group's error list;
// every child row names its submission, so forgetting a group is a few
// deletes by primary-key prefix. Integers are BIGINT throughout (SQLite
// stores them in as few bytes as they need), flags too (0/1): SQLite has no
// boolean to share, and one integer type binds alike on both engines.
const std::vector<std::string_view> kVersion1 = {
    // Counters that outlive the rows they count: max_submission.
    "CREATE TABLE counters ("
    " name TEXT PRIMARY KEY,"
    " value BIGINT NOT NULL)",

    "CREATE TABLE submissions ("
    " submission BIGINT PRIMARY KEY,"
    " group_id TEXT NOT NULL,"
    " client TEXT NOT NULL,"
    " submitted_unix_ms BIGINT NOT NULL,"
    " step_count BIGINT NOT NULL,"
    " stop_state TEXT,"  // NULL while the group is not stopping: the state it will end in
    " stopped_unix_ms BIGINT,"
    " end_state TEXT,"  // NULL while the group runs
    " ended_unix_ms BIGINT)",

    // The spec apart from its group's row: a million-step spec spans
    // thousands of overflow pages, which every statement that reads a
    // column after it in the same row would walk.
    "CREATE TABLE group_specs ("
    " submission BIGINT PRIMARY KEY REFERENCES submissions (submission),"
    " spec_json TEXT NOT NULL)",

    // The end columns are NULL until the attempt ends (ended_unix_ms says);
    // started_unix_ms, known only from the end, stays NULL when the worker
    // never said the attempt started.
    "CREATE TABLE attempts ("
    " submission BIGINT NOT NULL REFERENCES submissions (submission),"
    " step BIGINT NOT NULL,"
    " attempt BIGINT NOT NULL,"
    " worker TEXT NOT NULL,"
    " dispatched_unix_ms BIGINT NOT NULL,"
    " ended_unix_ms BIGINT,"
    " started_unix_ms BIGINT,"
    " status TEXT,"
    " exit_code BIGINT,"
    " exit_signal BIGINT,"
    " timed_out BIGINT,"
    " cancelled BIGINT,"
    " error TEXT,"
    " stdout_tail {bytes},"
    " stderr_tail {bytes},"
    " stdout_bytes BIGINT,"
    " stderr_bytes BIGINT,"
    " PRIMARY KEY (submission, step, attempt))",

    "CREATE TABLE step_ends ("
    " submission BIGINT NOT NULL REFERENCES submissions (submission),"
    " step BIGINT NOT NULL,"
    " state TEXT NOT NULL,"
    " error TEXT NOT NULL,"
    " unix_ms BIGINT NOT NULL,"
    " PRIMARY KEY (submission, step))",

    // seq orders a group's requests; the insert computes it (no sequences,
    // which the two engines spell differently).
    "CREATE TABLE cancels ("
    " submission BIGINT NOT NULL REFERENCES submissions (submission),"
    " seq BIGINT NOT NULL,"
    " step BIGINT,"  // NULL: the whole group
    " requested_by TEXT NOT NULL,"
    " unix_ms BIGINT NOT NULL,"
    " PRIMARY KEY (submission, seq))",

    // seq is the entry's position in the group's list, given by the core
    // (a restored group goes on numbering after its last entry).
    "CREATE TABLE group_errors ("
    " submission BIGINT NOT NULL REFERENCES submissions (submission),"
    " seq BIGINT NOT NULL,"
    " step_id TEXT NOT NULL,"  // "": an error of the whole group
    " error TEXT NOT NULL,"
    " unix_ms BIGINT NOT NULL,"
    " PRIMARY KEY (submission, seq))",
};

// Version 2. Who leads the coordinators that share this database
// (coordinator/leadership.h): one row, its epoch only ever growing, its
// lease ending at expires_unix_ms of the database's own clock, so the
// coordinators' clocks never have to agree. A store with one coordinator
// (SQLite) keeps the table empty.
const std::vector<std::string_view> kVersion2 = {
    "CREATE TABLE leadership ("
    " name TEXT PRIMARY KEY,"
    " epoch BIGINT NOT NULL,"
    " holder TEXT NOT NULL,"
    " client_endpoint TEXT NOT NULL,"
    " worker_endpoint TEXT NOT NULL,"
    " expires_unix_ms BIGINT NOT NULL)",
};

// Version 3, PostgreSQL only. An attempt's row is written twice, when it
// starts and when it ends; room left on its page lets the second write
// update the row in place (a heap-only tuple) instead of adding an index
// entry, which is most of what a busy coordinator asks of PostgreSQL.
const std::vector<std::string_view> kVersion3 = {
    "{postgres}ALTER TABLE attempts SET (fillfactor = 50)",
};

// Version 4: the workers an operator cordoned or is draining, by name, so
// that a restarted coordinator keeps them out of placement.
const std::vector<std::string_view> kVersion4 = {
    "CREATE TABLE worker_modes ("
    " worker TEXT PRIMARY KEY,"
    " mode TEXT NOT NULL,"
    " set_by TEXT NOT NULL,"
    " since_unix_ms BIGINT NOT NULL)",
};

const std::vector<std::vector<std::string_view>>& Migrations() {
  static const std::vector<std::vector<std::string_view>> kAll = {kVersion1, kVersion2, kVersion3, kVersion4};
  return kAll;
}

std::string NewerVersionMessage(const std::string& db, int64_t found, std::string_view instead) {
  return db + ": schema version " + std::to_string(found) + " is newer than this cohort-coordinator supports (" +
         std::to_string(SupportedVersion()) + "): upgrade cohort-coordinator, or " + std::string(instead);
}

namespace {

// The inserts that must name an existing group read it with INSERT ...
// SELECT: one statement both checks the group (and that the step is within
// it) and writes, and inserts nothing otherwise. Parameters in a select list
// carry a CAST so PostgreSQL knows their types.
//
// COHORT_RUNNING_GROUPS is the groups Load restores in full, spliced into
// the statements by string literal concatenation.
#define COHORT_RUNNING_GROUPS "(SELECT submission FROM submissions WHERE end_state IS NULL)"
constexpr std::string_view kDml[kDmlCount] = {
    // kAcceptGroup
    "INSERT INTO submissions (submission, group_id, client, submitted_unix_ms, step_count)"
    " VALUES ($1, $2, $3, $4, $5)",
    // kStoreSpec
    "INSERT INTO group_specs (submission, spec_json) VALUES ($1, $2)",
    // kRaiseMaxSubmission: changes nothing unless $1 is above the stored value.
    "INSERT INTO counters (name, value) VALUES ('max_submission', $1)"
    " ON CONFLICT (name) DO UPDATE SET value = excluded.value WHERE counters.value < excluded.value",
    // kSelectMaxSubmission
    "SELECT value FROM counters WHERE name = 'max_submission'",
    // kStartAttempt
    "INSERT INTO attempts (submission, step, attempt, worker, dispatched_unix_ms)"
    " SELECT CAST($1 AS BIGINT), CAST($2 AS BIGINT), CAST($3 AS BIGINT), CAST($4 AS TEXT),"
    " CAST($5 AS BIGINT) FROM submissions WHERE submission = $1 AND step_count > $2",
    // kEndAttempt: only an attempt that started and has not ended.
    "UPDATE attempts SET ended_unix_ms = $4, status = $5, exit_code = $6, exit_signal = $7,"
    " timed_out = $8, cancelled = $9, error = $10, stdout_tail = $11, stderr_tail = $12,"
    " stdout_bytes = $13, stderr_bytes = $14, started_unix_ms = $15"
    " WHERE submission = $1 AND step = $2 AND attempt = $3 AND ended_unix_ms IS NULL",
    // kEndStep
    "INSERT INTO step_ends (submission, step, state, error, unix_ms)"
    " SELECT CAST($1 AS BIGINT), CAST($2 AS BIGINT), CAST($3 AS TEXT), CAST($4 AS TEXT),"
    " CAST($5 AS BIGINT) FROM submissions WHERE submission = $1 AND step_count > $2",
    // kRequestCancel
    "INSERT INTO cancels (submission, seq, step, requested_by, unix_ms)"
    " SELECT CAST($1 AS BIGINT),"
    " (SELECT COALESCE(MAX(c.seq), 0) + 1 FROM cancels c WHERE c.submission = $1),"
    " CAST($2 AS BIGINT), CAST($3 AS TEXT), CAST($4 AS BIGINT)"
    " FROM submissions WHERE submission = $1 AND ($2 IS NULL OR step_count > $2)",
    // kStopGroup: once, and only before the group ended (a group that ends
    // without stopping never stops afterwards).
    "UPDATE submissions SET stop_state = $2, stopped_unix_ms = $3"
    " WHERE submission = $1 AND stop_state IS NULL AND end_state IS NULL",
    // kAddError: the primary key refuses a seq the group has already.
    "INSERT INTO group_errors (submission, seq, step_id, error, unix_ms)"
    " SELECT CAST($1 AS BIGINT), CAST($2 AS BIGINT), CAST($3 AS TEXT), CAST($4 AS TEXT),"
    " CAST($5 AS BIGINT) FROM submissions WHERE submission = $1",
    // kEndGroup
    "UPDATE submissions SET end_state = $2, ended_unix_ms = $3 WHERE submission = $1 AND end_state IS NULL",
    // kForgetAttempts, kForgetStepEnds, kForgetCancels, kForgetErrors, kForgetSpec, kForgetGroup
    "DELETE FROM attempts WHERE submission = $1",
    "DELETE FROM step_ends WHERE submission = $1",
    "DELETE FROM cancels WHERE submission = $1",
    "DELETE FROM group_errors WHERE submission = $1",
    "DELETE FROM group_specs WHERE submission = $1",
    "DELETE FROM submissions WHERE submission = $1",
    // kLoadGroups .. kLoadErrors: every group not ended. A child table is
    // read through the primary key's submission prefix, group by group.
    "SELECT s.submission, s.group_id, g.spec_json, s.client, s.submitted_unix_ms, s.step_count, s.stop_state,"
    " s.stopped_unix_ms, s.end_state, s.ended_unix_ms FROM submissions s"
    " JOIN group_specs g ON g.submission = s.submission WHERE s.end_state IS NULL ORDER BY s.submission",
    "SELECT submission, step, attempt, worker, dispatched_unix_ms, ended_unix_ms, status, exit_code,"
    " exit_signal, timed_out, cancelled, error, stdout_tail, stderr_tail, stdout_bytes, stderr_bytes,"
    " started_unix_ms FROM attempts WHERE submission IN " COHORT_RUNNING_GROUPS " ORDER BY submission, step, attempt",
    "SELECT submission, step, state, error, unix_ms FROM step_ends WHERE submission IN " COHORT_RUNNING_GROUPS
    " ORDER BY submission, step",
    "SELECT submission, seq, step, requested_by, unix_ms FROM cancels WHERE submission IN " COHORT_RUNNING_GROUPS
    " ORDER BY submission, seq",
    "SELECT submission, seq, step_id, error, unix_ms FROM group_errors WHERE submission IN " COHORT_RUNNING_GROUPS
    " ORDER BY submission, seq",
    // kLoadFinished, kCountFinished
    "SELECT submission, group_id, client, submitted_unix_ms, step_count, end_state, ended_unix_ms"
    " FROM submissions WHERE end_state IS NOT NULL ORDER BY submission",
    "SELECT e.submission, e.state, COUNT(*) FROM step_ends e JOIN submissions s ON s.submission = e.submission"
    " WHERE s.end_state IS NOT NULL GROUP BY e.submission, e.state ORDER BY e.submission",
    // kLoadGroup .. kLoadGroupErrors: the group $1, whatever its state.
    "SELECT s.submission, s.group_id, g.spec_json, s.client, s.submitted_unix_ms, s.step_count, s.stop_state,"
    " s.stopped_unix_ms, s.end_state, s.ended_unix_ms FROM submissions s"
    " JOIN group_specs g ON g.submission = s.submission WHERE s.submission = $1",
    "SELECT submission, step, attempt, worker, dispatched_unix_ms, ended_unix_ms, status, exit_code,"
    " exit_signal, timed_out, cancelled, error, stdout_tail, stderr_tail, stdout_bytes, stderr_bytes,"
    " started_unix_ms FROM attempts WHERE submission = $1 ORDER BY step, attempt",
    "SELECT submission, step, state, error, unix_ms FROM step_ends WHERE submission = $1 ORDER BY step",
    "SELECT submission, seq, step, requested_by, unix_ms FROM cancels WHERE submission = $1 ORDER BY seq",
    "SELECT submission, seq, step_id, error, unix_ms FROM group_errors WHERE submission = $1 ORDER BY seq",
    // kLoadOutput
    "SELECT stdout_tail, stderr_tail FROM attempts"
    " WHERE submission = $1 AND step = $2 AND attempt = $3 AND ended_unix_ms IS NOT NULL",
    // kSetWorkerMode, kClearWorkerMode, kLoadWorkerModes
    "INSERT INTO worker_modes (worker, mode, set_by, since_unix_ms) VALUES ($1, $2, $3, $4)"
    " ON CONFLICT (worker) DO UPDATE SET mode = excluded.mode, set_by = excluded.set_by,"
    " since_unix_ms = excluded.since_unix_ms",
    "DELETE FROM worker_modes WHERE worker = $1",
    "SELECT worker, mode, set_by, since_unix_ms FROM worker_modes ORDER BY worker",
};
#undef COHORT_RUNNING_GROUPS

template <typename Enum, typename NameFn>
bool ParseByName(std::string_view name, int count, NameFn name_of, Enum* out) {
  for (int i = 0; i < count; ++i) {
    if (name_of(static_cast<Enum>(i)) == name) {
      *out = static_cast<Enum>(i);
      return true;
    }
  }
  return false;
}

Status Refuse(const Record& record, const std::string& why) {
  return Status::InvalidArgument(Describe(record) + ": " + why);
}

Status CheckUnsigned(const Record& record, const char* field, uint64_t value) {
  if (value <= kMaxStoredUnsigned) return Status::Ok();
  return Refuse(record, std::string(field) + " " + std::to_string(value) + " is past the largest storable (" +
                            std::to_string(kMaxStoredUnsigned) + ")");
}

}  // namespace

std::string_view DmlText(Dml which) { return kDml[static_cast<int>(which)]; }

bool ParseAttemptStatus(std::string_view name, common::AttemptStatus* out) {
  return ParseByName(name, 6, common::AttemptStatusName, out);
}
bool ParseStepState(std::string_view name, common::StepState* out) {
  return ParseByName(name, common::kStepStateCount, common::StepStateName, out);
}
bool ParseGroupState(std::string_view name, common::GroupState* out) {
  return ParseByName(name, 4, common::GroupStateName, out);
}

bool IsStopState(common::GroupState state) {
  return state == common::GroupState::kCancelled || state == common::GroupState::kFailed;
}

Status CheckRecord(const Record& record) {
  if (const auto* m = std::get_if<WorkerModeSet>(&record)) {
    if (m->worker.empty()) return Refuse(record, "a worker mode needs a worker name");
    if (m->mode != "cordoned" && m->mode != "draining" && m->mode != "ready") {
      return Refuse(record, "mode \"" + m->mode + "\" is not cordoned, draining or ready");
    }
    return Status::Ok();
  }
  const uint64_t submission = std::visit(
      [](const auto& r) -> uint64_t {
        if constexpr (requires { r.submission; }) {
          return r.submission;
        } else {
          return 0;
        }
      },
      record);
  if (submission == 0) return Refuse(record, "submission 0 is never given out");
  Status s = CheckUnsigned(record, "submission", submission);
  if (!s.ok()) return s;
  if (const auto* g = std::get_if<GroupAccepted>(&record)) return CheckUnsigned(record, "step_count", g->step_count);
  if (const auto* a = std::get_if<AttemptEnded>(&record)) {
    if (a->status == common::AttemptStatus::kRunning) return Refuse(record, "an ended attempt cannot be running");
    s = CheckUnsigned(record, "stdout_bytes", a->stdout_bytes);
    return s.ok() ? CheckUnsigned(record, "stderr_bytes", a->stderr_bytes) : s;
  }
  if (const auto* st = std::get_if<StepEnded>(&record); st && !common::IsFinal(st->state)) {
    return Refuse(record, "state " + std::string(common::StepStateName(st->state)) + " is not final");
  }
  if (const auto* ge = std::get_if<GroupEnded>(&record); ge && ge->state == common::GroupState::kRunning) {
    return Refuse(record, "an ended group cannot be running");
  }
  if (const auto* gs = std::get_if<GroupStopped>(&record); gs && !IsStopState(gs->state)) {
    return Refuse(record, "a group stops to end cancelled or failed, not " +
                              std::string(common::GroupStateName(gs->state)));
  }
  // ErrorAdded needs no check of its own: a uint32_t seq always fits a BIGINT.
  return Status::Ok();
}

}  // namespace cohort::coordinator::schema
