// Key files, allowlist directories and the loopback rule: real files in a
// temp directory, real libzmq key generation; no sockets.
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "common/curve_keys.h"
#include "tests/unit/temp_dir.h"

namespace cohort::common {
namespace {

using cohort::testing::TempDir;

// 0644 whatever the umask: key files and allowlists must not be group-writable.
void Write(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
  REQUIRE(::chmod(path.c_str(), 0644) == 0);
}

mode_t ModeOf(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

// A certificate laid out as CZMQ's zcert_save writes it, with metadata of
// its own, around keys made here.
std::string ZcertText(const CurveKeyPair& k, bool secret) {
  std::string t =
      "#   ****  Generated on 2024-01-01 00:00:00 by CZMQ  ****\n"
      "#   ZeroMQ CURVE Public Certificate\n"
      "\n"
      "metadata\n"
      "    email = \"ops@example.com\"\n"
      "curve\n"
      "    public-key = \"" + k.public_z85 + "\"\n";
  if (secret) t += "    secret-key = \"" + k.secret_z85 + "\"\n";
  return t;
}

TEST_CASE("keygen files: zcert layout, 0600 secret, no overwrite, load back", "[unit][keys]") {
  REQUIRE(HasCurve());
  TempDir d;
  CurveKeyPair k;
  REQUIRE(GenerateKeyPair(&k).ok());
  CHECK(k.public_z85.size() == 40);
  CHECK(k.secret_z85.size() == 40);
  std::string pub, sec;
  REQUIRE(WriteKeyFiles(d.path, "alice", k, &pub, &sec).ok());
  CHECK(pub == d.path + "/alice.key");
  CHECK(sec == d.path + "/alice.key_secret");
  CHECK(ModeOf(sec) == 0600);
  std::ifstream in(pub);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(text.find("curve\n    public-key = \"" + k.public_z85 + "\"\n") != std::string::npos);
  CHECK(text.find("secret-key") == std::string::npos);

  std::string loaded_pub;
  REQUIRE(LoadPublicKey(pub, &loaded_pub).ok());
  CHECK(loaded_pub == k.public_z85);
  CurveKeyPair loaded;
  REQUIRE(LoadSecretKey(sec, &loaded).ok());
  CHECK(loaded.public_z85 == k.public_z85);
  CHECK(loaded.secret_z85 == k.secret_z85);

  Status again = WriteKeyFiles(d.path, "alice", k, &pub, &sec);
  CHECK(again.code() == Status::Code::kAlreadyExists);
  CHECK(WriteKeyFiles(d.path, "../evil", k, &pub, &sec).code() == Status::Code::kInvalidArgument);

  // The public file is not a secret key.
  Status not_secret = LoadSecretKey(pub, &loaded);
  CHECK_FALSE(not_secret.ok());
}

TEST_CASE("a secret key file readable by group or others is refused", "[unit][keys]") {
  TempDir d;
  CurveKeyPair k;
  REQUIRE(GenerateKeyPair(&k).ok());
  std::string pub, sec;
  REQUIRE(WriteKeyFiles(d.path, "w", k, &pub, &sec).ok());
  CurveKeyPair loaded;
  for (mode_t mode : {0644, 0640, 0604, 0660}) {
    REQUIRE(::chmod(sec.c_str(), mode) == 0);
    Status s = LoadSecretKey(sec, &loaded);
    INFO(s.message());
    CHECK(s.code() == Status::Code::kFailedPrecondition);
    CHECK(s.message().find("chmod 600") != std::string::npos);
  }
  REQUIRE(::chmod(sec.c_str(), 0400) == 0);
  CHECK(LoadSecretKey(sec, &loaded).ok());
}

TEST_CASE("certificates from CZMQ parse and broken ones are refused with the reason", "[unit][keys]") {
  CurveKeyPair k, other;
  REQUIRE(GenerateKeyPair(&k).ok());
  REQUIRE(GenerateKeyPair(&other).ok());
  CurveKeyPair out;
  REQUIRE(ParseCertificate(ZcertText(k, true), "f", &out).ok());
  CHECK(out.public_z85 == k.public_z85);
  CHECK(out.secret_z85 == k.secret_z85);
  REQUIRE(ParseCertificate(ZcertText(k, false), "f", &out).ok());
  CHECK(out.secret_z85.empty());

  CHECK(ParseCertificate("metadata\n", "f", &out).message().find("no curve/public-key") != std::string::npos);
  CHECK(ParseCertificate("curve\n    public-key = \"short\"\n", "f", &out).message().find("40 characters") !=
        std::string::npos);
  CHECK(ParseCertificate("curve\n  public-key = \"" + k.public_z85 + "\"\n", "f", &out).message().find(
            "4 spaces") != std::string::npos);
  // A key under another section is not the certificate's key.
  CHECK_FALSE(ParseCertificate("other\n    public-key = \"" + k.public_z85 + "\"\n", "f", &out).ok());
  CurveKeyPair mixed = k;
  mixed.secret_z85 = other.secret_z85;
  REQUIRE(ParseCertificate(ZcertText(mixed, true), "f", &out).ok());  // the form is right
  CHECK(CheckKeyPair(out, "f").message().find("does not belong") != std::string::npos);
  // Loading a secret key file checks the pair.
  TempDir d;
  const std::string sec = d.path + "/mixed.key_secret";
  Write(sec, ZcertText(mixed, true));
  REQUIRE(::chmod(sec.c_str(), 0600) == 0);
  CurveKeyPair loaded;
  CHECK(LoadSecretKey(sec, &loaded).message() == sec + ": curve/public-key does not belong to curve/secret-key");
  std::string public_half;
  CHECK(LoadPublicKey(sec, &public_half).message() == sec + ": curve/public-key does not belong to curve/secret-key");
  // One character outside the Z85 alphabet, or a group past 32 bits, is not a key.
  std::string bad = k.public_z85;
  bad[7] = '~';
  CHECK_FALSE(IsZ85Key(bad));
  CHECK_FALSE(IsZ85Key("%%%%%" + k.public_z85.substr(5)));
  CHECK(IsZ85Key(k.public_z85));
}

TEST_CASE("a secret certificate written by CZMQ loads with hash signs in its keys", "[unit][keys]") {
  // Published as an example of `bx cert-new` (libbitcoin-explorer), which
  // saves with CZMQ's zcert; the two keys are a real pair.
  const std::string czmq =
      "#   ****  Generated on 2015-02-16 01:23:56 by CZMQ  ****\n"
      "#   ZeroMQ CURVE **Secret** Certificate\n"
      "#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.\n"
      "\n"
      "metadata\n"
      "curve\n"
      "    public-key = \"7]g&M3GX##D.-!L>B.t?=@V6nkC34imk5/65kMNp\"\n"
      "    secret-key = \"]k2&)P6O#/m5XE%RTFFsrkX&-gEH5]aPxjwBgE?O\"\n";
  CurveKeyPair out;
  Status s = ParseCertificate(czmq, "bx.cert", &out);
  INFO(s.message());
  REQUIRE(s.ok());
  CHECK(out.public_z85 == "7]g&M3GX##D.-!L>B.t?=@V6nkC34imk5/65kMNp");
  CHECK(out.secret_z85 == "]k2&)P6O#/m5XE%RTFFsrkX&-gEH5]aPxjwBgE?O");
}

TEST_CASE("an allowlist directory reads only NAME.key files and names what it ignores", "[unit][keys]") {
  TempDir d;
  CurveKeyPair a, b, c;
  REQUIRE(GenerateKeyPair(&a).ok());
  REQUIRE(GenerateKeyPair(&b).ok());
  REQUIRE(GenerateKeyPair(&c).ok());
  Write(d.path + "/alice.key", ZcertText(a, false));
  Write(d.path + "/bob", ZcertText(b, false));               // a valid key, but not NAME.key
  Write(d.path + "/carol.key.revoked", ZcertText(c, false));  // revoked by renaming it
  Write(d.path + "/carol.key_secret", ZcertText(c, true));
  Write(d.path + "/.hidden.key", ZcertText(b, false));
  Write(d.path + "/notes.txt", "hello\n");
  REQUIRE(::mkdir((d.path + "/sub.key").c_str(), 0755) == 0);
  std::map<std::string, std::string> keys;
  std::vector<std::string> problems;
  REQUIRE(LoadAllowlist(d.path, &keys, &problems).ok());
  CHECK(keys == std::map<std::string, std::string>{{a.public_z85, "alice"}});
  REQUIRE(problems.size() == 4);  // sorted by name; hidden files and directories are silent
  CHECK(problems[0] == d.path + "/bob: not a NAME.key file; ignored");
  CHECK(problems[1] == d.path + "/carol.key.revoked: not a NAME.key file; ignored");
  CHECK(problems[2].find(d.path + "/carol.key_secret: a secret key does not belong in an allowlist") == 0);
  CHECK(problems[3] == d.path + "/notes.txt: not a NAME.key file; ignored");
  CHECK(LoadAllowlist(d.path + "/missing", &keys, &problems).code() == Status::Code::kNotFound);
}

TEST_CASE("an allowlist entry is opened inside its directory: no symlink, no fifo", "[unit][keys]") {
  TempDir d;
  CurveKeyPair a, b;
  REQUIRE(GenerateKeyPair(&a).ok());
  REQUIRE(GenerateKeyPair(&b).ok());
  const std::string dir = d.path + "/clients";
  REQUIRE(::mkdir(dir.c_str(), 0755) == 0);
  Write(dir + "/alice.key", ZcertText(a, false));
  // A link to a key file elsewhere, which whoever controls that place could
  // swap between the check and the open.
  Write(d.path + "/elsewhere.key", ZcertText(b, false));
  REQUIRE(::symlink((d.path + "/elsewhere.key").c_str(), (dir + "/mallory.key").c_str()) == 0);
  // A fifo would block the loader for ever if it were opened blocking.
  REQUIRE(::mkfifo((dir + "/stall.key").c_str(), 0644) == 0);
  std::map<std::string, std::string> keys;
  std::vector<std::string> problems;
  REQUIRE(LoadAllowlist(dir, &keys, &problems).ok());
  CHECK(keys == std::map<std::string, std::string>{{a.public_z85, "alice"}});
  REQUIRE(problems.size() == 2);
  CHECK(problems[0].find(dir + "/mallory.key: a symbolic link") == 0);
  CHECK(problems[1].find(dir + "/stall.key is not a regular file") == 0);

  // A name goes into logs and group ids: control bytes and broken UTF-8 are
  // refused, named.
  ::unlink((dir + "/mallory.key").c_str());
  ::unlink((dir + "/stall.key").c_str());
  Write(dir + "/bad\x01name.key", ZcertText(b, false));
  Write(dir + "/bad\xffname.key", ZcertText(b, false));
  problems.clear();
  REQUIRE(LoadAllowlist(dir, &keys, &problems).ok());
  CHECK(keys == std::map<std::string, std::string>{{a.public_z85, "alice"}});
  REQUIRE(problems.size() == 2);
  CHECK(problems[0].find("the name before .key must be printable UTF-8") != std::string::npos);
}

TEST_CASE("an allowlist entry carries the metadata the operator wrote next to the key", "[unit][keys]") {
  TempDir d;
  CurveKeyPair a;
  REQUIRE(GenerateKeyPair(&a).ok());
  Write(d.path + "/node7.key", "metadata\n    name = \"node7\"\n    max-slots = \"16\"\n    labels = \"gpu, ssd\"\n"
                               "curve\n    public-key = \"" + a.public_z85 + "\"\n");
  std::map<std::string, AllowlistEntry> entries;
  std::vector<std::string> problems;
  REQUIRE(LoadAllowlist(d.path, &entries, &problems).ok());
  REQUIRE(entries.count(a.public_z85) == 1);
  const AllowlistEntry& e = entries[a.public_z85];
  CHECK(e.name == "node7");
  CHECK(e.origin == d.path + "/node7.key");
  CHECK(e.metadata == std::map<std::string, std::string>{{"name", "node7"}, {"max-slots", "16"}, {"labels", "gpu, ssd"}});
}

TEST_CASE("trusted key files and allowlists writable by group or others are refused", "[unit][keys]") {
  TempDir d;
  CurveKeyPair a, b;
  REQUIRE(GenerateKeyPair(&a).ok());
  REQUIRE(GenerateKeyPair(&b).ok());
  const std::string pub = d.path + "/coordinator.key";
  Write(pub, ZcertText(a, false));
  std::string loaded;
  REQUIRE(LoadPublicKey(pub, &loaded).ok());
  for (mode_t mode : {0664, 0646, 0666}) {
    INFO(mode);
    REQUIRE(::chmod(pub.c_str(), mode) == 0);
    Status s = LoadPublicKey(pub, &loaded);
    CHECK(s.code() == Status::Code::kFailedPrecondition);
    CHECK(s.message().find("public key file " + pub + " has mode 0") == 0);
    CHECK(s.message().find("(chmod go-w " + pub + ")") != std::string::npos);
  }

  // A writable key file in an allowlist is left out, named; the others load.
  const std::string dir = d.path + "/clients";
  REQUIRE(::mkdir(dir.c_str(), 0755) == 0);
  Write(dir + "/alice.key", ZcertText(a, false));
  Write(dir + "/bob.key", ZcertText(b, false));
  REQUIRE(::chmod((dir + "/bob.key").c_str(), 0666) == 0);
  std::map<std::string, std::string> keys;
  std::vector<std::string> problems;
  REQUIRE(LoadAllowlist(dir, &keys, &problems).ok());
  CHECK(keys == std::map<std::string, std::string>{{a.public_z85, "alice"}});
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].find("public key file " + dir + "/bob.key has mode 0666") == 0);

