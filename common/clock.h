// Where the event loops read the clocks: the pure libraries only take times
// as arguments (common/time.h), so every clock read is here or in a loop.
//
// Thread contract: plain functions.
#ifndef COHORT_COMMON_CLOCK_H_
#define COHORT_COMMON_CLOCK_H_

#include <chrono>

#include "common/time.h"

namespace cohort::common {

// The steady clock now, paired with the wall clock now.
inline WallClock ReadWallClock() {
  auto wall = std::chrono::system_clock::now().time_since_epoch();
  return WallClock(Clock::now(), std::chrono::duration_cast<std::chrono::milliseconds>(wall).count());
}

}  // namespace cohort::common

#endif  // COHORT_COMMON_CLOCK_H_
