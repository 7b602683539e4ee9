// The plain-text tables the CLI prints for a person, and the cell helpers
// they share: a field of a coordinator document as text ("-" when missing
// or of another type) and a cell cleaned of control characters and cut to
// a width. Stateless functions; safe from any thread.
#ifndef COHORT_CLI_TABLE_H_
#define COHORT_CLI_TABLE_H_

#include <cstddef>
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace cohort::cli {

// `j[key]` as text: strings as they are, integers in decimal, other numbers
// as seconds ("1.50s"), arrays joined with commas; "-" for anything else.
std::string Text(const nlohmann::json& j, const char* key);
// One line of a table cell: control characters and line breaks would break
// the table, and a long error is cut.
std::string Cell(std::string s, size_t max = 60);
// Columns padded to their widest cell, two spaces apart, the header first.
void Table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows,
           std::ostream& out);

}  // namespace cohort::cli

#endif  // COHORT_CLI_TABLE_H_
