// proxy/config_values.cc: the config file's scalar values, from text as written to the value the
// Config holds (see config_values.h for what each accepts). The messages are the user's: each names
// the value and says what would be accepted instead. Not here: where the value came from, which
// the loader (config_loader.cc) adds.
#include "proxy/config_values.h"

#include <algorithm>
#include <cctype>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>

namespace fusebox::proxy {

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

bool valid_name(std::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), is_name_char);
}

}  // namespace

// Built by appending: GCC 12 at -O3 warns falsely (-Wrestrict, PR105651) on "\"" + std::string.
std::string quoted(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  out.append(1, '"').append(text).append(1, '"');
  return out;
}

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '_' || c == '.' || c == '-';
}

Result<uint64_t> parse_number(const std::string& text, uint64_t low, uint64_t high) {
  const std::string range = " is not a number from " + std::to_string(low) + " to " + std::to_string(high);
  if (text.empty() || text.size() > 19 || !std::all_of(text.begin(), text.end(), [](char c) {
        return c >= '0' && c <= '9';
      }))
    return Error{quoted(text) + range};
  const uint64_t n = std::stoull(text);
  if (n < low || n > high) return Error{quoted(text) + range};
  return n;
}

Result<unsigned> parse_workers(const std::string& text) {
  if (text == "auto") return 0u;
  // 32: the segment has a stats block for each worker and for each of a reload's draining ones.
  auto n = parse_number(text, 1, 32);
  if (!n) return Error{quoted(text) + " is not auto or a number from 1 to 32"};
  return static_cast<unsigned>(n.value());
}

Result<AccessLog> parse_access_log(const std::string& text) {
  if (text == "off") return AccessLog{AccessLogTarget::Off, ""};
  if (text == "stdout") return AccessLog{AccessLogTarget::Stdout, ""};
  if (text == "stderr") return AccessLog{AccessLogTarget::Stderr, ""};
  // YAML 1.1 booleans: someone who wrote `access_log: false` did not mean a file named "false".
  static constexpr std::string_view kBooleans[] = {"false", "true", "no", "yes", "on", "n", "y"};
  const bool boolean = std::find(std::begin(kBooleans), std::end(kBooleans), text) != std::end(kBooleans);
  if (text.empty() || boolean)
    return Error{quoted(text) + " is not an access log (write off, stdout, stderr or a file path)"};
  return AccessLog{AccessLogTarget::File, text};
}

// Listener and cluster timeouts: 0 would not mean "none", it would fail every request.
Result<Millis> parse_timeout(const std::string& text) {
  auto d = parse_duration(text);
  if (d && d.value() == Millis{0})
    return Error{quoted(text) + " would time out at once; a timeout must be more than 0"};
  return d;
}

Result<HostPort> parse_endpoint(const std::string& text) {
  auto hp = parse_host_port(text);
  if (hp && hp.value().port == 0)
    return Error{quoted(text) + " has port 0, which cannot be connected to (write the upstream's port)"};
  return hp;
}

// The host a route matches, stored lowercased since Host matching is case-insensitive.
Result<std::string> parse_route_host(const std::string& text) {
  if (!text.empty() && text[0] != '[' && text.find(':') != std::string::npos)
    return Error{quoted(text) + " has a port; write the host alone (ports are ignored when matching)"};
  if (!parse_host_port(text + ":0"))
    return Error{quoted(text) + " is not a host name (a DNS name, an IPv4 address or [IPv6])"};
  std::string lower = text;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return lower;
}

// The request head limit: under 1 KiB no real client fits; over 1 MiB per connection, a few
// thousand idle connections would pin gigabytes of head buffers.
Result<uint32_t> parse_header_limit(const std::string& text) {
  auto size = parse_size(text);
  if (!size) return size.error();
  if (size.value() < 1024 || size.value() > 1024 * 1024)
    return Error{quoted(text) + " is not a size from 1KiB to 1MiB"};
  return static_cast<uint32_t>(size.value());
}

Result<std::string> parse_prefix(const std::string& text) {
  if (text.empty() || text[0] != '/')
    return Error{quoted(text) + " does not start with \"/\" (write " + quoted("/" + text) + ")"};
  return text;
}

Result<std::string> parse_name(const std::string& text) {
  if (!valid_name(text))
    return Error{quoted(text) + " is not a valid name (letters, digits, \"_\", \".\" and \"-\" only)"};
  return text;
}

// ---- the breaker's values ----

