// proxy/config.cc: the value parsers behind every config setting (durations, sizes, host:port,
// log levels) and the to_string()s that print them back. They are shared by the YAML loader, the
// command line and the environment overrides, so a value is spelled the same way everywhere.
// Each returns a problem without a place ("\"fast\" is not a duration ..."); the caller adds where
// the value came from (a file and line, a flag, a variable). Not here: YAML and cross-checks,
// which live in config_loader.cc.
#include "proxy/config.h"
#include "proxy/config_values.h"

#include <arpa/inet.h>

#include <cstdint>
#include <limits>
#include <string_view>

namespace fusebox::proxy {
namespace {

constexpr bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

// The leading decimal digits of `text` as a number, or false if there are none or they overflow
// uint64_t. `rest` is what follows them (the unit).
bool split_number(std::string_view text, uint64_t& number, std::string_view& rest) {
  size_t i = 0;
  number = 0;
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  for (; i < text.size() && is_digit(text[i]); ++i) {
    const auto digit = static_cast<uint64_t>(text[i] - '0');
    if (number > (kMax - digit) / 10) return false;
    number = number * 10 + digit;
  }
  rest = text.substr(i);
  return i > 0;
}

// True for text shaped like "12.5" (possibly followed by a unit): a fraction, which we refuse
// rather than round, so "1.5s" never silently becomes 1s.
bool looks_fractional(std::string_view text) {
  const size_t dot = text.find('.');
  return dot != std::string_view::npos && dot > 0 && dot + 1 < text.size() && is_digit(text[dot - 1])
         && is_digit(text[dot + 1]);
}

bool is_hostname_char(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '-' || c == '_';
}

// A DNS name ("api.internal", "localhost", "example.com.") or an IPv4 literal: labels of 1 to 63
// letters, digits, '-' and '_'. A name made only of digits and dots must be a real IPv4 address,
// so "999.1.1.1" and "10.0.0" are caught here rather than at the first DNS lookup.
bool valid_plain_host(const std::string& host) {
  if (host.empty() || host.size() > 253) return false;
  std::string_view rest = host;
  if (rest.back() == '.') rest.remove_suffix(1);  // fully qualified "example.com."
  bool numeric = true;
  while (true) {
    const size_t dot = rest.find('.');
    const std::string_view label = rest.substr(0, dot);
    if (label.empty() || label.size() > 63) return false;
    for (char c : label) {
      if (!is_hostname_char(c)) return false;
      numeric = numeric && is_digit(c);
    }
    if (dot == std::string_view::npos) break;
    rest.remove_prefix(dot + 1);
  }
  if (!numeric) return true;
  in_addr v4{};
  return inet_pton(AF_INET, host.c_str(), &v4) == 1;
}

}  // namespace

const char* to_string(LogLevel level) noexcept {
  switch (level) {
    case LogLevel::Debug: return "debug";
    case LogLevel::Info: return "info";
    case LogLevel::Warn: return "warn";
    case LogLevel::Error: return "error";
  }
  return "unknown";
}

std::string HostPort::to_string() const {
  const std::string port_text = std::to_string(port);
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + port_text;
  return host + ":" + port_text;
}

// Whole numbers of ms, s, m or h, and a bare "0". No fractions ("1.5s": write 1500ms), no
// negatives, no unitless numbers other than 0 (is "30" seconds or milliseconds?), no spaces.
Result<Millis> parse_duration(const std::string& text) {
  constexpr std::string_view kHint = " (write 250ms, 5s or 2m)";
  if (text == "0") return Millis{0};
  if (!text.empty() && text[0] == '-')
    return Error{quoted(text) + " is negative; a duration is 0 or more" + std::string(kHint)};
  if (looks_fractional(text))
    return Error{quoted(text) + " is not a whole number; write a smaller unit (1500ms, not 1.5s)"};
  uint64_t number = 0;
  std::string_view unit;
  if (!split_number(text, number, unit)) {
    if (!text.empty() && is_digit(text[0])) return Error{quoted(text) + " is too long a duration"};
    return Error{quoted(text) + " is not a duration" + std::string(kHint)};
  }
  if (unit.empty()) {
    const std::string n = std::to_string(number);
    return Error{quoted(text) + " has no unit (write " + n + "s or " + n + "ms)"};
  }
  uint64_t ms_per_unit = 0;
  if (unit == "ms") ms_per_unit = 1;
  else if (unit == "s") ms_per_unit = 1'000;
  else if (unit == "m") ms_per_unit = 60'000;
  else if (unit == "h") ms_per_unit = 3'600'000;
  else return Error{quoted(text) + " has an unknown unit " + quoted(unit) + " (use ms, s, m or h)"};
  constexpr auto kMaxMs = static_cast<uint64_t>(std::numeric_limits<Millis::rep>::max());
  if (number > kMaxMs / ms_per_unit) return Error{quoted(text) + " is too long a duration"};
  return Millis{static_cast<Millis::rep>(number * ms_per_unit)};
}

// A plain number of bytes, or a whole number of KiB, MiB or GiB. KB, MB and GB are refused rather
// than guessed: half of the world reads them as 1000-based and half as 1024-based.
Result<uint64_t> parse_size(const std::string& text) {
  constexpr std::string_view kHint = " (write 16384, 16KiB or 1MiB)";
  if (!text.empty() && text[0] == '-')
    return Error{quoted(text) + " is negative; a size is 0 or more" + std::string(kHint)};
  if (looks_fractional(text))
    return Error{quoted(text) + " is not a whole number; write a smaller unit (1536KiB, not 1.5MiB)"};
  uint64_t number = 0;
  std::string_view unit;
  if (!split_number(text, number, unit)) {
    if (!text.empty() && is_digit(text[0])) return Error{quoted(text) + " is too large a size"};
    return Error{quoted(text) + " is not a size" + std::string(kHint)};
  }
  unsigned shift = 0;
  if (unit.empty()) shift = 0;
  else if (unit == "KiB") shift = 10;
  else if (unit == "MiB") shift = 20;
  else if (unit == "GiB") shift = 30;
  else if (unit == "KB" || unit == "MB" || unit == "GB" || unit == "kB" || unit == "k" || unit == "K")
    return Error{quoted(text) + " has an ambiguous unit " + quoted(unit)
                 + " (use KiB, MiB or GiB, which are 1024-based, or a plain number of bytes)"};
  else
    return Error{quoted(text) + " has an unknown unit " + quoted(unit)
                 + " (use KiB, MiB or GiB, or a plain number of bytes)"};
  if (number > (std::numeric_limits<uint64_t>::max() >> shift))
    return Error{quoted(text) + " is too large a size"};
  return number << shift;
}

// "host:port" with host a DNS name or IPv4 literal, or "[v6]:port". Port 0 is accepted: on a
// listener it asks the OS for a free port (what tests do); callers that connect reject it.
Result<HostPort> parse_host_port(const std::string& text) {
  constexpr std::string_view kExample = " (write host:port, e.g. 127.0.0.1:8080)";
  if (text.empty()) return Error{"\"\" is not host:port" + std::string(kExample)};
  HostPort result;
  std::string_view port_text;
  if (text[0] == '[') {
    const size_t close = text.find(']');
    if (close == std::string::npos)
      return Error{quoted(text) + " has no closing \"]\"" + std::string(kExample)};
    result.host = text.substr(1, close - 1);
    in6_addr v6{};
    if (result.host.empty() || inet_pton(AF_INET6, result.host.c_str(), &v6) != 1)
      return Error{quoted(text) + " has a bad IPv6 address " + quoted(result.host)};
    if (close + 1 >= text.size() || text[close + 1] != ':')
      return Error{quoted(text) + " has no port" + std::string(kExample)};
    port_text = std::string_view(text).substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string::npos) return Error{quoted(text) + " has no port" + std::string(kExample)};
    result.host = text.substr(0, colon);
    port_text = std::string_view(text).substr(colon + 1);
    if (result.host.find(':') != std::string::npos)
      return Error{quoted(text) + " is ambiguous: write an IPv6 address in brackets, e.g. [::1]:8080"};
    if (result.host.empty())
      return Error{quoted(text) + " has no host (write 127.0.0.1" + std::string(text)
                   + " for loopback only, 0.0.0.0" + std::string(text) + " for every interface)"};
    if (!valid_plain_host(result.host))
      return Error{quoted(text) + " has a bad host " + quoted(result.host)
                   + " (an IPv4 address, a DNS name, or an IPv6 address in brackets)"};
  }
  uint64_t port = 0;
  std::string_view junk;
  if (port_text.empty()) return Error{quoted(text) + " has no port" + std::string(kExample)};
  if (!split_number(port_text, port, junk) || !junk.empty() || port > 65535)
    return Error{quoted(text) + " has a bad port " + quoted(port_text) + " (a number from 0 to 65535)"};
  result.port = static_cast<uint16_t>(port);
  return result;
}

Result<LogLevel> parse_log_level(const std::string& text) {
  if (text == "debug") return LogLevel::Debug;
  if (text == "info") return LogLevel::Info;
  if (text == "warn") return LogLevel::Warn;
  if (text == "error") return LogLevel::Error;
  return Error{quoted(text) + " is not a log level (debug, info, warn or error)"};
}

}  // namespace fusebox::proxy
