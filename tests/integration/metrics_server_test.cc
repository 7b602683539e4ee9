// The metrics endpoint with real sockets on 127.0.0.1, driven as a daemon's
// loop drives it: scrapes, requests in pieces, oversized and wrong requests,
// silent and slow clients (closed when a fake `now` passes their timeout),
// more clients than the cap, a client that reads nothing of a large answer,
// and accept running out of descriptors.
#include "common/metrics_server.h"

#include <fcntl.h>
#include <sys/resource.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <random>
#include <string>
#include <vector>

#include "tests/integration/metrics_test_util.h"

namespace cohort::testing {
namespace {

using common::Status;
using namespace std::chrono_literals;

constexpr const char* kGet = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/plain\r\n\r\n";

bool Has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST_CASE("a scrape gets the rendered text with the exposition format's headers", "[metrics_server]") {
  ServerLoop loop;
  REQUIRE(loop.error.empty());
  const std::string r = loop.Scrape(kGet);
  CHECK(StatusLine(r) == "HTTP/1.1 200 OK");
  CHECK(Has(r, "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
  CHECK(Has(r, "\r\nContent-Length: " + std::to_string(loop.body.size()) + "\r\n"));
  CHECK(Has(r, "\r\nConnection: close\r\n"));
  CHECK(BodyOf(r) == loop.body);
  CHECK(loop.renders == 1);
  // A query string is fine; HEAD gets the headers alone; HTTP/1.0 is fine.
  CHECK(BodyOf(loop.Scrape("GET /metrics?x=1 HTTP/1.0\r\n\r\n")) == loop.body);
  const std::string head = loop.Scrape("HEAD /metrics HTTP/1.1\r\n\n");
  CHECK(StatusLine(head) == "HTTP/1.1 200 OK");
  CHECK(Has(head, "Content-Length: " + std::to_string(loop.body.size()) + "\r\n"));
  CHECK(BodyOf(head).empty());
  CHECK(loop.Until([&] { return loop.server->connections() == 0; }));
  CHECK(loop.server->stats().scrapes == 3);
  CHECK(loop.server->stats().bad_requests == 0);
}

TEST_CASE("a request that arrives a byte at a time is answered once whole", "[metrics_server]") {
  ServerLoop loop;
  REQUIRE(loop.error.empty());
  UniqueFd c = Connect(loop.server->port());
  REQUIRE(c.valid());
  const std::string request = kGet;
  for (char ch : request.substr(0, request.size() - 1)) {
    REQUIRE(SendAll(c.get(), std::string(1, ch)));
    loop.Turn({}, 0ms);
  }
  loop.Turn({}, 0ms);
  std::string early;
  CHECK_FALSE(ReadSome(c.get(), &early));
  CHECK(early.empty());
  CHECK(loop.renders == 0);
  REQUIRE(SendAll(c.get(), request.substr(request.size() - 1)));
  const std::string r = loop.Response(c.get());
  CHECK(StatusLine(r) == "HTTP/1.1 200 OK");
  CHECK(BodyOf(r) == loop.body);
  CHECK(loop.renders == 1);
}

TEST_CASE("a request past the size cap is answered 431, or 400 without a request line, and closed",
          "[metrics_server]") {
  common::MetricsServer::Options options;
  options.max_request_bytes = 1024;
  ServerLoop loop(options);
  REQUIRE(loop.error.empty());
  const std::string headers = "GET /metrics HTTP/1.1\r\nX-Junk: " + std::string(4000, 'j') + "\r\n\r\n";
  CHECK(StatusLine(loop.Scrape(headers)) == "HTTP/1.1 431 Request Header Fields Too Large");
  CHECK(StatusLine(loop.Scrape("GET /" + std::string(3000, 'm'))) == "HTTP/1.1 400 Bad Request");
  // Just at the cap is still a request.
  std::string fits = "GET /metrics HTTP/1.1\r\nX: ";
  fits += std::string(1024 - fits.size() - 4, 'f') + "\r\n\r\n";
  REQUIRE(fits.size() == 1024);
  CHECK(StatusLine(loop.Scrape(fits)) == "HTTP/1.1 200 OK");
  CHECK(loop.server->stats().bad_requests == 2);
  CHECK(loop.renders == 1);
}

TEST_CASE("an answer arrives whole though the client sent more than was read", "[metrics_server]") {
  ServerLoop loop;
  REQUIRE(loop.error.empty());
  loop.body = std::string(256 << 10, 'x');
  // A client that reads slowly, and a server whose send buffer takes the
  // whole answer: the server is done writing while most of the answer is
  // still in its buffer.
  UniqueFd c = Connect(loop.server->port(), 4096);
  REQUIRE(c.valid());
  REQUIRE(loop.Until([&] { return loop.server->connections() == 1; }));
  std::vector<pollfd> fds;
  loop.server->PollFds(&fds);
  REQUIRE(fds.size() == 2);
  const int sndbuf = 4 << 20;
  REQUIRE(::setsockopt(fds[1].fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf) == 0);
  // Closing with the bytes after the request unread would send a reset,
  // which drops what of the answer is still in the server's buffer.
  REQUIRE(SendAll(c.get(), std::string(kGet) + std::string(64 * 1024, 'j')));
  REQUIRE(loop.Until([&] {
    fds.clear();
    loop.server->PollFds(&fds);
    return loop.renders == 1 && std::none_of(fds.begin(), fds.end(), [](const pollfd& p) { return p.events == POLLOUT; });
  }));
  const std::string r = loop.Response(c.get());
  CHECK(StatusLine(r) == "HTTP/1.1 200 OK");
  CHECK(BodyOf(r).size() == loop.body.size());
}

TEST_CASE("other paths are 404, other methods 405, garbage 400, other versions 505", "[metrics_server]") {
  ServerLoop loop;
  REQUIRE(loop.error.empty());
  CHECK(StatusLine(loop.Scrape("GET / HTTP/1.1\r\n\r\n")) == "HTTP/1.1 404 Not Found");
  CHECK(StatusLine(loop.Scrape("GET /metricsx HTTP/1.1\r\n\r\n")) == "HTTP/1.1 404 Not Found");
  const std::string post = loop.Scrape("POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc");
  CHECK(StatusLine(post) == "HTTP/1.1 405 Method Not Allowed");
  CHECK(Has(post, "\r\nAllow: GET, HEAD\r\n"));
  CHECK(StatusLine(loop.Scrape("DELETE /metrics HTTP/1.1\r\n\r\n")) == "HTTP/1.1 405 Method Not Allowed");
  CHECK(StatusLine(loop.Scrape("HELLO\r\n\r\n")) == "HTTP/1.1 400 Bad Request");
  CHECK(StatusLine(loop.Scrape("GET  /metrics HTTP/1.1\r\n\r\n")) == "HTTP/1.1 400 Bad Request");
  CHECK(StatusLine(loop.Scrape("GET /metrics SPDY/3\r\n\r\n")) == "HTTP/1.1 400 Bad Request");
  CHECK(StatusLine(loop.Scrape("GET /metrics HTTP/2.0\r\n\r\n")) == "HTTP/1.1 505 HTTP Version Not Supported");
  CHECK(loop.renders == 0);
  CHECK(loop.server->stats().bad_requests == 8);
}

TEST_CASE("a client that says nothing is closed at its timeout, and not before", "[metrics_server]") {
  common::MetricsServer::Options options;
  options.timeout = 10s;
  ServerLoop loop(options);
  REQUIRE(loop.error.empty());
  CHECK_FALSE(loop.server->NextDeadline());
  UniqueFd silent = Connect(loop.server->port());
  REQUIRE(silent.valid());
  REQUIRE(loop.Until([&] { return loop.server->connections() == 1; }));
  const common::Time accepted = loop.now;
  REQUIRE(loop.server->NextDeadline() == accepted + 10s);
  // A trickle does not buy time.
  loop.now = accepted + 9s;
  REQUIRE(SendAll(silent.get(), "GET /met"));
  loop.Turn({}, 50ms);
  std::string got;
  CHECK_FALSE(ReadSome(silent.get(), &got));
  CHECK(loop.server->connections() == 1);
  loop.now = accepted + 10s;
  loop.Turn({}, 0ms);
  CHECK(loop.server->connections() == 0);
  CHECK(loop.server->stats().timed_out == 1);
  CHECK_FALSE(loop.server->NextDeadline());
  // The client sees the connection end, with no answer.
  CHECK(loop.UntilClosed(silent.get()) == std::string());
  CHECK(loop.renders == 0);
}

TEST_CASE("past the connection cap new clients are refused at once and the others still served",
          "[metrics_server]") {
  common::MetricsServer::Options options;
  options.max_connections = 4;
  ServerLoop loop(options);
  REQUIRE(loop.error.empty());
  std::vector<UniqueFd> clients;
  for (int i = 0; i < 10; ++i) {
    clients.push_back(Connect(loop.server->port()));
    REQUIRE(clients.back().valid());
  }
  REQUIRE(loop.Until([&] { return loop.server->stats().accepted == 10; }));
  CHECK(loop.server->connections() == 4);
  CHECK(loop.server->stats().refused == 6);
  for (size_t i = 4; i < clients.size(); ++i) {
    CHECK(StatusLine(loop.Response(clients[i].get())) == "HTTP/1.1 503 Service Unavailable");
  }
  for (size_t i = 0; i < 4; ++i) {
    REQUIRE(SendAll(clients[i].get(), kGet));
    CHECK(BodyOf(loop.Response(clients[i].get())) == loop.body);
    // The server holds an answered connection until the client closes its
    // side (or the timeout), so that no reset can cut the answer short.
    clients[i].Reset();
  }
  CHECK(loop.Until([&] { return loop.server->connections() == 0; }));
}

TEST_CASE("a client that reads nothing of a large answer blocks nothing and is closed at its timeout",
          "[metrics_server]") {
  ServerLoop loop;
  REQUIRE(loop.error.empty());
  const std::string small = loop.body;
  loop.body = std::string(32 << 20, 'x');
  UniqueFd stuck = Connect(loop.server->port());
  REQUIRE(stuck.valid());
  REQUIRE(SendAll(stuck.get(), kGet));
  REQUIRE(loop.Until([&] { return loop.renders == 1; }));
  const common::Time accepted = loop.now;
  // The answer waits in the server for the client to read it, polled for POLLOUT.
  std::vector<pollfd> fds;
  loop.server->PollFds(&fds);
  CHECK(std::count_if(fds.begin(), fds.end(), [](const pollfd& p) { return p.events == POLLOUT; }) == 1);
  // Meanwhile others are served, turn after turn.
  loop.body = small;
  for (int i = 0; i < 3; ++i) CHECK(BodyOf(loop.Scrape(kGet)) == small);
  CHECK(loop.Until([&] { return loop.server->connections() == 1; }));
  loop.now = accepted + 10s;
  loop.Turn({}, 0ms);
  CHECK(loop.server->connections() == 0);
  CHECK(loop.server->stats().timed_out == 1);
}

TEST_CASE("accept out of descriptors rests instead of spinning, then serves again", "[metrics_server]") {
  common::MetricsServer::Options options;
  options.accept_pause = 100ms;
  ServerLoop loop(options);
  REQUIRE(loop.error.empty());
  UniqueFd client = Connect(loop.server->port());
  REQUIRE(client.valid());
  rlimit old{};
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &old) == 0);
  // Take every descriptor below a lowered limit.
  rlimit low = old;
  low.rlim_cur = static_cast<rlim_t>(client.get()) + 16;
  REQUIRE(::setrlimit(RLIMIT_NOFILE, &low) == 0);
  std::vector<UniqueFd> hogs;
  while (true) {
    UniqueFd fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) break;
    hogs.push_back(std::move(fd));
  }
  loop.Turn({}, 1000ms);
  const bool paused = loop.server->stats().accept_errors == 1;
  hogs.clear();
  REQUIRE(::setrlimit(RLIMIT_NOFILE, &old) == 0);
  REQUIRE(paused);
  // The listener is out of the poll set until the pause ends, which is the
  // next deadline.
  std::vector<pollfd> fds;
  loop.server->PollFds(&fds);
  CHECK(fds.empty());
  CHECK(loop.server->NextDeadline() == loop.now + 100ms);
  loop.Turn({}, 0ms);
  CHECK(loop.server->stats().accept_errors == 1);
  CHECK(loop.server->connections() == 0);
  loop.now += 100ms;
  REQUIRE(SendAll(client.get(), kGet));
  CHECK(BodyOf(loop.Response(client.get())) == loop.body);
  CHECK(loop.server->stats().accepted == 1);
}

TEST_CASE("the server's sockets are non-blocking and close on exec", "[metrics_server]") {
  ServerLoop loop;
  REQUIRE(loop.error.empty());
  UniqueFd c = Connect(loop.server->port());
  REQUIRE(loop.Until([&] { return loop.server->connections() == 1; }));
  std::vector<pollfd> fds;
  loop.server->PollFds(&fds);
  REQUIRE(fds.size() == 2);
  for (const pollfd& p : fds) {
    CHECK((::fcntl(p.fd, F_GETFD) & FD_CLOEXEC) != 0);
    CHECK((::fcntl(p.fd, F_GETFL) & O_NONBLOCK) != 0);
  }
}

TEST_CASE("Listen reads HOST:PORT, [V6]:PORT and PORT, and says where it is", "[metrics_server]") {
  std::unique_ptr<MetricsServer> s;
  REQUIRE(MetricsServer::Listen("0", &s).ok());
  CHECK(s->port() > 0);
  CHECK(s->endpoint() == "127.0.0.1:" + std::to_string(s->port()));
  // The port in use: refused by the system, and said so.
  std::unique_ptr<MetricsServer> again;
  const Status taken = MetricsServer::Listen("127.0.0.1:" + std::to_string(s->port()), &again);
  CHECK(taken.code() == Status::Code::kIoError);
  CHECK(Has(taken.message(), "bind"));
  REQUIRE(MetricsServer::Listen("localhost:0", &again).ok());
  CHECK(again->port() > 0);
  std::unique_ptr<MetricsServer> v6;
  const Status s6 = MetricsServer::Listen("[::1]:0", &v6);
  if (s6.ok()) {
    CHECK(v6->endpoint() == "[::1]:" + std::to_string(v6->port()));
  } else {
    WARN("no IPv6 loopback here: " << s6.ToString());
  }
  for (const char* bad : {"", "x", ":80", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:8o",
                          "::1:80", "[127.0.0.1]:80", "[::1]80"}) {
    INFO(bad);
    CHECK(MetricsServer::Listen(bad, &again).code() == Status::Code::kInvalidArgument);
  }
}

TEST_CASE("random bytes from many clients get an answer or a close, never a crash or a hang",
          "[metrics_server]") {
  common::MetricsServer::Options options;
  options.max_request_bytes = 512;
  ServerLoop loop(options);
  REQUIRE(loop.error.empty());
  std::mt19937 rng(20240611);
  const std::vector<std::string> pieces = {"GET", "HEAD", " ", "/metrics", "/", "?", "HTTP/1.1", "HTTP/1.0",
                                           "\r\n", "\n", "\r", std::string(1, '\0'), "\xff", "Host: x", ":", "\r\n\r\n"};
  for (int round = 0; round < 20; ++round) {
    std::vector<UniqueFd> clients;
    std::vector<int> fds;
    for (int i = 0; i < 10; ++i) {
      std::string junk;
      const int n = static_cast<int>(rng() % 40);
      for (int k = 0; k < n; ++k) junk += pieces[rng() % pieces.size()];
      if (rng() % 4 == 0) junk += std::string(rng() % 1000, static_cast<char>(rng()));
      clients.push_back(Connect(loop.server->port()));
      REQUIRE(clients.back().valid());
      SendAll(clients.back().get(), junk);
      if (rng() % 2 == 0) ::shutdown(clients.back().get(), SHUT_WR);
      fds.push_back(clients.back().get());
    }
    loop.Turn(fds, 0ms);
    clients.clear();
  }
  // The server is still whole and answers.
  loop.now += 11s;
  loop.Turn({}, 0ms);
  CHECK(loop.server->connections() == 0);
  CHECK(BodyOf(loop.Scrape(kGet)) == loop.body);
}

}  // namespace
}  // namespace cohort::testing
