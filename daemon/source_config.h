// The blockrep-source config file (TOML), merged under the command line's flags.
//
//   state_dir = "/var/lib/blockrep"
//   nbd = ["unix:/run/blockrep/nbd.sock", "tcp:127.0.0.1:10809"]
//   fuse = "/run/blockrep/disks"
//   threads = 2
//   log_level = "info"
//   journal_max_bytes = "50%"          # default for every disk: bytes, "8G" or "N%"
//   control = "/run/blockrep/control.sock"   # default STATE_DIR/control.sock
//
//   # Replication (docs/formats/replication.md); without target, none.
//   target = "backup.example:7420"     # HOST:PORT or [IPV6]:PORT
//   tls_cert = "/etc/blockrep/source.crt"   # required with target, like tls_key and tls_ca
//   tls_key = "/etc/blockrep/source.key"
//   tls_ca = "/etc/blockrep/ca.crt"
//   retry_unit = "1m"                  # "250ms", "30s", "1m", "2h"; a bare number is seconds
//   compression_level = 1              # zstd 1..19; 0: off
//   bandwidth_limit = "100M"           # bytes per second ("100M" or an integer); 0: no cap
//
//   [disks.vm1]
//   path = "/var/lib/images/vm1.img"
//   journal_max_bytes = "8G"           # this disk only
//
// Every key is optional. A flag given on the command line wins over its key; --nbd flags
// replace the nbd list; a --disk NAME=PATH replaces the config's disk of that NAME. Unknown
// keys are errors (a typo must not silently drop a setting). Settings that depend on each
// other (target and the TLS files) are checked by ParseSourceOptions after the merge.
#pragma once

#include <string>

#include "core/status.h"
#include "daemon/source_options.h"

namespace blockrep {

// Which scalar settings the command line set (so the file does not override them).
struct SourceFlagsGiven {
  bool fuse_dir = false;
  bool state_dir = false;
  bool workers = false;
  bool log_level = false;
  bool target = false;
  bool tls_cert = false;
  bool tls_key = false;
  bool tls_ca = false;
  bool retry_unit = false;
  bool compression_level = false;
  bool bandwidth_limit = false;
  bool control_path = false;
};

// Reads the TOML file at path and merges it into *o. Errors name the file, and the line and
// column or the key.
Status MergeSourceConfig(const std::string& path, const SourceFlagsGiven& given, SourceOptions* o);

// The same from text (path only names it in messages); for tests.
Status MergeSourceConfigText(const std::string& text, const std::string& path,
                             const SourceFlagsGiven& given, SourceOptions* o);

}  // namespace blockrep
