// Client is the CLI's connection to a coordinator: one DEALER socket,
// request ids, and bounded waits, so an unreachable coordinator becomes a
// clear error after a timeout instead of a hang.
//
// With several coordinators sharing a database, it is given all their
// endpoints and finds the leader: a standby's answer names the leader's
// endpoint, and the client moves there and sends its requests in flight
// again; a coordinator that stays silent while requests wait is left for
// the next endpoint in the list when the next request goes out.
//
// Thread contract: one thread.
#ifndef COHORT_CLI_CLIENT_H_
#define COHORT_CLI_CLIENT_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "common/handshake_monitor.h"
#include "common/messages.h"
#include "common/secure_options.h"
#include "common/status.h"
#include "common/time.h"

namespace cohort::cli {

class Client {
 public:
  // `endpoints`: one endpoint, or several separated by commas. With
  // `curve`, the connection is CURVE-encrypted and reaches only the holder
  // of curve->server_public.
  Client(std::string endpoints, common::Duration timeout, const std::optional<common::PeerCurve>& curve = std::nullopt);

  // Sends a request (its req is assigned here) and returns that req.
  uint64_t Send(common::Message request);
  // Sends a request again under the req it was first sent with, so that the
  // coordinator can tell a repeat from a new request.
  void Repeat(uint64_t req, common::Message request);
  // Waits up to `wait` for the reply to `req`; replies to other requests are
  // dropped. False on timeout.
  bool Receive(uint64_t req, common::Duration wait, common::ReplyMsg* reply);
  // Waits up to `wait` for the next message from the coordinator, whatever it
  // is: a REPLY to any request, or a HEARTBEAT. False on timeout, at once when
  // the socket could not connect, or when hopeless().
  bool ReceiveAny(common::Duration wait, common::Message* msg);
  // Send + Receive with the client's timeout; Unavailable naming the
  // endpoint when nothing answers in time.
  common::Status Call(common::Message request, common::ReplyMsg* reply);
  // Call for a request that is safe to repeat (the coordinator answers a
  // repeat as it answered the first): while no answer comes, it is sent
  // again under the same req after 2 s, then 4 s, 8 s, ..., up to the
  // client's timeout. A coordinator that restarted, or an answer lost with
  // its connection, then costs a repeat instead of the whole timeout.
  // `*sent`, when given, counts the sends.
  common::Status CallRepeating(common::Message request, common::ReplyMsg* reply, int* sent = nullptr);

  // The endpoint talked to now.
  const std::string& endpoint() const { return endpoint_; }
  common::Duration timeout() const { return timeout_; }
  common::Status Unreachable() const;
  // The endpoint was refused before anything was sent (Unreachable() says why).
  bool broken() const { return !connect_error_.ok(); }
  // The handshake failed in a way that retrying with the same keys cannot fix.
  bool hopeless() const { return monitor_ && monitor_->hopeless(); }

 private:
  // Moves the socket to `endpoint` and sends the requests in flight again;
  // submissions only with `resend_all` (see client.cc).
  void MoveTo(const std::string& endpoint, bool resend_all);
  // Before a send: leaves a coordinator that has been silent too long.
  void LeaveIfSilent();
  // While waiting: leaves a coordinator whose connection is down, or never
  // came up.
  void MoveIfDown();
  // Whether a ZeroMQ handshake completed since endpoint_ was dialled: then
  // what was sent may have been delivered.
  bool Reached() const;
  // A standby's answer naming the leader: followed (true) unless the
  // redirects go round in circles.
  bool Follow(const common::ReplyMsg& reply);

  std::vector<std::string> endpoints_;
  size_t at_ = 0;
  std::string endpoint_;
  common::Duration timeout_;
  zmq::context_t context_;
  zmq::socket_t socket_;
  std::optional<common::HandshakeMonitor> monitor_;  // says why a handshake failed
  bool curve_ = false;
  uint64_t next_req_ = 1;
  common::Status connect_error_;
  std::map<uint64_t, common::Message> in_flight_;  // sent, not answered: sent again after a move
  std::optional<common::Time> unanswered_since_;   // the first send since the coordinator last spoke
  common::Time moved_at_ = common::Clock::now();   // when endpoint_ was dialled
  uint64_t handshakes_at_move_ = 0;                 // the monitor's count when it was dialled
  int redirects_ = 0;                               // standby answers followed since the last other answer
  std::string standby_said_;                        // the last standby's answer, for Unreachable()
  std::optional<common::Time> ask_standby_again_;  // when to send the requests in flight again
};

// The reply's code as a Status (the coordinator's message included).
common::Status ReplyStatus(const common::ReplyMsg& reply);

}  // namespace cohort::cli

#endif  // COHORT_CLI_CLIENT_H_
