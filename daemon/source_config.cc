#include "daemon/source_config.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <sstream>

#define TOML_EXCEPTIONS 0
#include <toml++/toml.h>

#include "core/unique_fd.h"

namespace blockrep {
namespace {

// A config file is a few hundred bytes; anything far larger is a wrong path.
constexpr size_t kMaxConfigBytes = 1u << 20;

Status KeyError(const std::string& path, const std::string& key, const std::string& why) {
  return Status::InvalidArgument(path + ": " + key + ": " + why);
}

Result<std::string> GetString(const toml::node& n, const std::string& path,
                              const std::string& key) {
  if (auto v = n.value_exact<std::string>()) return *v;
  return KeyError(path, key, "expected a string");
}

// Integers are read with value_exact: toml++'s value<int64_t>() also converts booleans
// (true reads as 1) and integral floats, which would let a wrong type pass silently.
Result<ByteSize> GetSize(const toml::node& n, const std::string& path, const std::string& key) {
  std::string text;
  if (auto i = n.value_exact<int64_t>()) {
    if (*i < 0) return KeyError(path, key, "must not be negative");
    text = std::to_string(*i);
  } else if (auto s = n.value_exact<std::string>()) {
    text = *s;
  } else {
    return KeyError(path, key, "expected a size (a number of bytes, \"8G\" or \"50%\")");
  }
  auto size = ParseByteSize(text, /*allow_percent=*/true);
  if (!size.ok()) return KeyError(path, key, size.status().message());
  if (size->percent == 0 && size->bytes < kMinJournalMaxBytes) {
    return KeyError(path, key, "at least " + FormatBytes(kMinJournalMaxBytes));
  }
  return *size;
}

Status MergeDisk(const std::string& name, const toml::node& node, const std::string& path,
                 SourceOptions* o) {
  const std::string where = "disks." + name;
  Status name_ok = ValidateDiskName(name);
  if (!name_ok.ok()) return KeyError(path, where, name_ok.message());
  const toml::table* t = node.as_table();
  if (t == nullptr) return KeyError(path, where, "expected a table ([disks." + name + "])");
  DiskSpec d{name, "", std::nullopt};
  for (const auto& [k, v] : *t) {
    const std::string key(k.str());
    if (key == "path") {
      auto s = GetString(v, path, where + ".path");
      if (!s.ok()) return s.status();
      d.path = *s;
    } else if (key == "journal_max_bytes") {
      auto size = GetSize(v, path, where + ".journal_max_bytes");
      if (!size.ok()) return size.status();
      d.journal_max = *size;
    } else {
      return KeyError(path, where + "." + key, "unknown key (known: path, journal_max_bytes)");
    }
  }
  if (d.path.empty()) return KeyError(path, where + ".path", "missing");
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
  if (!parsed) {
    const toml::parse_error& e = parsed.error();
    std::ostringstream msg;
    msg << path << ":" << e.source().begin.line << ":" << e.source().begin.column << ": "
        << e.description();
    return Status::InvalidArgument(msg.str());
  }
  const toml::table& root = parsed.table();
  for (const auto& [k, v] : root) {
    const std::string key(k.str());
    if (key == "state_dir") {
      auto s = GetString(v, path, key);
      if (!s.ok()) return s.status();
      if (s->empty()) return KeyError(path, key, "must not be empty");
      if (!given.state_dir) o->state_dir = *s;
    } else if (key == "fuse") {
      auto s = GetString(v, path, key);
      if (!s.ok()) return s.status();
      if (!given.fuse_dir) o->fuse_dir = *s;
    } else if (key == "nbd") {
      const toml::array* a = v.as_array();
      if (a == nullptr) return KeyError(path, key, "expected an array of strings");
      std::vector<std::string> specs;
      for (const toml::node& e : *a) {
        auto s = GetString(e, path, key);
        if (!s.ok()) return s.status();
        if (s->rfind("unix:", 0) != 0 && s->rfind("tcp:", 0) != 0) {
          return KeyError(path, key, "'" + *s + "': expected unix:PATH or tcp:HOST:PORT");
        }
        specs.push_back(*s);
      }
      if (o->nbd_listeners.empty()) o->nbd_listeners = specs;
    } else if (key == "threads") {
      auto n = v.value_exact<int64_t>();
      if (!n || *n < 1 || *n > kMaxWorkers) {
        return KeyError(path, key, "expected a number from 1 to " + std::to_string(kMaxWorkers));
      }
      if (!given.workers) o->workers = static_cast<int>(*n);
    } else if (key == "log_level") {
      auto s = GetString(v, path, key);
      if (!s.ok()) return s.status();
      LogLevel level;
      if (*s == "debug") level = LogLevel::kDebug;
      else if (*s == "info") level = LogLevel::kInfo;
      else if (*s == "warning") level = LogLevel::kWarning;
      else if (*s == "error") level = LogLevel::kError;
      else return KeyError(path, key, "expected debug, info, warning or error");
      if (!given.log_level) o->log_level = level;
    } else if (key == "journal_max_bytes") {
      auto size = GetSize(v, path, key);
      if (!size.ok()) return size.status();
      if (!o->journal_max) o->journal_max = *size;
    } else if (key == "disks") {
      const toml::table* disks = v.as_table();
      if (disks == nullptr) return KeyError(path, key, "expected tables [disks.NAME]");
      for (const auto& [name, node] : *disks) {
        BLOCKREP_RETURN_IF_ERROR(MergeDisk(std::string(name.str()), node, path, o));
      }
    } else {
      return KeyError(path, key,
                      "unknown key (known: state_dir, nbd, fuse, threads, log_level, "
                      "journal_max_bytes, disks)");
    }
  }
  return Status::Ok();
}

Status MergeSourceConfig(const std::string& path, const SourceFlagsGiven& given,
                         SourceOptions* o) {
  // POSIX calls rather than std::ifstream so the message carries the reason (errno).
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    return Status::InvalidArgument("--config " + path + ": cannot open: " + std::strerror(errno));
  }
  std::string text(kMaxConfigBytes + 1, '\0');
  size_t got = 0;
  while (got < text.size()) {
    const ssize_t n = ::read(fd.get(), text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return Status::InvalidArgument("--config " + path + ": cannot read: " + std::strerror(errno));
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  text.resize(got);
  if (text.size() > kMaxConfigBytes) {
    return Status::InvalidArgument("--config " + path + ": larger than " +
                                   FormatBytes(kMaxConfigBytes));
  }
  return MergeSourceConfigText(text, path, given, o);
}

}  // namespace blockrep
