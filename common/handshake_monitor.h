// HandshakeMonitor tells a connecting peer (worker or CLI) why its
// connection to the coordinator does not come up. ZeroMQ hides handshake
// failures: a refused CURVE key or a wrong server key just looks like a
// coordinator that never answers. The monitor subscribes to the watched
// socket's handshake events (zmq_socket_monitor over a private inproc PAIR)
// and keeps the latest outcome, so the daemon can log it and the CLI can say
// "refused" instead of "unreachable".
//
// Thread contract: the thread that owns the watched socket; create it after
// the socket and destroy it after the socket is closed or at the same time.
#ifndef COHORT_COMMON_HANDSHAKE_MONITOR_H_
#define COHORT_COMMON_HANDSHAKE_MONITOR_H_

#include <cstdint>
#include <string>

#include <zmq.hpp>

namespace cohort::common {

class HandshakeMonitor {
 public:
  enum class Outcome {
    kNone,       // nothing yet
    kSucceeded,  // the last handshake succeeded
    kRefused,    // the coordinator's ZAP handler refused our key
    kMismatch,   // one side uses CURVE and the other does not
    kFailed,     // a protocol error in the handshake
    // The peer closed the connection during the handshake: a CURVE server
    // does that to a client holding the wrong server key, but so does a
    // coordinator that is stopping or was killed.
    kClosed,
  };

  HandshakeMonitor(zmq::context_t& context, zmq::socket_t& watched);
  ~HandshakeMonitor();
  HandshakeMonitor(const HandshakeMonitor&) = delete;
  HandshakeMonitor& operator=(const HandshakeMonitor&) = delete;

  // Null if monitoring could not start (then Drain never reports anything).
  void* pollable() { return valid_ ? static_cast<void*>(pair_) : nullptr; }
  // Reads every pending event; true if the outcome changed since last time.
  bool Drain();
  Outcome outcome() const { return outcome_; }
  // A refusal or a mismatch: retrying with the same keys cannot succeed.
  bool hopeless() const { return outcome_ == Outcome::kRefused || outcome_ == Outcome::kMismatch; }
  // What the last failure was, e.g. "ZAP status 400" or "errno 104".
  const std::string& detail() const { return detail_; }
  // Whether the connection to `endpoint` is known to be up (a handshake
  // succeeded and it has not dropped since) or down (it dropped, was
  // refused, or closed mid-handshake, and no handshake succeeded since).
  // Neither while a connection is still being made.
  bool Up(const std::string& endpoint) const { return !up_.empty() && up_ == endpoint; }
  // Handshakes that succeeded so far, on any endpoint: a caller that counts
  // them before dialling knows whether one completed since, even when the
  // connection dropped again before it looked.
  uint64_t handshakes() const { return handshakes_; }
  bool Down(const std::string& endpoint) const { return !down_.empty() && down_ == endpoint; }

 private:
  zmq::socket_t pair_;
  bool valid_ = false;
  Outcome outcome_ = Outcome::kNone;
  std::string detail_;
  std::string up_, down_;  // the endpoints of the latest connection events
  uint64_t handshakes_ = 0;
};

}  // namespace cohort::common

#endif  // COHORT_COMMON_HANDSHAKE_MONITOR_H_
