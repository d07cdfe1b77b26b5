#include "daemon/source_options.h"

#include <getopt.h>

#include <cstdlib>
#include <set>

namespace blockrep {

const char* SourceUsage() {
  return R"(usage: blockrep-source --disk NAME=PATH [--disk NAME=PATH ...]
                       --nbd unix:SOCKET [--nbd tcp:HOST:PORT ...] [options]

Serves each protected disk (a raw image file or a block device) as the NBD export NAME.

  --disk NAME=PATH     protect and serve PATH as export NAME (repeatable)
  --nbd SPEC           listen for NBD clients: unix:PATH (created mode 0600) or
                       tcp:HOST:PORT, e.g. tcp:127.0.0.1:10809 or tcp:[::1]:10809
                       (repeatable)
  --threads N          I/O worker threads (default: one per CPU, at most 8)
  --log-level LEVEL    debug, info, warning or error (default info)
  --help               this text
  --version            print the version

SIGTERM or SIGINT: stop accepting, finish and answer requests in flight, flush every
disk, exit 0.
)";
}

Result<SourceOptions> ParseSourceOptions(int argc, char** argv) {
  enum { kDisk = 1000, kNbd, kThreads, kLogLevel, kHelp, kVersion };
  static const option kLongOptions[] = {
      {"disk", required_argument, nullptr, kDisk},
      {"nbd", required_argument, nullptr, kNbd},
      {"threads", required_argument, nullptr, kThreads},
      {"log-level", required_argument, nullptr, kLogLevel},
      {"help", no_argument, nullptr, kHelp},
      {"version", no_argument, nullptr, kVersion},
      {nullptr, 0, nullptr, 0},
  };
  SourceOptions o;
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
        DiskSpec d{arg.substr(0, eq), arg.substr(eq + 1)};
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
      case kThreads: {
        char* end = nullptr;
        long n = std::strtol(arg.c_str(), &end, 10);
        if (arg.empty() || *end != '\0' || n < 1 || n > kMaxWorkers) {
          return Status::InvalidArgument("--threads " + arg + ": expected 1 to " +
                                         std::to_string(kMaxWorkers));
        }
        o.workers = static_cast<int>(n);
        break;
      }
      case kLogLevel:
        if (arg == "debug") o.log_level = LogLevel::kDebug;
        else if (arg == "info") o.log_level = LogLevel::kInfo;
        else if (arg == "warning") o.log_level = LogLevel::kWarning;
        else if (arg == "error") o.log_level = LogLevel::kError;
        else return Status::InvalidArgument("--log-level " + arg +
                                            ": expected debug, info, warning or error");
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
  if (o.disks.empty()) return Status::InvalidArgument("no --disk given");
  if (o.nbd_listeners.empty()) return Status::InvalidArgument("no --nbd listener given");
  return o;
}

}  // namespace blockrep
