// Logging to stderr, one line per call, for journald. Thread-safe (one write(2) per line).
#pragma once

#include <cstdarg>

namespace blockrep {

enum class LogLevel { kDebug = 0, kInfo, kWarning, kError };

void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();
void Log(LogLevel level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

}  // namespace blockrep

#define LOG_DEBUG(...)                                                                      \
  do {                                                                                      \
    if (::blockrep::GetLogLevel() <= ::blockrep::LogLevel::kDebug)                          \
      ::blockrep::Log(::blockrep::LogLevel::kDebug, __VA_ARGS__);                           \
  } while (0)
#define LOG_INFO(...) ::blockrep::Log(::blockrep::LogLevel::kInfo, __VA_ARGS__)
#define LOG_WARN(...) ::blockrep::Log(::blockrep::LogLevel::kWarning, __VA_ARGS__)
#define LOG_ERROR(...) ::blockrep::Log(::blockrep::LogLevel::kError, __VA_ARGS__)
