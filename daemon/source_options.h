// SourceOptions: blockrep-source's command line, parsed and checked before anything starts.
#pragma once

#include <string>
#include <vector>

#include "core/log.h"
#include "core/status.h"

namespace blockrep {

struct DiskSpec {
  std::string name;
  std::string path;
};

struct SourceOptions {
  std::vector<DiskSpec> disks;
  std::vector<std::string> nbd_listeners;  // unix:PATH | tcp:HOST:PORT
  int workers = 0;                         // 0: one per CPU, at most kMaxDefaultWorkers
  LogLevel log_level = LogLevel::kInfo;
  bool help = false;
  bool version = false;
};

// Worker threads when --threads is not given: one per CPU, capped because each worker's
// ring, buffers and thread cost memory and a handful already saturate a NIC.
inline constexpr int kMaxDefaultWorkers = 8;
inline constexpr int kMaxWorkers = 64;

// Parses argv. Errors name the offending argument.
Result<SourceOptions> ParseSourceOptions(int argc, char** argv);
const char* SourceUsage();

}  // namespace blockrep
