#include "common/transport.h"

#include "common/codec.h"
#include "common/protocol.h"

namespace cohort::common {

bool ReceiveEnvelope(zmq::socket_t& socket, bool has_route, Envelope* out, bool want_user) {
  out->route.clear();
  out->user.clear();
  out->frames.clear();
  out->dropped_frames = 0;
  bool user_read = false;
  try {
    zmq::message_t part;
    bool first = true;
    while (true) {
      auto got = socket.recv(part, first ? zmq::recv_flags::dontwait : zmq::recv_flags::none);
      if (!got) return false;  // nothing waiting (only possible on the first part)
      // The routing id is made by the ROUTER itself and carries no
      // metadata: read it from the first frame the peer sent. NULL (EINVAL)
      // when the connection was not authenticated.
      if (want_user && !user_read && !(first && has_route)) {
        user_read = true;
        if (const char* user = zmq_msg_gets(part.handle(), "User-Id")) out->user = user;
      }
      if (first && has_route) {
        out->route.assign(static_cast<const char*>(part.data()), part.size());
      } else if (out->frames.size() < kMaxFramesRead) {
        out->frames.emplace_back(static_cast<const char*>(part.data()), part.size());
      } else {
        ++out->dropped_frames;
      }
      first = false;
      if (!part.more()) return true;
    }
  } catch (const zmq::error_t&) {
    return false;
  }
}

Status DecodeEnvelope(const Envelope& env, Message* out) {
  if (env.dropped_frames > 0) {
    return Status::Corruption("message has " + std::to_string(env.frames.size() + env.dropped_frames) +
                              " frames; expected 3");
  }
  std::vector<std::string_view> views(env.frames.begin(), env.frames.end());
  return Decode(views, out);
}

bool SendMessage(zmq::socket_t& socket, const std::optional<std::string>& route, const Message& msg) {
  std::vector<std::string> frames = Encode(msg);
  try {
    if (route) {
      if (!socket.send(zmq::buffer(*route), zmq::send_flags::sndmore | zmq::send_flags::dontwait)) return false;
    }
    for (size_t i = 0; i < frames.size(); ++i) {
      auto flags = zmq::send_flags::dontwait;
      if (i + 1 < frames.size()) flags = flags | zmq::send_flags::sndmore;
      if (!socket.send(zmq::buffer(frames[i]), flags)) return false;
    }
    return true;
  } catch (const zmq::error_t&) {
    return false;  // e.g. EHOSTUNREACH for a vanished route with ROUTER_MANDATORY
  }
}

void ConfigureSocket(zmq::socket_t& socket) {
  socket.set(zmq::sockopt::linger, 0);
  socket.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(kMaxMessageBytes));
  socket.set(zmq::sockopt::sndhwm, 100000);
  socket.set(zmq::sockopt::rcvhwm, 100000);
}

Status BindSocket(zmq::socket_t& socket, const std::string& endpoint, std::string* bound) {
  try {
    socket.bind(endpoint);
    if (bound) *bound = socket.get(zmq::sockopt::last_endpoint);
    return Status::Ok();
  } catch (const zmq::error_t& e) {
    return Status::Unavailable("cannot bind " + endpoint + ": " + e.what());
  }
}

Status ConnectSocket(zmq::socket_t& socket, const std::string& endpoint) {
  try {
    socket.connect(endpoint);
    return Status::Ok();
  } catch (const zmq::error_t& e) {
    return Status::InvalidArgument("cannot connect to " + endpoint + ": " + e.what());
  }
}

}  // namespace cohort::common
