// Status is the small error value every fallible cohort call returns instead
// of throwing: a code plus a human-readable message that names what was wrong
// (a field, a step, a peer). It is a plain value, cheap to copy when OK, and
// safe to use from any thread. It is [[nodiscard]]: a call site that has
// nothing to do with an error says so with IgnoreError() and a comment that
// says why. Library exceptions are caught at the nearest
// wrapper (codec, event loop, main) and turned into a Status there, so none
// crosses the scheduling core.
#ifndef COHORT_COMMON_STATUS_H_
#define COHORT_COMMON_STATUS_H_

#include <string>
#include <string_view>
#include <utility>

namespace cohort::common {

class [[nodiscard]] Status {
 public:
  enum class Code {
    kOk = 0,
    kInvalidArgument,  // the caller's input is wrong (a bad spec, a bad flag)
    kNotFound,         // a named thing (group, step, worker) does not exist
    kAlreadyExists,    // a thing with that name exists already
    kCorruption,       // bytes from a peer or a file could not be decoded
    kFailedPrecondition,  // valid, but not in the current state
    kIoError,          // the operating system refused
    kUnavailable,      // a peer could not be reached
  };

  Status() = default;
  static Status Ok() { return Status(); }
  static Status InvalidArgument(std::string msg) { return Status(Code::kInvalidArgument, std::move(msg)); }
  static Status NotFound(std::string msg) { return Status(Code::kNotFound, std::move(msg)); }
  static Status AlreadyExists(std::string msg) { return Status(Code::kAlreadyExists, std::move(msg)); }
  static Status Corruption(std::string msg) { return Status(Code::kCorruption, std::move(msg)); }
  static Status FailedPrecondition(std::string msg) {
    return Status(Code::kFailedPrecondition, std::move(msg));
  }
  static Status IoError(std::string msg) { return Status(Code::kIoError, std::move(msg)); }
  static Status Unavailable(std::string msg) { return Status(Code::kUnavailable, std::move(msg)); }

  // For codes that arrive over the wire.
  static Status FromCode(Code code, std::string msg) { return Status(code, std::move(msg)); }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }

  // "InvalidArgument: steps[1] (id \"b\"): ..." for logs; "OK" when ok.
  std::string ToString() const;

  // Drops this status on purpose (the caller states why next to the call).
  void IgnoreError() const {}

 private:
  Status(Code code, std::string msg) : code_(code), message_(std::move(msg)) {}

  Code code_ = Code::kOk;
  std::string message_;
};

std::string_view CodeName(Status::Code code);

}  // namespace cohort::common

#endif  // COHORT_COMMON_STATUS_H_
