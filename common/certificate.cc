#include "common/certificate.h"

#include <arpa/inet.h>

#include <cstdint>
#include <vector>

namespace cohort::common {
namespace {

// ZeroMQ's Z85 alphabet (RFC 32/Z85), in digit order.
constexpr std::string_view kZ85Digits =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

// One ZPL value: "quoted" or 'quoted' (up to the closing quote), else the
// rest of the line up to a " #" comment. Z85 uses '#', so a bare '#' inside
// a value is kept.
std::string ZplValue(std::string_view v) {
  v = Trim(v);
  if (!v.empty() && (v.front() == '"' || v.front() == '\'')) {
    size_t close = v.find(v.front(), 1);
    return std::string(v.substr(1, close == std::string_view::npos ? std::string_view::npos : close - 1));
  }
  size_t comment = v.find(" #");
  return std::string(Trim(v.substr(0, comment)));
}

std::string LineError(const std::string& origin, size_t line_no, std::string_view what) {
  return origin + ":" + std::to_string(line_no) + ": " + std::string(what);
}

}  // namespace

bool IsZ85Key(std::string_view z85) {
  if (z85.size() != kZ85KeyChars) return false;
  for (size_t at = 0; at < z85.size(); at += 5) {
    // Each group of five digits is one 32-bit word, most significant first.
    uint64_t word = 0;
    for (size_t i = at; i < at + 5; ++i) {
      size_t digit = kZ85Digits.find(z85[i]);
      if (digit == std::string_view::npos) return false;
      word = word * 85 + digit;
    }
    if (word > UINT32_MAX) return false;
  }
  return true;
}

Status ParseCertificate(std::string_view text, const std::string& origin, CurveKeyPair* out,
                        std::map<std::string, std::string>* metadata) {
  *out = {};
  if (metadata) metadata->clear();
  std::vector<std::string> path;  // section names by depth
  bool have_public = false;
  size_t line_no = 0;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    ++line_no;
    std::string_view body = Trim(line);
    if (body.empty() || body.front() == '#') continue;
    size_t indent = line.find_first_not_of(' ');
    if (indent % 4 != 0) return Status::Corruption(LineError(origin, line_no, "ZPL indents by 4 spaces"));
    const size_t depth = indent / 4;
    if (depth > path.size()) {
      return Status::Corruption(LineError(origin, line_no, "indented deeper than its section"));
    }
    path.resize(depth);
    size_t eq = body.find('=');
    std::string name(Trim(body.substr(0, eq)));
    if (eq == std::string_view::npos) {
      path.push_back(name);
      continue;
    }
    if (path.size() == 1 && path[0] == "metadata" && metadata) {
      (*metadata)[name] = ZplValue(body.substr(eq + 1));
      continue;
    }
    if (path.size() != 1 || path[0] != "curve") continue;
    std::string value = ZplValue(body.substr(eq + 1));
    if (name == "public-key") {
      out->public_z85 = value;
      have_public = true;
    } else if (name == "secret-key") {
      out->secret_z85 = value;
    }
  }
  if (!have_public) return Status::Corruption(origin + ": no curve/public-key (not a ZeroMQ certificate?)");
  if (!IsZ85Key(out->public_z85)) {
    return Status::Corruption(origin + ": curve/public-key is not 40 characters of Z85");
  }
  if (!out->secret_z85.empty() && !IsZ85Key(out->secret_z85)) {
    return Status::Corruption(origin + ": curve/secret-key is not 40 characters of Z85");
  }
  return Status::Ok();
}

std::string CertificateText(const std::string& name, const CurveKeyPair& keys, bool secret,
                            const std::string& generated) {
  std::string out = "#   ****  Generated on " + generated + " by cohort keygen  ****\n";
  if (secret) {
    out +=
        "#   ZeroMQ CURVE **Secret** Certificate\n"
        "#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.\n";
  } else {
    out +=
        "#   ZeroMQ CURVE Public Certificate\n"
        "#   Exchange securely, or use a secure mechanism to verify the contents\n"
        "#   of this file after exchange.\n";
  }
  out += "\nmetadata\n    name = \"" + name + "\"\ncurve\n    public-key = \"" + keys.public_z85 + "\"\n";
  if (secret) out += "    secret-key = \"" + keys.secret_z85 + "\"\n";
  return out;
}

bool IsLoopbackEndpoint(const std::string& endpoint) {
  // An abstract socket (ipc://@name) has no file, so no owner or mode keeps
  // any local user from connecting; a filesystem socket does.
  if (endpoint.rfind("ipc://@", 0) == 0) return false;
  if (endpoint.rfind("ipc://", 0) == 0 || endpoint.rfind("inproc://", 0) == 0) return true;
  if (endpoint.rfind("tcp://", 0) != 0) return false;
  std::string rest = endpoint.substr(6);
  // "tcp://source;host:port" connects from a source: judge the destination.
  if (size_t semi = rest.rfind(';'); semi != std::string::npos) rest = rest.substr(semi + 1);
  size_t colon = rest.rfind(':');
  if (colon == std::string::npos) return false;
  std::string host = rest.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host == "localhost") return true;
  in_addr v4{};
  if (::inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (::inet_pton(AF_INET6, host.c_str(), &v6) == 1) return IN6_IS_ADDR_LOOPBACK(&v6);
  return false;
}

}  // namespace cohort::common
