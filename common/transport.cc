#include "common/transport.h"

#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <span>

#include "common/codec.h"
#include "common/protocol.h"

namespace cohort::common {

bool ReceiveEnvelope(zmq::socket_t& socket, bool has_route, Envelope* out, bool want_user) {
  out->user.clear();
  out->dropped_frames = 0;
  bool user_read = false;
  // Frames are assigned over the strings of the previous message, so a
  // steady stream of messages allocates nothing here.
  size_t kept = 0;
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
      const auto* data = static_cast<const char*>(part.data());
      if (first && has_route) {
        out->route.assign(data, part.size());
      } else if (kept < kMaxFramesRead) {
        if (kept < out->frames.size()) out->frames[kept].assign(data, part.size());
        else out->frames.emplace_back(data, part.size());
        ++kept;
      } else {
        ++out->dropped_frames;
      }
      if (first && !has_route) out->route.clear();
      first = false;
      if (!part.more()) {
        out->frames.resize(kept);
        return true;
      }
    }
  } catch (const zmq::error_t&) {
    out->frames.resize(kept);
    return false;
  }
}

Status DecodeEnvelope(const Envelope& env, Message* out) {
  if (env.dropped_frames > 0) {
    return Status::Corruption("message has " + std::to_string(env.frames.size() + env.dropped_frames) +
                              " frames; expected 3");
  }
  std::array<std::string_view, kMaxFramesRead> views;
  for (size_t i = 0; i < env.frames.size(); ++i) views[i] = env.frames[i];
  return Decode(std::span<const std::string_view>(views.data(), env.frames.size()), out);
}

bool SendMessage(zmq::socket_t& socket, const std::optional<std::string>& route, const Message& msg) {
  // One body buffer per thread, reused: no allocation per message sent.
  thread_local std::string body;
  EncodeBody(msg, &body);
  const std::string_view command = CommandName(msg);
  try {
    if (route) {
      if (!socket.send(zmq::buffer(*route), zmq::send_flags::sndmore | zmq::send_flags::dontwait)) return false;
    }
    const auto more = zmq::send_flags::sndmore | zmq::send_flags::dontwait;
    return socket.send(zmq::buffer(std::string_view(kProtocol)), more) &&
           socket.send(zmq::buffer(command), more) && socket.send(zmq::buffer(body), zmq::send_flags::dontwait);
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

bool IsIpcFile(const std::string& endpoint) {
  return endpoint.rfind("ipc://", 0) == 0 && endpoint.size() > 6 && endpoint[6] != '@';
}

namespace {

// Gives the socket file its group, then its mode: it was made owner-only,
// so nobody else can connect before both are in place.
Status ApplyIpcAccess(const std::string& endpoint, const IpcAccess& ipc, mode_t umask_before) {
  const std::string path = endpoint.substr(6);
  auto failed = [&](const std::string& what) {
    return Status::FailedPrecondition("cannot " + what + " of the socket " + path + ": " + std::strerror(errno));
  };
  // The path must still be the socket just bound, not a link put in its
  // place by whoever may write the directory, which chown and chmod would
  // follow to another file.
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return failed("look at the file");
  if (!S_ISSOCK(st.st_mode) || st.st_uid != ::geteuid()) {
    errno = EPERM;
    return failed("trust the file (it is no longer the socket this program bound)");
  }
  if (ipc.group && ::lchown(path.c_str(), static_cast<uid_t>(-1), *ipc.group) != 0) return failed("set the group");
  const mode_t mode = ipc.mode.value_or(0777 & ~umask_before);
  if (::chmod(path.c_str(), mode) != 0) return failed("set the mode");
  return Status::Ok();
}

}  // namespace

Status BindSocket(zmq::socket_t& socket, const std::string& endpoint, std::string* bound, const IpcAccess& ipc) {
  try {
    if (ipc.any() && IsIpcFile(endpoint)) {
      // ZeroMQ binds in this thread, so the umask covers the socket file;
      // anything another thread creates meanwhile is only made stricter.
      const mode_t before = ::umask(0177);
      try {
        socket.bind(endpoint);
      } catch (const zmq::error_t&) {
        ::umask(before);
        throw;
      }
      ::umask(before);
      if (Status s = ApplyIpcAccess(endpoint, ipc, before); !s.ok()) {
        try {
          socket.unbind(endpoint);
        } catch (const zmq::error_t&) {
          // The daemon stops on the error returned; closing the socket unbinds.
        }
        return s;
      }
    } else {
      socket.bind(endpoint);
    }
    if (bound) *bound = socket.get(zmq::sockopt::last_endpoint);
    return Status::Ok();
  } catch (const zmq::error_t& e) {
    std::string why = "cannot bind " + endpoint + ": " + e.what();
    switch (e.num()) {
      case EADDRINUSE:
      case EADDRNOTAVAIL:
      case ENODEV:
      case EACCES:
        return Status::FailedPrecondition(std::move(why));
      case EINVAL:
      case EPROTONOSUPPORT:
      case ENOCOMPATPROTO:
        return Status::InvalidArgument(std::move(why));
      default:
        return Status::Unavailable(std::move(why));
    }
  }
}

Status CheckEndpoint(const std::string& endpoint, bool for_bind) {
  auto bad = [&](const std::string& why) {
    return Status::InvalidArgument("endpoint \"" + endpoint + "\": " + why);
  };
  for (const char* scheme : {"ipc://", "inproc://"}) {
    const std::string prefix = scheme;
    if (endpoint.rfind(prefix, 0) == 0) {
      return endpoint.size() > prefix.size() ? Status::Ok() : bad("names nothing after " + prefix);
    }
  }
  if (endpoint.rfind("tcp://", 0) != 0) return bad("give tcp://HOST:PORT, ipc://PATH or inproc://NAME");
  const std::string rest = endpoint.substr(6);
  const size_t colon = rest.rfind(':');
  // "tcp://source;host:port" connects from a source: the host is after ';'.
  const size_t semi = rest.rfind(';');
  const size_t host_at = semi == std::string::npos ? 0 : semi + 1;
  if (colon == std::string::npos || colon <= host_at) return bad("give tcp://HOST:PORT");
  const std::string port = rest.substr(colon + 1);
  if (port == "*") return for_bind ? Status::Ok() : bad("a port of * only binds");
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoi(port) > 65535 || (std::stoi(port) == 0 && !for_bind)) {
    return bad("port \"" + port + "\" is not a port number");
  }
  return Status::Ok();
}

std::string NormalizeEndpoint(const std::string& endpoint) {
  if (endpoint.empty() || endpoint.find("://") != std::string::npos) return endpoint;
  return "tcp://" + endpoint;
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
