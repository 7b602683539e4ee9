// The thin layer between ZeroMQ sockets and the codec: read one whole
// multipart message without blocking, send one encoded message, and set the
// socket options every cohort socket shares. It owns nothing; the daemons own
// their sockets. cppzmq's exceptions stop here: errors come back as Status
// or false.
//
// Thread contract: a socket is used by one thread, as ZeroMQ requires.
#ifndef COHORT_COMMON_TRANSPORT_H_
#define COHORT_COMMON_TRANSPORT_H_

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <zmq.hpp>

#include "common/messages.h"
#include "common/protocol.h"
#include "common/status.h"

namespace cohort::common {

// One multipart message as received: the routing id (ROUTER sockets only)
// and the frames that follow.
struct Envelope {
  std::string route;
  std::vector<std::string> frames;
  size_t dropped_frames = 0;  // frames past the limit, read and discarded
  // With want_user: the User-Id the ZAP handler gave the peer ("NAME|KEY":
  // its CURVE key's name and the key), "" without authentication.
  std::string user;
};

// Reads one message if one is waiting. False when none is (or on error).
// For a ROUTER, the first frame is taken as the routing id. At most
// kMaxFramesRead frames are kept; the rest of a longer message is drained so
// the next read starts at a message boundary. *out is reused from message to
// message (its strings keep their capacity); after false it holds nothing
// meaningful.
bool ReceiveEnvelope(zmq::socket_t& socket, bool has_route, Envelope* out, bool want_user = false);

// Decodes an envelope's frames (the routing id excluded).
Status DecodeEnvelope(const Envelope& env, Message* out);

// Sends `msg`, prefixed by `route` when given (ROUTER). Never blocks: a full
// queue or an unknown route drops the message and returns false.
bool SendMessage(zmq::socket_t& socket, const std::optional<std::string>& route, const Message& msg);

// Linger 0 (a daemon that exits does not hang on unsent messages), the
// maximum message size, and high-water marks large enough that a burst of
// dispatches is never dropped.
void ConfigureSocket(zmq::socket_t& socket);

// The largest frame (ZMQ_MAXMSGSIZE) each of the coordinator's ports
// accepts, sized to the largest message it legitimately receives. ZeroMQ
// applies it to handshake frames too, so it is also what one connection
// that has not authenticated can make the coordinator hold.
// Client port: a SUBMIT carrying a kMaxDocumentBytes group document.
inline constexpr size_t kMaxClientFrameBytes = kMaxMessageBytes;  // 64 MiB
// Worker port: a FINISHED with two kMaxOutputBytes tails and a
// kMaxStringBytes error (33 MiB), or a REGISTER or HEARTBEAT listing
// kMaxArgs held attempts with ids of kMaxNameBytes (under 38 MiB).
inline constexpr size_t kMaxWorkerFrameBytes = 40u << 20;  // 40 MiB
// Cancel port (PUB): subscriptions and the CURVE handshake's commands only.
inline constexpr size_t kMaxCancelFrameBytes = 64u << 10;  // 64 KiB

// Who may open the ipc:// (file system) sockets a daemon binds. Unset
// fields leave what the umask and the process's group give.
struct IpcAccess {
  std::optional<mode_t> mode;
  std::optional<gid_t> group;
  bool any() const { return mode || group; }
};

// "tcp://127.0.0.1:5700" -> bound endpoint after a successful bind (resolves
// a wildcard port). On failure a Status naming the endpoint and the reason:
// FailedPrecondition when this host cannot give that address (in use, not
// one of its own, a privileged port) or `ipc` cannot be applied to the
// socket file, InvalidArgument for a malformed endpoint, Unavailable
// otherwise (see common/exit_codes.h). An ipc:// file is made owner-only
// and given `ipc`'s group and then its mode before anyone can connect.
Status BindSocket(zmq::socket_t& socket, const std::string& endpoint, std::string* bound = nullptr,
                  const IpcAccess& ipc = {});
// Whether `endpoint` is an ipc:// socket in the file system (not abstract).
bool IsIpcFile(const std::string& endpoint);

// Whether `endpoint` is well formed for ZeroMQ (tcp://HOST:PORT, with PORT
// a number or `*` when `for_bind`, ipc://PATH or inproc://NAME), without
// binding or connecting: for --check-config. InvalidArgument naming it.
Status CheckEndpoint(const std::string& endpoint, bool for_bind);
// "host:5700" -> "tcp://host:5700": an endpoint given without a scheme is a
// TCP one, as people write it for ssh, curl or docker. One with a scheme is
// returned as it is.
std::string NormalizeEndpoint(const std::string& endpoint);
Status ConnectSocket(zmq::socket_t& socket, const std::string& endpoint);

constexpr size_t kMaxFramesRead = 8;

}  // namespace cohort::common

#endif  // COHORT_COMMON_TRANSPORT_H_
