// UniqueFd owns one file descriptor and closes it when it goes out of scope,
// so that no early return in the spawn path, the runner or the metrics
// server can leak an fd (a worker that runs thousands of steps, or a daemon
// scraped for months, would otherwise run out of them). It is a move-only
// value with no thread contract of its own.
#ifndef COHORT_COMMON_UNIQUE_FD_H_
#define COHORT_COMMON_UNIQUE_FD_H_

#include <unistd.h>

#include <utility>

namespace cohort::common {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { Reset(); }

  UniqueFd(UniqueFd&& other) noexcept : fd_(other.Release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) Reset(other.Release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }

  int Release() { return std::exchange(fd_, -1); }

  // close() is not retried on EINTR: Linux releases the descriptor even then,
  // and a retry could close an fd that another thread has just been given.
  void Reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

}  // namespace cohort::common

#endif  // COHORT_COMMON_UNIQUE_FD_H_
