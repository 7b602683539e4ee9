// ConnectionGuard bounds what peers that have not authenticated can make a
// daemon's bound sockets hold. ZeroMQ buffers a handshake frame up to the
// socket's ZMQ_MAXMSGSIZE before it knows who sent it, and keeps a silent
// connection for ZMQ_HANDSHAKE_IVL, so without a count of connections still
// in their handshake the memory and file descriptors a stranger can take
// have no bound. The guard watches each socket's events (zmq_socket_monitor
// over a private inproc PAIR), keeps the count in a ConnectionLedger, and
// cuts a new connection that would pass a cap with shutdown(2), which
// ZeroMQ sees as the peer closing: the engine, and the frame it was
// filling, are freed at once. Each cut is logged, rate-limited
// (`handshake_limit`, `connection_limit`).
//
// ConnectionLedger is the counting alone, with no I/O, so it can be driven
// with a fake clock. ZeroMQ's handshake events (4.3, monitor version 1) do
// not say which connection they are about, and some handshake failures
// raise none (a frame over ZMQ_MAXMSGSIZE, a ZMTP 1.0 or 2.0 peer refused
// for want of ZAP). So the ledger counts handshakes as accepted minus
// ended, and clamps that to the connections accepted less than one
// handshake limit ago that are still open: ZeroMQ has closed any older one
// that did not finish. The count may run high, never low, and never for
// longer than one handshake limit.
//
// Thread contract: the thread that owns the watched sockets; create the
// guard before the sockets bind and destroy it with them (ZeroMQ's own
// context-before-socket order applies to its monitor sockets).
#ifndef COHORT_COMMON_CONNECTION_GUARD_H_
#define COHORT_COMMON_CONNECTION_GUARD_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <zmq.hpp>

#include "common/log.h"
#include "common/status.h"
#include "common/time.h"

namespace cohort::common {

struct ConnectionLimits {
  // Connections one socket may have in their handshake at once; past it
  // the newest is cut. Each may hold one frame of the socket's
  // ZMQ_MAXMSGSIZE before it authenticates.
  size_t max_handshakes = 16;
  // Connections all the watched sockets may have open together, in their
  // handshake or not; 0 = no cap.
  size_t max_connections = 0;
  // ZMQ_HANDSHAKE_IVL: how long ZeroMQ lets a handshake take.
  Duration handshake_limit = std::chrono::seconds(10);
};

// The default --max-connections from the descriptor limit: what is left of
// `nofile` (RLIMIT_NOFILE) after `reserved` descriptors for the store, the
// log, ZeroMQ's own and the daemon's other files; at least 16.
size_t ConnectionsFromFileLimit(uint64_t nofile, size_t reserved = 256);

class ConnectionLedger {
 public:
  enum class Verdict { kKeep, kTooManyHandshakes, kTooManyConnections };

  ConnectionLedger(ConnectionLimits limits, size_t sockets);

  // Socket `socket` accepted a connection on descriptor `fd`: keep it, or
  // cut it for passing a cap. It is counted either way, until Disconnected.
  Verdict Accepted(size_t socket, int fd, Time now);
  // A handshake on `socket` succeeded or failed.
  void HandshakeEnded(size_t socket);
  void Disconnected(size_t socket, int fd);

  // Connections of `socket` that may still be in their handshake.
  size_t handshaking(size_t socket, Time now);
  size_t open() const { return open_; }
  // Whether `fd` is an open connection of `socket`, as the events tell.
  bool IsOpen(size_t socket, int fd) const;

 private:
  struct Accept {
    Time at;
    int fd;
    uint64_t seq;
  };
  struct PerSocket {
    std::unordered_map<int, uint64_t> open;  // fd -> seq of its accept
    std::deque<Accept> young;  // accepts less than a handshake limit ago, oldest first
    size_t young_open = 0;     // of those, still open
    size_t counted = 0;        // accepted minus handshakes ended
  };
  // Forgets accepts a handshake limit old.
  void Age(PerSocket& s, Time now);
  void Close(PerSocket& s, int fd);

  ConnectionLimits limits_;
  std::vector<PerSocket> sockets_;
  size_t open_ = 0;
  uint64_t next_seq_ = 1;
};

class ConnectionGuard {
 public:
  ConnectionGuard(zmq::context_t& context, ConnectionLimits limits);
  ~ConnectionGuard();
  ConnectionGuard(const ConnectionGuard&) = delete;
  ConnectionGuard& operator=(const ConnectionGuard&) = delete;

  // Watches `socket` (before it binds) and sets its handshake limit and
  // largest frame; `name` ("client", "worker") names it in the log.
  Status Watch(zmq::socket_t& socket, std::string name, size_t max_frame_bytes);
  // Adds the monitors to a poll, so that an event wakes the loop.
  void AddTo(std::vector<zmq::pollitem_t>* items);
  // Reads every event that arrived and cuts the connections over a cap.
  void Drain(Time now);

 private:
  struct Watched {
    zmq::socket_t* socket;
    std::string name;
    std::unique_ptr<zmq::socket_t> monitor;
  };
  struct Cut {
    size_t socket;
    int fd;
    ConnectionLedger::Verdict why;
  };
  void Read(size_t index, Time now, std::vector<Cut>* cuts);
  void Apply(const Cut& cut, Time now);

  zmq::context_t& context_;
  ConnectionLimits limits_;
  std::vector<Watched> watched_;
  std::unique_ptr<ConnectionLedger> ledger_;  // made at the first Drain, once every socket is watched
  RateLimiter log_{5, std::chrono::seconds(10)};
};

}  // namespace cohort::common

#endif  // COHORT_COMMON_CONNECTION_GUARD_H_
