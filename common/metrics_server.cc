#include "common/metrics_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <string_view>
#include <utility>

#include "common/quote.h"

namespace cohort::common {

namespace {

// Bounds one Process() call's work however busy the socket is, so the
// loop's other sockets get their turn.
constexpr int kAcceptsPerTurn = 64;
constexpr size_t kReadChunk = 4096;
constexpr size_t kDrainPerTurn = 64 * 1024;
// What a client may send after its answer before it is cut off: one that
// sends this much is not reading what we sent.
constexpr size_t kDrainLimit = 1024 * 1024;

constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";
constexpr std::string_view kRefusal =
    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

std::string ErrnoText(std::string_view what) { return std::string(what) + ": " + std::strerror(errno); }

// Splits HOST:PORT, [V6]:PORT or PORT.
Status SplitEndpoint(const std::string& endpoint, std::string* host, std::string* port) {
  const size_t colon = endpoint.rfind(':');
  if (colon == std::string::npos) {
    *host = "127.0.0.1";
    *port = endpoint;
  } else {
    *host = endpoint.substr(0, colon);
    *port = endpoint.substr(colon + 1);
    if (host->size() >= 2 && host->front() == '[' && host->back() == ']') {
      *host = host->substr(1, host->size() - 2);
      if (host->find(':') == std::string::npos) {
        return Status::InvalidArgument("metrics endpoint " + Quote(endpoint) + ": brackets are for IPv6 addresses");
      }
    } else if (host->find_first_of(":[]") != std::string::npos) {
      return Status::InvalidArgument("metrics endpoint " + Quote(endpoint) +
                                     ": write an IPv6 address in brackets, as [::1]:9464");
    }
  }
  int value = -1;
  const auto r = std::from_chars(port->data(), port->data() + port->size(), value);
  if (host->empty() || port->empty() || r.ec != std::errc() || r.ptr != port->data() + port->size() || value < 0 ||
      value > 65535) {
    return Status::InvalidArgument("metrics endpoint " + Quote(endpoint) + ": want HOST:PORT, [IPV6]:PORT or PORT");
  }
  return Status::Ok();
}

std::string AddressText(const sockaddr_storage& a, int* port) {
  char text[INET6_ADDRSTRLEN] = {};
  if (a.ss_family == AF_INET6) {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(a);
    ::inet_ntop(AF_INET6, &in6.sin6_addr, text, sizeof text);
    *port = ntohs(in6.sin6_port);
    return "[" + std::string(text) + "]:" + std::to_string(*port);
  }
  const auto& in = reinterpret_cast<const sockaddr_in&>(a);
  ::inet_ntop(AF_INET, &in.sin_addr, text, sizeof text);
  *port = ntohs(in.sin_port);
  return std::string(text) + ":" + std::to_string(*port);
}

// A listening socket on one of getaddrinfo's answers.
Status BindOne(const addrinfo& ai, int backlog, UniqueFd* out) {
  UniqueFd fd(::socket(ai.ai_family, ai.ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai.ai_protocol));
  if (!fd.valid()) return Status::IoError(ErrnoText("socket"));
  // A restarted daemon must get its port back while the last life's
  // connections sit in TIME_WAIT.
  const int on = 1;
  if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0) {
    return Status::IoError(ErrnoText("setsockopt SO_REUSEADDR"));
  }
  if (::bind(fd.get(), ai.ai_addr, ai.ai_addrlen) != 0) return Status::IoError(ErrnoText("bind"));
  if (::listen(fd.get(), backlog) != 0) return Status::IoError(ErrnoText("listen"));
  *out = std::move(fd);
  return Status::Ok();
}

bool Transient(int err) {
  // Linux hands a new connection's pending network error to accept(); the
  // next connection in the queue is unaffected.
  switch (err) {
    case EINTR: case ECONNABORTED: case EPROTO: case ENETDOWN: case ENOPROTOOPT: case EHOSTDOWN:
    case ENONET: case EHOSTUNREACH: case EOPNOTSUPP: case ENETUNREACH: case EPERM:
      return true;
    default:
      return false;
  }
}

struct Reply {
  int code = 200;
  std::string_view reason = "OK";
  bool head = false;
  bool scrape = false;
};

// Judges a complete request head (its first line is all that matters).
Reply Judge(std::string_view request) {
  const size_t eol = request.find('\n');
  std::string_view line = request.substr(0, eol);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  const size_t sp1 = line.find(' ');
  const size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
    return {400, "Bad Request"};
  }
  const std::string_view method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line.substr(sp2 + 1);
  if (!version.starts_with("HTTP/")) return {400, "Bad Request"};
  if (version != "HTTP/1.0" && version != "HTTP/1.1") return {505, "HTTP Version Not Supported"};
  target = target.substr(0, target.find('?'));
  if (target != "/metrics") return {404, "Not Found"};
  if (method != "GET" && method != "HEAD") return {405, "Method Not Allowed"};
  return {200, "OK", method == "HEAD", true};
}

