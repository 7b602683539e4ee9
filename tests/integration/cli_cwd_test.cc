// `cohort submit --cwd DIR` on real daemons with the real CLI, as Slurm users
// expect of sbatch: a relative DIR is the submitting shell's directory made
// absolute, an absolute one is sent as it is, and the steps run there.
#include <filesystem>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "tests/integration/cluster.h"

namespace cohort::testing {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;

// `cohort ARGS...` run from the directory `from`, with the cluster's endpoint.
RunOutput CliIn(Cluster& c, const std::string& from, const std::vector<std::string>& args) {
  std::string line = "cd \"$1\" && shift && exec \"$@\"";
  std::vector<std::string> argv = {"/bin/sh", "-c", line, "sh", from, COHORT_BIN_DIR "/cohort", "--coordinator",
                                   c.client_endpoint()};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunProgram(argv, 60s);
}

TEST_CASE("submit --cwd runs the steps in the submitter's directory, made absolute", "[cli][cwd]") {
  Cluster c;
  c.StartCoordinator();
  c.StartWorker("w1", 2);
  // A space in the path, and the physical path getcwd gives (the test
  // directory may sit behind a symbolic link).
  const std::string project = c.dir() + "/my project";
  std::filesystem::create_directories(project + "/sub");
  const std::string here = std::filesystem::canonical(project).string();

  RunOutput dot = CliIn(c, project, {"submit", "--wait", "--cwd", ".", "--", "pwd"});
  INFO(dot.out << dot.err);
  CHECK(dot.exit_code == 0);
  CHECK(dot.out == here + "\n");

  RunOutput relative = CliIn(c, project, {"submit", "--wait", "--cwd", "sub/../sub/", "--", "pwd"});
  CHECK(relative.exit_code == 0);
  CHECK(relative.out == here + "/sub\n");

  // An absolute path is not looked at here: it names a directory of the
  // workers' hosts.
  RunOutput absolute = CliIn(c, "/", {"submit", "--wait", "--json", "--cwd", here + "/sub", "--", "pwd"});
  const Json result = Json::parse(absolute.out, nullptr, false);
  REQUIRE(result.is_object());
  CHECK(result["steps"][0]["stdout"] == here + "/sub\n");

  // Every step of a file takes it, over the file's own.
  const std::string file = project + "/group.json";
  WriteFile(file, Json{{"steps", {{{"id", "a"}, {"command", {"pwd"}}, {"cwd", "/"}},
                                  {{"id", "b"}, {"shell", "pwd"}}}}}.dump());
  RunOutput grouped = CliIn(c, project, {"submit", "--wait", "--json", "--cwd", ".", file});
  const Json both = Json::parse(grouped.out, nullptr, false);
  REQUIRE(both.is_object());
  for (const Json& step : both["steps"]) CHECK(step["stdout"] == here + "\n");

  CHECK(CliIn(c, project, {"submit", "--cwd", "", "--", "pwd"}).exit_code == 2);
}

}  // namespace
}  // namespace cohort::testing
