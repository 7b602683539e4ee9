// The wire codec: every message round-trips with the documented bytes, and
// broken framing or bodies come back as Corruption naming the command, never
// as a crash, a hang or an exception. The bodies are built with the
// hand-written msgpack of codec_test_util.h.
#include <catch2/catch.hpp>

#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "common/codec.h"
#include "common/messages.h"
#include "common/protocol.h"
#include "common/quote.h"
#include "common/status.h"
#include "tests/unit/codec_test_util.h"

namespace cohort::common {
namespace {

using namespace codec_testing;

// ---- Round trips ---------------------------------------------------------------

TEST_CASE("every message round-trips", "[codec]") {
  std::vector<bool> covered(std::variant_size_v<Message>, false);
  for (const Message& m : Samples()) {
    covered[m.index()] = true;
    INFO(CommandName(m));
    CHECK(RoundTrip(m) == m);
    CHECK(ValidateMessage(m).ok());
  }
  for (size_t i = 0; i < covered.size(); ++i) {
    INFO("alternative " << i);
    CHECK(covered[i]);
  }
}

TEST_CASE("command names follow the protocol", "[codec]") {
  CHECK(CommandName(SubmitMsg{}) == "SUBMIT");
  CHECK(CommandName(StatusMsg{}) == "STATUS");
  CHECK(CommandName(WaitMsg{}) == "WAIT");
  CHECK(CommandName(CancelRequestMsg{}) == "CANCEL");
  CHECK(CommandName(GroupsMsg{}) == "GROUPS");
  CHECK(CommandName(WorkersMsg{}) == "WORKERS");
  CHECK(CommandName(ReplyMsg{}) == "REPLY");
  CHECK(CommandName(RegisterMsg{}) == "REGISTER");
  CHECK(CommandName(WelcomeMsg{}) == "WELCOME");
  CHECK(CommandName(HeartbeatMsg{}) == "HEARTBEAT");
  CHECK(CommandName(RunMsg{}) == "RUN");
  CHECK(CommandName(StartedMsg{}) == "STARTED");
  CHECK(CommandName(FinishedMsg{}) == "FINISHED");
  CHECK(CommandName(CancelAttemptMsg{}) == "CANCEL");
  CHECK(CommandName(ReregisterMsg{}) == "REREGISTER");
  CHECK(CommandName(ByeMsg{}) == "BYE");
  CHECK(CommandName(CancelGroupMsg{}) == "CANCEL_GROUP");
  CHECK(CommandName(ConfirmMsg{}) == "CONFIRM");
  CHECK(CommandName(LogsMsg{}) == "LOGS");
  CHECK(CommandName(PingMsg{}) == "PING");
  CHECK(CommandName(CordonMsg{}) == "CORDON");
}

TEST_CASE("bodies are the documented msgpack bytes", "[codec]") {
  CHECK(Encode(HeartbeatMsg{})[2] == "\x80");
  CHECK(Encode(ByeMsg{})[2] == "\x80");
  CHECK(Encode(StatusMsg{300, "g"})[2] == Mp().Map(2).Str("req").Uint(300).Str("group").Str("g").bytes());
  const std::string id = Mp().Str("group").Str("g").Str("step").Uint(1).Str("attempt").Uint(2).Str("submission")
                             .Uint(300).bytes();
  CHECK(Encode(CancelAttemptMsg{{"g", 1, 2, 300}, 0})[2] == Mp().Map(4).Raw(id).bytes());
  CHECK(Encode(CancelGroupMsg{"g", 300})[2] == Mp().Map(2).Str("group").Str("g").Str("submission").Uint(300).bytes());
  CHECK(Encode(ConfirmMsg{{{"g", 1, 2, 300}, {"g", 1, 2, 300}}})[2] ==
        Mp().Map(1).Str("ids").Array(2).Map(4).Raw(id).Map(4).Raw(id).bytes());
  CHECK(Encode(ReplyMsg{1, Status::Code::kFailedPrecondition, "e", "{}", ""})[2] ==
        Mp().Map(4).Str("req").Uint(1).Str("code").Str("failed_precondition").Str("error").Str("e").Str("body")
            .Str("{}").bytes());
  // Output goes out as bin, exit_code as nil when unset.
  FinishedMsg fin;
  fin.stdout_tail = "ab";
  Body body = Body::Parse(Encode(fin)[2]);
  REQUIRE(body.fields.size() == 16);
  CHECK(body.Bytes() == Encode(fin)[2]);  // taking it apart and back loses nothing
  for (const auto& [key, value] : body.fields) {
    if (key == "stdout") CHECK(value == std::string("\xc4\x02" "ab"));
    if (key == "stderr") CHECK(value == std::string("\xc4\x00", 2));
    if (key == "exit_code") CHECK(value == "\xc0");
  }
}

TEST_CASE("REPLY codes map to their wire names and back", "[codec]") {
  for (auto code : {Status::Code::kOk, Status::Code::kInvalidArgument, Status::Code::kNotFound,
                    Status::Code::kAlreadyExists, Status::Code::kFailedPrecondition, Status::Code::kUnavailable,
                    Status::Code::kCorruption, Status::Code::kIoError}) {
    Status::Code back{};
    REQUIRE(ParseWireCode(WireCodeName(code), &back));
    CHECK(back == code);
    ReplyMsg r{42, code, code == Status::Code::kOk ? "" : "why", "", ""};
    CHECK(RoundTrip(r) == Message(r));
  }
  CHECK(WireCodeName(Status::Code::kInvalidArgument) == "invalid_argument");
  Status::Code unused{};
  CHECK_FALSE(ParseWireCode("InvalidArgument", &unused));
  CHECK_FALSE(ParseWireCode("", &unused));
  RequireCorruption(DecodeBody("REPLY", Mp().Map(4).Str("req").Uint(1).Str("code").Str("bogus").Str("error")
                                            .Str("").Str("body").Str("").bytes()),
                    {"REPLY", "\"code\"", "bogus"});
}

TEST_CASE("output may be sent as str - and free text is repaired to UTF-8", "[codec]") {
  FinishedMsg fin;
  fin.id.submission = 1;
  fin.error = std::string("bad \xff byte");
  Body body = Body::Parse(Encode(fin)[2]);
  // The encoder repairs error text, one byte for one.
  for (const auto& [key, value] : body.fields) {
    if (key == "error") CHECK(value == Mp().Str("bad ? byte").bytes());
  }
  // The decoder repairs it too, when another encoder did not, and accepts
  // output as str.
  Body foreign = body.With("error", Mp().Str(std::string("x\xc3(\xed\xa0\x80y")).bytes())
                     .With("stdout", Mp().Str("as str").bytes());
  Message out;
  REQUIRE(DecodeBody("FINISHED", foreign.Bytes(), &out).ok());
  CHECK(std::get<FinishedMsg>(out).error == "x?(???y");
  CHECK(std::get<FinishedMsg>(out).stdout_tail == "as str");
  ReregisterMsg rr{std::string("\x80"), ""};
  CHECK(std::get<ReregisterMsg>(RoundTrip(rr)).reason == "?");
  // Identifiers are not repaired but refused.
  RequireCorruption(DecodeBody("STATUS", Mp().Map(2).Str("req").Uint(1).Str("group").Str("g\xff").bytes()),
                    {"STATUS", "field \"group\"", "UTF-8"});
  RequireCorruption(ValidateMessage(CancelGroupMsg{"\xc0\xaf"}), {"CANCEL_GROUP", "\"group\"", "UTF-8"});
}

TEST_CASE("CANCEL is told apart by its req field", "[codec]") {
  Message out;
  REQUIRE(DecodeBody("CANCEL", Mp().Map(3).Str("req").Uint(9).Str("group").Str("g").Str("step").Str("s").bytes(),
                     &out).ok());
  CHECK(std::get<CancelRequestMsg>(out) == CancelRequestMsg{9, "g", "s"});
  REQUIRE(DecodeBody("CANCEL", Mp().Map(4).Str("group").Str("g").Str("step").Uint(2).Str("attempt").Uint(5)
                                   .Str("submission").Uint(6).bytes(),
                     &out).ok());
  CHECK(std::get<CancelAttemptMsg>(out) == CancelAttemptMsg{{"g", 2, 5, 6}, 0});
  RequireCorruption(DecodeBody("CANCEL", Mp().Map(1).Str("group").Str("g").bytes()),
                    {"CANCEL", "\"req\"", "\"attempt\""});
  // A client's cancel with an integer step is a client's cancel gone wrong.
  RequireCorruption(
      DecodeBody("CANCEL", Mp().Map(3).Str("req").Uint(1).Str("group").Str("g").Str("step").Uint(1).bytes()),
      {"CANCEL", "field \"step\" must be a string"});
}

// ---- Framing -------------------------------------------------------------------

TEST_CASE("framing errors are Corruption", "[codec]") {
  const std::vector<std::string> good = Encode(StatusMsg{1, "g"});
  Message out = ByeMsg{};
  RequireCorruption(DecodeFrames({}, &out), {"expected 3 frames", "got 0"});
  RequireCorruption(DecodeFrames({good[0]}, &out), {"got 1"});
  RequireCorruption(DecodeFrames({good[0], good[1]}, &out), {"got 2"});
  RequireCorruption(DecodeFrames({good[0], good[1], good[2], ""}, &out), {"got 4"});
  // Another version of the protocol is named, with what to do about it.
  CHECK(DecodeFrames({"cohort/1", good[1], good[2]}, &out).message() ==
        "peer speaks protocol cohort/1, this build speaks cohort/2: upgrade the older of the two");
  RequireCorruption(DecodeFrames({"cohort/3", good[1], good[2]}, &out),
                    {"peer speaks protocol cohort/3, this build speaks cohort/2"});
  // Anything else is not cohort at all.
  for (const char* other : {"", "cohort/", "cohort/2x", "cohort/-1", "COHORT/2", "cohort/1234567890", "zmq/2"}) {
    RequireCorruption(DecodeFrames({other, good[1], good[2]}, &out),
                      {"unsupported protocol", "(expected \"cohort/2\")"});
  }
  // Hostile bytes are escaped and cut in the message, never copied raw.
  Status junk = DecodeFrames({std::string("\0\x1b[2J", 5) + std::string(500, 'x'), good[1], good[2]}, &out);
  RequireCorruption(junk, {"unsupported protocol", "\\x00\\x1b[2J", "..."});
  CHECK(junk.message().size() < 100 + kQuotedBytes);  // the 505-byte frame is cut
  RequireCorruption(DecodeFrames({good[0], "FROB", good[2]}, &out), {"unknown command", "FROB"});
  RequireCorruption(DecodeFrames({good[0], "status", good[2]}, &out), {"unknown command", "status"});
  RequireCorruption(DecodeFrames({good[0], "", good[2]}, &out), {"unknown command"});
  // A failed decode leaves *out alone.
  CHECK(std::holds_alternative<ByeMsg>(out));
}

TEST_CASE("bodies that are not one msgpack map are Corruption", "[codec]") {
  RequireCorruption(DecodeBody("STATUS", ""), {"STATUS", "body is empty"});
  RequireCorruption(DecodeBody("STATUS", "\x92\x01\x02"), {"STATUS", "must be a msgpack map", "an array"});
  RequireCorruption(DecodeBody("STATUS", "\x05"), {"STATUS", "must be a msgpack map", "an integer"});
  RequireCorruption(DecodeBody("STATUS", "\xc0"), {"STATUS", "must be a msgpack map", "nil"});
  RequireCorruption(DecodeBody("STATUS", "\xc1"), {"STATUS", "not valid msgpack"});
  RequireCorruption(DecodeBody("RUN", "garbage!"), {"RUN"});
  RequireCorruption(DecodeBody("HEARTBEAT", "\x80\x80"), {"HEARTBEAT", "1 bytes after its map"});
  RequireCorruption(DecodeBody("GROUPS", Mp().Map(1).Uint(1).Uint(2).bytes()), {"GROUPS", "keys must be strings"});
  // Every prefix of every valid body is truncated, or (for a prefix that is
  // itself a complete value) fails some other check.
  for (const Message& m : Samples()) {
    const std::string body = Encode(m)[2];
    for (size_t n = 0; n < body.size(); n += 1 + n / 8) {
      Status s = DecodeBody(CommandName(m), body.substr(0, n));
      INFO(CommandName(m) << " cut at " << n);
      RequireCorruption(s, {CommandName(m)});
    }
  }
  RequireCorruption(DecodeBody("STATUS", "\x82\xa3req\x01\xa5gr"), {"STATUS", "truncated"});
}

}  // namespace
}  // namespace cohort::common
