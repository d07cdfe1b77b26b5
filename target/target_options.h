// TargetOptions: blockrep-target's command line and config file, parsed and checked before
// anything starts. Flags win over the config file (--config FILE, TOML):
//
//   listen = "0.0.0.0:7420"            # HOST:PORT or [IPV6]:PORT
//   state_dir = "/var/lib/blockrep-target"
//   tls_cert = "/etc/blockrep/target.crt"
//   tls_key = "/etc/blockrep/target.key"
//   tls_ca = "/etc/blockrep/ca.crt"    # every source's certificate must chain to it
//   control = "/run/blockrep-target/control.sock"   # default STATE_DIR/control.sock
//   log_level = "info"
//
//   [disks.vm1]
//   source = "site-a"                  # the CN of the only source that may send vm1
//   path = "/dev/vg0/vm1-replica"      # optional; default STATE_DIR/replicas/vm1/replica.img
//
// A scalar flag wins over its key; a --disk NAME=IDENTITY replaces the config's disk of that
// NAME entirely (its path too). Unknown keys are errors naming the known ones (a typo must not
// silently drop a setting).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "core/config_util.h"  // ValidateDiskName, kMaxDiskNameBytes
#include "core/log.h"
#include "core/status.h"

namespace blockrep {

struct TargetDiskSpec {
  std::string name;             // a disk name (ValidateDiskName), as the source calls it
  std::string source_identity;  // the certificate CN of the only source allowed to send it
  std::string path;             // replica image path; empty: STATE_DIR/replicas/NAME/replica.img
};

// Where replicas live unless --state-dir or state_dir says otherwise (beside the source's
// /var/lib/blockrep, so that one machine can run both daemons).
inline constexpr char kDefaultTargetStateDir[] = "/var/lib/blockrep-target";

// An identity is a certificate's CN: X.509 bounds it at 64 characters (RFC 5280,
// ub-common-name), at most 4 bytes each in UTF-8. It must hold no control characters: it goes
// into logs and replica.json.
inline constexpr size_t kMaxIdentityBytes = 64 * 4;

struct TargetOptions {
  std::string listen;  // HOST:PORT, required
  std::string state_dir = kDefaultTargetStateDir;
  std::string tls_cert, tls_key, tls_ca;  // all required
  std::vector<TargetDiskSpec> disks;      // at least one
  std::string control_path;               // empty: STATE_DIR/control.sock
  LogLevel log_level = LogLevel::kInfo;
  std::string config_path;  // empty: no config file
  bool help = false;
  bool version = false;
};

// Parses argv, then the config file if --config names one; flags win. Then checks that
// --listen, the three TLS files and at least one disk are given, and that no two disks name
// the same image path. Errors name the offending argument, or the file and the line or key.
Result<TargetOptions> ParseTargetOptions(int argc, char** argv);
const char* TargetUsage();

}  // namespace blockrep
