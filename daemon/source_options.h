// SourceOptions: blockrep-source's command line and config file, parsed and checked before
// anything starts. Flags win over the config file (--config FILE, TOML; see
// daemon/source_config.h for its keys).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/byte_size.h"
#include "core/config_util.h"  // ValidateDiskName, kMaxDiskNameBytes
#include "core/log.h"
#include "core/retry_schedule.h"
#include "core/status.h"

namespace blockrep {

struct DiskSpec {
  std::string name;
  std::string path;
  // Journal size budget for this disk; unset: SourceOptions::journal_max, else the default.
  std::optional<ByteSize> journal_max;
};

// Where the state of every disk lives unless --state-dir or state_dir says otherwise; the
// systemd unit's StateDirectory=blockrep.
inline constexpr char kDefaultStateDir[] = "/var/lib/blockrep";
// Journal budget when none is configured: half the disk (past it, the disk switches to a
// dirty bitmap and needs a resync; the design brief's 50%).
inline constexpr ByteSize kDefaultJournalMax{0, 50};
// Smallest budget accepted in bytes: below it nearly every burst would overflow the journal.
inline constexpr uint64_t kMinJournalMaxBytes = 1u << 20;

struct SourceOptions {
  std::vector<DiskSpec> disks;
  std::vector<std::string> nbd_listeners;  // unix:PATH | tcp:HOST:PORT
  std::string fuse_dir;                    // empty: no FUSE front door
  std::string state_dir = kDefaultStateDir;
  std::optional<ByteSize> journal_max;  // default for every disk
  std::string config_path;              // empty: no config file
  int workers = 0;                      // 0: one per CPU, at most kMaxDefaultWorkers
  LogLevel log_level = LogLevel::kInfo;
  bool help = false;
  bool version = false;

  // Replication to blockrep-target (docs/formats/replication.md). Empty target: the disks
  // are served and journaled but not replicated.
  std::string target;    // HOST:PORT
  std::string tls_cert;  // PEM certificate of this source (its CN is its identity)
  std::string tls_key;   // PEM private key
  std::string tls_ca;    // PEM CA that the target's certificate must chain to
  uint64_t retry_unit_ms = kDefaultRetryUnitMs;  // from core/retry_schedule.h (1 minute)
  int compression_level = 1;                     // zstd level 1..19; 0 turns compression off
  uint64_t bandwidth_limit_bytes_per_s = 0;      // 0: no cap
  std::string control_path;                      // empty: STATE_DIR/control.sock

  // The journal budget of `disk`: its own, else the global one, else the default.
  ByteSize JournalMax(const DiskSpec& disk) const {
    return disk.journal_max.value_or(journal_max.value_or(kDefaultJournalMax));
  }
};

// Worker threads when --threads is not given: one per CPU, capped because each worker's
// ring, buffers and thread cost memory and a handful already saturate a NIC.
inline constexpr int kMaxDefaultWorkers = 8;
inline constexpr int kMaxWorkers = 64;
// zstd's highest regular level: the "ultra" levels above it (zstd --ultra) cost far more
// memory and CPU per compressor for little gain on a replication stream.
inline constexpr int kMaxCompressionLevel = 19;

// Parses argv, then the config file if --config names one; flags win. Then checks the
// settings that depend on each other: at least one disk, a front door, and with a target all
// three TLS files (none without one). Errors name the offending argument or the file and line.
Result<SourceOptions> ParseSourceOptions(int argc, char** argv);
const char* SourceUsage();

}  // namespace blockrep
