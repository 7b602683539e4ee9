// What the libFuzzer harnesses in fuzz/ share: a check that aborts (so
// libFuzzer records the input as a crash) when a property the code promises
// does not hold, the wire codec's round-trip property, and the frame format
// the envelope harness reads its input in. docs/FUZZING.md explains how the
// harnesses are run; make_seeds.cc writes their seed corpus with the same
// helpers, so the two cannot drift apart.
//
// Thread contract: stateless free functions; libFuzzer calls a harness from
// one thread.
#ifndef COHORT_FUZZ_FUZZ_UTIL_H_
#define COHORT_FUZZ_FUZZ_UTIL_H_

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "common/codec.h"
#include "common/messages.h"
#include "common/status.h"

namespace cohort::fuzz {

// A promise the code under test broke. Sanitizers catch memory errors and
// undefined behaviour; these catch wrong answers.
[[noreturn]] inline void Violated(const char* property, const std::string& detail) {
  std::fprintf(stderr, "\n==== fuzz property violated: %s\n%s\n", property, detail.c_str());
  std::abort();
}

inline void Require(bool holds, const char* property, const std::string& detail = {}) {
  if (!holds) Violated(property, detail);
}

// A failed decode or parse must say what was wrong, with the given code.
inline void RequireCleanError(const common::Status& s, common::Status::Code code, const char* what) {
  Require(s.code() == code, what, "unexpected status code: " + s.ToString());
  Require(!s.message().empty(), what, "an error without a message");
}

inline std::vector<std::string_view> Views(const std::vector<std::string>& frames) {
  return {frames.begin(), frames.end()};
}

// What codec.h promises of any message Decode accepted: it passes
// ValidateMessage, and Encode gives frames that decode to the same message
// and encode to the same bytes again.
inline void CheckRoundTrip(const common::Message& m) {
  const std::string command(common::CommandName(m));
  common::Status valid = common::ValidateMessage(m);
  Require(valid.ok(), "a decoded message passes ValidateMessage", command + ": " + valid.ToString());
  const std::vector<std::string> frames = common::Encode(m);
  common::Message again;
  common::Status s = common::Decode(Views(frames), &again);
  Require(s.ok(), "a decoded message, encoded again, decodes", command + ": " + s.ToString());
  Require(again == m, "decode(encode(m)) == m", command);
  Require(common::Encode(again) == frames, "encode is stable: encode(decode(encode(m))) == encode(m)", command);
}

// ---- The envelope harness's input: frames with an escape ---------------------
// Frames are separated by the two bytes '\' '|'; a literal '\' is written
// '\' '\'; a '\' before anything else stands for itself. A mutation can thus
// split, join, grow or empty frames, and any msgpack body can be written.

constexpr char kEscape = '\\';
constexpr char kSeparator = '|';

inline std::vector<std::string> SplitFrames(std::string_view in) {
  std::vector<std::string> frames(1);
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == kEscape && i + 1 < in.size() && in[i + 1] == kSeparator) {
      frames.emplace_back();
      ++i;
    } else if (in[i] == kEscape && i + 1 < in.size() && in[i + 1] == kEscape) {
      frames.back() += kEscape;
      ++i;
    } else {
      frames.back() += in[i];
    }
  }
  return frames;
}

inline std::string JoinFrames(const std::vector<std::string>& frames) {
  std::string out;
  for (size_t f = 0; f < frames.size(); ++f) {
    if (f > 0) out += {kEscape, kSeparator};
    for (char c : frames[f]) {
      out += c;
      if (c == kEscape) out += kEscape;
    }
  }
  return out;
}

}  // namespace cohort::fuzz

#endif  // COHORT_FUZZ_FUZZ_UTIL_H_
