// Harness: the wire codec's body decoding, for every message type. The first
// input byte picks the command (Message's alternatives in order, modulo their
// number), the rest is the body frame; the protocol frame is always right, so
// every input reaches a message's field reading. Whatever decodes must
// round-trip (CheckRoundTrip); whatever does not must fail with Corruption
// and a message, and leave the output untouched.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/codec.h"
#include "common/messages.h"
#include "common/protocol.h"
#include "fuzz/fuzz_util.h"

namespace {

using cohort::common::Message;

// The command name of Message's alternative `index`.
template <size_t I = 0>
std::string_view CommandOf(size_t index) {
  if constexpr (I + 1 < std::variant_size_v<Message>) {
    if (index != I) return CommandOf<I + 1>(index);
  }
  return cohort::common::CommandName(Message(std::in_place_index<I>));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view command = CommandOf(data[0] % std::variant_size_v<Message>);
  const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  const std::vector<std::string_view> frames = {cohort::common::kProtocol, command, body};

  const Message sentinel = cohort::common::CancelGroupMsg{"untouched", 0, 0};
  Message out = sentinel;
  cohort::common::Status s = cohort::common::Decode(frames, &out);
  if (s.ok()) {
    cohort::fuzz::Require(cohort::common::CommandName(out) == command, "a message decodes as its command",
                          std::string(command) + " decoded as " + std::string(cohort::common::CommandName(out)));
    cohort::fuzz::CheckRoundTrip(out);
  } else {
    cohort::fuzz::RequireCleanError(s, cohort::common::Status::Code::kCorruption, "a bad body is Corruption");
    cohort::fuzz::Require(out == sentinel, "a failed Decode leaves *out untouched", s.message());
  }
  return 0;
}
