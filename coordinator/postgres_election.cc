// PostgresStore as the Election (leadership.h): the lease row's statements.
// Times are the database's clock (clock_timestamp, in Unix milliseconds),
// so no two coordinators' clocks are ever compared.
#include "coordinator/postgres_store.h"

namespace cohort::coordinator {

using common::Status;

namespace {

#define COHORT_NOW_MS "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)"

// Inserts the row the first time; afterwards takes it over only once its
// lease has run out. Concurrent campaigns queue on the row's lock, and each
// one after the winner sees the new expiry and takes nothing. An epoch is
// at least the database's clock in milliseconds, not just one more than
// the row's: a row restored from an old backup, or lost in an asynchronous
// failover, must not hand out an epoch that was given before (workers
// would ignore its leader, or obey two).
constexpr char kCampaign[] =
    "INSERT INTO leadership (name, epoch, holder, client_endpoint, worker_endpoint, expires_unix_ms)"
    " VALUES ('leader', " COHORT_NOW_MS ", $1, $2, $3, " COHORT_NOW_MS " + CAST($4 AS BIGINT))"
    " ON CONFLICT (name) DO UPDATE SET epoch = GREATEST(leadership.epoch + 1, " COHORT_NOW_MS "),"
    " holder = excluded.holder,"
    " client_endpoint = excluded.client_endpoint, worker_endpoint = excluded.worker_endpoint,"
    " expires_unix_ms = excluded.expires_unix_ms"
    " WHERE leadership.expires_unix_ms < " COHORT_NOW_MS " RETURNING epoch";
constexpr char kRenew[] =
    "UPDATE leadership SET expires_unix_ms = " COHORT_NOW_MS " + CAST($2 AS BIGINT)"
    " WHERE name = 'leader' AND epoch = $1";
constexpr char kResign[] = "UPDATE leadership SET expires_unix_ms = 0 WHERE name = 'leader' AND epoch = $1";
constexpr char kCurrent[] =
    "SELECT epoch, holder, client_endpoint, worker_endpoint, expires_unix_ms - " COHORT_NOW_MS
    " FROM leadership WHERE name = 'leader'";

#undef COHORT_NOW_MS

std::string Ms(common::Duration d) {
  return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
}

}  // namespace

Status PostgresStore::ReadLeader(const PgResult& r, Leader* out) const {
  *out = Leader{};
  if (r.rows() == 0) return Status::Ok();
  out->epoch = static_cast<uint64_t>(r.Int(0, 0));
  out->holder = r.Bytes(0, 1);
  out->client_endpoint = r.Bytes(0, 2);
  out->worker_endpoint = r.Bytes(0, 3);
  out->expires_in_ms = r.Int(0, 4);
  return Status::Ok();
}

Status PostgresStore::Current(Leader* out) {
  Status s = Ready();
  PgResult r;
  if (s.ok()) s = conn_->Query(kCurrent, {}, "reading who leads", &r);
  return s.ok() ? ReadLeader(r, out) : s;
}

Status PostgresStore::Campaign(const Leader& me, common::Duration lease, bool* won, Leader* current) {
  *won = false;
  if (deposed_) return Deposed("campaigning");
  Status s = Ready();
  PgResult r;
  if (s.ok()) {
    s = conn_->Query(kCampaign, {me.holder, me.client_endpoint, me.worker_endpoint, Ms(lease)},
                     "campaigning for leadership", &r);
  }
  if (!s.ok()) return s;
  if (r.rows() == 1) {
    epoch_ = static_cast<uint64_t>(r.Int(0, 0));
    lease_ = lease;
    *won = true;
    *current = me;
    current->epoch = *epoch_;
    current->expires_in_ms = std::chrono::duration_cast<std::chrono::milliseconds>(lease).count();
    return Status::Ok();
  }
  return Current(current);
}

Status PostgresStore::Renew(common::Duration lease, Leader* current) {
  if (!epoch_) return Status::FailedPrecondition("renewing a lease never won");
  if (deposed_) return Deposed("renewing the lease");
  Status s = Ready();
  PgResult r;
  if (s.ok()) s = conn_->Query(kRenew, {std::to_string(*epoch_), Ms(lease)}, "renewing the lease", &r);
  if (!s.ok()) return s;
  if (r.Changes() == 1) return Status::Ok();
  deposed_ = true;
  Current(current).IgnoreError();
  return Deposed("renewing the lease");
}

Status PostgresStore::Resign() {
  if (!epoch_ || deposed_) return Status::Ok();
  Status s = Ready();
  PgResult r;
  if (s.ok()) s = conn_->Query(kResign, {std::to_string(*epoch_)}, "resigning the lease", &r);
  return s;
}

Status PostgresStore::Deposed(const std::string& doing) {
  Leader now;
  std::string who;
  if (conn_ && !conn_->broken() && Current(&now).ok() && now.epoch > 0) {
    who = ": " + now.holder + " leads with epoch " + std::to_string(now.epoch);
  }
  return Status::FailedPrecondition("deposed while " + doing + " (this coordinator's epoch " +
                                    std::to_string(epoch_.value_or(0)) + " was taken over" + who + ")");
}

}  // namespace cohort::coordinator
