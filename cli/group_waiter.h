// WaitForGroup is `cohort wait` and `submit --wait`: it holds a WAIT on the
// coordinator until the group's final REPLY, and outlives the coordinator
// going away or restarting. ZeroMQ reconnects the client's socket by itself,
// but a coordinator that restarted holds no WAIT for it; so the WAIT is sent
// again whenever the coordinator may have lost it:
// - when it answers again after a request went unanswered for kOutageGap
//   (it was down or restarting);
// - when it answers but has sent no HEARTBEAT for kWaitSilence: a coordinator
//   sends one to every client holding a WAIT every heartbeat_ms x liveness
//   (3 s by default), so a quick restart that showed no outage shows here.
// The WAIT is repeated under its first req, which lets the coordinator drop a
// repeat on a connection that still holds it. A brief STATUS every
// kPollInterval draws the progress line and keeps proving the coordinator
// answers; a poll that finds the group ended fetches its result, in case the
// WAIT was lost and not yet repeated.
//
// Only a coordinator that leaves a poll unanswered for longer than the
// client's timeout (--connect-timeout), hearing nothing else from it
// meanwhile, ends the wait unreached: for the first poll as for any request,
// and after that as the longest outage tolerated. A WAIT does not count: it
// is answered only when the group ends.
//
// With cancel_on_interrupt, Ctrl-C means stop, as it does for a command run
// in the foreground: the first sends CANCEL for the group and keeps waiting
// until the coordinator says the group ended (its steps' processes are gone
// by then: a running step ends only when its worker reports it stopped); a
// second leaves at once, the group going on, with a word on how to follow
// or cancel it. SIGINT only writes a byte to a pipe (cli/interrupt.h) that
// the loop reads each time round.
//
// Thread contract: the thread that owns the Client.
#ifndef COHORT_CLI_GROUP_WAITER_H_
#define COHORT_CLI_GROUP_WAITER_H_

#include <chrono>
#include <string>

#include "cli/client.h"
#include "common/messages.h"
#include "common/status.h"
#include "common/time.h"

namespace cohort::cli {

// How often the group's summary is asked for.
inline constexpr common::Duration kPollInterval = std::chrono::seconds(1);
// A request unanswered this long: the coordinator is away (or stalled), and
// the WAIT it held may be gone. The client says so on stderr, and sends a poll
// again in case the last one died with the connection.
inline constexpr common::Duration kOutageGap = std::chrono::seconds(2);
// A little over twice the coordinator's default HEARTBEAT interval to waiting
// clients (heartbeat_ms x liveness = 3 s): no HEARTBEAT for this long from a
// coordinator that answers means it holds no WAIT of ours. A coordinator run
// with a longer interval gets the WAIT again every kWaitSilence, and drops the
// repeats.
inline constexpr common::Duration kWaitSilence = std::chrono::seconds(7);

struct WaitSettings {
  bool progress = false;  // redraw a progress line on stderr (a terminal)
  bool known = false;     // the coordinator has acknowledged the group (this client submitted it)
  bool cancel_on_interrupt = false;  // Ctrl-C cancels the group; a second one detaches
};

enum class WaitOutcome {
  kEnded,        // the group ended: *result holds the final REPLY
  kInterrupted,  // Ctrl-C cancelled the group, which then ended: *result holds the final REPLY
  kDetached,     // a second Ctrl-C: the group goes on; *result is untouched
};

// Waits for the group's final REPLY (its result, or the coordinator's refusal
// of the WAIT) into *result. When there is none: the connection's error as
// Client::Call gives it (Unavailable after the outage the client's timeout
// allows), NotFound when the coordinator restarted and no longer knows the
// group, FailedPrecondition when it refused a poll.
common::Status WaitForGroup(Client& client, const std::string& group, const WaitSettings& settings,
                            common::ReplyMsg* result, WaitOutcome* outcome = nullptr);

}  // namespace cohort::cli

#endif  // COHORT_CLI_GROUP_WAITER_H_
