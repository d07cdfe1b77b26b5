// Pieces both daemons' command lines and config files are parsed with, so that
// blockrep-source and blockrep-target read a duration, a log level, an address, a disk name
// and their TOML files alike. Every parser checks the whole text and returns an
// InvalidArgument Status that names it; none throws.
//
// The TOML helpers are templates over toml++'s node types so that this header does not pull
// toml++ (large, and configured by TOML_EXCEPTIONS before its first include) into every file
// that includes it: only a .cc file that reads a config file includes toml++, with
// `#define TOML_EXCEPTIONS 0` (errors are values here), and instantiates them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <set>
#include <string>

#include "core/log.h"
#include "core/status.h"

namespace blockrep {

// A config file is a few hundred bytes; anything far larger is a wrong path (a disk image).
inline constexpr size_t kMaxConfigBytes = 1u << 20;

// Reads the config file at path, refusing more than kMaxConfigBytes. Errors read
// "--config PATH: cannot open: REASON", "... cannot read: REASON" or "... larger than 1.0 MiB".
Result<std::string> ReadConfigFile(const std::string& path);

// "debug", "info", "warning" or "error". Error: "log level 'TEXT': expected debug, ...".
Result<LogLevel> ParseLogLevel(const std::string& text);

// The longest duration accepted: a day. Retry units and timeouts beyond it are typos (a
// missing unit read as seconds), and the bound keeps every product with a small count far
// from overflowing.
inline constexpr uint64_t kMaxDurationMs = 24ull * 60 * 60 * 1000;

// A duration in milliseconds: a whole number with a unit, "250ms", "30s", "1m", "2h", or a
// bare number meaning seconds ("60" is a minute). It must be over 0 and at most
// kMaxDurationMs. Errors name the text: "duration '5x': unknown unit 'x' (use ms, s, m or h)".
Result<uint64_t> ParseDurationMs(const std::string& text);

// Splits "HOST:PORT" or "[IPV6]:PORT" (host without the brackets; the port as decimal digits
// without leading zeros). False when a part is missing, an IPv6 address has no brackets, or
// the port is not 1 to 65535. Checks the form only: the host is not resolved.
bool ParseHostPort(const std::string& spec, std::string* host, std::string* port);
// The same as a Status: "address 'SPEC': expected HOST:PORT or [IPV6]:PORT, port 1 to 65535".
Status ValidateHostPort(const std::string& spec);

// Disk names become NBD export names, file names under the FUSE directory and directory names
// under both daemons' state directories: letters, digits, '.', '_', '-', not starting with '.'.
inline constexpr size_t kMaxDiskNameBytes = 64;
// Checks a disk name (see kMaxDiskNameBytes); the error names it.
Status ValidateDiskName(const std::string& name);

// --- Command lines (getopt_long) -----------------------------------------------------------

// Splits the value of --disk NAME=VALUE at its first '=' (names hold none), checks NAME, and
// that no earlier --disk gave it (seen_names collects the names). value_name is for the
// message: "--disk ARG: expected NAME=PATH".
Status ParseDiskFlag(const std::string& arg, const std::string& value_name,
                     std::set<std::string>* seen_names, std::string* name, std::string* value);

// For a flag whose value is a path (a file, a socket): sets *field and *given, or fails with
// "FLAG needs a path" when arg is empty.
Status TakePathFlag(const std::string& flag, const std::string& arg, std::string* field,
                    bool* given);

// For a flag whose value is HOST:PORT (ValidateHostPort): sets *field and *given, or fails
// with "FLAG needs HOST:PORT" or "FLAG: address 'ARG': expected ...".
Status TakeAddressFlag(const std::string& flag, const std::string& arg, std::string* field,
                       bool* given);

// For --log-level: sets *level and *given, or fails with "--log-level: log level 'ARG': ...".
Status TakeLogLevelFlag(const std::string& arg, LogLevel* level, bool* given);

// Lists the TLS flags whose value is empty ("--tls-key, --tls-ca"); empty when none is.
std::string MissingTlsFlags(const std::string& tls_cert, const std::string& tls_key,
                            const std::string& tls_ca);

// The error for what getopt_long returned when it was not an option of the program: ':' (a
// value missing) or anything else (an unknown option, or a value given to a flag that takes
// none). REQUIRES: getopt_long ran with an optstring starting with ':' and has just returned;
// this reads optind and optopt.
Status GetoptError(int c, char** argv);

// After getopt_long has returned -1: "unexpected argument 'ARG'" for the first argument that
// is not an option, if there is one. Reads optind.
Status CheckNoOperands(int argc, char** argv);

// --- TOML config files ---------------------------------------------------------------------
// Messages about a config file read "PATH: KEY: WHY"; KEY is dotted for a nested key
// ("disks.vm1.path").

Status ConfigKeyError(const std::string& path, const std::string& key, const std::string& why);
// "PATH: KEY: unknown key (known: KNOWN)"; known lists the keys, e.g. "path, source".
Status UnknownConfigKey(const std::string& path, const std::string& key, const std::string& known);

// "PATH:LINE:COLUMN: DESCRIPTION" for a toml::parse_error.
template <typename ParseError>
Status TomlSyntaxError(const std::string& path, const ParseError& e) {
  return Status::InvalidArgument(path + ":" + std::to_string(e.source().begin.line) + ":" +
                                 std::to_string(e.source().begin.column) + ": " +
                                 std::string(e.description()));
}

// The string value of node (a toml::node); else "PATH: KEY: expected a string".
template <typename Node>
Result<std::string> TomlString(const Node& node, const std::string& path, const std::string& key) {
  if (std::optional<std::string> v = node.template value_exact<std::string>()) return *v;
  return ConfigKeyError(path, key, "expected a string");
}

// The same, refusing an empty string ("must not be empty"): for paths and addresses, where
// leaving the key out is the way to say "none" or "the default".
template <typename Node>
Result<std::string> TomlNonEmptyString(const Node& node, const std::string& path,
                                       const std::string& key) {
  Result<std::string> s = TomlString(node, path, key);
  if (s.ok() && s->empty()) return ConfigKeyError(path, key, "must not be empty");
  return s;
}

// The integer value of node if it is exactly a TOML integer. value_exact because toml++'s
// value<int64_t>() also converts booleans (true reads as 1) and integral floats, which would
// let a wrong type pass silently.
template <typename Node>
std::optional<int64_t> TomlExactInteger(const Node& node) {
  return node.template value_exact<int64_t>();
}

// For a key whose value is a path or an address that a flag may already have set: a non-empty
// string, stored in *field unless flag_given (the flag wins).
template <typename Node>
Status MergeTomlString(const Node& node, const std::string& path, const std::string& key,
                       bool flag_given, std::string* field) {
  Result<std::string> s = TomlNonEmptyString(node, path, key);
  if (!s.ok()) return s.status();
  if (!flag_given) *field = *s;
  return Status::Ok();
}

// The same for a key whose value is HOST:PORT (ValidateHostPort).
template <typename Node>
Status MergeTomlAddress(const Node& node, const std::string& path, const std::string& key,
                        bool flag_given, std::string* field) {
  Result<std::string> s = TomlNonEmptyString(node, path, key);
  if (!s.ok()) return s.status();
  Status address_ok = ValidateHostPort(*s);
  if (!address_ok.ok()) return ConfigKeyError(path, key, address_ok.message());
  if (!flag_given) *field = *s;
  return Status::Ok();
}

// The same for a log level (ParseLogLevel).
template <typename Node>
Status MergeTomlLogLevel(const Node& node, const std::string& path, const std::string& key,
                         bool flag_given, LogLevel* field) {
  Result<std::string> s = TomlString(node, path, key);
  if (!s.ok()) return s.status();
  Result<LogLevel> level = ParseLogLevel(*s);
  if (!level.ok()) return ConfigKeyError(path, key, level.status().message());
  if (!flag_given) *field = level.value();
  return Status::Ok();
}

// An integer from min to max; else "PATH: KEY: expected a whole number from MIN to MAX".
template <typename Node>
Result<int64_t> TomlIntegerInRange(const Node& node, const std::string& path,
                                   const std::string& key, int64_t min, int64_t max) {
  std::optional<int64_t> n = TomlExactInteger(node);
  if (!n || *n < min || *n > max) {
    return ConfigKeyError(
        path, key,
        "expected a whole number from " + std::to_string(min) + " to " + std::to_string(max));
  }
  return *n;
}

}  // namespace blockrep
