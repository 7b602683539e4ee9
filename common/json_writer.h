// JsonWriter appends JSON text to a string as values are given, with no
// document tree in between: every document the coordinator sends (results,
// summaries, group and worker lists) is written with it, on the event loop,
// where a tree (a node and a map per object, then a second walk to
// serialize) would cost many times more per step (docs/BENCHMARKS.md).
//
// Output reads back as nlohmann::json::dump() would write it: strings are
// escaped the same way. Each byte that is not part of valid UTF-8 becomes
// U+FFFD (nlohmann's replace mode writes one per run of bad bytes), so a
// step's raw output cannot make the document unparsable. The
// caller is responsible for well-formedness (Key only inside an object, one
// value per key); the writer only places the commas and colons.
// Not thread-safe; cheap to create.
#ifndef COHORT_COMMON_JSON_WRITER_H_
#define COHORT_COMMON_JSON_WRITER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cohort::common {

class JsonWriter {
 public:
  explicit JsonWriter(std::string* out) : out_(out) {}

  JsonWriter& BeginObject() { return Open('{'); }
  JsonWriter& EndObject() { return Close('}'); }
  JsonWriter& BeginArray() { return Open('['); }
  JsonWriter& EndArray() { return Close(']'); }
  JsonWriter& Key(std::string_view key);

  JsonWriter& String(std::string_view s);
  JsonWriter& Int(int64_t v);
  JsonWriter& UInt(uint64_t v);
  JsonWriter& Double(double v);  // shortest text that reads back the same
  JsonWriter& Null();
  JsonWriter& Bool(bool v);

  // "" and nullopt become null.
  JsonWriter& StringOrNull(std::string_view s) { return s.empty() ? Null() : String(s); }
  template <typename T>
  JsonWriter& IntOrNull(const std::optional<T>& v) {
    return v ? Int(static_cast<int64_t>(*v)) : Null();
  }

 private:
  void BeforeValue();
  JsonWriter& Open(char bracket);
  JsonWriter& Close(char bracket);
  template <typename T>
  JsonWriter& Integer(T v);

  std::string* out_;
  // One entry per open container: true once it holds a member, so the next
  // one needs a comma. A key's value never does.
  std::vector<bool> has_member_;
  bool after_key_ = false;
};

// Appends s to out as a JSON string literal (quotes included), escaped and
// with invalid UTF-8 replaced as described above.
void AppendJsonString(std::string_view s, std::string* out);

}  // namespace cohort::common

#endif  // COHORT_COMMON_JSON_WRITER_H_
