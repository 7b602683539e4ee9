// The constants of cohort's wire protocol, version 2: the protocol frame
// every message starts with, the size limits every receiver enforces, and the
// default endpoints and heartbeat settings. docs/PROTOCOL.md is the full
// description; the codec (common/codec.h) is the one place that applies the
// limits, so a message that breaks one is refused with a Corruption status
// naming the field and the limit before any daemon looks at it.
//
// The limits exist so that one message can cost a receiver only a bounded,
// predictable amount of memory, whoever sent it. They are generous for real
// use: a group file is capped at kMaxDocumentBytes, and everything a step
// carries comes from that file.
//
// Thread contract: constants only.
#ifndef COHORT_COMMON_PROTOCOL_H_
#define COHORT_COMMON_PROTOCOL_H_

#include <cstddef>
#include <cstdint>

namespace cohort::common {

// Frame 1 of every message: the protocol's name and version. A receiver
// drops (and logs) a message carrying anything else, so two versions never
// misread each other; the log names both versions when the peer speaks
// another "cohort/N". Also the prefix workers subscribe to on the cancel
// endpoint.
inline constexpr char kProtocol[] = "cohort/2";

// Every message is exactly this many frames: protocol, command, body.
inline constexpr size_t kFrameCount = 3;

// The largest frame a receiver accepts. The daemons set ZMQ_MAXMSGSIZE to
// it, so ZeroMQ itself refuses a larger frame (and drops that connection)
// before it is ever buffered whole; the codec checks it again.
inline constexpr size_t kMaxMessageBytes = 64u << 20;  // 64 MiB

// The largest JSON document a message carries: the SUBMIT spec and the
// REPLY body. Smaller than kMaxMessageBytes by enough for every other field
// of those messages (a REPLY's error is at most kMaxStringBytes), so a
// document within this limit always fits in a valid message.
inline constexpr size_t kMaxDocumentBytes = kMaxMessageBytes - (2u << 20);  // 62 MiB

// Group ids, step ids, worker names, agent labels, the worker's version.
// Equal to the group file's kMaxIdBytes (common/group_spec.h), so every id a
// valid spec holds fits.
inline constexpr size_t kMaxNameBytes = 256;

// Entries of one list: argv, env, a worker's agents, a worker's running list,
// the attempts of one CONFIRM.
inline constexpr size_t kMaxArgs = 65536;

// Labels (agents) one worker may offer: enough for any real node's
// capabilities, and few enough that a REGISTER cannot flood the placement
// index.
inline constexpr size_t kMaxAgents = 64;

// One argv entry, env key or value, shell command, cwd, error message,
// REREGISTER reason or endpoint.
inline constexpr size_t kMaxStringBytes = 1u << 20;  // 1 MiB

// A worker's kill grace (REGISTER's kill_grace_ms, the worker's
// --kill-grace-ms): the coordinator waits longer than it for a stopped step.
inline constexpr uint32_t kMaxKillGraceMs = 3'600'000;

// A worker's wait for a killed step's processes after SIGKILL before it
// reports the step anyway; the coordinator counts it in the time a stop takes.
inline constexpr int64_t kStopAfterKillMs = 10'000;

// Each of FINISHED's stdout and stderr tails.
inline constexpr size_t kMaxOutputBytes = 16u << 20;  // 16 MiB

// The decoder's guards against hostile bodies, enforced before the body is
// unpacked. Depth counts nested containers (the body map is 1; a RUN's env,
// map -> array -> array, is 3); the deepest legal message needs 3, the rest
// is room for fields a later version may add. Values count the entries of
// every array plus twice the pairs of every map: each costs the unpacker 16
// bytes, so a body can never cost more than ~16 MiB of unpacked objects
// however it is crafted (the largest legal body, a REGISTER with kMaxArgs
// running attempts, holds ~590,000).
inline constexpr size_t kMaxBodyDepth = 16;
inline constexpr size_t kMaxBodyValues = 1u << 20;

// Where the coordinator listens by default: clients (ROUTER), workers
// (ROUTER), and the cancel broadcast (PUB). Loopback, so that nothing is
// exposed to the network unless configured.
inline constexpr char kDefaultClientEndpoint[] = "tcp://127.0.0.1:5700";
inline constexpr char kDefaultWorkerEndpoint[] = "tcp://127.0.0.1:5701";
inline constexpr char kDefaultCancelEndpoint[] = "tcp://127.0.0.1:5702";

// The coordinator sends a HEARTBEAT to each worker every kDefaultHeartbeatMs
// and declares a worker lost after kDefaultLiveness intervals without a word
// from it; a worker gives up on a silent coordinator after the same. The
// coordinator's values reach the worker in WELCOME.
inline constexpr uint32_t kDefaultHeartbeatMs = 1000;
inline constexpr uint32_t kDefaultLiveness = 3;

}  // namespace cohort::common

#endif  // COHORT_COMMON_PROTOCOL_H_
