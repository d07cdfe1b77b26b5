#include "daemon/source_config.h"

#include <string>
#include <vector>

#define TOML_EXCEPTIONS 0
#include <toml++/toml.h>

#include "core/config_util.h"

namespace blockrep {
namespace {

constexpr char kKnownKeys[] =
    "state_dir, nbd, fuse, threads, log_level, journal_max_bytes, disks, target, tls_cert, "
    "tls_key, tls_ca, retry_unit, compression_level, bandwidth_limit, control";

// A size as a non-negative TOML integer (bytes) or a string ParseByteSize reads ("8G", and
// "50%" where allow_percent).
Result<ByteSize> GetByteSize(const toml::node& n, const std::string& path, const std::string& key,
                             bool allow_percent) {
  std::string text;
  if (std::optional<int64_t> i = TomlExactInteger(n)) {
    if (*i < 0) return ConfigKeyError(path, key, "must not be negative");
    text = std::to_string(*i);
  } else if (auto s = n.value_exact<std::string>()) {
    text = *s;
  } else {
    return ConfigKeyError(path, key,
                          allow_percent ? "expected a size (a number of bytes, \"8G\" or \"50%\")"
                                        : "expected a size (a number of bytes or \"100M\")");
  }
  auto size = ParseByteSize(text, allow_percent);
  if (!size.ok()) return ConfigKeyError(path, key, size.status().message());
  return *size;
}

Result<ByteSize> GetJournalMax(const toml::node& n, const std::string& path,
                               const std::string& key) {
  auto size = GetByteSize(n, path, key, /*allow_percent=*/true);
  if (!size.ok()) return size.status();
  if (size->percent == 0 && size->bytes < kMinJournalMaxBytes) {
    return ConfigKeyError(path, key, "at least " + FormatBytes(kMinJournalMaxBytes));
  }
  return *size;
}

Status MergeDisk(const std::string& name, const toml::node& node, const std::string& path,
                 SourceOptions* o) {
  const std::string where = "disks." + name;
  Status name_ok = ValidateDiskName(name);
  if (!name_ok.ok()) return ConfigKeyError(path, where, name_ok.message());
  const toml::table* t = node.as_table();
  if (t == nullptr) return ConfigKeyError(path, where, "expected a table ([disks." + name + "])");
  DiskSpec d{name, "", std::nullopt};
  for (const auto& [k, v] : *t) {
    const std::string key(k.str());
    if (key == "path") {
      auto s = TomlString(v, path, where + ".path");
      if (!s.ok()) return s.status();
      d.path = *s;
    } else if (key == "journal_max_bytes") {
      auto size = GetJournalMax(v, path, where + ".journal_max_bytes");
      if (!size.ok()) return size.status();
      d.journal_max = *size;
    } else {
      return UnknownConfigKey(path, where + "." + key, "path, journal_max_bytes");
    }
  }
  if (d.path.empty()) return ConfigKeyError(path, where + ".path", "missing");
  for (const DiskSpec& existing : o->disks) {
    if (existing.name == name) return Status::Ok();  // --disk NAME=PATH wins
  }
  o->disks.push_back(d);
  return Status::Ok();
}

}  // namespace

Status MergeSourceConfigText(const std::string& text, const std::string& path,
                             const SourceFlagsGiven& given, SourceOptions* o) {
  toml::parse_result parsed = toml::parse(text, path);
  if (!parsed) return TomlSyntaxError(path, parsed.error());
  const toml::table& root = parsed.table();
  for (const auto& [k, v] : root) {
    const std::string key(k.str());
    if (key == "state_dir") {
      BLOCKREP_RETURN_IF_ERROR(MergeTomlString(v, path, key, given.state_dir, &o->state_dir));
    } else if (key == "fuse") {
      auto s = TomlString(v, path, key);
      if (!s.ok()) return s.status();
      if (!given.fuse_dir) o->fuse_dir = *s;
    } else if (key == "nbd") {
      const toml::array* a = v.as_array();
      if (a == nullptr) return ConfigKeyError(path, key, "expected an array of strings");
      std::vector<std::string> specs;
      for (const toml::node& e : *a) {
        auto s = TomlString(e, path, key);
        if (!s.ok()) return s.status();
        if (s->rfind("unix:", 0) != 0 && s->rfind("tcp:", 0) != 0) {
          return ConfigKeyError(path, key, "'" + *s + "': expected unix:PATH or tcp:HOST:PORT");
        }
        specs.push_back(*s);
      }
      if (o->nbd_listeners.empty()) o->nbd_listeners = specs;
    } else if (key == "threads") {
      auto n = TomlIntegerInRange(v, path, key, 1, kMaxWorkers);
      if (!n.ok()) return n.status();
      if (!given.workers) o->workers = static_cast<int>(*n);
    } else if (key == "log_level") {
      BLOCKREP_RETURN_IF_ERROR(MergeTomlLogLevel(v, path, key, given.log_level, &o->log_level));
    } else if (key == "journal_max_bytes") {
      auto size = GetJournalMax(v, path, key);
      if (!size.ok()) return size.status();
      if (!o->journal_max) o->journal_max = *size;
    } else if (key == "disks") {
      const toml::table* disks = v.as_table();
      if (disks == nullptr) return ConfigKeyError(path, key, "expected tables [disks.NAME]");
      for (const auto& [name, node] : *disks) {
        BLOCKREP_RETURN_IF_ERROR(MergeDisk(std::string(name.str()), node, path, o));
      }
    } else if (key == "target") {
      BLOCKREP_RETURN_IF_ERROR(MergeTomlAddress(v, path, key, given.target, &o->target));
    } else if (key == "tls_cert") {
      BLOCKREP_RETURN_IF_ERROR(MergeTomlString(v, path, key, given.tls_cert, &o->tls_cert));
    } else if (key == "tls_key") {
      BLOCKREP_RETURN_IF_ERROR(MergeTomlString(v, path, key, given.tls_key, &o->tls_key));
    } else if (key == "tls_ca") {
      BLOCKREP_RETURN_IF_ERROR(MergeTomlString(v, path, key, given.tls_ca, &o->tls_ca));
    } else if (key == "control") {
      BLOCKREP_RETURN_IF_ERROR(MergeTomlString(v, path, key, given.control_path, &o->control_path));
    } else if (key == "retry_unit") {
      // A string, so that the unit is written down: is `retry_unit = 60` seconds or ms?
      auto s = v.value_exact<std::string>();
      if (!s) {
        return ConfigKeyError(path, key, "expected a duration string, e.g. \"1m\" or \"200ms\"");
      }
      auto ms = ParseDurationMs(*s);
      if (!ms.ok()) return ConfigKeyError(path, key, ms.status().message());
      if (!given.retry_unit) o->retry_unit_ms = *ms;
    } else if (key == "compression_level") {
      auto n = TomlIntegerInRange(v, path, key, 0, kMaxCompressionLevel);
      if (!n.ok()) return n.status();
      if (!given.compression_level) o->compression_level = static_cast<int>(*n);
    } else if (key == "bandwidth_limit") {
      auto size = GetByteSize(v, path, key, /*allow_percent=*/false);
      if (!size.ok()) return size.status();
      if (!given.bandwidth_limit) o->bandwidth_limit_bytes_per_s = size->bytes;
    } else {
      return UnknownConfigKey(path, key, kKnownKeys);
    }
  }
  return Status::Ok();
}

Status MergeSourceConfig(const std::string& path, const SourceFlagsGiven& given, SourceOptions* o) {
  Result<std::string> text = ReadConfigFile(path);
  if (!text.ok()) return text.status();
  return MergeSourceConfigText(*text, path, given, o);
}

}  // namespace blockrep
