#include "common/connection_guard.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <algorithm>
#include <atomic>
#include <cstring>

namespace cohort::common {
namespace {

std::atomic<uint64_t> g_next_guard{1};

// Capped by net.core.somaxconn (4096 by default since Linux 5.4).
constexpr int kListenBacklog = 1024;

// "tcp://127.0.0.1:5700" -> 5700; 0 for anything else.
int PortOf(const std::string& endpoint) {
  const size_t colon = endpoint.rfind(':');
  if (endpoint.rfind("tcp://", 0) != 0 || colon == std::string::npos) return 0;
  return std::atoi(endpoint.c_str() + colon + 1);
}

// Whether `fd` is still a connection accepted by the listener bound at
// `endpoint`. The event that named it was queued a moment ago; if ZeroMQ
// has closed it meanwhile, the number may already belong to another file,
// which must not be cut.
bool FromListener(int fd, const std::string& endpoint) {
  sockaddr_storage local{};
  socklen_t len = sizeof local;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) != 0) return false;
  if (local.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&local)->sin_port) == PortOf(endpoint);
  if (local.ss_family == AF_INET6) {
    return ntohs(reinterpret_cast<sockaddr_in6*>(&local)->sin6_port) == PortOf(endpoint);
  }
  if (local.ss_family == AF_UNIX && endpoint.rfind("ipc://", 0) == 0) {
    return std::strncmp(reinterpret_cast<sockaddr_un*>(&local)->sun_path, endpoint.c_str() + 6,
                        sizeof(sockaddr_un::sun_path)) == 0;
  }
  return false;
}

// The peer's address for the log: "127.0.0.1:40312", or "local" for ipc.
std::string PeerOf(int fd) {
  sockaddr_storage peer{};
  socklen_t len = sizeof peer;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) != 0) return "unknown";
  char text[INET6_ADDRSTRLEN] = "";
  if (peer.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<sockaddr_in*>(&peer);
    ::inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
    return std::string(text) + ":" + std::to_string(ntohs(in->sin_port));
  }
  if (peer.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<sockaddr_in6*>(&peer);
    ::inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
    return "[" + std::string(text) + "]:" + std::to_string(ntohs(in6->sin6_port));
  }
  return "local";
}

}  // namespace

size_t ConnectionsFromFileLimit(uint64_t nofile, size_t reserved) {
  return nofile > reserved + 16 ? static_cast<size_t>(nofile - reserved) : 16;
}

// ---- ConnectionLedger ---------------------------------------------------------

ConnectionLedger::ConnectionLedger(ConnectionLimits limits, size_t sockets) : limits_(limits), sockets_(sockets) {}

void ConnectionLedger::Age(PerSocket& s, Time now) {
  while (!s.young.empty() && s.young.front().at + limits_.handshake_limit <= now) {
    const Accept& a = s.young.front();
    if (auto it = s.open.find(a.fd); it != s.open.end() && it->second == a.seq) --s.young_open;
    s.young.pop_front();
  }
  s.counted = std::min(s.counted, s.young_open);
}

void ConnectionLedger::Close(PerSocket& s, int fd) {
  auto it = s.open.find(fd);
  if (it == s.open.end()) return;
  if (!s.young.empty() && it->second >= s.young.front().seq) --s.young_open;
  s.open.erase(it);
  --open_;
}

ConnectionLedger::Verdict ConnectionLedger::Accepted(size_t socket, int fd, Time now) {
  PerSocket& s = sockets_.at(socket);
  // A descriptor is reused only once closed: a connection still listed
  // under it closed without the event reaching us.
  for (PerSocket& other : sockets_) Close(other, fd);
  Age(s, now);
  const uint64_t seq = next_seq_++;
  s.open[fd] = seq;
  s.young.push_back({now, fd, seq});
  ++s.young_open;
  ++s.counted;
  ++open_;
  if (s.counted > limits_.max_handshakes) return Verdict::kTooManyHandshakes;
  if (limits_.max_connections > 0 && open_ > limits_.max_connections) return Verdict::kTooManyConnections;
  return Verdict::kKeep;
}

void ConnectionLedger::HandshakeEnded(size_t socket) {
  PerSocket& s = sockets_.at(socket);
  if (s.counted > 0) --s.counted;
}

void ConnectionLedger::Disconnected(size_t socket, int fd) {
  PerSocket& s = sockets_.at(socket);
  Close(s, fd);
  s.counted = std::min(s.counted, s.young_open);
}

size_t ConnectionLedger::handshaking(size_t socket, Time now) {
  PerSocket& s = sockets_.at(socket);
  Age(s, now);
  return s.counted;
}

bool ConnectionLedger::IsOpen(size_t socket, int fd) const { return sockets_.at(socket).open.contains(fd); }

// ---- ConnectionGuard ----------------------------------------------------------

ConnectionGuard::ConnectionGuard(zmq::context_t& context, ConnectionLimits limits)
    : context_(context), limits_(limits) {}

