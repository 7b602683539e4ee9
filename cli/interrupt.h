// InterruptPipe turns SIGINT (Ctrl-C) into bytes on a pipe that a waiting
// loop reads between its polls, so that the handler does nothing but
// write(2) one byte. While one is alive, Ctrl-C no longer kills the process:
// the loop decides what it means. The signal also interrupts the poll the
// loop is in (no SA_RESTART), so it is seen at once.
//
// Thread contract: one at a time per process; Take() from the thread that
// made it. The handler may run on any thread.
#ifndef COHORT_CLI_INTERRUPT_H_
#define COHORT_CLI_INTERRUPT_H_

#include <signal.h>

namespace cohort::cli {

class InterruptPipe {
 public:
  // Installs the handler; on failure (no pipe) Ctrl-C keeps its default.
  InterruptPipe();
  // Restores the handler that was there before.
  ~InterruptPipe();
  InterruptPipe(const InterruptPipe&) = delete;
  InterruptPipe& operator=(const InterruptPipe&) = delete;

  // How many SIGINTs arrived since the last call.
  int Take();

 private:
  int read_fd_ = -1;
  bool installed_ = false;
  struct sigaction previous_ {};
};

}  // namespace cohort::cli

#endif  // COHORT_CLI_INTERRUPT_H_
