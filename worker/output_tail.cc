#include "worker/output_tail.h"

#include <algorithm>
#include <cstring>

namespace cohort::worker {

void OutputTail::Append(std::string_view data) {
  total_bytes_ += data.size();
  if (capacity_ == 0 || data.empty()) return;

  if (data.size() >= capacity_) {
    // Everything kept so far would be overwritten anyway.
    buf_.assign(data.end() - static_cast<std::ptrdiff_t>(capacity_), data.end());
    head_ = 0;
    return;
  }

  if (buf_.size() < capacity_) {
    size_t take = std::min(capacity_ - buf_.size(), data.size());
    if (buf_.capacity() < buf_.size() + take) {
      // Doubling, but never past capacity_: vector::reserve allocates exactly
      // what it is asked for, so the bound on memory is the one documented.
      buf_.reserve(std::min(capacity_, std::max(buf_.size() + take, 2 * buf_.capacity())));
    }
    buf_.insert(buf_.end(), data.begin(), data.begin() + static_cast<std::ptrdiff_t>(take));
    data.remove_prefix(take);
  }

  while (!data.empty()) {
    size_t chunk = std::min(capacity_ - head_, data.size());
    std::memcpy(buf_.data() + head_, data.data(), chunk);
    head_ = (head_ + chunk) % capacity_;
    data.remove_prefix(chunk);
  }
}

std::string OutputTail::Contents() const {
  std::string out;
  out.reserve(buf_.size());
  out.append(buf_.begin() + static_cast<std::ptrdiff_t>(head_), buf_.end());
  out.append(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(head_));
  return out;
}

}  // namespace cohort::worker
