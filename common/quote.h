// Quote shows a value taken from a peer or a user inside an error or log
// message: in double quotes, bytes that are not printable ASCII (and the
// quote and backslash) as \xNN, and cut after 64 bytes with "..." so a
// 1 MB id keeps the message readable.
//
// Thread contract: a plain function.
#ifndef COHORT_COMMON_QUOTE_H_
#define COHORT_COMMON_QUOTE_H_

#include <string>
#include <string_view>

namespace cohort::common {

std::string Quote(std::string_view s);

}  // namespace cohort::common

#endif  // COHORT_COMMON_QUOTE_H_
