// Quote: valid ids come out as given, hostile bytes cannot garble a line,
// and a huge value is cut.
#include <catch2/catch.hpp>

#include <string>

#include "common/protocol.h"
#include "common/quote.h"

namespace cohort::common {
namespace {

TEST_CASE("Quote keeps valid UTF-8 ids and escapes what could garble a line", "[unit][quote]") {
  CHECK(Quote("build-42") == "\"build-42\"");
  CHECK(Quote("") == "\"\"");
  CHECK(Quote("caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x9a\x80") == "\"caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x9a\x80\"");
  CHECK(Quote("a\nb\tc\x7f") == "\"a\\x0ab\\x09c\\x7f\"");
  CHECK(Quote("say \"hi\" \\o/") == "\"say \\x22hi\\x22 \\x5co/\"");
  // Not UTF-8: a lone continuation byte, a cut sequence, an overlong form, a
  // surrogate, a code point past U+10FFFF.
  CHECK(Quote("\x80") == "\"\\x80\"");
  CHECK(Quote("\xe2\x9c") == "\"\\xe2\\x9c\"");
  CHECK(Quote("\xc0\xaf") == "\"\\xc0\\xaf\"");
  CHECK(Quote("\xed\xa0\x80") == "\"\\xed\\xa0\\x80\"");
  CHECK(Quote("\xf4\x90\x80\x80") == "\"\\xf4\\x90\\x80\\x80\"");
}

TEST_CASE("Quote shows an id of the longest allowed length whole and cuts what is longer", "[unit][quote]") {
  const std::string longest(kMaxNameBytes, 'x');
  CHECK(Quote(longest) == "\"" + longest + "\"");
  CHECK(Quote(longest + "y") == "\"" + longest + "\"...");
  const std::string huge(1 << 20, '\x01');
  const std::string q = Quote(huge);
  CHECK(q.size() == 2 + 4 * kQuotedBytes + 3);
  // A multi-byte character is never split by the cut.
  const std::string edge = std::string(kQuotedBytes - 1, 'x') + "\xc3\xa9";
  CHECK(Quote(edge) == "\"" + std::string(kQuotedBytes - 1, 'x') + "\"...");
}

}  // namespace
}  // namespace cohort::common
