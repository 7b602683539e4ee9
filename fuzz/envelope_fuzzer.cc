// Harness: a whole multipart message as a daemon receives it. The input is
// split into frames (fuzz_util.h: SplitFrames), kept the way ReceiveEnvelope
// keeps them (at most kMaxFramesRead, the rest only counted) and decoded with
// DecodeEnvelope, the function every receive loop calls. This reaches the
// framing checks (frame count, protocol, command) that codec_fuzzer always
// passes, and the same round-trip property for what decodes.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/codec.h"
#include "common/messages.h"
#include "common/transport.h"
#include "fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<std::string> frames =
      cohort::fuzz::SplitFrames(std::string_view(reinterpret_cast<const char*>(data), size));
  cohort::common::Envelope env;
  for (std::string& f : frames) {
    if (env.frames.size() < cohort::common::kMaxFramesRead) env.frames.push_back(std::move(f));
    else ++env.dropped_frames;
  }

  const cohort::common::Message sentinel = cohort::common::CancelGroupMsg{"untouched", 0, 0};
  cohort::common::Message out = sentinel;
  cohort::common::Status s = cohort::common::DecodeEnvelope(env, &out);
  if (s.ok()) {
    cohort::fuzz::Require(env.frames.size() == 3 && env.frames[1] == cohort::common::CommandName(out),
                          "only three frames naming the command decode");
    cohort::fuzz::CheckRoundTrip(out);
  } else {
    cohort::fuzz::RequireCleanError(s, cohort::common::Status::Code::kCorruption, "a bad message is Corruption");
    cohort::fuzz::Require(out == sentinel, "a failed decode leaves *out untouched", s.message());
  }
  return 0;
}
