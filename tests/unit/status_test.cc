#include <catch2/catch.hpp>

#include "common/status.h"
#include "common/time.h"

namespace cohort::common {
namespace {

TEST_CASE("Status carries a code and a message", "[status]") {
  CHECK(Status().ok());
  CHECK(Status::Ok().ToString() == "OK");
  Status s = Status::InvalidArgument("steps[0]: id must not be empty");
  CHECK_FALSE(s.ok());
  CHECK(s.code() == Status::Code::kInvalidArgument);
  CHECK(s.ToString() == "InvalidArgument: steps[0]: id must not be empty");
  CHECK(Status::Corruption("x").ToString() == "Corruption: x");
}

TEST_CASE("seconds convert to durations without overflow", "[time]") {
  using namespace std::chrono_literals;
  CHECK(SecondsToDuration(1.5) == 1500ms);
  CHECK(SecondsToDuration(0) == Duration::zero());
  CHECK(SecondsToDuration(-3) == Duration::zero());
  CHECK(SecondsToDuration(1e300) > std::chrono::hours(24 * 365 * 99));
  Time t{};
  CHECK(t + SecondsToDuration(1e300) > t);  // clamped, so no wraparound
  CHECK(DurationToSeconds(250ms) == Approx(0.25));
}

}  // namespace
}  // namespace cohort::common
