// A hand-driven cohort peer for integration tests that play a client, a worker
// or a coordinator on purpose, well or badly: raw frames in, decoded messages
// out, over a real ZeroMQ socket on loopback. Also reads a process's memory
// from /proc, for tests that prove a daemon's memory stays bounded.
//
// Thread contract: a Peer is used by one thread (ZeroMQ sockets are not
// thread-safe); each Peer owns its context, so peers on different threads
// share nothing.
#ifndef COHORT_TESTS_INTEGRATION_PEER_H_
#define COHORT_TESTS_INTEGRATION_PEER_H_

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "common/messages.h"

namespace cohort::testing {

class Peer {
 public:
  // Connects (DEALER) or binds (ROUTER) to `endpoint`; `configure`, when
  // given, sets socket options first (a high-water mark applies to the
  // connections made after it is set).
  Peer(const std::string& endpoint, zmq::socket_type type = zmq::socket_type::dealer, bool bind = false,
       const std::function<void(zmq::socket_t&)>& configure = {});
  Peer(const Peer&) = delete;
  Peer& operator=(const Peer&) = delete;

  // Sends the frames as one multipart message (a ROUTER needs the route first).
  void SendFrames(const std::vector<std::string>& frames);
  // Encodes and sends `msg` as it is, limits unchecked; `route` for a ROUTER.
  void Send(const common::Message& msg, const std::string& route = "");
  // The next message that decodes, within `timeout`; its route in *route for
  // a ROUTER. Messages that do not decode are skipped.
  std::optional<common::Message> Receive(std::chrono::milliseconds timeout, std::string* route = nullptr);
  // Waits for the REPLY to request `req`, skipping everything else.
  std::optional<common::ReplyMsg> ReplyTo(uint64_t req, std::chrono::milliseconds timeout);
  // Sends `msg` with a fresh req and waits for its REPLY.
  std::optional<common::ReplyMsg> Call(common::Message msg, std::chrono::milliseconds timeout);

  zmq::socket_t& socket() { return socket_; }

 private:
  bool router_;
  uint64_t next_req_ = 1000;
  zmq::context_t context_;
  zmq::socket_t socket_;
};

// Resident and peak resident memory of a process in KiB (VmRSS, VmHWM), -1
// if it cannot be read.
long RssKiB(pid_t pid);
long PeakRssKiB(pid_t pid);

// False in a sanitizer build (the daemons are built like the tests): ASan
// holds freed memory in its quarantine and its own pools, so a daemon's RSS
// says nothing about what it still uses. Tests check memory bounds only when
// this is true, and print the figures either way.
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif
inline constexpr bool kRssMeaningful = !kSanitized;

}  // namespace cohort::testing

#endif  // COHORT_TESTS_INTEGRATION_PEER_H_