std::string Head(const Reply& r, std::string_view content_type, size_t length) {
  std::string out = "HTTP/1.1 " + std::to_string(r.code) + " " + std::string(r.reason) + "\r\n";
  out.append("Content-Type: ").append(content_type).append("\r\n");
  out.append("Content-Length: ").append(std::to_string(length)).append("\r\n");
  if (r.code == 405) out.append("Allow: GET, HEAD\r\n");
  out.append("Connection: close\r\n\r\n");
  return out;
}

// Where the request head ends (after its blank line), or npos. `from` is
// where the new bytes start, so a trickled request is not searched anew.
size_t HeadEnd(std::string_view in, size_t from) {
  for (size_t i = from > 3 ? from - 3 : 0; i < in.size(); ++i) {
    if (in[i] != '\n') continue;
    if (i >= 1 && in[i - 1] == '\n') return i + 1;
    if (i >= 2 && in[i - 1] == '\r' && in[i - 2] == '\n') return i + 1;
  }
  return std::string_view::npos;
}

}  // namespace

struct MetricsServer::Connection {
  enum class State { kReading, kWriting, kDraining, kClosed };
  UniqueFd fd;
  Time deadline;
  State state = State::kReading;
  std::string in;   // the request so far, at most max_request_bytes + 1
  std::string out;  // the answer
  size_t sent = 0;
  size_t drained = 0;  // bytes read and dropped after the answer
};

// One Process() call: renders the body at most once, for every connection
// answered in it.
class MetricsServer::Turn {
 public:
  explicit Turn(const Render& render) : render_(render) {}
  const std::string& Body() {
    if (!body_) body_ = render_ ? render_() : std::string();
    return *body_;
  }

 private:
  const Render& render_;
  std::optional<std::string> body_;
};

Status MetricsServer::Listen(const std::string& endpoint, std::unique_ptr<MetricsServer>* out) {
  return Listen(endpoint, Options(), out);
}

Status MetricsServer::Listen(const std::string& endpoint, const Options& options,
                             std::unique_ptr<MetricsServer>* out) {
  std::string host, port;
  if (Status s = SplitEndpoint(endpoint, &host, &port); !s.ok()) return s;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (const int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    return Status::InvalidArgument("metrics endpoint " + Quote(endpoint) + ": " + ::gai_strerror(rc));
  }
  Status last = Status::IoError("metrics endpoint " + Quote(endpoint) + ": no address");
  UniqueFd fd;
  for (const addrinfo* ai = found; ai != nullptr && !fd.valid(); ai = ai->ai_next) {
    if (Status s = BindOne(*ai, options.backlog, &fd); !s.ok()) {
      last = Status::IoError("metrics endpoint " + Quote(endpoint) + ": " + s.message());
    }
  }
  ::freeaddrinfo(found);
  if (!fd.valid()) return last;
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&bound), &len) != 0) {
    return Status::IoError(ErrnoText("getsockname"));
  }
  int bound_port = 0;
  std::string text = AddressText(bound, &bound_port);
  out->reset(new MetricsServer(std::move(fd), options, bound_port, std::move(text)));
  return Status::Ok();
}

MetricsServer::MetricsServer(UniqueFd listener, Options options, int port, std::string endpoint)
    : listener_(std::move(listener)), options_(options), port_(port), endpoint_(std::move(endpoint)) {}

MetricsServer::~MetricsServer() = default;

void MetricsServer::PollFds(std::vector<pollfd>* fds) const {
  if (!accept_paused_until_) fds->push_back({listener_.get(), POLLIN, 0});
  for (const auto& c : connections_) {
    fds->push_back({c->fd.get(), static_cast<short>(c->state == Connection::State::kWriting ? POLLOUT : POLLIN), 0});
  }
}

std::optional<Time> MetricsServer::NextDeadline() const {
  std::optional<Time> next = accept_paused_until_;
  for (const auto& c : connections_) {
    if (!next || c->deadline < *next) next = c->deadline;
  }
  return next;
}

