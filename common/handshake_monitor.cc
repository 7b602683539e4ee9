#include "common/handshake_monitor.h"

#include <atomic>
#include <cstdint>
#include <cstring>

namespace cohort::common {
namespace {

std::atomic<uint64_t> g_next_monitor{1};

}  // namespace

HandshakeMonitor::HandshakeMonitor(zmq::context_t& context, zmq::socket_t& watched)
    : pair_(context, zmq::socket_type::pair) {
  const std::string endpoint = "inproc://cohort-handshake-monitor-" + std::to_string(g_next_monitor++);
  const int events = ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                     ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                     ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_CONNECT_RETRIED;
  if (zmq_socket_monitor(watched.handle(), endpoint.c_str(), events) != 0) return;
  try {
    pair_.set(zmq::sockopt::linger, 0);
    pair_.connect(endpoint);
    valid_ = true;
  } catch (const zmq::error_t&) {
    valid_ = false;
  }
}

HandshakeMonitor::~HandshakeMonitor() = default;

bool HandshakeMonitor::Drain() {
  if (!valid_) return false;
  const Outcome before = outcome_;
  const std::string detail_before = detail_;
  try {
    zmq::message_t event;
    while (pair_.recv(event, zmq::recv_flags::dontwait)) {
      // Frame 1: uint16 event, uint32 value (native byte order); frame 2:
      // the endpoint.
      uint16_t id = 0;
      uint32_t value = 0;
      const bool whole = event.size() >= 6;
      if (whole) {
        std::memcpy(&id, event.data(), sizeof id);
        std::memcpy(&value, static_cast<const char*>(event.data()) + 2, sizeof value);
      }
      // The parts of one message arrive together: these reads do not wait.
      std::string endpoint;
      for (bool more = event.more(); more;) {
        zmq::message_t rest;
        if (!pair_.recv(rest, zmq::recv_flags::none)) break;
        if (endpoint.empty()) endpoint = rest.to_string();
        more = rest.more();
      }
      if (!whole) continue;
      switch (id) {
        case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
        case ZMQ_EVENT_DISCONNECTED:
        case ZMQ_EVENT_CONNECT_RETRIED:
        case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
          (id == ZMQ_EVENT_HANDSHAKE_SUCCEEDED ? up_ : down_) = endpoint;
          if (id == ZMQ_EVENT_HANDSHAKE_SUCCEEDED ? down_ == endpoint : up_ == endpoint) {
            (id == ZMQ_EVENT_HANDSHAKE_SUCCEEDED ? down_ : up_).clear();
          }
          break;
        default:
          break;
      }
      switch (id) {
        case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
          ++handshakes_;
          outcome_ = Outcome::kSucceeded;
          detail_.clear();
          break;
        case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
          outcome_ = Outcome::kRefused;
          detail_ = "ZAP status " + std::to_string(value);
          break;
        case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
          if (value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH) {
            outcome_ = Outcome::kMismatch;
            detail_ = "security mismatch: one side uses CURVE, the other does not";
          } else {
            outcome_ = Outcome::kFailed;
            detail_ = "protocol error " + std::to_string(value);
          }
          break;
        case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
          outcome_ = Outcome::kClosed;
          detail_ = std::string("connection closed during the handshake (") + zmq_strerror(static_cast<int>(value)) +
                    ")";
          break;
        default:
          break;
      }
    }
  } catch (const zmq::error_t&) {
    // A closed context while stopping: nothing more to learn.
  }
  return outcome_ != before || detail_ != detail_before;
}

}  // namespace cohort::common
