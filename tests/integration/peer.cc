#include "tests/integration/peer.h"

#include <fstream>
#include <sstream>

#include "common/codec.h"
#include "common/protocol.h"

namespace cohort::testing {

using Clock = std::chrono::steady_clock;

Peer::Peer(const std::string& endpoint, zmq::socket_type type, bool bind,
           const std::function<void(zmq::socket_t&)>& configure)
    : router_(type == zmq::socket_type::router), context_(1), socket_(context_, type) {
  socket_.set(zmq::sockopt::linger, 0);
  socket_.set(zmq::sockopt::sndhwm, 0);  // a flood from a test is never dropped on our side
  socket_.set(zmq::sockopt::rcvhwm, 0);
  if (configure) configure(socket_);
  if (bind) {
    socket_.bind(endpoint);
  } else {
    socket_.connect(endpoint);
  }
}

void Peer::SendFrames(const std::vector<std::string>& frames) {
  for (size_t i = 0; i < frames.size(); ++i) {
    socket_.send(zmq::buffer(frames[i]), i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
  }
}

void Peer::Send(const common::Message& msg, const std::string& route) {
  std::vector<std::string> frames = common::Encode(msg);
  if (router_) frames.insert(frames.begin(), route);
  SendFrames(frames);
}

std::optional<common::Message> Peer::Receive(std::chrono::milliseconds timeout, std::string* route) {
  const auto until = Clock::now() + timeout;
  while (true) {
    zmq::pollitem_t item{static_cast<void*>(socket_), 0, ZMQ_POLLIN, 0};
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
    if (left.count() < 0) left = std::chrono::milliseconds(0);
    zmq::poll(&item, 1, left);
    if (!(item.revents & ZMQ_POLLIN)) return std::nullopt;
    std::vector<std::string> frames;
    zmq::message_t part;
    do {
      if (!socket_.recv(part, zmq::recv_flags::none)) break;
      frames.emplace_back(static_cast<const char*>(part.data()), part.size());
    } while (part.more());
    if (router_ && !frames.empty()) {
      if (route) *route = frames.front();
      frames.erase(frames.begin());
    }
    std::vector<std::string_view> views(frames.begin(), frames.end());
    common::Message msg;
    if (common::Decode(views, &msg).ok()) return msg;
  }
}

std::optional<common::ReplyMsg> Peer::ReplyTo(uint64_t req, std::chrono::milliseconds timeout) {
  const auto until = Clock::now() + timeout;
  while (Clock::now() < until) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
    auto m = Receive(left);
    if (!m) return std::nullopt;
    if (auto* r = std::get_if<common::ReplyMsg>(&*m); r && r->req == req) return *r;
  }
  return std::nullopt;
}

std::optional<common::ReplyMsg> Peer::Call(common::Message msg, std::chrono::milliseconds timeout) {
  const uint64_t req = next_req_++;
  std::visit(
      [req](auto& m) {
        if constexpr (requires { m.req; }) m.req = req;
      },
      msg);
  Send(msg);
  return ReplyTo(req, timeout);
}

namespace {

long StatusField(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) {
      std::istringstream rest(line.substr(field.size() + 1));
      long kib = -1;
      rest >> kib;
      return kib;
    }
  }
  return -1;
}

}  // namespace

long RssKiB(pid_t pid) { return StatusField(pid, "VmRSS"); }
long PeakRssKiB(pid_t pid) { return StatusField(pid, "VmHWM"); }

}  // namespace cohort::testing