void MetricsServer::Process(std::span<const pollfd> polled, Time now, const Render& render) {
  Turn turn(render);
  bool accept_ready = false;
  for (const pollfd& p : polled) {
    if (p.revents == 0 || p.fd < 0) continue;
    if (p.fd == listener_.get()) {
      accept_ready = true;
      continue;
    }
    const auto it = std::find_if(connections_.begin(), connections_.end(),
                                 [&](const auto& c) { return c->fd.get() == p.fd; });
    if (it == connections_.end()) continue;
    Connection& c = **it;
    // An error or hang-up shows in the read or write itself, which then closes.
    switch (c.state) {
      case Connection::State::kReading: Read(c, turn); break;
      case Connection::State::kWriting: Write(c); break;
      case Connection::State::kDraining: Drain(c); break;
      case Connection::State::kClosed: break;
    }
  }
  std::erase_if(connections_, [&](const auto& c) {
    if (c->state == Connection::State::kClosed) return true;
    if (now < c->deadline) return false;
    if (c->state != Connection::State::kDraining) ++stats_.timed_out;
    return true;
  });
  if (accept_paused_until_ && now >= *accept_paused_until_) {
    accept_paused_until_.reset();
    accept_ready = true;  // the backlog may have filled while paused
  }
  // Last, so that no descriptor number accepted in this turn can be
  // mistaken for one of the closed connections `polled` still names.
  if (accept_ready && !accept_paused_until_) Accept(now);
}

void MetricsServer::Accept(Time now) {
  for (int i = 0; i < kAcceptsPerTurn; ++i) {
    UniqueFd fd(::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd.valid()) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return;
      if (Transient(errno)) continue;
      // EMFILE and its kin leave the connection in the backlog, and the
      // socket readable: polling it again at once would spin.
      ++stats_.accept_errors;
      accept_paused_until_ = now + options_.accept_pause;
      return;
    }
    ++stats_.accepted;
    if (connections_.size() >= options_.max_connections) {
      ++stats_.refused;
      // Into an empty send buffer, so it never blocks; whether it arrives
      // does not matter.
      const ssize_t ignored = ::send(fd.get(), kRefusal.data(), kRefusal.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      (void)ignored;
      continue;
    }
    auto c = std::make_unique<Connection>();
    c->fd = std::move(fd);
    c->deadline = now + options_.timeout;
    connections_.push_back(std::move(c));
  }
}

void MetricsServer::Read(Connection& c, Turn& turn) {
  const size_t cap = options_.max_request_bytes;
  while (c.state == Connection::State::kReading) {
    // One byte past the cap tells an oversized request from one that fits.
    const size_t want = std::min(kReadChunk, cap + 1 - c.in.size());
    const size_t from = c.in.size();
    c.in.resize(from + want);
    const ssize_t n = ::recv(c.fd.get(), c.in.data() + from, want, 0);
    c.in.resize(from + static_cast<size_t>(std::max<ssize_t>(n, 0)));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (n <= 0) {  // the client left before its request was complete
      c.state = Connection::State::kClosed;
      return;
    }
    if (HeadEnd(c.in, from) != std::string::npos || c.in.size() > cap) Answer(c, turn);
  }
}

void MetricsServer::Answer(Connection& c, Turn& turn) {
  Reply r;
  if (HeadEnd(c.in, 0) == std::string::npos) {
    // Too long: a request line that ended is followed by too many headers.
    r = c.in.find('\n') == std::string::npos ? Reply{400, "Bad Request"}
                                             : Reply{431, "Request Header Fields Too Large"};
  } else {
    r = Judge(c.in);
  }
  std::string().swap(c.in);
  ++stats_.answered;
  if (r.scrape) {
    ++stats_.scrapes;
    const std::string& body = turn.Body();
    c.out = Head(r, kContentType, body.size());
    if (!r.head) c.out.append(body);
  } else {
    ++stats_.bad_requests;
    const std::string body = std::to_string(r.code) + " " + std::string(r.reason) + "\n";
    c.out = Head(r, "text/plain; charset=utf-8", body.size()) + body;
  }
  c.state = Connection::State::kWriting;
  Write(c);
}

void MetricsServer::Write(Connection& c) {
  while (c.sent < c.out.size()) {
    const ssize_t n = ::send(c.fd.get(), c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      c.sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;  // polled for POLLOUT
    c.state = Connection::State::kClosed;
    return;
  }
  std::string().swap(c.out);
  // Closing with unread bytes from the client (headers past the cap, a
  // body) would send a reset that can destroy the answer before the client
  // reads it. So: end our side, and read until the client closes its own.
  ::shutdown(c.fd.get(), SHUT_WR);
  c.state = Connection::State::kDraining;
  Drain(c);
}

void MetricsServer::Drain(Connection& c) {
  char buf[kReadChunk];
  for (size_t turn = 0; turn < kDrainPerTurn;) {
    const ssize_t n = ::recv(c.fd.get(), buf, sizeof buf, 0);
    if (n > 0) {
      turn += static_cast<size_t>(n);
      c.drained += static_cast<size_t>(n);
      if (c.drained <= kDrainLimit) continue;
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return;
    }
    // End of stream, an error, or more than a client that reads would send.
    c.state = Connection::State::kClosed;
    return;
  }
  // This turn's share is read; poll says when there is more.
}

}  // namespace cohort::common
