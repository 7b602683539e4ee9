// UTF-8 checks shared by the wire codec, the JSON writer and the stores:
// where a string stops being valid UTF-8 (RFC 3629), and a repair that
// keeps its length, so a size limit checked before still holds after.
//
// Thread contract: stateless inline functions.
#ifndef COHORT_COMMON_UTF8_H_
#define COHORT_COMMON_UTF8_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace cohort::common {

// Length of the valid UTF-8 sequence at p (RFC 3629: no overlongs, no
// surrogates, nothing past U+10FFFF), or 0 when there is none.
inline size_t Utf8SequenceLength(const unsigned char* p, size_t left) {
  auto cont = [](unsigned char c) { return (c & 0xC0) == 0x80; };
  const unsigned char c = p[0];
  if (c < 0x80) return 1;
  if (c < 0xC2) return 0;
  if (c < 0xE0) return left >= 2 && cont(p[1]) ? 2 : 0;
  if (c < 0xF0) {
    if (left < 3 || !cont(p[1]) || !cont(p[2])) return 0;
    return (c == 0xE0 && p[1] < 0xA0) || (c == 0xED && p[1] >= 0xA0) ? 0 : 3;
  }
  if (c >= 0xF5 || left < 4 || !cont(p[1]) || !cont(p[2]) || !cont(p[3])) return 0;
  return (c == 0xF0 && p[1] < 0x90) || (c == 0xF4 && p[1] >= 0x90) ? 0 : 4;
}

// Offset of the first byte that is not valid UTF-8, or npos.
inline size_t FirstInvalidUtf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  for (size_t i = 0; i < s.size();) {
    if (s.size() - i >= 8) {  // ASCII, the common case, eight bytes at a time
      uint64_t word;
      std::memcpy(&word, p + i, 8);
      if ((word & 0x8080808080808080u) == 0) {
        i += 8;
        continue;
      }
    }
    size_t n = Utf8SequenceLength(p + i, s.size() - i);
    if (n == 0) return i;
    i += n;
  }
  return std::string_view::npos;
}

// Replaces each byte that is not part of valid UTF-8 with '?': one byte for
// one, so the size limits a sender checked still hold after the repair.
inline void RepairUtf8InPlace(std::string* s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s->data());
  for (size_t i = FirstInvalidUtf8(*s); i < s->size();) {
    size_t n = Utf8SequenceLength(p + i, s->size() - i);
    if (n == 0) (*s)[i++] = '?';
    else i += n;
  }
}

}  // namespace cohort::common

#endif  // COHORT_COMMON_UTF8_H_
