// proxy/log.cc: see log.h.
#include "proxy/log.h"

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <ctime>

namespace fusebox::proxy::log {
namespace {

LogLevel g_level = LogLevel::Info;
char g_role[32] = "master";

}  // namespace

void init(LogLevel level, const char* role) noexcept {
  g_level = level;
  std::snprintf(g_role, sizeof g_role, "%s", role);
}

void set_level(LogLevel level) noexcept { g_level = level; }

bool enabled(LogLevel level) noexcept { return level >= g_level; }

void write(LogLevel level, const char* format, ...) noexcept {
  char line[2048];
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  tm utc{};
  gmtime_r(&now.tv_sec, &utc);
  int n = std::snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s [%s %d] ",
                        utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min,
                        utc.tm_sec, now.tv_nsec / 1'000'000, to_string(level), g_role, getpid());
  va_list args;
  va_start(args, format);
  const int body = std::vsnprintf(line + n, sizeof line - static_cast<size_t>(n) - 1, format, args);
  va_end(args);
  n += body < 0 ? 0 : body;
  if (n > static_cast<int>(sizeof line) - 2) n = static_cast<int>(sizeof line) - 2;  // truncated
  line[n++] = '\n';
  // One write per line: stderr is shared by every process of the instance.
  ssize_t ignored = ::write(STDERR_FILENO, line, static_cast<size_t>(n));
  (void)ignored;
}

}  // namespace fusebox::proxy::log
