#include "daemon/source_options.h"

#include <getopt.h>

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include "daemon/source_config.h"

namespace blockrep {
namespace {

// A whole number from min (>= 0) to max, digits only: no sign, space or trailing text.
std::optional<int> ParseIntInRange(const std::string& text, int min, int max) {
  if (text.empty()) return std::nullopt;
  int64_t n = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + (c - '0');
    if (n > max) return std::nullopt;  // also stops long texts before they overflow
  }
  if (n < min) return std::nullopt;
  return static_cast<int>(n);
}

// Checks target against the TLS files once flags and file are merged: mutual TLS needs all
// three, and TLS files without a target are a mistake (a missing target line), not a no-op.
Status CheckReplication(const SourceOptions& o) {
  if (o.target.empty()) {
    for (const auto& [flag, value] :
         {std::pair<const char*, const std::string*>{"--tls-cert", &o.tls_cert},
          {"--tls-key", &o.tls_key},
          {"--tls-ca", &o.tls_ca}}) {
      if (!value->empty()) {
        return Status::InvalidArgument(std::string(flag) + " given without --target");
      }
    }
    return Status::Ok();
  }
  const std::string missing = MissingTlsFlags(o.tls_cert, o.tls_key, o.tls_ca);
  if (!missing.empty()) {
    return Status::InvalidArgument(
        "--target needs --tls-cert, --tls-key and --tls-ca (mutual TLS): missing " + missing);
  }
  return Status::Ok();
}

}  // namespace

const char* SourceUsage() {
  return R"(usage: blockrep-source --disk NAME=PATH [--disk NAME=PATH ...]
                       --nbd unix:SOCKET [--nbd tcp:HOST:PORT ...] [--fuse DIR]
                       [--target HOST:PORT --tls-cert FILE --tls-key FILE --tls-ca FILE]
                       [options]

Serves each protected disk (a raw image file or a block device) as the NBD export NAME
and, with --fuse, as the file DIR/NAME. Every change is journaled under the state
directory before it is acknowledged and, with --target, replicated to blockrep-target.

Disks and clients:
  --disk NAME=PATH     protect and serve PATH as export NAME (repeatable); NAME is
                       letters, digits, '.', '_', '-' (at most 64, no leading '.')
  --nbd SPEC           listen for NBD clients: unix:PATH (created mode 0600) or
                       tcp:HOST:PORT, e.g. tcp:127.0.0.1:10809 or tcp:[::1]:10809
                       (repeatable)
  --fuse DIR           also serve every disk as the regular file DIR/NAME (FUSE);
                       loop-mount it, e.g. losetup --find --show DIR/NAME
  --state-dir DIR      journals and per-disk state (default /var/lib/blockrep)
  --journal-max-bytes SIZE
                       journal budget per disk, e.g. 8G or 50% (default 50% of the
                       disk); past it the disk tracks changes in a dirty bitmap and
                       needs a resync

Replication (TLS 1.3, a certificate on each side):
  --target HOST:PORT   replicate every disk to the blockrep-target listening there,
                       e.g. backup.example:7420 or [2001:db8::2]:7420; without it the
                       disks are served and journaled but not replicated
  --tls-cert FILE      PEM certificate of this source; its CN is the identity the
                       target checks each disk against (required with --target)
  --tls-key FILE       PEM private key of that certificate (required with --target)
  --tls-ca FILE        PEM CA certificate the target's certificate must chain to
                       (required with --target)
  --retry-unit DURATION
                       unit of the waits before retrying after a transient (network
                       or disk) error: 1, 2, 4, 8, 10, then every 30 units; e.g.
                       200ms, 30s, 1m or 2h, a bare number being seconds (default 1m)
  --compression-level N
                       zstd level, 1 (fastest) to 19 (smallest); 0 sends data
                       uncompressed (default 1)
  --bandwidth-limit SIZE
                       send at most SIZE bytes per second, e.g. 100M for 100 MiB/s
                       (default 0: no cap)

General:
  --control PATH       control socket for the blockrep CLI (default
                       STATE_DIR/control.sock)
  --config FILE        TOML config file (keys in the README); flags win over it
  --threads N          I/O worker threads (default: one per CPU, at most 8)
  --log-level LEVEL    debug, info, warning or error (default info)
  --help               this text
  --version            print the version

SIGTERM or SIGINT: stop accepting, finish and answer requests in flight, flush every
disk, exit 0.
)";
}

