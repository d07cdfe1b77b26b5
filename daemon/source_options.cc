#include "daemon/source_options.h"

#include <getopt.h>

#include <cstdlib>
#include <set>

#include "daemon/source_config.h"

namespace blockrep {

const char* SourceUsage() {
  return R"(usage: blockrep-source --disk NAME=PATH [--disk NAME=PATH ...]
                       --nbd unix:SOCKET [--nbd tcp:HOST:PORT ...] [--fuse DIR] [options]

Serves each protected disk (a raw image file or a block device) as the NBD export NAME
and, with --fuse, as the file DIR/NAME. Every change is journaled under the state
directory before it is acknowledged.

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
    kDisk = 1000, kNbd, kFuse, kStateDir, kJournalMax, kConfig, kThreads, kLogLevel, kHelp,
    kVersion
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
        size_t eq = arg.find('=');
        if (eq == std::string::npos || eq == 0 || eq + 1 == arg.size()) {
          return Status::InvalidArgument("--disk " + arg + ": expected NAME=PATH");
        }
        DiskSpec d{arg.substr(0, eq), arg.substr(eq + 1), std::nullopt};
        Status name_ok = ValidateDiskName(d.name);
        if (!name_ok.ok()) return Status::InvalidArgument("--disk " + arg + ": " + name_ok.message());
        if (!names.insert(d.name).second) {
          return Status::InvalidArgument("--disk " + arg + ": disk name '" + d.name +
                                         "' is given twice");
        }
        o.disks.push_back(d);
        break;
      }
      case kNbd:
        if (arg.rfind("unix:", 0) != 0 && arg.rfind("tcp:", 0) != 0) {
          return Status::InvalidArgument("--nbd " + arg +
                                         ": expected unix:PATH or tcp:HOST:PORT");
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
        if (!size.ok()) return Status::InvalidArgument("--journal-max-bytes: " + size.status().message());
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
        char* end = nullptr;
        long n = std::strtol(arg.c_str(), &end, 10);
        if (arg.empty() || *end != '\0' || n < 1 || n > kMaxWorkers) {
          return Status::InvalidArgument("--threads " + arg + ": expected 1 to " +
                                         std::to_string(kMaxWorkers));
        }
        o.workers = static_cast<int>(n);
        given.workers = true;
        break;
      }
      case kLogLevel:
        if (arg == "debug") o.log_level = LogLevel::kDebug;
        else if (arg == "info") o.log_level = LogLevel::kInfo;
        else if (arg == "warning") o.log_level = LogLevel::kWarning;
        else if (arg == "error") o.log_level = LogLevel::kError;
        else return Status::InvalidArgument("--log-level " + arg +
                                            ": expected debug, info, warning or error");
        given.log_level = true;
        break;
      case kHelp:
        o.help = true;
        return o;
      case kVersion:
        o.version = true;
        return o;
      case ':':
        return Status::InvalidArgument(std::string("option ") + argv[optind - 1] +
                                       " needs a value");
      default: {
        // Unknown long options and flags given a value leave the whole word at optind - 1;
        // an unknown short option is only the character in optopt.
        std::string bad = (optopt != 0 && optopt < 128)
                              ? std::string("-") + static_cast<char>(optopt)
                              : std::string(argv[optind - 1]);
        return Status::InvalidArgument("unknown option " + bad);
      }
    }
  }
  if (optind < argc) {
    return Status::InvalidArgument(std::string("unexpected argument '") + argv[optind] + "'");
  }
  if (!o.config_path.empty()) {
    BLOCKREP_RETURN_IF_ERROR(MergeSourceConfig(o.config_path, given, &o));
  }
  if (o.disks.empty()) return Status::InvalidArgument("no --disk given (nor a disk in a config file)");
  if (o.nbd_listeners.empty() && o.fuse_dir.empty()) {
    return Status::InvalidArgument("no --nbd listener (or --fuse directory) given");
  }
  return o;
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

}  // namespace blockrep
