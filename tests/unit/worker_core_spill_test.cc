// The worker core's results on disk (WorkerCoreOptions.spill), driven by a
// fake clock: past the memory bound the oldest results are spilled rather
// than dropped, still listed as held, sent from disk at a paced rate, deleted
// once confirmed, and dropped only past the disk bound or when the disk fails.
#include <string>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "tests/unit/worker_core_harness.h"

namespace cohort::testing::worker_core {
namespace {

WorkerCoreOptions SpillOptions(size_t memory, size_t disk) {
  WorkerCoreOptions o = Options();
  o.max_unconfirmed_bytes = memory;
  o.spill = true;
  o.max_spilled_bytes = disk;
  return o;
}

std::vector<uint64_t> SeqsOf(const std::vector<worker::SpillResult>& v) {
  std::vector<uint64_t> r;
  for (const auto& s : v) r.push_back(s.seq);
  return r;
}

std::vector<uint64_t> SentFromDisk(const Harness& h) {
  std::vector<uint64_t> r;
  for (const auto& s : h.Of<worker::SendSpilled>()) r.push_back(s.seq);
  return r;
}

TEST_CASE("past the memory bound the oldest results go to disk, not away, and stay listed", "[worker][spill]") {
  Harness h(SpillOptions(10, 100));
  h.Connect();
  h.Welcome();
  h.End(h.Run("g", 0), 0, "abcdef");
  CHECK(h.Of<worker::SpillResult>().empty());
  h.End(h.Run("g", 1), 0, "ghijkl");
  // The new result goes out from memory; the oldest goes to disk, whole.
  REQUIRE(h.Sent<FinishedMsg>().size() == 1);
  auto spilled = h.Of<worker::SpillResult>();
  REQUIRE(spilled.size() == 1);
  CHECK(spilled[0].seq == 1);
  const auto& f = std::get<FinishedMsg>(*spilled[0].msg);
  CHECK(f.id == AttemptId{"g", 0, 1, 1});
  CHECK(f.stdout_tail == "abcdef");
  CHECK_FALSE(h.Noticed("unconfirmed_dropped"));
  CHECK(h.core.unconfirmed() == 2);
  CHECK(h.core.unconfirmed_bytes() == 6);
  CHECK(h.core.spilled() == 1);
  CHECK(h.core.spilled_bytes() == 6);
  // Listed as held, so that a coordinator back from a restart waits for it.
  h.now += 1s;
  h.From(common::ReregisterMsg{"unknown worker", ""});
  REQUIRE(h.Sent<common::RegisterMsg>().size() == 1);
  CHECK(h.Sent<common::RegisterMsg>()[0].running == std::vector<AttemptId>{{"g", 0, 1, 1}, {"g", 1, 1, 1}});
  // The WELCOME sends the one in memory and asks for the one on disk.
  h.Welcome();
  CHECK(h.Sent<FinishedMsg>().size() == 1);
  CHECK(SentFromDisk(h) == std::vector<uint64_t>{1});
  // Confirmed: its file is deleted.
  h.From(common::ConfirmMsg{{{"g", 0, 1, 1}}});
  REQUIRE(h.Of<worker::DeleteSpilled>().size() == 1);
  CHECK(h.Of<worker::DeleteSpilled>()[0].seq == 1);
  CHECK(h.core.spilled() == 0);
  CHECK(h.core.spilled_bytes() == 0);
  CHECK(h.core.unconfirmed() == 1);
}

TEST_CASE("results on disk are sent at most the memory bound per heartbeat, in order", "[worker][spill]") {
  Harness h(SpillOptions(10, 1000));
  h.Connect();
  h.Welcome();
  h.From(common::ReregisterMsg{"coordinator restarted", ""});  // unregistered: results wait for the WELCOME
  for (uint32_t step = 0; step < 6; ++step) h.End(h.Run("g", step), 0, "abcdef");
  REQUIRE(h.core.spilled() == 5);
  h.Welcome();
  CHECK(h.Sent<FinishedMsg>().size() == 1);  // the one in memory
  CHECK(SentFromDisk(h) == std::vector<uint64_t>{1, 2});
  CHECK(h.core.NextDeadline() == h.now + 1s);
  h.Advance(500ms);
  CHECK(SentFromDisk(h).empty());
  h.Advance(500ms);
  CHECK(SentFromDisk(h) == std::vector<uint64_t>{3, 4});
  h.Advance(1s);
  CHECK(SentFromDisk(h) == std::vector<uint64_t>{5});
  // Unconfirmed for liveness x heartbeat since its own send: sent again.
  h.From(common::ConfirmMsg{{{"g", 1, 1, 1}, {"g", 2, 1, 1}, {"g", 5, 1, 1}}});
  CHECK(h.Of<worker::DeleteSpilled>().size() == 2);
  h.Advance(1s);
  CHECK(SentFromDisk(h) == std::vector<uint64_t>{1});
  h.From(common::HeartbeatMsg{});  // the coordinator is alive
  h.Advance(1s);
  CHECK(SentFromDisk(h) == std::vector<uint64_t>{4});
  h.From(common::HeartbeatMsg{});
  h.Advance(1s);
  CHECK(SentFromDisk(h) == std::vector<uint64_t>{5});
}

TEST_CASE("past the disk bound the oldest result on disk is dropped, with a warning", "[worker][spill]") {
  Harness h(SpillOptions(10, 12));
  h.Connect();
  h.Welcome();
  for (uint32_t step = 0; step < 3; ++step) h.End(h.Run("g", step), 0, "abcdef");
  CHECK(h.core.spilled() == 2);
  CHECK_FALSE(h.Noticed("unconfirmed_dropped"));
  h.End(h.Run("g", 3), 0, "abcdef");
  const worker::Notice* dropped = h.NoticeOf("unconfirmed_dropped");
  REQUIRE(dropped != nullptr);
  CHECK(dropped->fields[1] == worker::NoticeField{"submission", 1});
  CHECK(dropped->fields[2] == worker::NoticeField{"step", "0"});
  CHECK(dropped->fields[4] == worker::NoticeField{"bound", "disk"});
  REQUIRE(h.Of<worker::DeleteSpilled>().size() == 1);
  CHECK(h.Of<worker::DeleteSpilled>()[0].seq == 1);
  CHECK(SeqsOf(h.Of<worker::SpillResult>()) == std::vector<uint64_t>{3});
  CHECK(h.core.spilled() == 2);
  CHECK(h.core.spilled_bytes() == 12);
  CHECK(h.core.unconfirmed() == 3);
  // A result larger than the whole disk bound is not spilled: dropped.
  h.End(h.Run("g", 4), 0, std::string(20, 'x'));
  h.End(h.Run("g", 5), 0, "y");
  CHECK(h.Of<worker::SpillResult>().empty());
  REQUIRE(h.NoticeOf("unconfirmed_dropped") != nullptr);
  CHECK(h.NoticeOf("unconfirmed_dropped")->fields[4] == worker::NoticeField{"bound", "memory"});
}

TEST_CASE("without a disk the oldest result past the memory bound is dropped, as before", "[worker][spill]") {
  WorkerCoreOptions o = SpillOptions(10, 100);
  o.spill = false;
  Harness h(o);
  h.Connect();
  h.Welcome();
  h.End(h.Run("g", 0), 0, "abcdef");
  h.End(h.Run("g", 1), 0, "ghijkl");
  CHECK(h.Of<worker::SpillResult>().empty());
  CHECK(h.Noticed("unconfirmed_dropped"));
  CHECK(h.core.unconfirmed() == 1);
}

TEST_CASE("a result the disk cannot keep or give back is dropped, with the disk's error", "[worker][spill]") {
  Harness h(SpillOptions(10, 100));
  h.Connect();
  h.Welcome();
  h.End(h.Run("g", 0), 0, "abcdef");
  h.End(h.Run("g", 1), 0, "ghijkl");
  REQUIRE(SeqsOf(h.Of<worker::SpillResult>()) == std::vector<uint64_t>{1});
  h.out.clear();
  h.core.SpillFailed(1, "cannot write /state/unconfirmed/1: No space left on device", h.now, &h.out);
  const worker::Notice* failed = h.NoticeOf("unconfirmed_spill_failed");
  REQUIRE(failed != nullptr);
  CHECK(failed->level == worker::Notice::Level::kWarn);
  CHECK(failed->fields.back().value == "cannot write /state/unconfirmed/1: No space left on device");
  CHECK(h.Of<worker::DeleteSpilled>().size() == 1);
  CHECK(h.core.unconfirmed() == 1);
  CHECK(h.core.spilled() == 0);
  CHECK(h.core.spilled_bytes() == 0);
  // No longer listed, no longer sent.
  h.now += 1s;
  h.From(common::ReregisterMsg{"unknown worker", ""});
  CHECK(h.Sent<common::RegisterMsg>()[0].running == std::vector<AttemptId>{{"g", 1, 1, 1}});
  h.Welcome();
  CHECK(SentFromDisk(h).empty());
  // A failure reported twice, or for a result already confirmed, changes nothing.
  h.out.clear();
  h.core.SpillFailed(1, "again", h.now, &h.out);
  CHECK(h.out.empty());
}

}  // namespace
}  // namespace cohort::testing::worker_core
