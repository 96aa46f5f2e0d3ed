// proxy/log.h: one line per event on stderr, written with a single write(2) so lines from the
// master and the workers never interleave. printf-style into a stack buffer: logging allocates
// nothing, so the failure paths of the data plane may log (rate-limited by the caller).
#pragma once

#include <cstdarg>

#include "proxy/config.h"

namespace fusebox::proxy::log {

// Role shows in every line ("master", "worker 3"), so a line says which process wrote it.
void init(LogLevel level, const char* role) noexcept;
void set_level(LogLevel level) noexcept;
bool enabled(LogLevel level) noexcept;
void write(LogLevel level, const char* format, ...) noexcept __attribute__((format(printf, 2, 3)));

}  // namespace fusebox::proxy::log

#define FB_LOG(level, ...)                                                        \
  do {                                                                            \
    if (::fusebox::proxy::log::enabled(::fusebox::proxy::LogLevel::level))        \
      ::fusebox::proxy::log::write(::fusebox::proxy::LogLevel::level, __VA_ARGS__); \
  } while (0)
