#include "coordinator/archived.h"

namespace cohort::coordinator {

common::Status ReadArchived(Store* store, Scheduler* core, std::string_view id, common::Time now) {
  std::optional<uint64_t> submission = core->ArchivedSubmission(id);
  if (!submission) return common::Status::Ok();
  LoadedGroup stored;
  common::Status s = store->LoadGroup(*submission, &stored);
  if (s.ok()) s = core->Hydrate(stored, now);
  return s;
}

}  // namespace cohort::coordinator