Result<uint32_t> parse_percent(const std::string& text) {
  std::string digits = text;
  if (!digits.empty() && digits.back() == '%') digits.pop_back();
  auto n = parse_number(digits, 0, 100);
  if (!n) return Error{quoted(text) + " is not a percentage (0-100%)"};
  return static_cast<uint32_t>(n.value());
}

namespace {

// A plain decimal ("2", "1.5", "0.125"), kept as hundredths rounded half up (1.005 -> 101) because
// the policy stores multipliers and fractions as integers. `whole` and `fraction_nonzero` let the
// caller check a range exactly: 1.001 is more than 1, though it rounds to 1.00. Nothing else is a
// decimal: not "1e2", ".5", "-1" or "1,5".
struct Decimal {
  uint64_t whole = 0;
  bool fraction_nonzero = false;
  uint64_t hundredths = 0;
};

std::optional<Decimal> parse_decimal(std::string_view text) {
  const size_t dot = text.find('.');
  const std::string_view whole = text.substr(0, dot);
  const std::string_view fraction = dot == std::string_view::npos ? "" : text.substr(dot + 1);
  const auto digits = [](std::string_view s) { return std::all_of(s.begin(), s.end(), is_digit); };
  if (whole.empty() || whole.size() > 9 || !digits(whole)) return std::nullopt;
  if (dot != std::string_view::npos && (fraction.empty() || !digits(fraction))) return std::nullopt;
  Decimal d;
  d.whole = std::stoull(std::string(whole));
  const auto digit = [&fraction](size_t i) -> uint64_t {
    return i < fraction.size() ? static_cast<uint64_t>(fraction[i] - '0') : 0;
  };
  d.fraction_nonzero = fraction.find_first_not_of('0') != std::string_view::npos;
  d.hundredths = d.whole * 100 + digit(0) * 10 + digit(1) + (digit(2) >= 5 ? 1 : 0);
  return d;
}

}  // namespace

// open.multiplier: at least 1 (below it the open time would shrink with every trip), at most 100.
Result<uint32_t> parse_multiplier(const std::string& text) {
  const auto d = parse_decimal(text);
  if (!d || d->whole < 1 || d->whole > 100 || (d->whole == 100 && d->fraction_nonzero))
    return Error{quoted(text) + " is not a number from 1 to 100 (2 doubles the open time on each trip in a row)"};
  return static_cast<uint32_t>(d->hundredths);
}

// open.jitter: a fraction of the open time, 0 to 1 ("0.1" is ±10%); "10%" means the same.
Result<uint32_t> parse_jitter(const std::string& text) {
  if (!text.empty() && text.back() == '%') return parse_percent(text);
  const auto d = parse_decimal(text);
  if (!d || d->whole > 1 || (d->whole == 1 && d->fraction_nonzero))
    return Error{quoted(text) + " is not a fraction from 0 to 1 (0.1 spreads the open time by ±10%)"};
  return static_cast<uint32_t>(d->hundredths);
}

namespace {

// Breaker durations: more than 0 (`zero_problem` says what 0 would do) and at most a day. A window
// or open time longer than that is a mistake or a job for mode: forced_open; the bound also keeps
// every value within the policy's uint32_t milliseconds.
constexpr Millis kMaxBreakerDuration{24 * 3'600'000};

Result<uint32_t> parse_breaker_ms(const std::string& text, std::string_view zero_problem) {
  auto d = parse_duration(text);
  if (!d) return d.error();
  if (d.value() == Millis{0}) return Error{quoted(text) + std::string(zero_problem)};
  if (d.value() > kMaxBreakerDuration)
    return Error{quoted(text) + " is more than 24h, the longest a breaker duration may be"};
  return static_cast<uint32_t>(d.value().count());
}

}  // namespace

Result<uint32_t> parse_open_time(const std::string& text) {
  return parse_breaker_ms(text, " would not keep the breaker open at all; an open time must be more than 0");
}

Result<uint32_t> parse_slow_call_time(const std::string& text) {
  return parse_breaker_ms(text, " would count every call as slow; a slow call duration must be more than 0");
}

