// Quote shows a value taken from a peer or a user (a group or step id, a
// command name, a frame) inside an error or log message: in double quotes,
// with control bytes, the quote, the backslash and bytes that are not valid
// UTF-8 written as \xNN, so hostile bytes cannot garble a line, and cut after
// kQuotedBytes with "..." so a 1 MB frame keeps the message readable. Valid
// ids (at most kMaxNameBytes of UTF-8 without control bytes) come out as
// they were given.
//
// Thread contract: a plain function.
#ifndef COHORT_COMMON_QUOTE_H_
#define COHORT_COMMON_QUOTE_H_

#include <cstddef>
#include <string>
#include <string_view>

namespace cohort::common {

constexpr size_t kQuotedBytes = 256;

std::string Quote(std::string_view s);

}  // namespace cohort::common

#endif  // COHORT_COMMON_QUOTE_H_
