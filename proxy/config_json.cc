// proxy/config_json.cc: a Config back into the config file's keys, as JSON (see config_json.h).
// Each value is written in a form its parser (config.cc, config_values.cc) reads back to the same
// value, and the most readable such form: "2m" rather than "120000ms", "16KiB" rather than 16384.
// Not here: checking the values, which the loader did when the Config was made.
#include "proxy/config_json.h"

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace fusebox::proxy {
namespace {

using Json = nlohmann::ordered_json;

// The largest unit that divides the duration exactly, as parse_duration reads it: 120000 ms ->
// "2m", 1500 -> "1500ms"; 0 -> "0", the one duration that needs no unit.
std::string duration_text(Millis duration) {
  const int64_t ms = duration.count();
  if (ms == 0) return "0";
  if (ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
  if (ms % 1'000 == 0) return std::to_string(ms / 1'000) + "s";
  return std::to_string(ms) + "ms";
}

// The breaker keeps its durations as uint32_t milliseconds.
std::string duration_text(uint32_t ms) { return duration_text(Millis{ms}); }

// Whole KiB, MiB or GiB when exact, as parse_size reads them: 16384 -> "16KiB"; otherwise (and
// for 0, "no limit") a plain number of bytes.
Json size_value(uint64_t bytes) {
  if (bytes == 0) return bytes;
  for (const auto& [shift, unit] : {std::pair{30u, "GiB"}, std::pair{20u, "MiB"}, std::pair{10u, "KiB"}}) {
    const uint64_t per_unit = uint64_t{1} << shift;
    if (bytes % per_unit == 0) return std::to_string(bytes / per_unit) + unit;
  }
  return bytes;
}

// "50%": parse_percent reads a bare 50 too, but the sign says what the number is.
std::string percent_text(uint32_t pct) { return std::to_string(pct) + "%"; }

// Hundredths as the decimal parse_multiplier and parse_jitter read back: 150 -> 1.5, 10 -> 0.1,
// 200 -> 2 (a whole number stays an integer). k / 100.0 is not exact in binary, but the dump
// prints the shortest decimal that reads back as the same double, which is k / 100 itself, at
// most two decimals: what parse_decimal turns back into k.
Json hundredths_value(uint32_t x100) {
  if (x100 % 100 == 0) return x100 / 100;
  return x100 / 100.0;
}

// failure_rate.window: the policy holds exactly one of the two, as parse_window made it.
std::string window_text(const shm::BreakerPolicy& policy) {
  if (policy.window_calls > 0) return std::to_string(policy.window_calls) + " calls";
  return duration_text(policy.window_ms);
}

// As parse_mode reads it.
const char* mode_text(shm::Mode mode) {
  switch (mode) {
    case shm::Mode::Normal: return "normal";
    case shm::Mode::ForcedOpen: return "forced_open";
    case shm::Mode::Disabled: return "disabled";
    case shm::Mode::MetricsOnly: return "metrics_only";
  }
  return "normal";
}

// "503", or "500-599" for a range, as parse_status_range reads them.
std::string status_range_text(const StatusRange& range) {
  if (range.first == range.last) return std::to_string(range.first);
  return std::to_string(range.first) + "-" + std::to_string(range.last);
}

// As parse_access_log reads it: the file's path, or one of the three words a path cannot be.
std::string access_log_text(const Config& config) {
  switch (config.access_log) {
    case AccessLogTarget::Off: return "off";
    case AccessLogTarget::Stdout: return "stdout";
    case AccessLogTarget::Stderr: return "stderr";
    case AccessLogTarget::File: return config.access_log_path;
  }
  return "off";
}

Json breaker_json(const BreakerConfig& breaker);

Json route_json(const Route& route) {
  Json out;
  out["prefix"] = route.prefix;
  if (!route.host.empty()) out["host"] = route.host;
  out["cluster"] = route.cluster;
  if (!route.name.empty()) out["name"] = route.name;
  if (route.own_breaker) out["breaker"] = breaker_json(route.breaker);
  return out;
}

Json listener_json(const ListenerConfig& listener) {
  Json out;
  out["name"] = listener.name;
  out["address"] = listener.address.to_string();
  out["routes"] = Json::array();
  for (const Route& route : listener.routes) out["routes"].push_back(route_json(route));
  out["idle_timeout"] = duration_text(listener.idle_timeout);
  out["header_timeout"] = duration_text(listener.header_timeout);
  out["max_header_bytes"] = size_value(listener.max_header_bytes);
  out["max_body_bytes"] = size_value(listener.max_body_bytes);
  return out;
}

Json breaker_json(const BreakerConfig& breaker) {
  const shm::BreakerPolicy& policy = breaker.policy;
  Json out;
  out["consecutive_failures"] = policy.consecutive_failures;
  out["failure_rate"] = {{"threshold", percent_text(policy.failure_rate_pct)},
                         {"minimum_calls", policy.minimum_calls},
                         {"window", window_text(policy)}};
  // Off unless given, as in the file; when off, slow_call_ms is never read, so leaving it out
  // changes nothing that runs.
  if (policy.slow_rate_pct > 0)
    out["slow_calls"] = {{"threshold", percent_text(policy.slow_rate_pct)},
                         {"duration", duration_text(policy.slow_call_ms)}};
  out["failure_statuses"] = Json::array();
  for (const StatusRange& range : breaker.failure_statuses)
    out["failure_statuses"].push_back(status_range_text(range));
  out["open"] = {{"base", duration_text(policy.open_base_ms)},
                 {"multiplier", hundredths_value(policy.open_multiplier_x100)},
                 {"max", duration_text(policy.open_max_ms)},
                 {"jitter", hundredths_value(policy.open_jitter_pct)}};
  out["half_open"] = {{"permits", policy.half_open_permits}, {"successes", policy.half_open_successes}};
  out["mode"] = mode_text(policy.mode);
  return out;
}

// Headers as a mapping, in the order they are sent: the loader reads them in the order written,
// and refuses two with the same name, so no key of this object is ever overwritten.
Json fallback_json(const FallbackConfig& fallback) {
  Json out;
  out["status"] = fallback.status;
  out["headers"] = Json::object();
  for (const auto& [name, value] : fallback.headers) out["headers"][name] = value;
  out["body"] = fallback.body;
  return out;
}

Json health_check_json(const HealthCheckConfig& check) {
  Json out;
  out["path"] = check.path;
  if (!check.host.empty()) out["host"] = check.host;
  out["interval"] = duration_text(check.interval);
  out["timeout"] = duration_text(check.timeout);
  out["healthy_threshold"] = check.healthy_threshold;
  out["unhealthy_threshold"] = check.unhealthy_threshold;
  out["expected_statuses"] = Json::array();
  for (const StatusRange& range : check.expected_statuses) out["expected_statuses"].push_back(status_range_text(range));
  return out;
}

Json cluster_json(const ClusterConfig& cluster) {
  Json out;
  out["name"] = cluster.name;
  out["endpoints"] = Json::array();
  for (const HostPort& endpoint : cluster.endpoints) out["endpoints"].push_back(endpoint.to_string());
  out["connect_timeout"] = duration_text(cluster.connect_timeout);
  out["response_header_timeout"] = duration_text(cluster.response_header_timeout);
  out["request_timeout"] = duration_text(cluster.request_timeout);
  out["idle_timeout"] = duration_text(cluster.idle_timeout);
  out["dns_refresh"] = duration_text(cluster.dns_refresh);
  out["max_connections"] = cluster.max_connections;
  out["max_idle"] = cluster.max_idle;
  out["breaker"] = breaker_json(cluster.breaker);
  // Given at all, a fallback is on; so it is written only when it is.
  if (cluster.fallback.enabled) out["fallback"] = fallback_json(cluster.fallback);
  if (cluster.health_check.enabled) out["health_check"] = health_check_json(cluster.health_check);
  return out;
}

}  // namespace

Json config_to_json(const Config& config) {
  Json out;
  if (config.workers == 0) out["workers"] = "auto";
  else out["workers"] = config.workers;
  out["admin"] = {{"address", config.admin_address.to_string()}};
  if (!config.admin_token_file.empty()) out["admin"]["token_file"] = config.admin_token_file;
  out["log_level"] = to_string(config.log_level);
  out["access_log"] = access_log_text(config);
  out["drain_timeout"] = duration_text(config.drain_timeout);
  // An empty name is derived from the admin address (segment_name); writing the derived name
  // would pin it, and a later change of admin.address would no longer move the segment.
  out["shm"] = Json::object();
  if (!config.shm.name.empty()) out["shm"]["name"] = config.shm.name;
  out["shm"]["max_breakers"] = config.shm.max_breakers;
  out["listeners"] = Json::array();
  for (const ListenerConfig& listener : config.listeners) out["listeners"].push_back(listener_json(listener));
  out["clusters"] = Json::array();
  for (const ClusterConfig& cluster : config.clusters) out["clusters"].push_back(cluster_json(cluster));
  return out;
}

}  // namespace fusebox::proxy