Result<SourceOptions> ParseSourceOptions(int argc, char** argv) {
  enum {
    kDisk = 1000,
    kNbd,
    kFuse,
    kStateDir,
    kJournalMax,
    kConfig,
    kThreads,
    kLogLevel,
    kHelp,
    kVersion,
    kTarget,
    kTlsCert,
    kTlsKey,
    kTlsCa,
    kRetryUnit,
    kCompressionLevel,
    kBandwidthLimit,
    kControl
  };
  static const option kLongOptions[] = {
      {"disk", required_argument, nullptr, kDisk},
      {"nbd", required_argument, nullptr, kNbd},
      {"fuse", required_argument, nullptr, kFuse},
      {"state-dir", required_argument, nullptr, kStateDir},
      {"journal-max-bytes", required_argument, nullptr, kJournalMax},
      {"config", required_argument, nullptr, kConfig},
      {"threads", required_argument, nullptr, kThreads},
      {"log-level", required_argument, nullptr, kLogLevel},
      {"help", no_argument, nullptr, kHelp},
      {"version", no_argument, nullptr, kVersion},
      {"target", required_argument, nullptr, kTarget},
      {"tls-cert", required_argument, nullptr, kTlsCert},
      {"tls-key", required_argument, nullptr, kTlsKey},
      {"tls-ca", required_argument, nullptr, kTlsCa},
      {"retry-unit", required_argument, nullptr, kRetryUnit},
      {"compression-level", required_argument, nullptr, kCompressionLevel},
      {"bandwidth-limit", required_argument, nullptr, kBandwidthLimit},
      {"control", required_argument, nullptr, kControl},
      {nullptr, 0, nullptr, 0},
  };
  SourceOptions o;
  SourceFlagsGiven given;
  std::set<std::string> names;
  optind = 0;  // 0, not 1: also resets glibc's position inside a previous argv
  opterr = 0;
  while (true) {
    // The leading ':' makes a missing value ':' and an unknown option '?'.
    int c = getopt_long(argc, argv, ":", kLongOptions, nullptr);
    if (c == -1) break;
    std::string arg = optarg ? optarg : "";
    switch (c) {
      case kDisk: {
        DiskSpec d{"", "", std::nullopt};
        BLOCKREP_RETURN_IF_ERROR(ParseDiskFlag(arg, "PATH", &names, &d.name, &d.path));
        o.disks.push_back(d);
        break;
      }
      case kNbd:
        if (arg.rfind("unix:", 0) != 0 && arg.rfind("tcp:", 0) != 0) {
          return Status::InvalidArgument("--nbd " + arg + ": expected unix:PATH or tcp:HOST:PORT");
        }
        o.nbd_listeners.push_back(arg);
        break;
      case kFuse:
        if (arg.empty()) return Status::InvalidArgument("--fuse needs a directory");
        o.fuse_dir = arg;
        given.fuse_dir = true;
        break;
      case kStateDir:
        if (arg.empty()) return Status::InvalidArgument("--state-dir needs a directory");
        o.state_dir = arg;
        given.state_dir = true;
        break;
      case kJournalMax: {
        auto size = ParseByteSize(arg, /*allow_percent=*/true);
        if (!size.ok()) {
          return Status::InvalidArgument("--journal-max-bytes: " + size.status().message());
        }
        if (size->percent == 0 && size->bytes < kMinJournalMaxBytes) {
          return Status::InvalidArgument("--journal-max-bytes " + arg + ": at least " +
                                         FormatBytes(kMinJournalMaxBytes));
        }
        o.journal_max = *size;
        break;
      }
      case kConfig:
        if (arg.empty()) return Status::InvalidArgument("--config needs a file");
        o.config_path = arg;
        break;
      case kThreads: {
        std::optional<int> n = ParseIntInRange(arg, 1, kMaxWorkers);
        if (!n) {
          return Status::InvalidArgument("--threads " + arg + ": expected 1 to " +
                                         std::to_string(kMaxWorkers));
        }
        o.workers = *n;
        given.workers = true;
        break;
      }
      case kLogLevel:
        BLOCKREP_RETURN_IF_ERROR(TakeLogLevelFlag(arg, &o.log_level, &given.log_level));
        break;
      case kTarget:
        BLOCKREP_RETURN_IF_ERROR(TakeAddressFlag("--target", arg, &o.target, &given.target));
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
      case kRetryUnit: {
        auto ms = ParseDurationMs(arg);
        if (!ms.ok()) return Status::InvalidArgument("--retry-unit: " + ms.status().message());
        o.retry_unit_ms = *ms;
        given.retry_unit = true;
        break;
      }
      case kCompressionLevel: {
        std::optional<int> level = ParseIntInRange(arg, 0, kMaxCompressionLevel);
        if (!level) {
          return Status::InvalidArgument("--compression-level " + arg + ": expected 0 (off) to " +
                                         std::to_string(kMaxCompressionLevel));
        }
        o.compression_level = *level;
        given.compression_level = true;
        break;
      }
      case kBandwidthLimit: {
        auto size = ParseByteSize(arg, /*allow_percent=*/false);
        if (!size.ok()) {
          return Status::InvalidArgument("--bandwidth-limit: " + size.status().message());
        }
        o.bandwidth_limit_bytes_per_s = size->bytes;
        given.bandwidth_limit = true;
        break;
      }
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
    BLOCKREP_RETURN_IF_ERROR(MergeSourceConfig(o.config_path, given, &o));
  }
  if (o.disks.empty()) {
    return Status::InvalidArgument("no --disk given (nor a disk in a config file)");
  }
  if (o.nbd_listeners.empty() && o.fuse_dir.empty()) {
    return Status::InvalidArgument("no --nbd listener (or --fuse directory) given");
  }
  BLOCKREP_RETURN_IF_ERROR(CheckReplication(o));
  return o;
}

}  // namespace blockrep
