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

// Maps monotonic Times to wall-clock Unix milliseconds for display, using
// one reference pair read at startup (common/clock.h reads it), so shown
// times never jump backwards with NTP steps while the daemon runs.
class WallClock {
 public:
  WallClock(Time steady_ref, int64_t unix_ms_ref) : steady_ref_(steady_ref), unix_ms_ref_(unix_ms_ref) {}
  int64_t ToUnixMs(Time t) const {
    return unix_ms_ref_ + std::chrono::duration_cast<std::chrono::milliseconds>(t - steady_ref_).count();
  }
  // The inverse, for a wall-clock time read back from storage: a time
  // before this process started maps to a Time before the reference.
  Time FromUnixMs(int64_t unix_ms) const { return steady_ref_ + std::chrono::milliseconds(unix_ms - unix_ms_ref_); }

 private:
  Time steady_ref_;
  int64_t unix_ms_ref_;
};

}  // namespace cohort::common

#endif  // COHORT_COMMON_TIME_H_
