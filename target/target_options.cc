#include "target/target_options.h"

#include <getopt.h>

#include <map>
#include <set>
#include <string>
#include <utility>

#define TOML_EXCEPTIONS 0
#include <toml++/toml.h>

namespace blockrep {
namespace {

constexpr char kKnownKeys[] =
    "listen, state_dir, tls_cert, tls_key, tls_ca, control, log_level, disks";
constexpr char kKnownDiskKeys[] = "source, path";

// Which scalar settings the command line set (so the file does not override them).
struct TargetFlagsGiven {
  bool listen = false;
  bool state_dir = false;
  bool tls_cert = false;
  bool tls_key = false;
  bool tls_ca = false;
  bool control_path = false;
  bool log_level = false;
};

// See kMaxIdentityBytes.
Status ValidateIdentity(const std::string& identity) {
  if (identity.empty() || identity.size() > kMaxIdentityBytes) {
    return Status::InvalidArgument("identity must be 1 to " + std::to_string(kMaxIdentityBytes) +
                                   " bytes");
  }
  for (unsigned char c : identity) {
    if (c < 0x20 || c == 0x7f) {
      return Status::InvalidArgument("identity '" + identity + "' holds a control character");
    }
  }
  return Status::Ok();
}

Status MergeDisk(const std::string& name, const toml::node& node, const std::string& path,
                 TargetOptions* o) {
  const std::string where = "disks." + name;
  Status name_ok = ValidateDiskName(name);
  if (!name_ok.ok()) return ConfigKeyError(path, where, name_ok.message());
  const toml::table* t = node.as_table();
  if (t == nullptr) return ConfigKeyError(path, where, "expected a table ([disks." + name + "])");
  TargetDiskSpec d{name, "", ""};
  bool has_source = false;
  for (const auto& [k, v] : *t) {
    const std::string key(k.str());
    if (key == "source") {
      auto s = TomlString(v, path, where + ".source");
      if (!s.ok()) return s.status();
      Status identity_ok = ValidateIdentity(*s);
      if (!identity_ok.ok()) return ConfigKeyError(path, where + ".source", identity_ok.message());
      d.source_identity = *s;
      has_source = true;
    } else if (key == "path") {
      auto s = TomlNonEmptyString(v, path, where + ".path");
      if (!s.ok()) return s.status();
      d.path = *s;
    } else {
      return UnknownConfigKey(path, where + "." + key, kKnownDiskKeys);
    }
  }
  if (!has_source) {
    return ConfigKeyError(path, where + ".source",
                          "missing (the certificate CN of the source that sends this disk)");
  }
  for (const TargetDiskSpec& existing : o->disks) {
    if (existing.name == name) return Status::Ok();  // --disk NAME=IDENTITY wins, path and all
  }
  o->disks.push_back(d);
  return Status::Ok();
}

Status MergeTargetConfigText(const std::string& text, const std::string& path,
                             const TargetFlagsGiven& given, TargetOptions* o) {
  toml::parse_result parsed = toml::parse(text, path);
  if (!parsed) return TomlSyntaxError(path, parsed.error());
  for (const auto& [k, v] : parsed.table()) {
    const std::string key(k.str());
    if (key == "listen") {
      BLOCKREP_RETURN_IF_ERROR(MergeTomlAddress(v, path, key, given.listen, &o->listen));
    } else if (key == "state_dir") {
      BLOCKREP_RETURN_IF_ERROR(MergeTomlString(v, path, key, given.state_dir, &o->state_dir));
    } else if (key == "tls_cert") {
      BLOCKREP_RETURN_IF_ERROR(MergeTomlString(v, path, key, given.tls_cert, &o->tls_cert));
    } else if (key == "tls_key") {
      BLOCKREP_RETURN_IF_ERROR(MergeTomlString(v, path, key, given.tls_key, &o->tls_key));
    } else if (key == "tls_ca") {
      BLOCKREP_RETURN_IF_ERROR(MergeTomlString(v, path, key, given.tls_ca, &o->tls_ca));
    } else if (key == "control") {
      BLOCKREP_RETURN_IF_ERROR(MergeTomlString(v, path, key, given.control_path, &o->control_path));
    } else if (key == "log_level") {
      BLOCKREP_RETURN_IF_ERROR(MergeTomlLogLevel(v, path, key, given.log_level, &o->log_level));
    } else if (key == "disks") {
      const toml::table* disks = v.as_table();
      if (disks == nullptr) return ConfigKeyError(path, key, "expected tables [disks.NAME]");
      for (const auto& [name, node] : *disks) {
        BLOCKREP_RETURN_IF_ERROR(MergeDisk(std::string(name.str()), node, path, o));
      }
    } else {
      return UnknownConfigKey(path, key, kKnownKeys);
    }
  }
  return Status::Ok();
}

// The checks that need flags and file merged.
Status CheckTargetOptions(const TargetOptions& o) {
  if (o.listen.empty()) {
    return Status::InvalidArgument("no --listen HOST:PORT given (nor listen in a config file)");
  }
  const std::string missing = MissingTlsFlags(o.tls_cert, o.tls_key, o.tls_ca);
  if (!missing.empty()) {
    return Status::InvalidArgument(
        "--tls-cert, --tls-key and --tls-ca are required (mutual TLS): missing " + missing);
  }
  if (o.disks.empty()) {
    return Status::InvalidArgument("no --disk NAME=IDENTITY given (nor a disk in a config file)");
  }
  // Two replicas written into one image would corrupt each other: each session locks only its
  // own replica directory.
  std::map<std::string, std::string> disk_of_path;
  for (const TargetDiskSpec& d : o.disks) {
    if (d.path.empty()) continue;
    auto [it, inserted] = disk_of_path.emplace(d.path, d.name);
    if (!inserted) {
      return Status::InvalidArgument("disks '" + it->second + "' and '" + d.name +
                                     "' have the same path " + d.path);
    }
  }
  return Status::Ok();
}

}  // namespace

const char* TargetUsage() {
  return R"(usage: blockrep-target --listen HOST:PORT --tls-cert FILE --tls-key FILE --tls-ca FILE
                       --disk NAME=IDENTITY [--disk NAME=IDENTITY ...] [options]

Receives protected disks from blockrep-source over TLS 1.3 (a certificate on each side)
and keeps a replica of each under the state directory.

The target accepts a disk only from the identity configured for it (--disk NAME=IDENTITY),
the CN of the certificate its source presents: any other source is refused, even one whose
certificate chains to the CA.

  --listen HOST:PORT   accept sources here, e.g. 0.0.0.0:7420 or [::]:7420
  --tls-cert FILE      PEM certificate of this target (required)
  --tls-key FILE       PEM private key of that certificate (required)
  --tls-ca FILE        PEM CA certificate every source's certificate must chain to
                       (required)
  --disk NAME=IDENTITY
                       receive disk NAME only from the source whose certificate CN is
                       IDENTITY (repeatable); NAME is letters, digits, '.', '_', '-'
                       (at most 64, no leading '.'); the replica image is
                       STATE_DIR/replicas/NAME/replica.img unless the config file
                       gives the disk a path
  --state-dir DIR      replicas and their journals (default /var/lib/blockrep-target)
  --control PATH       control socket for the blockrep CLI (default
                       STATE_DIR/control.sock)
  --config FILE        TOML config file: listen, state_dir, tls_cert, tls_key, tls_ca,
                       control, log_level, and a table [disks.NAME] per disk with
                       source = "IDENTITY" and optionally path = "FILE"; flags win
                       over it, and a --disk replaces the file's disk of that NAME
  --log-level LEVEL    debug, info, warning or error (default info)
  --help               this text
  --version            print the version
)";
}

