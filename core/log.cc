#include "core/log.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>

namespace blockrep {
namespace {
std::atomic<LogLevel> g_level{LogLevel::kInfo};

// Under systemd (JOURNAL_STREAM set), "<N>" prefixes carry the syslog priority to journald;
// on a terminal a plain word reads better.
bool UnderJournald() {
  static const bool journald = std::getenv("JOURNAL_STREAM") != nullptr;
  return journald;
}

const char* Prefix(LogLevel level) {
  const bool j = UnderJournald();
  switch (level) {
    case LogLevel::kDebug: return j ? "<7>" : "debug: ";
    case LogLevel::kInfo: return j ? "<6>" : "";
    case LogLevel::kWarning: return j ? "<4>" : "warning: ";
    case LogLevel::kError: return j ? "<3>" : "error: ";
  }
  return "";
}
}  // namespace

void SetLogLevel(LogLevel level) { g_level.store(level, std::memory_order_relaxed); }
LogLevel GetLogLevel() { return g_level.load(std::memory_order_relaxed); }

void Log(LogLevel level, const char* fmt, ...) {
  if (level < GetLogLevel()) return;
  char line[2048];
  int n = std::snprintf(line, sizeof(line), "%s", Prefix(level));
  va_list ap;
  va_start(ap, fmt);
  int m = std::vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
  va_end(ap);
  if (m < 0) m = 0;
  size_t len = static_cast<size_t>(n) + static_cast<size_t>(m);
  if (len > sizeof(line) - 2) len = sizeof(line) - 2;
  line[len++] = '\n';
  ssize_t ignored = ::write(STDERR_FILENO, line, len);
  (void)ignored;
}

}  // namespace blockrep
