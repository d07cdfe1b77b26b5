// Byte sizes as operators write them on command lines and in config files: "1073741824",
// "512K", "64M", "2G", "1T" (binary units, an optional trailing "iB" or "B": "64MiB"), and,
// where a fraction of a disk makes sense, "50%".
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"

namespace blockrep {

struct ByteSize {
  uint64_t bytes = 0;     // when percent == 0
  uint32_t percent = 0;   // 1..100 when given as "N%"

  // The size for a disk of disk_bytes.
  uint64_t Resolve(uint64_t disk_bytes) const {
    return percent != 0 ? disk_bytes / 100 * percent + disk_bytes % 100 * percent / 100 : bytes;
  }
};

// Parses TEXT. allow_percent: accept "N%" (1 to 100). Errors name the text.
Result<ByteSize> ParseByteSize(const std::string& text, bool allow_percent);

// "64 MiB", "1.5 GiB", "512 bytes": for messages and tables.
std::string FormatBytes(uint64_t bytes);

}  // namespace blockrep
