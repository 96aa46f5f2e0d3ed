// proxy/config.h: fusebox's configuration as the rest of the program sees it: plain values,
// validated, with every cross-reference (route -> cluster) resolved to an index, so the data
// path never looks a name up. Loading (YAML, environment overrides, the embedded default and the
// --listen/--upstream shorthand) lives in config_loader.cc; this header is only the shape.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "shm/breaker_policy.h"
#include "shm/result.h"

namespace fusebox::proxy {

using Millis = std::chrono::milliseconds;

enum class LogLevel : uint8_t { Debug, Info, Warn, Error };
const char* to_string(LogLevel level) noexcept;

// "host:port"; host is an IPv4/IPv6 literal or a DNS name (IPv6 written "[::1]:80").
struct HostPort {
  std::string host;
  uint16_t port = 0;
  std::string to_string() const;  // back to "host:port" / "[v6]:port"
};

// Which upstream answers count as failures for the breaker, besides connect errors, resets and
// timeouts (always failures). Default: 500-599. 4xx is the caller's fault: a success.
struct StatusRange {
  int first = 500;
  int last = 599;
};

struct BreakerConfig {
  shm::BreakerPolicy policy;                  // thresholds, windows, open time, half-open, mode
  std::vector<StatusRange> failure_statuses{{500, 599}};
  bool is_failure_status(int status) const noexcept {
    for (const StatusRange& r : failure_statuses)
      if (status >= r.first && status <= r.last) return true;
    return false;
  }
};

// A route sends to a cluster; with `breaker:` it has a breaker of its own (named by the route's
// `name`), so that one failing path of a dependency (a slow /reports) does not open the breaker
// every other path of it (/charges) goes through. Its settings start from the cluster's breaker.
struct Route {
  std::string prefix = "/";  // matched against the request path, longest prefix first
  std::string host;          // empty: any Host; else exact match, case-insensitive, port ignored
  std::string cluster;       // name, as written
  size_t cluster_index = 0;  // resolved at load: index into Config::clusters
  std::string name;          // optional; required with a breaker of its own
  bool own_breaker = false;
  BreakerConfig breaker;     // own_breaker: this route's; else unused
};

struct ListenerConfig {
  std::string name;
  HostPort address;
  std::vector<Route> routes;  // sorted at load: host-specific first, then longest prefix first
  Millis idle_timeout{60'000};    // a keep-alive connection with no request in flight is closed
  Millis header_timeout{10'000};  // the whole request head must arrive within this (slowloris): 408
  uint32_t max_header_bytes = 16 * 1024;  // request line + headers; more is answered 431
  uint64_t max_body_bytes = 0;            // request body limit, 0 = none; more is answered 413
};

// What a rejected request gets instead of the default 503 (when the breaker is open).
struct FallbackConfig {
  bool enabled = false;
  int status = 503;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

// Active health checks, run by the master: GET `path` on every endpoint every `interval`. An
// endpoint that fails `unhealthy_threshold` checks in a row is down (workers send to the others
// while any is up); `healthy_threshold` passes in a row bring it back, and if the cluster's breaker
// is open then, it half-opens at once: the dependency's return is found by a check, not by waiting
// out the open time with real calls.
struct HealthCheckConfig {
  bool enabled = false;  // given at all
  std::string path;      // required: "/health"
  std::string host;      // the Host header; empty: the endpoint's host
  Millis interval{1'000};
  Millis timeout{1'000};  // connect + the response's status line
  uint32_t healthy_threshold = 2;
  uint32_t unhealthy_threshold = 2;
  std::vector<StatusRange> expected_statuses{{200, 399}};
  bool is_expected(int status) const noexcept {
    for (const StatusRange& r : expected_statuses)
      if (status >= r.first && status <= r.last) return true;
    return false;
  }
};

struct ClusterConfig {
  std::string name;
  std::vector<HostPort> endpoints;  // round robin
  Millis connect_timeout{1'000};           // TCP connect to an endpoint: 504
  Millis response_header_timeout{15'000};  // request sent -> whole response head received: 504
  Millis request_timeout{30'000};          // whole exchange, first byte to last: 504 (or abort)
  Millis idle_timeout{60'000};             // a pooled keep-alive connection unused this long closes
  Millis dns_refresh{30'000};              // how often names in endpoints are resolved again
  uint32_t max_connections = 1024;         // per worker, per cluster; over it: 503
  uint32_t max_idle = 256;                 // pooled idle connections kept per worker, per cluster
  BreakerConfig breaker;                   // every cluster has one, with the defaults if not given
  FallbackConfig fallback;
  HealthCheckConfig health_check;
};

struct ShmConfig {
  std::string name;             // empty: derived from the admin address ("fusebox-127.0.0.1-9901")
  uint32_t max_breakers = 256;  // slots in the segment; more clusters than this is a config error
};

enum class AccessLogTarget : uint8_t { Off, Stdout, Stderr, File };

struct Config {
  std::string source = "<embedded>";  // file name for messages, or "<embedded>", "<command line>"
  unsigned workers = 0;                // 0 = auto: CPUs this process may use (affinity, cgroup quota)
  HostPort admin_address{"127.0.0.1", 9901};
  std::string admin_token_file;  // the admin API's bearer token (FUSEBOX_ADMIN_TOKEN wins if set)
  LogLevel log_level = LogLevel::Info;
  AccessLogTarget access_log = AccessLogTarget::Off;
  std::string access_log_path;  // for AccessLogTarget::File
  Millis drain_timeout{15'000}; // SIGTERM: in-flight requests get this long, then workers are killed
  ShmConfig shm;
  std::vector<ListenerConfig> listeners;
  std::vector<ClusterConfig> clusters;
};

// Every problem found, each a whole sentence with its place: "fusebox.yaml:12: clusters[0]
// (payments).connect_timeout: "fast" is not a duration (write 250ms, 5s or 2m)".
struct ConfigErrors {
  std::vector<std::string> errors;
};

// Parses and validates YAML text. `source` names it in messages (a path, or "<embedded>").
// Environment overrides are not applied here (see apply_environment).
Result<Config> parse_config(const std::string& text, const std::string& source,
                            ConfigErrors* all_errors = nullptr);
Result<Config> load_config_file(const std::string& path, ConfigErrors* all_errors = nullptr);

// The embedded default: listen 127.0.0.1:15001 -> upstream 127.0.0.1:8080, admin 127.0.0.1:9901.
Config default_config();
extern const char* const kEmbeddedConfigYaml;

// `fusebox --listen ADDR --upstream ADDR`: one listener "default", one route "/", one cluster
// "default". Addresses are validated as host:port.
Result<Config> command_line_config(const std::string& listen, const std::string& upstream);

// FUSEBOX_WORKERS, FUSEBOX_LOG_LEVEL, FUSEBOX_ADMIN_ADDRESS, FUSEBOX_ACCESS_LOG,
// FUSEBOX_DRAIN_TIMEOUT: each, when set, replaces the config's value. `getenv` is injected so
// tests need not touch the process environment.
using GetEnv = const char* (*)(const char*);
Result<void> apply_environment(Config& config, GetEnv getenv_fn);

// The segment's name: shm.name, or one derived from the admin address, so two fusebox instances on
// one host never share a segment by accident.
std::string segment_name(const Config& config);

// Value parsers shared by the loader, the command line and the environment overrides.
Result<Millis> parse_duration(const std::string& text);   // "250ms", "5s", "2m", "1h"; "0" = 0
Result<uint64_t> parse_size(const std::string& text);     // "16384", "16KiB", "1MiB", "1GiB"
Result<HostPort> parse_host_port(const std::string& text);
Result<LogLevel> parse_log_level(const std::string& text); // debug | info | warn | error

}  // namespace fusebox::proxy