  // A writable directory is refused whole: anyone could add a key to it.
  for (mode_t mode : {0775, 0757, 01777}) {
    INFO(mode);
    REQUIRE(::chmod(dir.c_str(), mode) == 0);
    Status s = LoadAllowlist(dir, &keys, &problems);
    CHECK(s.code() == Status::Code::kFailedPrecondition);
    CHECK(s.message().find("key directory " + dir + " has mode") == 0);
    CHECK(s.message().find("(chmod go-w " + dir + ")") != std::string::npos);
  }
  REQUIRE(::chmod(dir.c_str(), 0750) == 0);
  CHECK(LoadAllowlist(dir, &keys, &problems).ok());
}

TEST_CASE("trusted files must belong to root or to the program's user", "[unit][keys]") {
  struct stat st {};
  st.st_mode = S_IFREG | 0644;
  st.st_uid = ::geteuid();
  CHECK(CheckTrusted(st, "public key file", "/k/a.key", false).ok());
  st.st_uid = 0;
  CHECK(CheckTrusted(st, "public key file", "/k/a.key", false).ok());
  // Any other owner could rewrite it, whatever its mode.
  st.st_uid = ::geteuid() == 0 ? 4242 : ::geteuid() + 1;
  st.st_mode = S_IFREG | 0600;
  for (bool secret : {false, true}) {
    Status s = CheckTrusted(st, secret ? "secret key file" : "public key file", "/k/a.key", secret);
    CHECK(s.code() == Status::Code::kFailedPrecondition);
    CHECK(s.message().find("/k/a.key is owned by uid " + std::to_string(st.st_uid) +
                           ", not by root or by the user this program runs as") != std::string::npos);
    CHECK(s.message().find("chown") != std::string::npos);
  }
  // A secret key's mode is the caller's stricter check; the owner is checked here.
  st.st_uid = ::geteuid();
  st.st_mode = S_IFREG | 0620;
  CHECK(CheckTrusted(st, "secret key file", "/k/a.key_secret", true).ok());
  CHECK_FALSE(CheckTrusted(st, "public key file", "/k/a.key", false).ok());

  // On real files, where the test may give them away (as root).
  if (::geteuid() == 0) {
    TempDir d;
    CurveKeyPair k;
    REQUIRE(GenerateKeyPair(&k).ok());
    std::string pub, sec;
    REQUIRE(WriteKeyFiles(d.path, "alice", k, &pub, &sec).ok());
    REQUIRE(::chown(sec.c_str(), 65534, 65534) == 0);
    REQUIRE(::chown(d.path.c_str(), 65534, 65534) == 0);
    CurveKeyPair loaded;
    CHECK(LoadSecretKey(sec, &loaded).message().find("secret key file " + sec + " is owned by uid 65534") == 0);
    std::map<std::string, std::string> keys;
    std::vector<std::string> problems;
    CHECK(LoadAllowlist(d.path, &keys, &problems).message().find("key directory " + d.path + " is owned by uid") == 0);
    REQUIRE(::chown(d.path.c_str(), 0, 0) == 0);
  }
}

TEST_CASE("loopback endpoints are exactly 127/8, ::1, localhost, filesystem ipc and inproc", "[unit][keys]") {
  for (const char* ep : {"tcp://127.0.0.1:5700", "tcp://127.1.2.3:1", "tcp://localhost:5700", "tcp://[::1]:5700",
                         "ipc:///run/cohort.sock", "inproc://x", "tcp://10.0.0.1;127.0.0.1:5700"}) {
    INFO(ep);
    CHECK(IsLoopbackEndpoint(ep));
  }
  for (const char* ep : {"tcp://0.0.0.0:5700", "tcp://*:5700", "tcp://10.0.0.5:5700", "tcp://[::]:5700",
                         "tcp://eth0:5700", "tcp://example.com:5700", "tcp://128.0.0.1:5700", "tcp://[::2]:1",
                         "ws://127.0.0.1:1", "tcp://127.0.0.1", "pgm://127.0.0.1;239.1.1.1:5555", "",
                         // An abstract socket has no file whose mode could keep other local users out.
                         "ipc://@cohort-client"}) {
    INFO(ep);
    CHECK_FALSE(IsLoopbackEndpoint(ep));
  }
}

}  // namespace
}  // namespace cohort::common
