// ConnectionLedger with a fake clock: it counts connections in their
// handshake per socket and all connections together, cuts the newest past
// a cap, and heals a count that ZeroMQ's missing events left too high
// within one handshake limit.
#include <catch2/catch.hpp>

#include "common/connection_guard.h"

namespace cohort::common {
namespace {

using std::chrono::milliseconds;
using Verdict = ConnectionLedger::Verdict;

const Time kT0 = Time{} + std::chrono::hours(1);

ConnectionLimits Limits(size_t handshakes, size_t connections) {
  ConnectionLimits l;
  l.max_handshakes = handshakes;
  l.max_connections = connections;
  l.handshake_limit = milliseconds(5000);
  return l;
}

TEST_CASE("ConnectionLedger: the newest connection past max-handshakes is cut", "[unit][guard]") {
  ConnectionLedger ledger(Limits(2, 0), 2);
  CHECK(ledger.Accepted(0, 10, kT0) == Verdict::kKeep);
  CHECK(ledger.Accepted(0, 11, kT0) == Verdict::kKeep);
  CHECK(ledger.Accepted(0, 12, kT0) == Verdict::kTooManyHandshakes);
  // Each socket has its own count.
  CHECK(ledger.Accepted(1, 20, kT0) == Verdict::kKeep);
  // The cut one counts until ZeroMQ reports it closed, its handshake failed.
  CHECK(ledger.Accepted(0, 13, kT0) == Verdict::kTooManyHandshakes);
  ledger.HandshakeEnded(0);
  ledger.Disconnected(0, 12);
  ledger.HandshakeEnded(0);
  ledger.Disconnected(0, 13);
  CHECK(ledger.handshaking(0, kT0) == 2);
  // A finished handshake frees its place; its connection stays open.
  ledger.HandshakeEnded(0);
  CHECK(ledger.Accepted(0, 14, kT0) == Verdict::kKeep);
  CHECK(ledger.open() == 4);
}

TEST_CASE("ConnectionLedger: established connections never count as handshakes", "[unit][guard]") {
  ConnectionLedger ledger(Limits(2, 0), 1);
  for (int fd = 10; fd < 110; ++fd) {
    REQUIRE(ledger.Accepted(0, fd, kT0) == Verdict::kKeep);
    ledger.HandshakeEnded(0);
  }
  CHECK(ledger.handshaking(0, kT0) == 0);
  CHECK(ledger.open() == 100);
}

TEST_CASE("ConnectionLedger: a failure ZeroMQ raised no event for is forgotten when its connection closes",
          "[unit][guard]") {
  // A frame over ZMQ_MAXMSGSIZE ends a handshake with DISCONNECTED alone.
  ConnectionLedger ledger(Limits(2, 0), 1);
  CHECK(ledger.Accepted(0, 10, kT0) == Verdict::kKeep);
  CHECK(ledger.Accepted(0, 11, kT0) == Verdict::kKeep);
  ledger.Disconnected(0, 10);
  ledger.Disconnected(0, 11);
  CHECK(ledger.handshaking(0, kT0) == 0);
  CHECK(ledger.Accepted(0, 12, kT0) == Verdict::kKeep);
}

TEST_CASE("ConnectionLedger: a connection older than the handshake limit is no longer in its handshake",
          "[unit][guard]") {
  // Open, with no event said about its handshake: ZeroMQ would have closed
  // it at the limit had it not finished.
  ConnectionLedger ledger(Limits(2, 0), 1);
  CHECK(ledger.Accepted(0, 10, kT0) == Verdict::kKeep);
  CHECK(ledger.Accepted(0, 11, kT0 + milliseconds(1000)) == Verdict::kKeep);
  CHECK(ledger.Accepted(0, 12, kT0 + milliseconds(4999)) == Verdict::kTooManyHandshakes);
  ledger.HandshakeEnded(0);
  ledger.Disconnected(0, 12);
  CHECK(ledger.handshaking(0, kT0 + milliseconds(5000)) == 1);
  CHECK(ledger.handshaking(0, kT0 + milliseconds(6000)) == 0);
  CHECK(ledger.Accepted(0, 13, kT0 + milliseconds(6000)) == Verdict::kKeep);
  CHECK(ledger.open() == 3);
}

TEST_CASE("ConnectionLedger: max-connections counts every socket's connections together", "[unit][guard]") {
  ConnectionLedger ledger(Limits(100, 3), 3);
  for (auto [socket, fd] : {std::pair{0, 10}, {1, 11}, {2, 12}}) {
    REQUIRE(ledger.Accepted(socket, fd, kT0) == Verdict::kKeep);
    ledger.HandshakeEnded(socket);
  }
  CHECK(ledger.Accepted(1, 13, kT0) == Verdict::kTooManyConnections);
  ledger.HandshakeEnded(1);
  ledger.Disconnected(1, 13);
  ledger.Disconnected(0, 10);
  CHECK(ledger.Accepted(1, 14, kT0) == Verdict::kKeep);
  CHECK(ledger.open() == 3);
}

TEST_CASE("ConnectionLedger: a descriptor accepted again replaces a connection whose close went unreported",
          "[unit][guard]") {
  ConnectionLedger ledger(Limits(2, 0), 2);
  CHECK(ledger.Accepted(0, 10, kT0) == Verdict::kKeep);
  CHECK(ledger.Accepted(1, 10, kT0) == Verdict::kKeep);
  CHECK(ledger.open() == 1);
  CHECK_FALSE(ledger.IsOpen(0, 10));
  CHECK(ledger.IsOpen(1, 10));
  // The old connection's close, reported late, names a socket it no longer holds.
  ledger.Disconnected(0, 10);
  CHECK(ledger.IsOpen(1, 10));
}

TEST_CASE("ConnectionsFromFileLimit: the descriptor limit less a reserve, never below 16", "[unit][guard]") {
  CHECK(ConnectionsFromFileLimit(65536) == 65280);
  CHECK(ConnectionsFromFileLimit(1024) == 768);
  CHECK(ConnectionsFromFileLimit(100) == 16);
}

}  // namespace
}  // namespace cohort::common
