#include "coordinator/postgres_bulk.h"

#include <variant>

#include "common/utf8.h"

namespace cohort::coordinator::bulk {

namespace {

constexpr std::string_view kSql[kKinds] = {
    // kStartAttempts: as kStartAttempt, one row per array element.
    "WITH changed AS (INSERT INTO attempts (submission, step, attempt, worker, dispatched_unix_ms)"
    " SELECT u.submission, u.step, u.attempt, u.worker, u.dispatched"
    " FROM unnest(CAST($1 AS BIGINT[]), CAST($2 AS BIGINT[]), CAST($3 AS BIGINT[]), CAST($4 AS TEXT[]),"
    " CAST($5 AS BIGINT[])) AS u (submission, step, attempt, worker, dispatched)"
    " JOIN submissions s ON s.submission = u.submission AND s.step_count > u.step RETURNING 1)"
    " SELECT 1 / CAST(COUNT(*) = CAST($6 AS BIGINT) AS INTEGER) FROM changed",
    // kEndAttempts: as kEndAttempt. An attempt listed twice updates once,
    // so the count check refuses it as the single statement would.
    "WITH changed AS (UPDATE attempts a SET ended_unix_ms = u.ended, status = u.status, exit_code = u.exit_code,"
    " exit_signal = u.exit_signal, timed_out = u.timed_out, cancelled = u.cancelled, error = u.error,"
    " stdout_tail = u.stdout_tail, stderr_tail = u.stderr_tail, stdout_bytes = u.stdout_bytes,"
    " stderr_bytes = u.stderr_bytes, started_unix_ms = u.started"
    " FROM unnest(CAST($1 AS BIGINT[]), CAST($2 AS BIGINT[]), CAST($3 AS BIGINT[]), CAST($4 AS BIGINT[]),"
    " CAST($5 AS TEXT[]), CAST($6 AS BIGINT[]), CAST($7 AS BIGINT[]), CAST($8 AS BIGINT[]), CAST($9 AS BIGINT[]),"
    " CAST($10 AS TEXT[]), CAST($11 AS BYTEA[]), CAST($12 AS BYTEA[]), CAST($13 AS BIGINT[]),"
    " CAST($14 AS BIGINT[]), CAST($15 AS BIGINT[])) AS u (submission, step, attempt, ended, status, exit_code,"
    " exit_signal, timed_out, cancelled, error, stdout_tail, stderr_tail, stdout_bytes, stderr_bytes, started)"
    " WHERE a.submission = u.submission AND a.step = u.step AND a.attempt = u.attempt"
    " AND a.ended_unix_ms IS NULL RETURNING 1)"
    " SELECT 1 / CAST(COUNT(*) = CAST($16 AS BIGINT) AS INTEGER) FROM changed",
    // kEndSteps: as kEndStep.
    "WITH changed AS (INSERT INTO step_ends (submission, step, state, error, unix_ms)"
    " SELECT u.submission, u.step, u.state, u.error, u.unix_ms"
    " FROM unnest(CAST($1 AS BIGINT[]), CAST($2 AS BIGINT[]), CAST($3 AS TEXT[]), CAST($4 AS TEXT[]),"
    " CAST($5 AS BIGINT[])) AS u (submission, step, state, error, unix_ms)"
    " JOIN submissions s ON s.submission = u.submission AND s.step_count > u.step RETURNING 1)"
    " SELECT 1 / CAST(COUNT(*) = CAST($6 AS BIGINT) AS INTEGER) FROM changed",
};

constexpr int kColumns[kKinds] = {5, 15, 5};

// PostgreSQL's array literal, one column: {1,NULL,"text","\\x00ff"}.
class Column {
 public:
  void Add(const schema::Param& p) {
    text_ += text_.empty() ? "{" : ",";
    switch (p.kind) {
      case schema::Param::Kind::kNull:
        text_ += "NULL";
        break;
      case schema::Param::Kind::kInt:
        text_ += std::to_string(p.integer);
        break;
      case schema::Param::Kind::kText:
        Quoted(p.text);
        break;
      case schema::Param::Kind::kBytes:
        Hex(p.text);
        break;
    }
  }
  std::string Done() { return text_.empty() ? "{}" : text_ + "}"; }

 private:
  // Repaired as the single statements' text is (valid UTF-8, no NUL), then
  // quoted for the array literal.
  void Quoted(std::string_view v) {
    std::string repaired;
    if (common::FirstInvalidUtf8(v) != std::string_view::npos) {
      repaired.assign(v);
      common::RepairUtf8InPlace(&repaired);
      v = repaired;
    }
    text_ += '"';
    for (char c : v) {
      if (c == '"' || c == '\\') text_ += '\\';
      text_ += c == '\0' ? '?' : c;
    }
    text_ += '"';
  }
  // bytea's hex input, \x..., its backslash escaped inside the quotes.
  void Hex(std::string_view v) {
    static constexpr char kDigits[] = "0123456789abcdef";
    text_ += "\"\\\\x";
    for (unsigned char c : v) {
      text_ += kDigits[c >> 4];
      text_ += kDigits[c & 15];
    }
    text_ += '"';
  }

  std::string text_;
};

// The bulk kind a record's single statement belongs to, if any.
bool KindOf(const Record& r, Kind* out) {
  if (std::holds_alternative<AttemptStarted>(r)) *out = Kind::kStartAttempts;
  else if (std::holds_alternative<AttemptEnded>(r)) *out = Kind::kEndAttempts;
  else if (std::holds_alternative<StepEnded>(r)) *out = Kind::kEndSteps;
  else return false;
  return true;
}

}  // namespace

std::string_view Sql(Kind kind) { return kSql[static_cast<int>(kind)]; }

void Arrange(const std::vector<Record>& batch, const std::vector<schema::Op>& ops, Arranged* out) {
  std::array<std::vector<Column>, kKinds> columns;
  for (int k = 0; k < kKinds; ++k) columns[k].resize(kColumns[k]);
  for (const schema::Op& op : ops) {
    const Record& r = batch[op.record];
    Kind kind{};
    if (KindOf(r, &kind)) {
      const int k = static_cast<int>(kind);
      // The single statement's parameters, column by column, in its order.
      for (int c = 0; c < kColumns[k]; ++c) columns[k][c].Add(op.params[c]);
      ++out->rows[k];
    } else if (std::holds_alternative<GroupAccepted>(r)) {
      out->head.push_back(&op);
    } else {
      out->tail.push_back(&op);
    }
  }
  for (int k = 0; k < kKinds; ++k) {
    if (out->rows[k] == 0) continue;
    std::vector<std::string>& texts = out->arrays[k];
    for (Column& c : columns[k]) texts.push_back(c.Done());
    texts.push_back(std::to_string(out->rows[k]));
    for (const std::string& t : texts) out->params[k].push_back(schema::Param::Text(t));
  }
}

}  // namespace cohort::coordinator::bulk
