// ZeroMQ drops a message on a ROUTER socket, without a word, when the
// queue to that peer is at its high-water mark. A RUN dropped that way must
// not leave its step running for ever: the worker's heartbeats list the
// attempts it holds, and the coordinator retries what they leave out. Here a
// worker played by the test reads nothing while the coordinator's queue to it
// overflows, so that a RUN is dropped on a connection that stays up.
#include <unistd.h>

#include <optional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "common/messages.h"
#include "tests/integration/cluster.h"
#include "tests/integration/peer.h"

namespace cohort::testing {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// STARTED reports for an attempt nobody runs, each answered with a CANCEL:
// more than the coordinator queues for one worker (ZMQ_SNDHWM, 100,000) plus
// what the kernel's socket buffers hold between the two.
constexpr int kFlood = 200000;

// A worker that reads its DEALER one message at a time through the smallest
// kernel buffer, and heartbeats (every 50 ms at most) only when told to.
class SlowWorker {
 public:
  explicit SlowWorker(const std::string& endpoint)
      : peer_(endpoint, zmq::socket_type::dealer, false, [](zmq::socket_t& s) {
          s.set(zmq::sockopt::rcvhwm, 1);
          s.set(zmq::sockopt::rcvbuf, 4096);
        }) {}

  Peer& peer() { return peer_; }

  // Alive, and, with `holding`, what it holds.
  void Beat(std::optional<std::vector<common::AttemptId>> holding = std::nullopt) {
    if (Clock::now() - last_beat_ < 50ms) return;
    last_beat_ = Clock::now();
    peer_.Send(common::HeartbeatMsg{std::move(holding), 0, 0, 0});
  }

  // The next RUN within `timeout`, heartbeating (with `holding`) meanwhile.
  std::optional<common::RunMsg> NextRun(std::chrono::milliseconds timeout,
                                        std::optional<std::vector<common::AttemptId>> holding) {
    const auto until = Clock::now() + timeout;
    while (Clock::now() < until) {
      Beat(holding);
      if (auto m = Read(20ms); m && std::holds_alternative<common::RunMsg>(*m)) return std::get<common::RunMsg>(*m);
    }
    return std::nullopt;
  }

  // Reads until nothing comes for `quiet` (the coordinator heartbeats every
  // 200 ms, so its queue to us is then about empty), at most for `timeout`;
  // heartbeats without a list meanwhile. False if a RUN came.
  bool Drain(std::chrono::milliseconds quiet, std::chrono::milliseconds timeout) {
    const auto until = Clock::now() + timeout;
    while (Clock::now() < until) {
      Beat();
      auto m = Read(quiet);
      if (!m) return true;
      if (std::holds_alternative<common::RunMsg>(*m)) return false;
    }
    return true;
  }

  // The flood's CANCELs read so far.
  int cancels() const { return cancels_; }

 private:
  std::optional<common::Message> Read(std::chrono::milliseconds timeout) {
    auto m = peer_.Receive(timeout);
    if (auto* c = m ? std::get_if<common::CancelAttemptMsg>(&*m) : nullptr; c && c->id.group == "ghost") ++cancels_;
    return m;
  }

  Peer peer_;
  Clock::time_point last_beat_{};
  int cancels_ = 0;
};

common::FinishedMsg Succeeded(const common::AttemptId& id) {
  common::FinishedMsg f;
  f.id = id;
  f.exit_code = 0;
  return f;
}

TEST_CASE("a RUN dropped at the high-water mark is retried, not left running", "[e2e][hwm]") {
  Cluster c;  // heartbeat 200 ms, liveness 3: a RUN is taken for lost 600 ms after its dispatch
  c.StartCoordinator();
  SlowWorker w("tcp://127.0.0.1:" + std::to_string(c.port(1)));
  common::RegisterMsg reg;
  reg.name = "slow";
  reg.slots = 1;
  reg.version = "test";
  reg.instance = static_cast<uint64_t>(getpid());
  w.peer().Send(reg);
  auto welcome = w.peer().Receive(10s);
  REQUIRE(welcome);
  REQUIRE(std::holds_alternative<common::WelcomeMsg>(*welcome));

  // One slot, two steps: the second is placed when the first reports.
  // Attempts lost with a worker retry up to max_attempts (at least 3).
  const Json step = {{"shell", "true"}, {"retry", {{"max_attempts", 6}}}};
  Json first_step = step, second_step = step;
  first_step["id"] = "first";
  second_step["id"] = "second";
  REQUIRE(c.SubmitJson({{"id", "hwm"}, {"steps", {first_step, second_step}}}, {}).exit_code == 0);
  std::optional<common::RunMsg> first = w.NextRun(10s, std::nullopt);
  REQUIRE(first);
  REQUIRE(first->step_id == "first");
  w.peer().Send(common::StartedMsg{first->id});

  // The flood, then the first step's result: the coordinator reads them in
  // order, so the second step's RUN is queued behind every CANCEL, if the
  // queue has room left for it.
  const common::StartedMsg ghost{{"ghost", 0, 1, 1}};
  for (int i = 0; i < kFlood; ++i) w.peer().Send(ghost);
  w.peer().Send(Succeeded(first->id));
  // Reading nothing, it cannot say what it holds; it only says it lives.
  // The coordinator answers the whole flood first: about 10 s under the
  // sanitizers on a quiet machine, over a minute beside the chaos test.
  const bool placed = WaitUntil(
      [&] {
        w.Beat();
        return c.Status("hwm")["steps"][1]["state"] == "running";
      },
      240s);
  REQUIRE(placed);

  // It reads all that was queued for it: the second step's RUN is not there.
  const bool dropped = w.Drain(100ms, 240s);
  INFO(w.cancels() << " of the flood's " << kFlood << " CANCELs arrived");
  REQUIRE(w.cancels() < kFlood);  // the queue overflowed ...
  REQUIRE(dropped);               // ... and took the RUN with it
  // From here on it lists what it holds, as a worker does: nothing. The
  // coordinator must send the second step again.
  const std::vector<common::AttemptId> nothing;
  std::optional<common::RunMsg> second = w.NextRun(15s, nothing);
  REQUIRE(second);
  REQUIRE(second->step_id == "second");
  REQUIRE(second->id.attempt >= 2);  // attempt 1's RUN was dropped
  w.peer().Send(common::StartedMsg{second->id});
  w.peer().Send(Succeeded(second->id));

  Json status;
  const bool done = WaitUntil(
      [&] {
        w.Beat(nothing);
        status = c.Status("hwm");
        return status["state"] == "completed";
      },
      30s);
  INFO(status.dump(2));
  REQUIRE(done);
  const Json& history = status["steps"][1]["history"];
  REQUIRE(history.size() == second->id.attempt);
  CHECK(history[0]["status"] == "worker_lost");
  CHECK(history[0]["error"].get<std::string>().find("does not hold it: its RUN never arrived") != std::string::npos);
  CHECK(history.back()["status"] == "succeeded");
  CHECK(c.HasWorker("slow"));  // the worker was never taken for lost
}

}  // namespace
}  // namespace cohort::testing