ConnectionGuard::~ConnectionGuard() = default;

Status ConnectionGuard::Watch(zmq::socket_t& socket, std::string name, size_t max_frame_bytes) {
  const std::string endpoint = "inproc://cohort-connection-guard-" + std::to_string(g_next_guard++);
  const int events = ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
                     ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                     ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;
  try {
    socket.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(max_frame_bytes));
    // The kernel queues this many connections before the I/O thread accepts
    // them (ZeroMQ's default is 100): past it a burst's connections wait for
    // SYN retransmits, seconds, whatever the guard would decide.
    socket.set(zmq::sockopt::backlog, kListenBacklog);
    socket.set(zmq::sockopt::handshake_ivl,
               static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(limits_.handshake_limit).count()));
    if (zmq_socket_monitor(socket.handle(), endpoint.c_str(), events) != 0) {
      return Status::Unavailable("cannot monitor the " + name + " socket: " + zmq_strerror(zmq_errno()));
    }
    auto monitor = std::make_unique<zmq::socket_t>(context_, zmq::socket_type::pair);
    monitor->set(zmq::sockopt::linger, 0);
    // No high-water mark: a full queue would block ZeroMQ's I/O thread,
    // every connection's traffic with it, until the loop reads.
    monitor->set(zmq::sockopt::rcvhwm, 0);
    monitor->connect(endpoint);
    watched_.push_back({&socket, std::move(name), std::move(monitor)});
  } catch (const zmq::error_t& e) {
    return Status::Unavailable("cannot monitor the " + name + " socket: " + e.what());
  }
  return Status::Ok();
}

void ConnectionGuard::AddTo(std::vector<zmq::pollitem_t>* items) {
  for (Watched& w : watched_) items->push_back({static_cast<void*>(*w.monitor), 0, ZMQ_POLLIN, 0});
}

void ConnectionGuard::Drain(Time now) {
  if (watched_.empty()) return;
  if (!ledger_) ledger_ = std::make_unique<ConnectionLedger>(limits_, watched_.size());
  // Every queued event first, then the cuts: a descriptor closed and
  // reused within the batch is judged by its latest connection.
  std::vector<Cut> cuts;
  for (size_t i = 0; i < watched_.size(); ++i) Read(i, now, &cuts);
  for (const Cut& cut : cuts) {
    if (ledger_->IsOpen(cut.socket, cut.fd)) Apply(cut, now);
  }
}

void ConnectionGuard::Read(size_t index, Time now, std::vector<Cut>* cuts) {
  zmq::socket_t& monitor = *watched_[index].monitor;
  try {
    zmq::message_t event, endpoint;
    while (monitor.recv(event, zmq::recv_flags::dontwait)) {
      // Frame 1: uint16 event, uint32 value (native byte order); frame 2:
      // the endpoint, the listener's own for a bound socket.
      if (event.more()) (void)monitor.recv(endpoint, zmq::recv_flags::none);
      if (event.size() < 6) continue;
      uint16_t id = 0;
      uint32_t value = 0;
      std::memcpy(&id, event.data(), 2);
      std::memcpy(&value, static_cast<const char*>(event.data()) + 2, 4);
      const int fd = static_cast<int>(value);
      switch (id) {
        case ZMQ_EVENT_ACCEPTED:
          if (auto v = ledger_->Accepted(index, fd, now); v != ConnectionLedger::Verdict::kKeep) {
            cuts->push_back({index, fd, v});
          }
          break;
        case ZMQ_EVENT_DISCONNECTED: ledger_->Disconnected(index, fd); break;
        case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
        case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
        case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
        case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH: ledger_->HandshakeEnded(index); break;
        default: break;
      }
    }
  } catch (const zmq::error_t&) {
    // The context is closing: nothing more to guard.
  }
}

void ConnectionGuard::Apply(const Cut& cut, Time now) {
  const Watched& w = watched_[cut.socket];
  std::string bound;
  try {
    bound = w.socket->get(zmq::sockopt::last_endpoint);
  } catch (const zmq::error_t&) {
    return;
  }
  if (!FromListener(cut.fd, bound)) return;
  const std::string peer = PeerOf(cut.fd);
  // ZeroMQ reads end of file, drops the engine and the frame it was
  // filling, and closes the descriptor itself.
  if (::shutdown(cut.fd, SHUT_RDWR) != 0) return;
  uint64_t suppressed = 0;
  if (!log_.Allow(now, &suppressed)) return;
  const bool handshakes = cut.why == ConnectionLedger::Verdict::kTooManyHandshakes;
  LogWarn(handshakes ? "handshake_limit" : "connection_limit")
      .Kv("socket", w.name)
      .Kv("peer", peer)
      .Kv("handshaking", ledger_->handshaking(cut.socket, now))
      .Kv("max-handshakes", limits_.max_handshakes)
      .Kv("connections", ledger_->open())
      .Kv("max-connections", limits_.max_connections)
      .Kv("suppressed", suppressed);
}

}  // namespace cohort::common
