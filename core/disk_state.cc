#include "core/disk_state.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <nlohmann/json.hpp>

#include "core/durable_file.h"
#include "core/unique_fd.h"

namespace blockrep {
namespace {

// state.json is a few hundred bytes; refuse to read anything much larger.
constexpr size_t kMaxStateBytes = 64u << 10;
constexpr char kFormat[] = "blockrep-disk-state";

}  // namespace

const char* DiskModeName(DiskMode mode) {
  return mode == DiskMode::kJournaling ? "journaling" : "bitmap";
}

std::string NowRfc3339() {
  time_t now = ::time(nullptr);
  tm utc;
  gmtime_r(&now, &utc);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &utc);
  return buf;
}

std::string DiskState::ToJson() const {
  nlohmann::ordered_json j;
  j["format"] = kFormat;
  j["version"] = kVersion;
  j["disk"] = disk;
  j["path"] = path;
  j["disk_bytes"] = disk_bytes;
  j["mode"] = DiskModeName(mode);
  j["resync_required"] = resync_required();
  j["reason"] = reason;
  j["error"] = error;
  j["since"] = since;
  j["next_seq"] = next_seq;
  j["clean_shutdown"] = clean_shutdown;
  j["resyncing"] = resyncing;
  j["disk_id"] = disk_id;
  j["generation"] = generation;
  // Names and paths come from the command line and the file system, where any bytes go; a
  // strict dump() throws on one that is not UTF-8. Such bytes are written as U+FFFD instead.
  return j.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

Result<DiskState> DiskState::FromJson(const std::string& text, const std::string& where) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return Status::Corruption(where + ": not a JSON object");
  }
  auto bad = [&](const std::string& key, const std::string& why) {
    return Status::Corruption(where + ": " + key + ": " + why);
  };
  // Types are checked before values are read: nlohmann's value()/get() throw on a type
  // mismatch, and get<int>() would wrap a version of 2^32 + 1 to 1.
  if (!j.contains("format") || !j["format"].is_string() ||
      j["format"].get<std::string>() != kFormat) {
    return bad("format", "expected \"" + std::string(kFormat) + "\"");
  }
  if (!j.contains("version") || !j["version"].is_number_integer()) {
    return bad("version", "missing or not a whole number");
  }
  if (!j["version"].is_number_unsigned() || j["version"].get<uint64_t>() != kVersion) {
    return bad("version", j["version"].dump() + " is not supported (this build reads " +
                              std::to_string(kVersion) + ")");
  }
  DiskState s;
  auto get_string = [&](const char* key, std::string* out) -> Status {
    if (!j.contains(key) || !j[key].is_string()) return bad(key, "missing or not a string");
    *out = j[key].get<std::string>();
    return Status::Ok();
  };
  auto get_u64 = [&](const char* key, uint64_t* out) -> Status {
    if (!j.contains(key) || !j[key].is_number_unsigned()) {
      return bad(key, "missing or not a whole number");
    }
    *out = j[key].get<uint64_t>();
    return Status::Ok();
  };
  std::string mode;
  BLOCKREP_RETURN_IF_ERROR(get_string("disk", &s.disk));
  BLOCKREP_RETURN_IF_ERROR(get_string("path", &s.path));
  BLOCKREP_RETURN_IF_ERROR(get_u64("disk_bytes", &s.disk_bytes));
  BLOCKREP_RETURN_IF_ERROR(get_string("mode", &mode));
  BLOCKREP_RETURN_IF_ERROR(get_string("reason", &s.reason));
  BLOCKREP_RETURN_IF_ERROR(get_string("error", &s.error));
  BLOCKREP_RETURN_IF_ERROR(get_string("since", &s.since));
  BLOCKREP_RETURN_IF_ERROR(get_u64("next_seq", &s.next_seq));
  if (mode == "journaling") s.mode = DiskMode::kJournaling;
  else if (mode == "bitmap") s.mode = DiskMode::kBitmap;
  else return bad("mode", "'" + mode + "' (expected journaling or bitmap)");
  if (s.next_seq == 0) return bad("next_seq", "must be at least 1");
  if (!j.contains("clean_shutdown") || !j["clean_shutdown"].is_boolean()) {
    return bad("clean_shutdown", "missing or not true/false");
  }
  s.clean_shutdown = j["clean_shutdown"].get<bool>();
  // Keys added with replication: optional, so files from before it still load.
  if (j.contains("resyncing")) {
    if (!j["resyncing"].is_boolean()) return bad("resyncing", "not true/false");
    s.resyncing = j["resyncing"].get<bool>();
  }
  if (j.contains("disk_id")) {
    BLOCKREP_RETURN_IF_ERROR(get_string("disk_id", &s.disk_id));
    const bool hex = s.disk_id.size() == 32 &&
                     s.disk_id.find_first_not_of("0123456789abcdef") == std::string::npos;
    if (!s.disk_id.empty() && !hex) return bad("disk_id", "expected 32 lowercase hex digits");
  }
  if (j.contains("generation")) {
    BLOCKREP_RETURN_IF_ERROR(get_u64("generation", &s.generation));
    if (s.generation == 0) return bad("generation", "must be at least 1");
  }
  return s;
}

Result<DiskState> DiskState::Load(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return Status::FromErrno(errno, "open " + path);
  std::string text(kMaxStateBytes + 1, '\0');
  size_t got = 0;
  while (got < text.size()) {
    ssize_t n = ::read(fd.get(), text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::FromErrno(errno, "read " + path);
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  if (got > kMaxStateBytes) return Status::Corruption(path + ": larger than 64 KiB");
  text.resize(got);
  return FromJson(text, path);
}

Status DiskState::Save(const std::string& path) const { return WriteFileDurably(path, ToJson()); }

}  // namespace blockrep
