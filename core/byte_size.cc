#include "core/byte_size.h"

#include <cctype>
#include <cstdio>

namespace blockrep {

Result<ByteSize> ParseByteSize(const std::string& text, bool allow_percent) {
  auto bad = [&](const std::string& why) {
    return Status::InvalidArgument("size '" + text + "': " + why);
  };
  size_t i = 0;
  uint64_t n = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
    const uint64_t digit = static_cast<uint64_t>(text[i] - '0');
    if (n > (UINT64_MAX - digit) / 10) return bad("too large");
    n = n * 10 + digit;
    ++i;
  }
  if (i == 0) return bad("expected a number, e.g. 1073741824, 512M, 2G" +
                         std::string(allow_percent ? " or 50%" : ""));
  std::string unit = text.substr(i);
  ByteSize out;
  if (unit == "%") {
    if (!allow_percent) return bad("a percentage is not allowed here");
    if (n < 1 || n > 100) return bad("percentage must be 1 to 100");
    out.percent = static_cast<uint32_t>(n);
    return out;
  }
  int shift = 0;
  if (!unit.empty()) {
    switch (std::toupper(static_cast<unsigned char>(unit[0]))) {
      case 'B': shift = 0; break;
      case 'K': shift = 10; break;
      case 'M': shift = 20; break;
      case 'G': shift = 30; break;
      case 'T': shift = 40; break;
      default: return bad("unknown unit '" + unit + "' (use K, M, G or T)");
    }
    const std::string rest = unit.substr(1);
    if (!(rest.empty() || (shift > 0 && (rest == "B" || rest == "iB")))) {
      return bad("unknown unit '" + unit + "' (use K, M, G or T)");
    }
  }
  if (shift > 0 && n > (UINT64_MAX >> shift)) return bad("too large");
  out.bytes = n << shift;
  return out;
}

std::string FormatBytes(uint64_t bytes) {
  static const char* kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
  if (bytes < 1024) return std::to_string(bytes) + " bytes";
  double v = static_cast<double>(bytes) / 1024;
  int u = 0;
  // Compare against the value as printed (rounded to whole units), so 1 MiB - 1 byte reads
  // "1.0 MiB", not "1024 KiB", and 10 KiB - 1 byte reads "10 KiB", not "10.0 KiB".
  while (v >= 1023.5 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), v < 9.95 ? "%.1f %s" : "%.0f %s", v, kUnits[u]);
  return buf;
}

}  // namespace blockrep
