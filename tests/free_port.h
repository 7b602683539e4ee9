// A loopback TCP port for a test's server that no other process of the test
// run takes while this process lives.
//
// A port the kernel hands out for bind(0) comes from the ephemeral range,
// the same range every outgoing connection's local port is drawn from: with
// two test binaries running at once, one's ZeroMQ connect could take the
// port the other had picked and was about to bind ("Address already in
// use"). So the port comes from below that range, where only explicit binds
// land, and a lock file under /tmp held for the life of the process keeps
// concurrent test processes from picking the same one.
//
// Thread contract: safe to call from any thread.
#ifndef COHORT_TESTS_FREE_PORT_H_
#define COHORT_TESTS_FREE_PORT_H_

namespace cohort::testing {

// A port free to bind on 127.0.0.1 now and reserved for this process until
// it exits; 0 if none could be found.
int FreePort();

}  // namespace cohort::testing

#endif  // COHORT_TESTS_FREE_PORT_H_
