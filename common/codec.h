// The wire codec: turns a Message (common/messages.h) into the three frames
// of cohort's protocol and back. A frame is a plain byte string; the codec
// knows nothing of ZeroMQ, and the daemons adapt multipart messages to it
// (common/transport.h). docs/PROTOCOL.md describes the format.
//
// Decode is the trust boundary: its input is whatever arrived on a socket.
// It checks the frame count, the protocol frame, the command, the body's
// msgpack (nesting depth and size before unpacking anything), every field's
// type and every limit in common/protocol.h, and returns Corruption naming
// the command and the field otherwise, e.g.
//   RUN: field "argv" must be an array of strings (entry 3 is an integer)
// It never throws, never asserts on input, and costs memory bounded by the
// limits whatever the bytes. It does not know which socket a message came
// from: a receiver drops message types that do not belong on that socket.
//
// Thread contract: stateless free functions, safe from any thread.
#ifndef COHORT_COMMON_CODEC_H_
#define COHORT_COMMON_CODEC_H_

#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/messages.h"
#include "common/status.h"

namespace cohort::common {

// Three frames: protocol, command, msgpack body. Does not check limits (see
// ValidateMessage); a peer refuses what breaks them. Free-text fields (REPLY
// and FINISHED error, REREGISTER reason) are sent as valid UTF-8, invalid
// bytes replaced by "?", one for one, so that a stray byte in an error message never
// costs a report; every other string is sent exactly as given.
std::vector<std::string> Encode(const Message& msg);

// The third frame alone, written into *body (its capacity is reused): the
// senders' hot path, which sends the first two frames from constants.
void EncodeBody(const Message& msg, std::string* body);

// OK and *out set, or Corruption naming what was wrong (and *out untouched);
// never throws.
Status Decode(std::span<const std::string_view> frames, Message* out);
inline Status Decode(std::initializer_list<std::string_view> frames, Message* out) {
  return Decode(std::span<const std::string_view>(frames.begin(), frames.size()), out);
}

// The wire command, e.g. "RUN"; "CANCEL" for both CancelRequestMsg and
// CancelAttemptMsg.
std::string_view CommandName(const Message& msg);

// The `req` of a message that has one (a client's request, a REPLY), or
// nullopt.
std::optional<uint64_t> RequestIdOf(const Message& msg);

// The limits and value rules Decode applies to a decoded message (sizes,
// counts, UTF-8, slots >= 1, ...), for a sender holding user input: OK, or
// Corruption worded as Decode would word it. Encode(msg) of a message that
// passes always decodes.
Status ValidateMessage(const Message& msg);

// REPLY's code on the wire: "ok", "invalid_argument", "not_found",
// "already_exists", "failed_precondition", "unavailable", "corruption",
// "io_error".
std::string_view WireCodeName(Status::Code code);
// False for anything else.
bool ParseWireCode(std::string_view name, Status::Code* out);

}  // namespace cohort::common

#endif  // COHORT_COMMON_CODEC_H_
