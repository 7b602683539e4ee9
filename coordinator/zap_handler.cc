#include "coordinator/zap_handler.h"

#include "common/curve_keys.h"

namespace cohort::coordinator {

using common::LogInfo;
using common::LogWarn;
using common::Status;
using common::Time;

namespace {

constexpr char kZapEndpoint[] = "inproc://zeromq.zap.01";
constexpr char kZapVersion[] = "1.0";
// version, request id, domain, address, identity, mechanism, credentials.
constexpr size_t kRequestFrames = 7;
constexpr size_t kMaxFramesKept = 16;
// Distinct refusals remembered for "log once"; past it, refusals are only
// rate-limited, so a scan from many addresses cannot grow memory.
constexpr size_t kMaxRefusalsRemembered = 4096;

std::string Z85(const std::string& raw) {
  if (raw.size() != 32) return "";
  char out[41] = {};
  if (zmq_z85_encode(out, reinterpret_cast<const uint8_t*>(raw.data()), raw.size()) == nullptr) return "";
  return out;
}

constexpr size_t kZ85KeyChars = 40;

}  // namespace

std::string MakeUserId(const std::string& name, const std::string& key_z85) { return name + "|" + key_z85; }

std::string UserIdName(std::string_view user_id) {
  if (UserIdKey(user_id).empty()) return std::string(user_id);
  return std::string(user_id.substr(0, user_id.size() - kZ85KeyChars - 1));
}

std::string UserIdKey(std::string_view user_id) {
  if (user_id.size() <= kZ85KeyChars || user_id[user_id.size() - kZ85KeyChars - 1] != '|') return "";
  return std::string(user_id.substr(user_id.size() - kZ85KeyChars));
}

ZapHandler::ZapHandler(zmq::context_t& context, std::string clients_dir, std::string workers_dir,
                       std::string admins_dir)
    : socket_(context, zmq::socket_type::rep),
      clients_dir_(std::move(clients_dir)),
      workers_dir_(std::move(workers_dir)),
      admins_dir_(std::move(admins_dir)) {
  socket_.set(zmq::sockopt::linger, 0);
}

ZapHandler::~ZapHandler() = default;

bool ZapHandler::LoadOne(const std::string& dir, const char* role,
                         std::map<std::string, common::AllowlistEntry>* entries) {
  std::map<std::string, common::AllowlistEntry> fresh;
  std::vector<std::string> problems;
  Status s = common::LoadAllowlist(dir, &fresh, &problems);
  for (const std::string& p : problems) LogWarn("allowlist_file_skipped").Kv("role", role).Kv("error", p);
  if (!s.ok()) {
    common::LogError("allowlist_unreadable").Kv("role", role).Kv("error", s.message())
        .Kv("keeping", entries->size());
    return false;
  }
  size_t added = 0, removed = 0;
  for (const auto& [key, entry] : fresh) added += entries->count(key) == 0;
  for (const auto& [key, entry] : *entries) removed += fresh.count(key) == 0;
  *entries = std::move(fresh);
  LogInfo("allowlist_loaded").Kv("role", role).Kv("dir", dir).Kv("keys", entries->size()).Kv("added", added)
      .Kv("removed", removed);
  return true;
}

Status ZapHandler::Start() {
  std::vector<std::string> ignored;
  std::map<std::string, std::string> probe;
  for (const std::string* dir : {&clients_dir_, &workers_dir_, &admins_dir_}) {
    if (dir->empty()) continue;
    if (Status s = common::LoadAllowlist(*dir, &probe, &ignored); !s.ok()) return s;
  }
  Reload();
  try {
    socket_.bind(kZapEndpoint);
  } catch (const zmq::error_t& e) {
    return Status::Unavailable(std::string("cannot bind the ZAP handler at ") + kZapEndpoint + ": " + e.what());
  }
  return Status::Ok();
}

void ZapHandler::Reload() {
  LoadOne(clients_dir_, "client", &clients_);
  if (!admins_dir_.empty()) LoadOne(admins_dir_, "admin", &admins_);
  // A client is known by its key's name: two keys under one name in the two
  // lists would share a client's groups, and an admin's rights would be
  // granted by name. The admin entry is left out until one is renamed.
  std::set<std::string> client_names;
  for (const auto& [key, entry] : clients_) client_names.insert(entry.name);
  for (auto it = admins_.begin(); it != admins_.end();) {
    if (!clients_.count(it->first) && client_names.count(it->second.name)) {
      LogWarn("allowlist_file_skipped").Kv("role", "admin")
          .Kv("error", it->second.origin + ": another key has the name \"" + it->second.name +
                           "\" in the clients' allowlist; rename one");
      it = admins_.erase(it);
    } else {
      ++it;
    }
  }
  if (LoadOne(workers_dir_, "worker", &workers_)) {
    // A key whose grant cannot be read is left out: admitting it with no
    // limits would undo what its entry meant to say.
    grants_.clear();
    for (auto it = workers_.begin(); it != workers_.end();) {
      WorkerGrant grant;
      if (Status g = ParseWorkerGrant(it->second, &grant); !g.ok()) {
        LogWarn("allowlist_file_skipped").Kv("role", "worker").Kv("error", g.message());
        it = workers_.erase(it);
        continue;
      }
      grants_.emplace(it->first, std::move(grant));
      ++it;
    }
  }
  // A peer refused before may now be allowed, or refused for a new reason.
  refusals_logged_.clear();
}

const common::AllowlistEntry* ZapHandler::ClientEntry(const std::string& key) const {
  if (auto it = clients_.find(key); it != clients_.end()) return &it->second;
  if (auto it = admins_.find(key); it != admins_.end()) return &it->second;
  return nullptr;
}

ZapVerdict ZapHandler::Authorize(const ZapRequest& r) const {
  ZapVerdict v;
  const bool client = r.domain == kClientDomain;
  if (!client && r.domain != kWorkerDomain) {
    v.reason = "unknown ZAP domain \"" + r.domain + "\"";
    return v;
  }
  if (r.mechanism != "CURVE" || r.key_z85.empty()) {
    v.reason = "mechanism " + r.mechanism + " is not CURVE";
    return v;
  }
  auto worker = workers_.find(r.key_z85);
  const common::AllowlistEntry* mine = client ? ClientEntry(r.key_z85)
                                              : worker == workers_.end() ? nullptr : &worker->second;
  const common::AllowlistEntry* other = client ? worker == workers_.end() ? nullptr : &worker->second
                                               : ClientEntry(r.key_z85);
  const char* role = client ? "client" : "worker";
  if (!mine) {
    v.reason = other ? "key \"" + other->name + "\" is authorized for the other role, not as a " + role
                     : std::string("key not in the ") + role + "s' allowlist";
    return v;
  }
  v.allowed = true;
  v.user_id = MakeUserId(mine->name, r.key_z85);
  return v;
}

bool ZapHandler::IsAdmin(std::string_view user_id) const { return admins_.count(UserIdKey(user_id)) > 0; }

const WorkerGrant* ZapHandler::GrantOf(std::string_view user_id) const {
  auto it = grants_.find(UserIdKey(user_id));
  return it == grants_.end() ? nullptr : &it->second;
}

bool ZapHandler::Admits(std::string_view domain, std::string_view user_id) const {
  const std::string key = UserIdKey(user_id);
  if (key.empty()) return false;
  if (domain == kClientDomain) return ClientEntry(key) != nullptr;
  if (domain == kWorkerDomain) return workers_.count(key) > 0;
  return false;
}

void ZapHandler::LogRefusal(const ZapRequest& r, const ZapVerdict& v, Time now) {
  const std::string id = r.domain + "|" + r.address + "|" + r.key_z85;
  if (refusals_logged_.count(id)) return;
  uint64_t suppressed = 0;
  if (refusals_logged_.size() < kMaxRefusalsRemembered) {
    refusals_logged_.insert(id);
  } else if (!overflow_log_.Allow(now, &suppressed)) {
    return;
  }
  LogWarn("peer_refused")
      .Kv("socket", r.domain == kClientDomain ? "client" : r.domain == kWorkerDomain ? "worker" : r.domain)
      .Kv("address", r.address)
      .Kv("key", r.key_z85.empty() ? "-" : r.key_z85)
      .Kv("reason", v.reason)
      .Kv("suppressed", suppressed);
}

void ZapHandler::HandleRequests(Time now) {
  while (true) {
    std::vector<std::string> frames;
    try {
      zmq::message_t part;
      if (!socket_.recv(part, zmq::recv_flags::dontwait)) return;
      while (true) {
        if (frames.size() < kMaxFramesKept) frames.emplace_back(static_cast<const char*>(part.data()), part.size());
        if (!part.more()) break;
        if (!socket_.recv(part, zmq::recv_flags::none)) break;
      }
    } catch (const zmq::error_t& e) {
      common::LogError("zap_receive_failed").Kv("error", e.what());
      return;
    }
    // A REP socket must answer every request to take the next one.
    const std::string request_id = frames.size() > 1 ? frames[1] : "";
    std::string code = "500", text, user;
    if (frames.size() < kRequestFrames - 1 || frames[0] != kZapVersion) {
      uint64_t suppressed = 0;
      if (bad_request_log_.Allow(now, &suppressed)) {
        LogWarn("zap_bad_request").Kv("frames", frames.size()).Kv("suppressed", suppressed);
      }
      text = "malformed ZAP request";
    } else {
      ZapRequest r;
      r.domain = frames[2];
      r.address = frames[3];
      r.mechanism = frames[5];
      if (frames.size() >= kRequestFrames) r.key_z85 = Z85(frames[6]);
      ZapVerdict v = Authorize(r);
      if (v.allowed) {
        code = "200";
        text = "OK";
        user = v.user_id;
        common::LogDebug("peer_admitted").Kv("socket", r.domain).Kv("address", r.address)
            .Kv("name", UserIdName(user));
      } else {
        code = "400";
        text = v.reason;
        LogRefusal(r, v, now);
      }
    }
    const std::string reply[] = {kZapVersion, request_id, code, text, user, ""};
    try {
      for (size_t i = 0; i < std::size(reply); ++i) {
        socket_.send(zmq::buffer(reply[i]), i + 1 < std::size(reply) ? zmq::send_flags::sndmore
                                                                      : zmq::send_flags::none);
      }
    } catch (const zmq::error_t& e) {
      common::LogError("zap_reply_failed").Kv("error", e.what());
      return;
    }
  }
}

}  // namespace cohort::coordinator
