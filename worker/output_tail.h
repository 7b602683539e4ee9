// OutputTail keeps the last `capacity` bytes written to one output stream of
// a step, plus the count of every byte ever appended, so a step that prints
// gigabytes costs at most `capacity` bytes of memory while the report can
// still say how much was printed and that the beginning was dropped. It owns
// its buffer, grown on demand up to capacity so that quiet steps stay cheap,
// and is a single-threaded value.
#ifndef COHORT_WORKER_OUTPUT_TAIL_H_
#define COHORT_WORKER_OUTPUT_TAIL_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace cohort::worker {

class OutputTail {
 public:
  explicit OutputTail(size_t capacity) : capacity_(capacity) {}

  void Append(std::string_view data);

  // The kept bytes, oldest first.
  std::string Contents() const;

  size_t capacity() const { return capacity_; }
  size_t size() const { return buf_.size(); }
  uint64_t total_bytes() const { return total_bytes_; }
  bool truncated() const { return total_bytes_ > buf_.size(); }

 private:
  size_t capacity_;
  // Linear until it reaches capacity_, a ring after that: then head_ is the
  // index of the oldest byte, which is also where the next byte goes.
  std::vector<char> buf_;
  size_t head_ = 0;
  uint64_t total_bytes_ = 0;
};

}  // namespace cohort::worker

#endif  // COHORT_WORKER_OUTPUT_TAIL_H_
