// PtyProcess runs a program on a fresh pseudo-terminal, as a person would
// in a terminal window: the program's stdin, stdout and stderr are the
// terminal, it leads its own session, and bytes written to the terminal's
// master side are typed keys (Ctrl-C is "\x03", which the terminal turns
// into SIGINT for the program). What it prints is read back as the screen's
// text, control sequences included.
//
// Thread contract: one thread.
#ifndef COHORT_TESTS_INTEGRATION_PTY_PROCESS_H_
#define COHORT_TESTS_INTEGRATION_PTY_PROCESS_H_

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

namespace cohort::testing {

class PtyProcess {
 public:
  // Starts argv[0] (a path) on a 120x40 terminal.
  explicit PtyProcess(const std::vector<std::string>& argv);
  // Kills the program if it still runs.
  ~PtyProcess();
  PtyProcess(const PtyProcess&) = delete;
  PtyProcess& operator=(const PtyProcess&) = delete;

  // Types `keys` on the terminal.
  void Type(const std::string& keys);
  // Everything the program has printed so far.
  const std::string& Screen();
  // Its exit code (128 + N when a signal N ended it) once it has ended.
  std::optional<int> ExitCode();
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int master_ = -1;
  std::string screen_;
  std::optional<int> exit_code_;
};

}  // namespace cohort::testing

#endif  // COHORT_TESTS_INTEGRATION_PTY_PROCESS_H_