Result<TargetOptions> ParseTargetOptions(int argc, char** argv) {
  enum {
    kListen = 1000,
    kStateDir,
    kTlsCert,
    kTlsKey,
    kTlsCa,
    kDisk,
    kControl,
    kConfig,
    kLogLevel,
    kHelp,
    kVersion
  };
  static const option kLongOptions[] = {
      {"listen", required_argument, nullptr, kListen},
      {"state-dir", required_argument, nullptr, kStateDir},
      {"tls-cert", required_argument, nullptr, kTlsCert},
      {"tls-key", required_argument, nullptr, kTlsKey},
      {"tls-ca", required_argument, nullptr, kTlsCa},
      {"disk", required_argument, nullptr, kDisk},
      {"control", required_argument, nullptr, kControl},
      {"config", required_argument, nullptr, kConfig},
      {"log-level", required_argument, nullptr, kLogLevel},
      {"help", no_argument, nullptr, kHelp},
      {"version", no_argument, nullptr, kVersion},
      {nullptr, 0, nullptr, 0},
  };
  TargetOptions o;
  TargetFlagsGiven given;
  std::set<std::string> names;
  optind = 0;  // 0, not 1: also resets glibc's position inside a previous argv
  opterr = 0;
  while (true) {
    // The leading ':' makes a missing value ':' and an unknown option '?'.
    const int c = getopt_long(argc, argv, ":", kLongOptions, nullptr);
    if (c == -1) break;
    const std::string arg = optarg ? optarg : "";
    switch (c) {
      case kListen:
        BLOCKREP_RETURN_IF_ERROR(TakeAddressFlag("--listen", arg, &o.listen, &given.listen));
        break;
      case kStateDir:
        if (arg.empty()) return Status::InvalidArgument("--state-dir needs a directory");
        o.state_dir = arg;
        given.state_dir = true;
        break;
      case kTlsCert:
        BLOCKREP_RETURN_IF_ERROR(TakePathFlag("--tls-cert", arg, &o.tls_cert, &given.tls_cert));
        break;
      case kTlsKey:
        BLOCKREP_RETURN_IF_ERROR(TakePathFlag("--tls-key", arg, &o.tls_key, &given.tls_key));
        break;
      case kTlsCa:
        BLOCKREP_RETURN_IF_ERROR(TakePathFlag("--tls-ca", arg, &o.tls_ca, &given.tls_ca));
        break;
      case kControl:
        BLOCKREP_RETURN_IF_ERROR(
            TakePathFlag("--control", arg, &o.control_path, &given.control_path));
        break;
      case kDisk: {
        TargetDiskSpec d;
        BLOCKREP_RETURN_IF_ERROR(
            ParseDiskFlag(arg, "IDENTITY", &names, &d.name, &d.source_identity));
        Status identity_ok = ValidateIdentity(d.source_identity);
        if (!identity_ok.ok()) {
          return Status::InvalidArgument("--disk " + arg + ": " + identity_ok.message());
        }
        o.disks.push_back(std::move(d));
        break;
      }
      case kConfig:
        if (arg.empty()) return Status::InvalidArgument("--config needs a file");
        o.config_path = arg;
        break;
      case kLogLevel:
        BLOCKREP_RETURN_IF_ERROR(TakeLogLevelFlag(arg, &o.log_level, &given.log_level));
        break;
      case kHelp:
        o.help = true;
        return o;
      case kVersion:
        o.version = true;
        return o;
      default:  // ':' or '?'
        return GetoptError(c, argv);
    }
  }
  BLOCKREP_RETURN_IF_ERROR(CheckNoOperands(argc, argv));
  if (!o.config_path.empty()) {
    Result<std::string> text = ReadConfigFile(o.config_path);
    if (!text.ok()) return text.status();
    BLOCKREP_RETURN_IF_ERROR(MergeTargetConfigText(*text, o.config_path, given, &o));
  }
  BLOCKREP_RETURN_IF_ERROR(CheckTargetOptions(o));
  return o;
}

}  // namespace blockrep
