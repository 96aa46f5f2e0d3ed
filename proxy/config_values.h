// proxy/config_values.h: the parsers for the config file's scalar values (counts, timeouts, names,
// routes, the breaker's percentages, decimals and windows), and the small helpers that the YAML
// loader shares with them. Each takes the text as written and returns the value, or a problem
// without a place ("\"150%\" is not a percentage (0-100%)"); the caller adds the file, line and
// path. Not here: durations, sizes, host:port and log levels (config.cc, declared in config.h),
// and anything that knows about YAML, keys or cross-checks between settings (config_loader.cc).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "proxy/config.h"
#include "shm/breaker_policy.h"
#include "shm/result.h"

namespace fusebox::proxy {

// `text` in double quotes, as messages show a value.
std::string quoted(std::string_view text);
// A character of a listener, cluster or segment name: [A-Za-z0-9_.-].
bool is_name_char(char c);
// A header field name: one or more token characters (RFC 9110 §5.6.2).
bool is_token(std::string_view name);
// `text` lowercased, for header names, which ignore case.
std::string lowercase(std::string text);
// Milliseconds in the largest unit that divides them exactly: 30000 -> "30s", 1500 -> "1500ms".
std::string format_ms(uint32_t ms);

// 1 to 19 decimal digits (no sign, no spaces) whose value is from `low` to `high`.
Result<uint64_t> parse_number(const std::string& text, uint64_t low, uint64_t high);

// A count from `low` to `high`, for the uint32_t limits of clusters.
template <uint32_t low, uint32_t high>
Result<uint32_t> parse_limit(const std::string& text) {
  auto n = parse_number(text, low, high);
  if (!n) return n.error();
  return static_cast<uint32_t>(n.value());
}

// workers: "auto" (0: the CPUs this process may use) or a number from 1 to 256.
Result<unsigned> parse_workers(const std::string& text);

struct AccessLog {
  AccessLogTarget target = AccessLogTarget::Off;
  std::string path;
};
// access_log: off, stdout, stderr, or a file path that is not empty and not a YAML 1.1 boolean.
Result<AccessLog> parse_access_log(const std::string& text);

// shm.name: 1 to 200 of [A-Za-z0-9_.-], but not "." or "..".
Result<std::string> parse_segment_name(const std::string& text);
// A health check's target: origin-form ("/health", "/ready?deep=1"): starts with "/", visible ASCII.
Result<std::string> parse_check_path(const std::string& text);
// A Host header value: a name or an address, with an optional port; visible ASCII, no "/".
Result<std::string> parse_check_host(const std::string& text);
// A file's path: not empty, no NUL.
Result<std::string> parse_path(const std::string& text);
// A listener or cluster name: one or more of [A-Za-z0-9_.-].
Result<std::string> parse_name(const std::string& text);

// A listener or cluster timeout: a duration (as parse_duration) more than 0.
Result<Millis> parse_timeout(const std::string& text);
// An upstream's host:port (as parse_host_port), not port 0.
Result<HostPort> parse_endpoint(const std::string& text);
// A route's host without a port (a DNS name, IPv4 or [IPv6]), returned lowercased.
Result<std::string> parse_route_host(const std::string& text);
// A route's prefix: any text that starts with "/".
Result<std::string> parse_prefix(const std::string& text);
// max_header_bytes: a size (as parse_size) from 1KiB to 1MiB.
Result<uint32_t> parse_header_limit(const std::string& text);

// ---- the breaker's values ----

// A whole percentage from 0 to 100, "50%" or a bare 50. 0 turns off the rule it is the threshold of.
Result<uint32_t> parse_percent(const std::string& text);
// open.multiplier: a plain decimal from 1 to 100 ("2", "1.5"), in hundredths (1.5 -> 150).
Result<uint32_t> parse_multiplier(const std::string& text);
// open.jitter: a plain decimal from 0 to 1 ("0.1") or a percentage ("10%"), in hundredths.
Result<uint32_t> parse_jitter(const std::string& text);
// open.base and open.max: a duration more than 0 and at most 24h, in ms.
Result<uint32_t> parse_open_time(const std::string& text);
// slow_calls.duration: a duration more than 0 and at most 24h, in ms.
Result<uint32_t> parse_slow_call_time(const std::string& text);

// failure_rate.window: exactly one of the two is set, as BreakerPolicy expects.
struct Window {
  uint32_t ms = 0;
  uint32_t calls = 0;
};
// failure_rate.window: a duration more than 0 and at most 24h ("10s"), or "N calls" (1 to
// shm::kMaxWindowCalls).
Result<Window> parse_window(const std::string& text);

// A failure status ("503") or an inclusive range of them ("500-599"), within 100..599.
Result<StatusRange> parse_status_range(const std::string& text);
// breaker.mode: normal, forced_open, disabled or metrics_only.
Result<shm::Mode> parse_mode(const std::string& text);

// fallback.status: a number from 200 to 599.
Result<int> parse_fallback_status(const std::string& text);
// fallback.body: any text, as written.
Result<std::string> parse_body(const std::string& text);

}  // namespace fusebox::proxy
