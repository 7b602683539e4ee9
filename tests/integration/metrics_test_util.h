// Helpers for the metrics server's tests: a loop that drives one
// MetricsServer on a fake `now` (so its timeouts are reached by moving time,
// never by waiting for it), and plain loopback clients. Every wait is a poll
// of the server's and the clients' descriptors, bounded by a wall-clock
// deadline.
#ifndef COHORT_TESTS_INTEGRATION_METRICS_TEST_UTIL_H_
#define COHORT_TESTS_INTEGRATION_METRICS_TEST_UTIL_H_

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/metrics_server.h"
#include "common/unique_fd.h"

namespace cohort::testing {

using common::MetricsServer;
using common::UniqueFd;

// A connected, non-blocking loopback client, with a receive buffer of
// about `rcvbuf` bytes if given; invalid on failure.
inline UniqueFd Connect(int port, int rcvbuf = 0) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (rcvbuf > 0) ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  // On loopback the handshake completes in the kernel, before any accept.
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return UniqueFd();
  ::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) | O_NONBLOCK);
  return fd;
}

// Sends what fits now; the tests' requests fit a socket buffer.
inline bool SendAll(int fd, const std::string& text) {
  return ::send(fd, text.data(), text.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(text.size());
}

// Reads what is there without blocking; true at end of stream or error.
inline bool ReadSome(int fd, std::string* out) {
  char buf[65536];
  while (true) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) {
      out->append(buf, static_cast<size_t>(n));
      continue;
    }
    return !(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR));
  }
}

class ServerLoop {
 public:
  using Wall = std::chrono::steady_clock;

  explicit ServerLoop(MetricsServer::Options options = {}) {
    const common::Status s = MetricsServer::Listen("0", options, &server);
    if (!s.ok()) error = s.ToString();
  }

  // One turn of a daemon's loop: poll the server's descriptors and the
  // clients' (for POLLIN) until one is ready or `wait` passes, then Process.
  // A deadline the fake `now` has reached makes it a turn without a wait,
  // as in a daemon.
  void Turn(const std::vector<int>& clients = {}, std::chrono::milliseconds wait = std::chrono::milliseconds(100)) {
    std::vector<pollfd> fds;
    server->PollFds(&fds);
    for (int c : clients) fds.push_back({c, POLLIN, 0});
    if (const auto due = server->NextDeadline(); due && *due <= now) wait = std::chrono::milliseconds(0);
    const int n = ::poll(fds.data(), fds.size(), static_cast<int>(wait.count()));
    if (n < 0) fds.clear();
    server->Process(fds, now, [this] {
      ++renders;
      return body;
    });
  }

  // Turns until `done` holds or 10 s of wall clock pass; false then.
  bool Until(const std::function<bool()>& done, const std::vector<int>& clients = {}) {
    const auto deadline = Wall::now() + std::chrono::seconds(10);
    while (!done()) {
      if (Wall::now() >= deadline) return false;
      Turn(clients);
    }
    return true;
  }

  // Turns until the server ends the client's connection: what it sent
  // before, or nullopt if it did not end within the bound.
  std::optional<std::string> UntilClosed(int client) {
    std::string got;
    bool ended = false;
    if (!Until([&] { return ended = ended || ReadSome(client, &got); }, {client})) return std::nullopt;
    return got;
  }

  // The client's whole answer (the server closes after it); "" if none.
  std::string Response(int client) { return UntilClosed(client).value_or(""); }

  std::string Scrape(const std::string& request) {
    UniqueFd c = Connect(server->port());
    if (!c.valid() || !SendAll(c.get(), request)) return "";
    return Response(c.get());
  }

  std::unique_ptr<MetricsServer> server;
  std::string error;
  common::Time now = common::Time() + std::chrono::hours(1);
  std::string body = "# HELP up 1 when up\n# TYPE up gauge\nup 1\n";
  int renders = 0;
};

// The status line of an answer, e.g. "HTTP/1.1 200 OK".
inline std::string StatusLine(const std::string& response) { return response.substr(0, response.find("\r\n")); }

inline std::string BodyOf(const std::string& response) {
  const size_t end = response.find("\r\n\r\n");
  return end == std::string::npos ? "" : response.substr(end + 4);
}

}  // namespace cohort::testing

#endif  // COHORT_TESTS_INTEGRATION_METRICS_TEST_UTIL_H_
