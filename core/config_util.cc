#include "core/config_util.h"

#include <fcntl.h>
#include <getopt.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "core/byte_size.h"
#include "core/unique_fd.h"

namespace blockrep {

Result<std::string> ReadConfigFile(const std::string& path) {
  // POSIX calls rather than std::ifstream so the message carries the reason (errno).
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    return Status::InvalidArgument("--config " + path + ": cannot open: " + std::strerror(errno));
  }
  // One byte over the limit tells a file of exactly kMaxConfigBytes from a larger one.
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
  if (got > kMaxConfigBytes) {
    return Status::InvalidArgument("--config " + path + ": larger than " +
                                   FormatBytes(kMaxConfigBytes));
  }
  text.resize(got);
  return text;
}

Result<LogLevel> ParseLogLevel(const std::string& text) {
  if (text == "debug") return LogLevel::kDebug;
  if (text == "info") return LogLevel::kInfo;
  if (text == "warning") return LogLevel::kWarning;
  if (text == "error") return LogLevel::kError;
  return Status::InvalidArgument("log level '" + text +
                                 "': expected debug, info, warning or error");
}

Result<uint64_t> ParseDurationMs(const std::string& text) {
  auto bad = [&](const std::string& why) {
    return Status::InvalidArgument("duration '" + text + "': " + why);
  };
  size_t i = 0;
  uint64_t n = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
    // Anything past kMaxDurationMs is refused below; stopping the sum there keeps it exact.
    if (n <= kMaxDurationMs) n = n * 10 + static_cast<uint64_t>(text[i] - '0');
    ++i;
  }
  if (i == 0) return bad("expected a whole number with a unit, e.g. 250ms, 30s, 1m or 2h");
  const std::string unit = text.substr(i);
  uint64_t unit_ms;
  if (unit == "ms") {
    unit_ms = 1;
  } else if (unit == "s" || unit.empty()) {
    unit_ms = 1000;  // a bare number is seconds
  } else if (unit == "m") {
    unit_ms = 60 * 1000;
  } else if (unit == "h") {
    unit_ms = 60 * 60 * 1000;
  } else {
    return bad("unknown unit '" + unit + "' (use ms, s, m or h)");
  }
  if (n == 0) return bad("must be more than 0");
  if (n > kMaxDurationMs / unit_ms) return bad("at most 24h");
  return n * unit_ms;
}

bool ParseHostPort(const std::string& spec, std::string* host, std::string* port) {
  std::string h;
  size_t port_start;
  if (!spec.empty() && spec[0] == '[') {
    const size_t close = spec.find(']');
    if (close == std::string::npos || close + 1 >= spec.size() || spec[close + 1] != ':') {
      return false;
    }
    h = spec.substr(1, close - 1);
    port_start = close + 2;
  } else {
    const size_t colon = spec.find(':');
    // A second colon is an IPv6 address without brackets: where its port starts is a guess.
    if (colon == std::string::npos || spec.find(':', colon + 1) != std::string::npos) {
      return false;
    }
    h = spec.substr(0, colon);
    port_start = colon + 1;
  }
  if (h.empty() || h.find_first_of("[] \t") != std::string::npos) return false;
  const std::string p = spec.substr(port_start);
  // Five digits hold 65535; more cannot be a port (and would overflow the sum below).
  if (p.empty() || p.size() > 5) return false;
  unsigned value = 0;
  for (char c : p) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  if (value < 1 || value > 65535) return false;
  *host = std::move(h);
  *port = std::to_string(value);
  return true;
}

Status ValidateHostPort(const std::string& spec) {
  std::string host, port;
  if (ParseHostPort(spec, &host, &port)) return Status::Ok();
  return Status::InvalidArgument("address '" + spec +
                                 "': expected HOST:PORT or [IPV6]:PORT, port 1 to 65535");
}

Status ValidateDiskName(const std::string& name) {
  if (name.empty() || name.size() > kMaxDiskNameBytes) {
    return Status::InvalidArgument("disk name must be 1 to " + std::to_string(kMaxDiskNameBytes) +
                                   " bytes");
  }
  if (name[0] == '.') return Status::InvalidArgument("disk name '" + name + "' starts with '.'");
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) {
      return Status::InvalidArgument("disk name '" + name +
                                     "' may hold only letters, digits, '.', '_' and '-'");
    }
  }
  return Status::Ok();
}

Status ParseDiskFlag(const std::string& arg, const std::string& value_name,
                     std::set<std::string>* seen_names, std::string* name, std::string* value) {
  const size_t eq = arg.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == arg.size()) {
    return Status::InvalidArgument("--disk " + arg + ": expected NAME=" + value_name);
  }
  std::string n = arg.substr(0, eq);
  Status name_ok = ValidateDiskName(n);
  if (!name_ok.ok()) return Status::InvalidArgument("--disk " + arg + ": " + name_ok.message());
  if (!seen_names->insert(n).second) {
    return Status::InvalidArgument("--disk " + arg + ": disk name '" + n + "' is given twice");
  }
  *name = std::move(n);
  *value = arg.substr(eq + 1);
  return Status::Ok();
}

Status TakePathFlag(const std::string& flag, const std::string& arg, std::string* field,
                    bool* given) {
  if (arg.empty()) return Status::InvalidArgument(flag + " needs a path");
  *field = arg;
  *given = true;
  return Status::Ok();
}

Status TakeAddressFlag(const std::string& flag, const std::string& arg, std::string* field,
                       bool* given) {
  if (arg.empty()) return Status::InvalidArgument(flag + " needs HOST:PORT");
  Status address_ok = ValidateHostPort(arg);
  if (!address_ok.ok()) return Status::InvalidArgument(flag + ": " + address_ok.message());
  *field = arg;
  *given = true;
  return Status::Ok();
}

Status TakeLogLevelFlag(const std::string& arg, LogLevel* level, bool* given) {
  Result<LogLevel> parsed = ParseLogLevel(arg);
  if (!parsed.ok()) return Status::InvalidArgument("--log-level: " + parsed.status().message());
  *level = parsed.value();
  *given = true;
  return Status::Ok();
}

std::string MissingTlsFlags(const std::string& tls_cert, const std::string& tls_key,
                            const std::string& tls_ca) {
  std::string missing;
  for (const auto& [flag, value] :
       {std::pair<const char*, const std::string*>{"--tls-cert", &tls_cert},
        {"--tls-key", &tls_key},
        {"--tls-ca", &tls_ca}}) {
    if (value->empty()) missing += (missing.empty() ? "" : ", ") + std::string(flag);
  }
  return missing;
}

Status GetoptError(int c, char** argv) {
  if (c == ':') {
    return Status::InvalidArgument(std::string("option ") + argv[optind - 1] + " needs a value");
  }
  // Unknown long options and flags given a value leave the whole word at optind - 1; an
  // unknown short option is only the character in optopt.
  const std::string bad = (optopt != 0 && optopt < 128)
                              ? std::string("-") + static_cast<char>(optopt)
                              : std::string(argv[optind - 1]);
  return Status::InvalidArgument("unknown option " + bad);
}

Status CheckNoOperands(int argc, char** argv) {
  if (optind >= argc) return Status::Ok();
  return Status::InvalidArgument(std::string("unexpected argument '") + argv[optind] + "'");
}

Status ConfigKeyError(const std::string& path, const std::string& key, const std::string& why) {
  return Status::InvalidArgument(path + ": " + key + ": " + why);
}

Status UnknownConfigKey(const std::string& path, const std::string& key, const std::string& known) {
  return ConfigKeyError(path, key, "unknown key (known: " + known + ")");
}

}  // namespace blockrep
