// A scratch directory for unit tests that read and write real files (key
// files, allowlists, policy lists); removed with everything in it.
#ifndef COHORT_TESTS_UNIT_TEMP_DIR_H_
#define COHORT_TESTS_UNIT_TEMP_DIR_H_

#include <stdlib.h>

#include <string>

namespace cohort::testing {

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/cohort-unit-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    std::string cmd = "rm -rf '" + path + "'";
    if (std::system(cmd.c_str()) != 0) {
      // Best effort: a leftover temp dir is harmless.
    }
  }
};

}  // namespace cohort::testing

#endif  // COHORT_TESTS_UNIT_TEMP_DIR_H_
