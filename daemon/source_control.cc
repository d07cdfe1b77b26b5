#include "daemon/source_control.h"

#include "core/version.h"

namespace blockrep {
namespace {

nlohmann::json Error(const std::string& message) { return {{"ok", false}, {"error", message}}; }

}  // namespace

bool SourceControl::FindDisk(const nlohmann::json& request, size_t* index,
                             nlohmann::json* error) const {
  if (!request.contains("disk") || !request["disk"].is_string()) {
    *error = Error("this command needs \"disk\": the name of a protected disk");
    return false;
  }
  const std::string name = request["disk"].get<std::string>();
  for (size_t i = 0; i < disks_.size(); ++i) {
    if (disks_[i]->name() == name) {
      *index = i;
      return true;
    }
  }
  std::string known;
  for (const auto& d : disks_) known += (known.empty() ? "" : ", ") + d->name();
  *error = Error("no protected disk named '" + name + "' here (disks: " + known + ")");
  return false;
}

nlohmann::json SourceControl::DiskStatus(size_t i) const {
  if (i < shippers_.size()) return shippers_[i]->StatusJson();
  // Not replicated: what the journal knows.
  const WritePath::Stats ws = disks_[i]->write_path().stats();
  nlohmann::json j;
  j["name"] = disks_[i]->name();
  j["state"] = "not-replicated";
  j["detail"] = "no target configured";
  j["mode"] = DiskModeName(ws.mode);
  j["resync_required"] = ws.resync_required;
  j["journal_bytes"] = ws.journal_bytes;
  j["journal_max_bytes"] = ws.journal_max_bytes;
  j["next_seq"] = ws.next_seq;
  return j;
}

nlohmann::json SourceControl::Status() const {
  nlohmann::json j;
  j["ok"] = true;
  j["daemon"] = "blockrep-source";
  j["version"] = kVersion;
  j["state_dir"] = options_.state_dir;
  j["target"] = options_.target;
  nlohmann::json disks = nlohmann::json::array();
  for (size_t i = 0; i < disks_.size(); ++i) {
    nlohmann::json d = DiskStatus(i);
    d["path"] = disks_[i]->backing().path();
    d["disk_bytes"] = disks_[i]->backing().size_bytes();
    disks.push_back(d);
  }
  j["disks"] = disks;
  return j;
}

nlohmann::json SourceControl::Handle(const nlohmann::json& request) {
  const std::string cmd = request["cmd"].get<std::string>();
  if (cmd == "status") return Status();
  if (cmd != "drain" && cmd != "verify" && cmd != "resync" && cmd != "pause" && cmd != "resume") {
    return Error("unknown command '" + cmd +
                 "' (blockrep-source knows status, drain, verify, resync, pause, resume)");
  }
  size_t i = 0;
  nlohmann::json error;
  if (!FindDisk(request, &i, &error)) return error;
  if (i >= shippers_.size()) {
    return Error("disk " + disks_[i]->name() +
                 " is not replicated (blockrep-source runs without --target)");
  }
  Shipper& s = *shippers_[i];
  int wait_ms = kDefaultWaitMs;
  if (request.contains("timeout_ms")) {
    if (!request["timeout_ms"].is_number_unsigned()) return Error("\"timeout_ms\" must be a whole number");
    wait_ms = static_cast<int>(std::min<uint64_t>(request["timeout_ms"].get<uint64_t>(), 24ull * 3600 * 1000));
  }
  auto reply = [](const blockrep::Status& st, nlohmann::json j = nlohmann::json::object()) {
    if (!st.ok()) return Error(st.message());
    j["ok"] = true;
    return j;
  };
  if (cmd == "pause") return reply(s.Pause());
  if (cmd == "resume") return reply(s.Resume());
  if (cmd == "resync") return reply(s.Resync());
  auto result = cmd == "drain" ? s.Drain(wait_ms) : s.Verify(wait_ms);
  if (!result.ok()) return Error(result.status().message());
  return reply(blockrep::Status::Ok(), result.value());
}

}  // namespace blockrep