// A duration ("10s": the calls of the last 10 seconds) or a count ("100 calls": the last 100).
Result<Window> parse_window(const std::string& text) {
  for (const std::string_view unit : {" calls", " call"}) {
    if (!text.ends_with(unit)) continue;
    auto n = parse_number(text.substr(0, text.size() - unit.size()), 1, shm::kMaxWindowCalls);
    if (!n) return Error{quoted(text) + " is not a number of calls from 1 to " + std::to_string(shm::kMaxWindowCalls)};
    return Window{0, static_cast<uint32_t>(n.value())};
  }
  if (text.empty() || !is_digit(text[0]) || text.find(' ') != std::string::npos)
    return Error{quoted(text) + " is not a window (write a duration, e.g. 10s, or a number of calls, e.g. 100 calls)"};
  if (text != "0" && std::all_of(text.begin(), text.end(), is_digit))
    return Error{quoted(text) + " has no unit (write " + text + "s for the last " + text + " seconds, or "
                 + quoted(text + " calls") + " for the last " + text + " calls)"};
  auto ms = parse_breaker_ms(text, " is an empty window; a window must be more than 0");
  if (!ms) return ms.error();
  return Window{ms.value(), 0};
}

Result<StatusRange> parse_status_range(const std::string& text) {
  const size_t dash = text.find('-');
  const auto first = parse_number(text.substr(0, dash), 100, 599);
  const auto last = dash == std::string::npos ? first : parse_number(text.substr(dash + 1), 100, 599);
  if (!first || !last)
    return Error{quoted(text)
                 + " is not a status or a range of statuses (write 503 or 500-599; statuses are 100 to 599)"};
  if (last.value() < first.value())
    return Error{quoted(text) + " is backwards (write " + std::to_string(last.value()) + "-"
                 + std::to_string(first.value()) + ")"};
  return StatusRange{static_cast<int>(first.value()), static_cast<int>(last.value())};
}

Result<shm::Mode> parse_mode(const std::string& text) {
  if (text == "normal") return shm::Mode::Normal;
  if (text == "forced_open") return shm::Mode::ForcedOpen;
  if (text == "disabled") return shm::Mode::Disabled;
  if (text == "metrics_only") return shm::Mode::MetricsOnly;
  return Error{quoted(text) + " is not a mode (normal, forced_open, disabled or metrics_only)"};
}

// A fallback is the final response: a 1xx would leave the client waiting for another
// (RFC 9110 §15.2), so fallback statuses start at 200.
Result<int> parse_fallback_status(const std::string& text) {
  auto n = parse_number(text, 200, 599);
  if (!n) return Error{quoted(text) + " is not a status from 200 to 599 (a fallback is a final response)"};
  return static_cast<int>(n.value());
}

Result<std::string> parse_body(const std::string& text) { return text; }

bool is_token(std::string_view name) {
  constexpr std::string_view kPunctuation = "!#$%&'*+-.^_`|~";
  return !name.empty() && std::all_of(name.begin(), name.end(), [&](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c)
           || kPunctuation.find(c) != std::string_view::npos;
  });
}

std::string lowercase(std::string text) {
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

// The segment is a file under /dev/shm: "." and ".." are directories, and 200 leaves room under
// NAME_MAX (255) for whatever the platform adds.
Result<std::string> parse_check_path(const std::string& text) {
  if (text.empty() || text[0] != '/') return Error{quoted(text) + " is not a path: write it from its \"/\" (/health)"};
  for (const char c : text)
    if (c <= 0x20 || c >= 0x7f) return Error{quoted(text) + " holds a space or a control or non-ASCII byte; percent-encode it"};
  return text;
}

Result<std::string> parse_check_host(const std::string& text) {
  if (text.empty()) return Error{"a host must not be empty"};
  for (const char c : text)
    if (c <= 0x20 || c >= 0x7f || c == '/') return Error{quoted(text) + " is not a host name (no spaces, slashes or control bytes)"};
  return text;
}

Result<std::string> parse_path(const std::string& text) {
  if (text.empty()) return Error{"a path must not be empty"};
  if (text.find('\0') != std::string::npos) return Error{"a path must not hold a NUL byte"};
  return text;
}

Result<std::string> parse_segment_name(const std::string& text) {
  if (!valid_name(text) || text.size() > 200 || text == "." || text == "..")
    return Error{quoted(text)
                 + R"( is not a segment name (1 to 200 letters, digits, "_", "." and "-"; not "." or ".."))"};
  return text;
}

// A default, for messages about a value the user did not write: 30000 -> "30s", 300000 -> "5m".
std::string format_ms(uint32_t ms) {
  if (ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
  if (ms % 1'000 == 0) return std::to_string(ms / 1'000) + "s";
  return std::to_string(ms) + "ms";
}

}  // namespace fusebox::proxy
