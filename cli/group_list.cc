#include "cli/group_list.h"

#include <string>
#include <vector>

#include "cli/table.h"

namespace cohort::cli {

using Json = nlohmann::json;

void PrintGroups(const Json& list, std::ostream& out) {
  std::vector<std::vector<std::string>> rows;
  if (list.is_array()) {
    for (const Json& g : list) {
      rows.push_back({Cell(Text(g, "group"), 40), Text(g, "state"), Text(g, "total"), Text(g, "completed"),
                      Text(g, "running"), Text(g, "failed"), Text(g, "cancelled"), Text(g, "submitted_at")});
    }
  }
  Table({"GROUP", "STATE", "STEPS", "COMPLETED", "RUNNING", "FAILED", "CANCELLED", "SUBMITTED"}, rows, out);
}

}  // namespace cohort::cli
