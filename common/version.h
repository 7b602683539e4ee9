// This build's version, from the project version in CMakeLists.txt: what
// --version prints, what a worker's REGISTER and a coordinator's PING
// answer carry.
#ifndef COHORT_COMMON_VERSION_H_
#define COHORT_COMMON_VERSION_H_

namespace cohort::common {

inline constexpr const char kVersion[] = COHORT_VERSION;

}  // namespace cohort::common

#endif  // COHORT_COMMON_VERSION_H_
