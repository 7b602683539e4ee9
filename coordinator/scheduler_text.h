// Wording shared by the Scheduler's source files: how its status messages
// and step errors quote names and print durations. Only scheduler*.cc use it.
#ifndef COHORT_COORDINATOR_SCHEDULER_TEXT_H_
#define COHORT_COORDINATOR_SCHEDULER_TEXT_H_

#include <cstdio>
#include <string>
#include <string_view>

#include "common/quote.h"
#include "common/time.h"

namespace cohort::coordinator::internal {

using common::Quote;

// "1.5s": as short as the value allows, so messages read naturally.
inline std::string SecondsText(common::Duration d) {
  double s = common::DurationToSeconds(d);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", s);
  return std::string(buf) + "s";
}

}  // namespace cohort::coordinator::internal

#endif  // COHORT_COORDINATOR_SCHEDULER_TEXT_H_
