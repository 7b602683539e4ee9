// Time as the scheduling core and the step runner see it: points on a
// monotonic clock, passed in by the caller. Nothing in the core reads a clock;
// the event loops read std::chrono::steady_clock and hand the value down, and
// unit tests hand down a fake one. Conversions from the user's seconds (JSON
// doubles) live here so rounding is the same everywhere.
#ifndef COHORT_COMMON_TIME_H_
#define COHORT_COMMON_TIME_H_

#include <chrono>
#include <cmath>
#include <cstdint>

namespace cohort::common {

using Clock = std::chrono::steady_clock;
using Time = Clock::time_point;
using Duration = Clock::duration;

// Seconds (finite, >= 0, as validated specs guarantee) to a Duration,
// rounded to the nearest nanosecond and clamped to ~100 years so that
// adding it to a Time never overflows.
inline Duration SecondsToDuration(double s) {
  constexpr double kMaxSeconds = 100.0 * 365 * 24 * 3600;
  if (!(s > 0)) return Duration::zero();
  if (s > kMaxSeconds) s = kMaxSeconds;
  return std::chrono::duration_cast<Duration>(std::chrono::nanoseconds(std::llround(s * 1e9)));
}

inline double DurationToSeconds(Duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace cohort::common

#endif  // COHORT_COMMON_TIME_H_
