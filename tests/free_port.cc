#include "tests/free_port.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <mutex>
#include <random>
#include <string>

namespace cohort::testing {
namespace {

constexpr int kLowestPort = 10000;
constexpr char kLockDir[] = "/tmp/cohort-test-ports";

// The first port of the kernel's ephemeral range (32768 by default).
int EphemeralLow() {
  std::ifstream in("/proc/sys/net/ipv4/ip_local_port_range");
  int low = 0;
  if (!(in >> low) || low <= kLowestPort + 1000) return 32768;
  return low;
}

bool Bindable(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  // As ZeroMQ binds: a port left in TIME_WAIT by an earlier test is usable.
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

// Locks the port's file: the descriptor, or -1 if another holds it. Kept
// open, the lock lasts as long as the process, and no longer: the kernel
// drops it at exit, however the process ends.
int Lock(int port) {
  const std::string path = std::string(kLockDir) + "/" + std::to_string(port);
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0666);
  if (fd < 0) return -1;
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

int FreePort() {
  static std::mutex mu;
  std::lock_guard<std::mutex> lock(mu);
  if (::mkdir(kLockDir, 01777) == 0) ::chmod(kLockDir, 01777);
  const int low = kLowestPort, high = EphemeralLow();
  static std::mt19937 rng(std::random_device{}());
  const int start = low + static_cast<int>(rng() % static_cast<unsigned>(high - low));
  for (int i = 0; i < high - low; ++i) {
    const int port = low + (start - low + i) % (high - low);
    // A port this process locked before fails the flock on a new
    // descriptor too, so none is handed out twice.
    const int fd = Lock(port);
    if (fd < 0) continue;
    if (Bindable(port)) return port;
    ::close(fd);
  }
  return 0;
}

}  // namespace cohort::testing
