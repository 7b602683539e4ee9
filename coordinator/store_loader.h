// The reading half every Store implementation shares: the rows that
// store_schema.h's load statements return, checked and folded into the
// records of store.h. An engine supplies the rows (RowSource); what they
// must hold, and the Corruption a contradiction between them earns, is
// decided here once, so the engines cannot drift apart in what they accept.
//
// Thread contract: a Loader belongs to one call on one thread, as does the
// RowSource it reads.
#ifndef COHORT_COORDINATOR_STORE_LOADER_H_
#define COHORT_COORDINATOR_STORE_LOADER_H_

#include <cstdint>
#include <functional>
#include <string>

#include "common/status.h"
#include "coordinator/store.h"
#include "coordinator/store_schema.h"

namespace cohort::coordinator::schema {

// One row of a result, columns from 0. Int of a NULL is 0, Text and Bytes ""
// (ask IsNull first where NULL means something).
class Row {
 public:
  virtual ~Row() = default;
  virtual bool IsNull(int column) const = 0;
  virtual int64_t Int(int column) const = 0;
  virtual std::string Text(int column) const = 0;
  virtual std::string Bytes(int column) const = 0;
};

class RowSource {
 public:
  virtual ~RowSource() = default;
  // Runs `which` with `submission` bound to $1 (when it takes one) and calls
  // fn for each row until fn fails; the engine's error, or fn's.
  virtual common::Status ForEachRow(Dml which, uint64_t submission,
                                    const std::function<common::Status(const Row&)>& fn) = 0;
  // What the rows came from, for messages: a file's path, a database's name.
  virtual std::string where() const = 0;
};

// Store::Load and Store::LoadGroup over `source`.
common::Status LoadState(RowSource* source, LoadedState* out);
common::Status LoadOneGroup(RowSource* source, uint64_t submission, LoadedGroup* out);

}  // namespace cohort::coordinator::schema

#endif  // COHORT_COORDINATOR_STORE_LOADER_H_
