// tests/unit/proxy/config_test.cc: the config value parsers (proxy/config.cc) and the loader
// (proxy/config_loader.cc): what each accepts, the exact words and line of every kind of error,
// defaults, route order and resolution, the embedded default, --listen/--upstream and FUSEBOX_*.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "proxy/config.h"

namespace fusebox::proxy {
namespace {

using namespace std::chrono_literals;

// The problem text of a parse that must fail ("" if it succeeded, so the CHECK shows that).
template <typename T>
std::string error_of(const Result<T>& result) {
  return result.ok() ? std::string() : result.error().message;
}

// The only error of a config that must fail with exactly one.
std::string only_error(const std::string& yaml) {
  ConfigErrors errors;
  auto config = parse_config(yaml, "fusebox.yaml", &errors);
  if (config.ok()) return "(loaded)";
  if (errors.errors.size() != 1) return std::to_string(errors.errors.size()) + " errors:\n" + config.error().message;
  return errors.errors[0];
}

Config load(const std::string& yaml) {
  auto config = parse_config(yaml, "fusebox.yaml");
  INFO(error_of(config));
  REQUIRE(config.ok());
  return std::move(config).value();
}

// Line 1 to 9: a valid config that tests append to, so their lines start at 10.
const std::string kBase = R"(listeners:
  - name: ingress
    address: 127.0.0.1:15001
    routes:
      - cluster: payments
clusters:
  - name: payments
    endpoints:
      - 127.0.0.1:8080
)";

// A fake environment for apply_environment, which takes a plain function pointer.
std::map<std::string, std::string> g_env;
const char* fake_getenv(const char* name) {
  const auto it = g_env.find(name);
  return it == g_env.end() ? nullptr : it->second.c_str();
}

}  // namespace

// ---- value parsers ----

TEST_CASE("log levels print as they are written in the config") {
  for (const LogLevel level : {LogLevel::Debug, LogLevel::Info, LogLevel::Warn, LogLevel::Error}) {
    auto parsed = parse_log_level(to_string(level));
    REQUIRE(parsed.ok());
    CHECK(parsed.value() == level);
  }
  CHECK(std::string(to_string(LogLevel::Warn)) == "warn");
}

TEST_CASE("a log level must be one of the four lowercase words") {
  CHECK(error_of(parse_log_level("verbose")) == R"("verbose" is not a log level (debug, info, warn or error))");
  CHECK_FALSE(parse_log_level("DEBUG").ok());
  CHECK_FALSE(parse_log_level("").ok());
}

TEST_CASE("a host and port print back as host:port, with brackets around IPv6") {
  CHECK(HostPort{"127.0.0.1", 8080}.to_string() == "127.0.0.1:8080");
  CHECK(HostPort{"localhost", 0}.to_string() == "localhost:0");
  CHECK(HostPort{"::1", 8080}.to_string() == "[::1]:8080");
}

TEST_CASE("durations are whole numbers of ms, s, m or h, or a bare 0") {
  CHECK(parse_duration("250ms").value() == 250ms);
  CHECK(parse_duration("5s").value() == 5s);
  CHECK(parse_duration("2m").value() == 2min);
  CHECK(parse_duration("1h").value() == 1h);
  CHECK(parse_duration("0").value() == 0ms);
  CHECK(parse_duration("0s").value() == 0ms);
  CHECK(parse_duration("2562047788015h").value() == 2562047788015h);  // the most hours int64 ms holds
}

TEST_CASE("a duration that is not one says how to write one") {
  CHECK(error_of(parse_duration("fast")) == R"("fast" is not a duration (write 250ms, 5s or 2m))");
  CHECK(error_of(parse_duration("")) == R"("" is not a duration (write 250ms, 5s or 2m))");
  CHECK(error_of(parse_duration("-5s")) ==
        R"("-5s" is negative; a duration is 0 or more (write 250ms, 5s or 2m))");
  CHECK(error_of(parse_duration("30")) == R"("30" has no unit (write 30s or 30ms))");
  CHECK(error_of(parse_duration("5d")) == R"("5d" has an unknown unit "d" (use ms, s, m or h))");
  CHECK(error_of(parse_duration("5 s")) == R"("5 s" has an unknown unit " s" (use ms, s, m or h))");
  CHECK(error_of(parse_duration("5S")) == R"("5S" has an unknown unit "S" (use ms, s, m or h))");
  CHECK(error_of(parse_duration("1.5s")) ==
        R"("1.5s" is not a whole number; write a smaller unit (1500ms, not 1.5s))");
}

TEST_CASE("a duration too long for a 64-bit count of milliseconds is refused, not wrapped") {
  CHECK(error_of(parse_duration("2562047788016h")) == R"("2562047788016h" is too long a duration)");
  CHECK(error_of(parse_duration("99999999999999999999ms")) == R"("99999999999999999999ms" is too long a duration)");
}

TEST_CASE("sizes are plain bytes or whole KiB, MiB or GiB") {
  CHECK(parse_size("16384").value() == 16384);
  CHECK(parse_size("0").value() == 0);
  CHECK(parse_size("16KiB").value() == 16 * 1024);
  CHECK(parse_size("1MiB").value() == 1024 * 1024);
  CHECK(parse_size("2GiB").value() == 2ULL * 1024 * 1024 * 1024);
}

TEST_CASE("1000-based and unknown size units are refused with the accepted ones named") {
  CHECK(error_of(parse_size("16KB")) ==
        R"("16KB" has an ambiguous unit "KB" (use KiB, MiB or GiB, which are 1024-based, or a plain number of bytes))");
  CHECK(error_of(parse_size("1MB")).find("ambiguous unit \"MB\"") != std::string::npos);
  CHECK(error_of(parse_size("1GB")).find("ambiguous unit \"GB\"") != std::string::npos);
  CHECK(error_of(parse_size("1TiB")) ==
        R"("1TiB" has an unknown unit "TiB" (use KiB, MiB or GiB, or a plain number of bytes))");
  CHECK(error_of(parse_size("big")) == R"("big" is not a size (write 16384, 16KiB or 1MiB))");
  CHECK(error_of(parse_size("-1")) == R"("-1" is negative; a size is 0 or more (write 16384, 16KiB or 1MiB))");
  CHECK(error_of(parse_size("1.5MiB")) ==
        R"("1.5MiB" is not a whole number; write a smaller unit (1536KiB, not 1.5MiB))");
  CHECK(error_of(parse_size("17179869184GiB")) == R"("17179869184GiB" is too large a size)");
  CHECK(error_of(parse_size("18446744073709551616")) == R"("18446744073709551616" is too large a size)");
}

TEST_CASE("host:port accepts IPv4, DNS names, bracketed IPv6 and port 0") {
  auto v4 = parse_host_port("127.0.0.1:8080");
  REQUIRE(v4.ok());
  CHECK(v4.value().host == "127.0.0.1");
  CHECK(v4.value().port == 8080);
  auto name = parse_host_port("localhost:80");
  REQUIRE(name.ok());
  CHECK(name.value().host == "localhost");
  CHECK(name.value().port == 80);
  auto v6 = parse_host_port("[::1]:8080");
  REQUIRE(v6.ok());
  CHECK(v6.value().host == "::1");
  CHECK(v6.value().port == 8080);
  auto any = parse_host_port("0.0.0.0:0");
  REQUIRE(any.ok());
  CHECK(any.value().port == 0);
  CHECK(parse_host_port("payments.svc.cluster.local.:65535").ok());
  CHECK(parse_host_port("my_host-1:1").ok());
}

TEST_CASE("host:port without a usable host or port says what is wrong") {
  CHECK(error_of(parse_host_port("localhost")) ==
        R"("localhost" has no port (write host:port, e.g. 127.0.0.1:8080))");
  CHECK(error_of(parse_host_port("localhost:")) ==
        R"("localhost:" has no port (write host:port, e.g. 127.0.0.1:8080))");
  CHECK(error_of(parse_host_port("")) == R"("" is not host:port (write host:port, e.g. 127.0.0.1:8080))");
  CHECK(error_of(parse_host_port(":8080")) ==
        R"(":8080" has no host (write 127.0.0.1:8080 for loopback only, 0.0.0.0:8080 for every interface))");
  CHECK(error_of(parse_host_port("localhost:http")) ==
        R"("localhost:http" has a bad port "http" (a number from 0 to 65535))");
  CHECK(error_of(parse_host_port("localhost:65536")) ==
        R"("localhost:65536" has a bad port "65536" (a number from 0 to 65535))");
  CHECK(error_of(parse_host_port("localhost:-1")) ==
        R"("localhost:-1" has a bad port "-1" (a number from 0 to 65535))");
  CHECK(error_of(parse_host_port("a b:80")) ==
        R"("a b:80" has a bad host "a b" (an IPv4 address, a DNS name, or an IPv6 address in brackets))");
  CHECK_FALSE(parse_host_port("999.1.1.1:80").ok());
  CHECK_FALSE(parse_host_port("10.0.0:80").ok());
  CHECK_FALSE(parse_host_port("a..b:80").ok());
}

TEST_CASE("IPv6 must be bracketed, closed, valid and followed by a port") {
  CHECK(error_of(parse_host_port("::1:8080")) ==
        R"("::1:8080" is ambiguous: write an IPv6 address in brackets, e.g. [::1]:8080)");
  CHECK(error_of(parse_host_port("[::1")) ==
        R"("[::1" has no closing "]" (write host:port, e.g. 127.0.0.1:8080))");
  CHECK(error_of(parse_host_port("[::1]")) == R"("[::1]" has no port (write host:port, e.g. 127.0.0.1:8080))");
  CHECK(error_of(parse_host_port("[::1]8080")) ==
        R"("[::1]8080" has no port (write host:port, e.g. 127.0.0.1:8080))");
  CHECK(error_of(parse_host_port("[zz]:80")) == R"("[zz]:80" has a bad IPv6 address "zz")");
}

// ---- the loader: values and defaults ----

TEST_CASE("a config with every key loads every value") {
  const Config c = load(R"(workers: 4
admin:
  address: 0.0.0.0:9902
  token_file: /etc/fusebox/admin-token
log_level: debug
access_log: /var/log/fusebox/access.log
drain_timeout: 20s
listeners:
  - name: ingress
    address: "[::]:15001"
    routes:
      - prefix: /pay
        host: API.Example.com
        cluster: payments
    idle_timeout: 2m
    header_timeout: 5s
    max_header_bytes: 32KiB
    max_body_bytes: 10MiB
clusters:
  - name: payments
    endpoints: [10.0.0.7:8080, "payments.internal:8080"]
    connect_timeout: 250ms
    response_header_timeout: 3s
    request_timeout: 10s
    idle_timeout: 30s
    dns_refresh: 1m
    max_connections: 100
    max_idle: 0
)");
  CHECK(c.source == "fusebox.yaml");
  CHECK(c.workers == 4);
  CHECK(c.admin_address.to_string() == "0.0.0.0:9902");
  CHECK(c.admin_token_file == "/etc/fusebox/admin-token");
  CHECK(c.log_level == LogLevel::Debug);
  CHECK(c.access_log == AccessLogTarget::File);
  CHECK(c.access_log_path == "/var/log/fusebox/access.log");
  CHECK(c.drain_timeout == 20s);
  REQUIRE(c.listeners.size() == 1);
  const ListenerConfig& l = c.listeners[0];
  CHECK(l.name == "ingress");
  CHECK(l.address.to_string() == "[::]:15001");
  REQUIRE(l.routes.size() == 1);
  CHECK(l.routes[0].prefix == "/pay");
  CHECK(l.routes[0].host == "api.example.com");  // lowercased: Host matching ignores case
  CHECK(l.routes[0].cluster == "payments");
  CHECK(l.idle_timeout == 2min);
  CHECK(l.header_timeout == 5s);
  CHECK(l.max_header_bytes == 32 * 1024);
  CHECK(l.max_body_bytes == 10 * 1024 * 1024);
  REQUIRE(c.clusters.size() == 1);
  const ClusterConfig& k = c.clusters[0];
  CHECK(k.name == "payments");
  REQUIRE(k.endpoints.size() == 2);
  CHECK(k.endpoints[0].to_string() == "10.0.0.7:8080");
  CHECK(k.endpoints[1].to_string() == "payments.internal:8080");
  CHECK(k.connect_timeout == 250ms);
  CHECK(k.response_header_timeout == 3s);
  CHECK(k.request_timeout == 10s);
  CHECK(k.idle_timeout == 30s);
  CHECK(k.dns_refresh == 1min);
  CHECK(k.max_connections == 100);
  CHECK(k.max_idle == 0);
}

TEST_CASE("keys left out take the defaults written in config.h") {
  const Config c = load(kBase);
  const Config defaults;
  const ListenerConfig listener_defaults;
  const ClusterConfig cluster_defaults;
  CHECK(c.workers == 0);  // auto
  CHECK(c.admin_address.to_string() == defaults.admin_address.to_string());
  CHECK(c.log_level == defaults.log_level);
  CHECK(c.access_log == AccessLogTarget::Off);
  CHECK(c.drain_timeout == defaults.drain_timeout);
  const ListenerConfig& l = c.listeners.at(0);
  CHECK(l.routes.at(0).prefix == "/");
  CHECK(l.routes.at(0).host.empty());
  CHECK(l.idle_timeout == listener_defaults.idle_timeout);
  CHECK(l.header_timeout == listener_defaults.header_timeout);
  CHECK(l.max_header_bytes == listener_defaults.max_header_bytes);
  CHECK(l.max_body_bytes == listener_defaults.max_body_bytes);
  const ClusterConfig& k = c.clusters.at(0);
  CHECK(k.connect_timeout == cluster_defaults.connect_timeout);
  CHECK(k.response_header_timeout == cluster_defaults.response_header_timeout);
  CHECK(k.request_timeout == cluster_defaults.request_timeout);
  CHECK(k.idle_timeout == cluster_defaults.idle_timeout);
  CHECK(k.dns_refresh == cluster_defaults.dns_refresh);
  CHECK(k.max_connections == cluster_defaults.max_connections);
  CHECK(k.max_idle == cluster_defaults.max_idle);
}

TEST_CASE("workers is auto or a number from 1 to 32") {
  CHECK(load("workers: auto\n" + kBase).workers == 0);
  CHECK(load("workers: 1\n" + kBase).workers == 1);
  CHECK(load("workers: 32\n" + kBase).workers == 32);
  CHECK(only_error(kBase + "workers: 0\n") == R"(fusebox.yaml:10: workers: "0" is not auto or a number from 1 to 32)");
  CHECK(only_error(kBase + "workers: 33\n") ==
        R"(fusebox.yaml:10: workers: "33" is not auto or a number from 1 to 32)");
  CHECK(only_error(kBase + "workers: lots\n") ==
        R"(fusebox.yaml:10: workers: "lots" is not auto or a number from 1 to 32)");
}

TEST_CASE("access_log is off, stdout, stderr or a file path, but not a YAML boolean") {
  CHECK(load(kBase + "access_log: off\n").access_log == AccessLogTarget::Off);
  CHECK(load(kBase + "access_log: stdout\n").access_log == AccessLogTarget::Stdout);
  CHECK(load(kBase + "access_log: stderr\n").access_log == AccessLogTarget::Stderr);
  const Config file = load(kBase + "access_log: access.log\n");
  CHECK(file.access_log == AccessLogTarget::File);
  CHECK(file.access_log_path == "access.log");
  CHECK(only_error(kBase + "access_log: false\n") ==
        R"(fusebox.yaml:10: access_log: "false" is not an access log (write off, stdout, stderr or a file path))");
}

TEST_CASE("keys of features still to come are accepted and ignored") {
  const Config c = load(kBase + R"(    retry: {attempts: 3}
    bulkhead: {max_concurrent: 10}
    cache: {ttl: 5s}
    dead_letter: {path: /var/lib/fusebox}
redis:
  address: 127.0.0.1:6379
)");
  CHECK(c.clusters.size() == 1);
}

TEST_CASE("health_check: off unless given; every key with its default; path required") {
  CHECK_FALSE(load(kBase).clusters.at(0).health_check.enabled);
  const HealthCheckConfig d = load(kBase + "    health_check: {path: /healthz}\n").clusters.at(0).health_check;
  CHECK(d.enabled);
  CHECK(d.path == "/healthz");
  CHECK(d.host.empty());
  CHECK(d.interval == Millis{1000});
  CHECK(d.timeout == Millis{1000});
  CHECK(d.healthy_threshold == 2);
  CHECK(d.unhealthy_threshold == 2);
  CHECK(d.is_expected(200));
  CHECK(d.is_expected(399));
  CHECK_FALSE(d.is_expected(404));
  const HealthCheckConfig k = load(kBase + R"(    health_check:
      path: /ready?deep=1
      host: payments.internal
      interval: 250ms
      timeout: 100ms
      healthy_threshold: 1
      unhealthy_threshold: 3
      expected_statuses: [200, 204]
)").clusters.at(0).health_check;
  CHECK(k.path == "/ready?deep=1");
  CHECK(k.host == "payments.internal");
  CHECK(k.interval == Millis{250});
  CHECK(k.timeout == Millis{100});
  CHECK(k.healthy_threshold == 1);
  CHECK(k.unhealthy_threshold == 3);
  CHECK(k.is_expected(204));
  CHECK_FALSE(k.is_expected(201));

  CHECK(only_error(kBase + "    health_check: {interval: 1s}\n") ==
        "fusebox.yaml:10: clusters[0] (payments).health_check.path: missing; a health check needs the path to GET "
        "(e.g. path: /health)");
  CHECK(only_error(kBase + "    health_check: {path: health}\n") ==
        R"(fusebox.yaml:10: clusters[0] (payments).health_check.path: "health" is not a path: write it from its "/" (/health))");
  CHECK(only_error(kBase + "    health_check: {path: /a b}\n") ==
        R"(fusebox.yaml:10: clusters[0] (payments).health_check.path: "/a b" holds a space or a control or non-ASCII byte; percent-encode it)");
  CHECK(only_error(kBase + "    health_check: {path: /h, interval: 0}\n").find("health_check.interval") !=
        std::string::npos);
  CHECK(only_error(kBase + "    health_check: {path: /h, healthy_threshold: 0}\n") ==
        R"(fusebox.yaml:10: clusters[0] (payments).health_check.healthy_threshold: "0" is not a number from 1 to 100)");
  CHECK(only_error(kBase + "    health_check: {path: /h, expected_statuses: []}\n") ==
        "fusebox.yaml:10: clusters[0] (payments).health_check.expected_statuses: at least one status is required");
  CHECK(only_error(kBase + "    health_check: {path: /h, intervall: 1s}\n").find("did you mean") != std::string::npos);
  CHECK(only_error(kBase + "    health_check: {path: /h, host: \"\"}\n") ==
        "fusebox.yaml:10: clusters[0] (payments).health_check.host: a host must not be empty");
  CHECK(only_error(kBase + "    health_check: {path: /h, host: a/b}\n") ==
        R"(fusebox.yaml:10: clusters[0] (payments).health_check.host: "a/b" is not a host name (no spaces, slashes or control bytes))");
}

TEST_CASE("admin.token_file: a path, neither empty nor holding a NUL byte") {
  CHECK(only_error(kBase + "admin: {token_file: \"\"}\n") == "fusebox.yaml:10: admin.token_file: a path must not be empty");
  CHECK(only_error(kBase + "admin: {token_file: \"/run/a\\0b\"}\n") ==
        "fusebox.yaml:10: admin.token_file: a path must not hold a NUL byte");
}

TEST_CASE("a route may have a breaker of its own: the cluster's settings with its own on top") {
  const Config c = load(R"(listeners:
  - name: ingress
    address: 127.0.0.1:15001
    routes:
      - { prefix: /reports, cluster: payments, name: reports, breaker: { consecutive_failures: 2, mode: disabled } }
      - { prefix: /, cluster: payments }
clusters:
  - name: payments
    endpoints: [ 127.0.0.1:8080 ]
    breaker: { consecutive_failures: 9, open: { base: 5s }, mode: forced_open }
)");
  const Route& reports = c.listeners.at(0).routes.at(0);
  CHECK(reports.name == "reports");
  REQUIRE(reports.own_breaker);
  CHECK(reports.breaker.policy.consecutive_failures == 2);
  CHECK(reports.breaker.policy.open_base_ms == 5000);  // from the cluster
  CHECK(reports.breaker.policy.mode == shm::Mode::Disabled);
  CHECK_FALSE(c.listeners.at(0).routes.at(1).own_breaker);
  // The cluster's forced mode is the cluster's: a route's own breaker starts normal.
  const Config normal = load(R"(listeners:
  - name: ingress
    address: 127.0.0.1:15001
    routes: [ { prefix: /r, cluster: payments, name: r, breaker: {} }, { prefix: /, cluster: payments } ]
clusters:
  - { name: payments, endpoints: [ 127.0.0.1:8080 ], breaker: { mode: forced_open } }
)");
  CHECK(normal.listeners.at(0).routes.at(0).breaker.policy.mode == shm::Mode::Normal);

  const std::string base = R"(clusters:
  - { name: payments, endpoints: [ 127.0.0.1:8080 ] }
listeners:
  - name: ingress
    address: 127.0.0.1:15001
    routes:
)";
  CHECK(only_error(base + "      - { prefix: /r, cluster: payments, breaker: {} }\n") ==
        "fusebox.yaml:7: listeners[0] (ingress).routes[0].breaker: a route with a breaker of its own needs a name "
        "(name: charges), which the admin API and the metrics call it by");
  CHECK(only_error(base + "      - { prefix: /r, cluster: payments, name: payments, breaker: {} }\n") ==
        "fusebox.yaml:7: listeners[0] (ingress).routes[0].name: \"payments\" is also a cluster's name; a route's "
        "name must differ from every cluster's");
  CHECK(only_error(base + "      - { prefix: /r, cluster: payments, name: r }\n"
                          "      - { prefix: /s, cluster: payments, name: r }\n") ==
        "fusebox.yaml:8: listeners[0] (ingress).routes[1].name: \"r\" is already the name of the route on line 7");
  CHECK(only_error(base + "      - { prefix: /r, cluster: payments, name: r, breaker: { consecutive_failures: x } }\n")
            .find("routes[0].breaker.consecutive_failures") != std::string::npos);
}

// ---- the loader: the shape and line of every error ----

TEST_CASE("a bad value names the file, its line, its path with the item's name, and the fix") {
  CHECK(only_error(kBase + "    connect_timeout: fast\n") ==
        R"(fusebox.yaml:10: clusters[0] (payments).connect_timeout: "fast" is not a duration (write 250ms, 5s or 2m))");
  CHECK(only_error(kBase + "    max_connections: 0\n") ==
        R"(fusebox.yaml:10: clusters[0] (payments).max_connections: "0" is not a number from 1 to 1000000)");
  CHECK(only_error(kBase + "    max_idle: 1000001\n") ==
        R"(fusebox.yaml:10: clusters[0] (payments).max_idle: "1000001" is not a number from 0 to 1000000)");
  CHECK(only_error(kBase + "log_level: loud\n") ==
        R"(fusebox.yaml:10: log_level: "loud" is not a log level (debug, info, warn or error))");
  CHECK(only_error(kBase + "drain_timeout: 15\n") ==
        R"(fusebox.yaml:10: drain_timeout: "15" has no unit (write 15s or 15ms))");
  CHECK(only_error(kBase + "admin:\n  address: localhost\n") ==
        R"(fusebox.yaml:11: admin.address: "localhost" has no port (write host:port, e.g. 127.0.0.1:8080))");
}

TEST_CASE("a listener or cluster timeout of 0 is refused, a drain timeout of 0 is not") {
  CHECK(only_error(kBase + "    request_timeout: 0\n") ==
        R"(fusebox.yaml:10: clusters[0] (payments).request_timeout: "0" would time out at once; a timeout must be more than 0)");
  CHECK(load(kBase + "drain_timeout: 0\n").drain_timeout == 0ms);
}

TEST_CASE("an item without a usable name is named by its index alone") {
  CHECK(only_error(R"(listeners:
  - address: 127.0.0.1:15001
    routes:
      - cluster: payments
clusters:
  - name: payments
    endpoints: [127.0.0.1:8080]
)") == "fusebox.yaml:2: listeners[0].name: missing; every listener needs one (e.g. name: ingress)");
}

TEST_CASE("a route naming no cluster lists the clusters there are") {
  CHECK(only_error(R"(clusters:
  - name: payments
    endpoints: [127.0.0.1:8080]
listeners:
  - name: payments
    address: 127.0.0.1:15001
    routes:
      - prefix: /
        cluster: paymnts
)") == R"(fusebox.yaml:9: listeners[0] (payments).routes[0].cluster: no cluster named "paymnts" (clusters: payments))");
  CHECK(only_error(R"(listeners:
  - name: a
    address: 127.0.0.1:15001
    routes: [{cluster: b}]
)") == R"(fusebox.yaml:4: listeners[0] (a).routes[0].cluster: no cluster named "b" (no clusters are defined))");
}

TEST_CASE("an item after the first is reported by its own index") {
  const std::string yaml = R"(listeners:
  - name: a
    address: 127.0.0.1:15001
    routes: [{cluster: c}]
  - address: 127.0.0.1:15002
    routes:
      - cluster: nope
clusters: [{name: c, endpoints: [127.0.0.1:8080]}]
)";
  ConfigErrors errors;
  REQUIRE_FALSE(parse_config(yaml, "fusebox.yaml", &errors).ok());
  REQUIRE(errors.errors.size() == 2);
  CHECK(errors.errors[0] == "fusebox.yaml:5: listeners[1].name: missing; every listener needs one (e.g. name: ingress)");
  CHECK(errors.errors[1] == R"(fusebox.yaml:7: listeners[1].routes[0].cluster: no cluster named "nope" (clusters: c))");
}

TEST_CASE("an unknown key is named with its line and the nearest known key") {
  CHECK(only_error(kBase + "    conect_timeout: 1s\n") ==
        "fusebox.yaml:10: clusters[0] (payments).conect_timeout: unknown key (did you mean connect_timeout?)");
  CHECK(only_error(kBase + "    reqeust_timeout: 1s\n") ==
        "fusebox.yaml:10: clusters[0] (payments).reqeust_timeout: unknown key (did you mean request_timeout?)");
  CHECK(only_error(kBase + "    breakr: {}\n") ==
        "fusebox.yaml:10: clusters[0] (payments).breakr: unknown key (did you mean breaker?)");
  CHECK(only_error("worker: 2\n" + kBase) == "fusebox.yaml:1: worker: unknown key (did you mean workers?)");
}

TEST_CASE("an unknown key with no near match lists the keys allowed there") {
  CHECK(only_error(R"(listeners:
  - name: a
    address: 127.0.0.1:15001
    routes:
      - cluster: c
        weight: 3
clusters: [{name: c, endpoints: [127.0.0.1:8080]}]
)") == "fusebox.yaml:6: listeners[0] (a).routes[0].weight: unknown key (known keys here: prefix, host, cluster, name, breaker)");
  CHECK(only_error(kBase + "timeouts: {}\n") ==
        "fusebox.yaml:10: timeouts: unknown key (known keys here: workers, admin, log_level, access_log, "
        "drain_timeout, listeners, clusters, shm, redis)");
}

TEST_CASE("a key given twice in one mapping is an error at the second, naming the first") {
  CHECK(only_error(kBase + "    connect_timeout: 1s\n    connect_timeout: 2s\n") ==
        "fusebox.yaml:11: clusters[0] (payments).connect_timeout: duplicate key (first given on line 10)");
  CHECK(only_error("workers: 2\n" + kBase + "workers: 3\n") ==
        "fusebox.yaml:11: workers: duplicate key (first given on line 1)");
}

TEST_CASE("a key that is a list or mapping rather than a word is refused") {
  CHECK(only_error(kBase + "? [workers]\n: 2\n") == "fusebox.yaml:10: top level: keys must be plain words");
  CHECK(only_error(kBase + "    ? {a: 1}\n    : 2\n") == "fusebox.yaml:10: clusters[0] (payments): keys must be plain words");
}

TEST_CASE("a missing required key is reported on the line of the mapping that lacks it") {
  CHECK(only_error(kBase + R"(  - name: refunds
    connect_timeout: 1s
)") == "fusebox.yaml:10: clusters[1] (refunds).endpoints: missing; every cluster needs at least one host:port");
  CHECK(only_error(kBase + "  - endpoints: [127.0.0.1:8081]\n") ==
        "fusebox.yaml:10: clusters[1].name: missing; every cluster needs one (e.g. name: payments)");
  CHECK(only_error(R"(listeners:
  - name: a
    routes: [{cluster: c}]
clusters: [{name: c, endpoints: [127.0.0.1:8080]}]
)") == "fusebox.yaml:2: listeners[0] (a).address: missing; every listener needs one (e.g. 0.0.0.0:15001)");
  CHECK(only_error(R"(listeners:
  - name: a
    address: 127.0.0.1:15001
)") == "fusebox.yaml:2: listeners[0] (a).routes: missing; every listener needs at least one route");
  CHECK(only_error(R"(listeners:
  - name: a
    address: 127.0.0.1:15001
    routes:
      - prefix: /a
clusters: [{name: c, endpoints: [127.0.0.1:8080]}]
)") == "fusebox.yaml:5: listeners[0] (a).routes[0].cluster: missing; every route needs one (the name of a cluster)");
}

TEST_CASE("a config needs at least one listener, each with at least one route") {
  CHECK(only_error("") == "fusebox.yaml:1: listeners: at least one listener is required");
  CHECK(only_error("# nothing yet\n") == "fusebox.yaml:1: listeners: at least one listener is required");
  CHECK(only_error("workers: 2\nlisteners: []\n") == "fusebox.yaml:2: listeners: at least one listener is required");
  CHECK(only_error(R"(listeners:
  - name: a
    address: 127.0.0.1:15001
    routes: []
)") == "fusebox.yaml:4: listeners[0] (a).routes: at least one route is required");
  CHECK(only_error(kBase + "  - name: empty\n    endpoints: []\n") ==
        "fusebox.yaml:11: clusters[1] (empty).endpoints: at least one endpoint is required");
}

TEST_CASE("a value of the wrong kind says what was expected and what was found") {
  CHECK(only_error("- a\n- b\n") == "fusebox.yaml:1: top level: expected a mapping (key: value lines), found a list");
  CHECK(only_error(kBase + "admin: 127.0.0.1:9901\n") ==
        R"(fusebox.yaml:10: admin: expected a mapping (key: value lines), found "127.0.0.1:9901")");
  CHECK(only_error("listeners:\n  name: a\n") ==
        R"(fusebox.yaml:2: listeners: expected a list (lines starting with "- "), found a mapping)");
  CHECK(only_error(kBase + "    connect_timeout: [1s]\n") ==
        "fusebox.yaml:10: clusters[0] (payments).connect_timeout: expected a single value, found a list");
  CHECK(only_error(kBase + "    connect_timeout:\n") ==
        "fusebox.yaml:10: clusters[0] (payments).connect_timeout: no value given");
  CHECK(only_error(kBase + "  - 42\n") ==
        R"(fusebox.yaml:10: clusters[1]: expected a mapping (key: value lines), found "42")");
}

TEST_CASE("names are unique and made of letters, digits, underscore, dot and dash") {
  CHECK(load(kBase + "  - name: Pay_v2.eu-west\n    endpoints: [127.0.0.1:8081]\n").clusters.size() == 2);
  CHECK(only_error(kBase + "  - name: pay ments\n    endpoints: [127.0.0.1:8081]\n") ==
        R"(fusebox.yaml:10: clusters[1] (pay ments).name: "pay ments" is not a valid name (letters, digits, "_", "." and "-" only))");
  CHECK(only_error(kBase + "  - name: payments\n    endpoints: [127.0.0.1:8081]\n") ==
        R"(fusebox.yaml:10: clusters[1] (payments).name: "payments" is already the name of clusters[0] (payments) (line 7))");
  CHECK(only_error(R"(listeners:
  - name: a
    address: 127.0.0.1:15001
    routes: [{cluster: c}]
  - name: a
    address: 127.0.0.1:15002
    routes: [{cluster: c}]
clusters: [{name: c, endpoints: [127.0.0.1:8080]}]
)") == R"(fusebox.yaml:5: listeners[1] (a).name: "a" is already the name of listeners[0] (a) (line 2))");
}

TEST_CASE("two listeners may not share an address, unless the OS picks the port") {
  CHECK(only_error(R"(listeners:
  - name: a
    address: 127.0.0.1:15001
    routes: [{cluster: c}]
  - name: b
    address: 127.0.0.1:15001
    routes: [{cluster: c}]
clusters: [{name: c, endpoints: [127.0.0.1:8080]}]
)") == "fusebox.yaml:6: listeners[1] (b).address: 127.0.0.1:15001 is already the address of listeners[0] (a)");
  const Config c = load(R"(listeners:
  - name: a
    address: 127.0.0.1:0
    routes: [{cluster: c}]
  - name: b
    address: 127.0.0.1:0
    routes: [{cluster: c}]
clusters: [{name: c, endpoints: [127.0.0.1:8080]}]
)");
  CHECK(c.listeners.size() == 2);
}

TEST_CASE("a listener on the admin address is refused") {
  CHECK(only_error(R"(admin: {address: 127.0.0.1:15001}
listeners:
  - name: a
    address: 127.0.0.1:15001
    routes: [{cluster: c}]
clusters: [{name: c, endpoints: [127.0.0.1:8080]}]
)") == "fusebox.yaml:4: listeners[0] (a).address: 127.0.0.1:15001 is also the admin address");
}

TEST_CASE("an endpoint on port 0 is refused: nothing can be connected to there") {
  CHECK(only_error(kBase + "      - 127.0.0.1:0\n") ==
        R"(fusebox.yaml:10: clusters[0] (payments).endpoints[1]: "127.0.0.1:0" has port 0, which cannot be connected to (write the upstream's port))");
}

TEST_CASE("max_header_bytes is a size from 1 KiB to 1 MiB and max_body_bytes any size") {
  const std::string listener = R"(clusters: [{name: c, endpoints: [127.0.0.1:8080]}]
listeners:
  - name: a
    address: 127.0.0.1:15001
    routes: [{cluster: c}]
)";
  CHECK(load(listener + "    max_header_bytes: 1KiB\n").listeners[0].max_header_bytes == 1024);
  CHECK(load(listener + "    max_header_bytes: 1MiB\n").listeners[0].max_header_bytes == 1024 * 1024);
  CHECK(load(listener + "    max_body_bytes: 1GiB\n").listeners[0].max_body_bytes == 1024ULL * 1024 * 1024);
  CHECK(only_error(listener + "    max_header_bytes: 1023\n") ==
        R"(fusebox.yaml:6: listeners[0] (a).max_header_bytes: "1023" is not a size from 1KiB to 1MiB)");
  CHECK(only_error(listener + "    max_header_bytes: 2MiB\n") ==
        R"(fusebox.yaml:6: listeners[0] (a).max_header_bytes: "2MiB" is not a size from 1KiB to 1MiB)");
  CHECK(only_error(listener + "    max_body_bytes: 10MB\n") ==
        R"(fusebox.yaml:6: listeners[0] (a).max_body_bytes: "10MB" has an ambiguous unit "MB" (use KiB, MiB or GiB, which are 1024-based, or a plain number of bytes))");
}

TEST_CASE("a route's prefix starts with a slash and its host has no port") {
  const std::string head = R"(clusters: [{name: c, endpoints: [127.0.0.1:8080]}]
listeners:
  - name: a
    address: 127.0.0.1:15001
    routes:
      - cluster: c
)";
  CHECK(only_error(head + "        prefix: api\n") ==
        R"(fusebox.yaml:7: listeners[0] (a).routes[0].prefix: "api" does not start with "/" (write "/api"))");
  CHECK(only_error(head + "        host: api.example.com:443\n") ==
        R"(fusebox.yaml:7: listeners[0] (a).routes[0].host: "api.example.com:443" has a port; write the host alone (ports are ignored when matching))");
  CHECK(only_error(head + "        host: not a host\n") ==
        R"(fusebox.yaml:7: listeners[0] (a).routes[0].host: "not a host" is not a host name (a DNS name, an IPv4 address or [IPv6]))");
  CHECK(load(head + "        host: \"[::1]\"\n").listeners[0].routes[0].host == "[::1]");
}

TEST_CASE("a second route with the same host and prefix is refused: it could never match") {
  CHECK(only_error(R"(clusters: [{name: c, endpoints: [127.0.0.1:8080]}]
listeners:
  - name: a
    address: 127.0.0.1:15001
    routes:
      - {prefix: /x, cluster: c}
      - {prefix: /x, cluster: c}
)") == "fusebox.yaml:7: listeners[0] (a).routes[1]: same prefix and host as routes[0], so it would never be used");
}

TEST_CASE("routes are sorted host-specific first, then longest prefix, and resolved to cluster indices") {
  const Config c = load(R"(clusters:
  - name: web
    endpoints: [127.0.0.1:8080]
  - name: api
    endpoints: [127.0.0.1:8081]
  - name: admin
    endpoints: [127.0.0.1:8082]
listeners:
  - name: ingress
    address: 127.0.0.1:15001
    routes:
      - {prefix: /, cluster: web}
      - {prefix: /api, cluster: api}
      - {prefix: /a, cluster: web}
      - {prefix: /, host: admin.local, cluster: admin}
      - {prefix: /api/v2, cluster: api}
      - {prefix: /b, cluster: admin}
)");
  const auto& routes = c.listeners.at(0).routes;
  REQUIRE(routes.size() == 6);
  CHECK(routes[0].host == "admin.local");
  CHECK(routes[1].prefix == "/api/v2");
  CHECK(routes[2].prefix == "/api");
  CHECK(routes[3].prefix == "/a");  // /a and /b tie on length: their written order stays
  CHECK(routes[4].prefix == "/b");
  CHECK(routes[5].prefix == "/");
  for (const Route& route : routes) CHECK(c.clusters.at(route.cluster_index).name == route.cluster);
  CHECK(routes[0].cluster_index == 2);
  CHECK(routes[1].cluster_index == 1);
  CHECK(routes[5].cluster_index == 0);
}

TEST_CASE("a cluster no route uses is allowed") {
  CHECK(load(kBase + "  - name: spare\n    endpoints: [127.0.0.1:9000]\n").clusters.size() == 2);
}

TEST_CASE("YAML syntax errors carry the file and line, with a hint for unquoted IPv6 and tabs") {
  CHECK(only_error("workers: [1, 2\nlisteners: []\n") == "fusebox.yaml:2: invalid YAML: end of sequence flow not found");
  CHECK(only_error(R"(listeners:
  - name: a
    address: [::1]:15001
)") == R"(fusebox.yaml:3: invalid YAML: end of map not found (quote IPv6 addresses: "[::1]:8080"))");
  CHECK(only_error("admin:\n\taddress: 127.0.0.1:9901\n") ==
        "fusebox.yaml:2: invalid YAML: illegal map value (indent with spaces: YAML does not allow tabs)");
}

TEST_CASE("a file with two YAML documents is refused at the second") {
  CHECK(only_error(kBase + "---\nworkers: 2\n") ==
        "fusebox.yaml:11: a second YAML document starts here; fusebox reads one document per file");
}

TEST_CASE("every error is collected, in file order, and joined into the returned error") {
  ConfigErrors errors;
  errors.errors = {"stale"};
  auto config = parse_config(R"(listeners:
  - name: a
    address: 127.0.0.1:15001
    routes: [{cluster: nope}]
    idle_timeout: soon
workers: many
clusters:
  - name: c
    endpoints: [127.0.0.1:8080]
    connect_timeout: fast
)", "f.yaml", &errors);
  REQUIRE_FALSE(config.ok());
  REQUIRE(errors.errors.size() == 4);
  CHECK(errors.errors[0] == R"(f.yaml:4: listeners[0] (a).routes[0].cluster: no cluster named "nope" (clusters: c))");
  CHECK(errors.errors[1] == R"(f.yaml:5: listeners[0] (a).idle_timeout: "soon" is not a duration (write 250ms, 5s or 2m))");
  CHECK(errors.errors[2] == R"(f.yaml:6: workers: "many" is not auto or a number from 1 to 32)");
  CHECK(errors.errors[3] == R"(f.yaml:10: clusters[0] (c).connect_timeout: "fast" is not a duration (write 250ms, 5s or 2m))");
  CHECK(config.error().message == errors.errors[0] + "\n" + errors.errors[1] + "\n" + errors.errors[2] + "\n"
                                      + errors.errors[3]);
}

TEST_CASE("a config that loads leaves the error list empty") {
  ConfigErrors errors;
  errors.errors = {"stale"};
  CHECK(parse_config(kBase, "fusebox.yaml", &errors).ok());
  CHECK(errors.errors.empty());
}

// ---- the loader: breaker, fallback and shm ----

namespace {

// Every field of two policies, so that a failure names the field that differs.
void check_same_policy(const shm::BreakerPolicy& a, const shm::BreakerPolicy& b) {
  CHECK(a.consecutive_failures == b.consecutive_failures);
  CHECK(a.failure_rate_pct == b.failure_rate_pct);
  CHECK(a.minimum_calls == b.minimum_calls);
  CHECK(a.window_ms == b.window_ms);
  CHECK(a.window_calls == b.window_calls);
  CHECK(a.slow_rate_pct == b.slow_rate_pct);
  CHECK(a.slow_call_ms == b.slow_call_ms);
  CHECK(a.open_base_ms == b.open_base_ms);
  CHECK(a.open_multiplier_x100 == b.open_multiplier_x100);
  CHECK(a.open_max_ms == b.open_max_ms);
  CHECK(a.open_jitter_pct == b.open_jitter_pct);
  CHECK(a.half_open_permits == b.half_open_permits);
  CHECK(a.half_open_successes == b.half_open_successes);
  CHECK(a.mode == b.mode);
}

// The documented defaults, written out rather than taken from BreakerPolicy{}, so that a changed
// default shows up here as the user-visible change it is.
void check_default_breaker(const BreakerConfig& b) {
  const shm::BreakerPolicy& p = b.policy;
  CHECK(p.consecutive_failures == 5);
  CHECK(p.failure_rate_pct == 50);
  CHECK(p.minimum_calls == 20);
  CHECK(p.window_ms == 10'000);
  CHECK(p.window_calls == 0);
  CHECK(p.slow_rate_pct == 0);
  CHECK(p.slow_call_ms == 2'000);
  CHECK(p.open_base_ms == 30'000);
  CHECK(p.open_multiplier_x100 == 200);
  CHECK(p.open_max_ms == 300'000);
  CHECK(p.open_jitter_pct == 10);
  CHECK(p.half_open_permits == 3);
  CHECK(p.half_open_successes == 3);
  CHECK(p.mode == shm::Mode::Normal);
  REQUIRE(b.failure_statuses.size() == 1);
  CHECK(b.failure_statuses[0].first == 500);
  CHECK(b.failure_statuses[0].last == 599);
}

// The policy of kBase's cluster with `breaker` (indented under it, from line 11) appended.
shm::BreakerPolicy policy_of(const std::string& breaker) {
  return load(kBase + "    breaker:\n" + breaker).clusters.at(0).breaker.policy;
}

// The only error of kBase's cluster with `breaker` appended (its first line is 11).
std::string breaker_error(const std::string& breaker) {
  return only_error(kBase + "    breaker:\n" + breaker);
}

}  // namespace

TEST_CASE("a cluster without breaker, fallback or shm keys gets the documented defaults") {
  const Config c = load(kBase);
  check_default_breaker(c.clusters.at(0).breaker);
  const FallbackConfig& f = c.clusters.at(0).fallback;
  CHECK_FALSE(f.enabled);
  CHECK(f.status == 503);
  CHECK(f.headers.empty());
  CHECK(f.body.empty());
  CHECK(c.shm.name.empty());
  CHECK(c.shm.max_breakers == 256);
  check_same_policy(load(kBase + "    breaker: {}\n").clusters.at(0).breaker.policy, shm::BreakerPolicy{});
}

TEST_CASE("the embedded default and --listen/--upstream give their cluster the default breaker") {
  check_default_breaker(default_config().clusters.at(0).breaker);
  auto c = command_line_config("127.0.0.1:0", "127.0.0.1:9000");
  REQUIRE(c.ok());
  check_default_breaker(c.value().clusters.at(0).breaker);
  CHECK_FALSE(c.value().clusters.at(0).fallback.enabled);
}

TEST_CASE("every breaker key is parsed into its policy field") {
  const Config c = load(kBase + R"(    breaker:
      consecutive_failures: 7
      failure_rate: { threshold: 40%, minimum_calls: 30, window: 100 calls }
      slow_calls: { threshold: 80%, duration: 1500ms }
      failure_statuses: [ 502, 503, 520-529 ]
      open: { base: 10s, multiplier: 1.5, max: 2m, jitter: 0.25 }
      half_open: { permits: 5, successes: 2 }
      mode: metrics_only
)");
  const BreakerConfig& b = c.clusters.at(0).breaker;
  const shm::BreakerPolicy& p = b.policy;
  CHECK(p.consecutive_failures == 7);
  CHECK(p.failure_rate_pct == 40);
  CHECK(p.minimum_calls == 30);
  CHECK(p.window_calls == 100);
  CHECK(p.window_ms == 0);
  CHECK(p.slow_rate_pct == 80);
  CHECK(p.slow_call_ms == 1'500);
  CHECK(p.open_base_ms == 10'000);
  CHECK(p.open_multiplier_x100 == 150);
  CHECK(p.open_max_ms == 120'000);
  CHECK(p.open_jitter_pct == 25);
  CHECK(p.half_open_permits == 5);
  CHECK(p.half_open_successes == 2);
  CHECK(p.mode == shm::Mode::MetricsOnly);
  REQUIRE(b.failure_statuses.size() == 3);
  CHECK(b.failure_statuses[0].first == 502);
  CHECK(b.failure_statuses[0].last == 502);
  CHECK(b.failure_statuses[1].first == 503);
  CHECK(b.failure_statuses[2].first == 520);
  CHECK(b.failure_statuses[2].last == 529);
  CHECK(b.is_failure_status(525));
  CHECK_FALSE(b.is_failure_status(500));
}

TEST_CASE("the documented example of every breaker, fallback and shm key loads as written") {
  const Config c = load(R"(shm: { name: fusebox-payments, max_breakers: 256 }
listeners:
  - name: ingress
    address: 127.0.0.1:15001
    routes: [{cluster: payments}]
clusters:
  - name: payments
    endpoints: [ 127.0.0.1:8080 ]
    breaker:
      consecutive_failures: 5
      failure_rate: { threshold: 50%, minimum_calls: 20, window: 10s }
      slow_calls: { threshold: 80%, duration: 2s }
      failure_statuses: [ 500-599 ]
      open: { base: 30s, multiplier: 2, max: 5m, jitter: 0.1 }
      half_open: { permits: 3, successes: 3 }
      mode: normal
    fallback: { status: 200, headers: { Content-Type: application/json }, body: '{"cached":true}' }
)");
  CHECK(c.shm.name == "fusebox-payments");
  CHECK(c.shm.max_breakers == 256);
  const ClusterConfig& k = c.clusters.at(0);
  const shm::BreakerPolicy& p = k.breaker.policy;
  CHECK(p.window_ms == 10'000);
  CHECK(p.window_calls == 0);
  CHECK(p.slow_rate_pct == 80);
  CHECK(p.slow_call_ms == 2'000);
  CHECK(p.open_multiplier_x100 == 200);
  CHECK(p.open_jitter_pct == 10);
  check_same_policy(p, shm::BreakerPolicy{.slow_rate_pct = 80});
  CHECK(k.fallback.enabled);
  CHECK(k.fallback.status == 200);
  REQUIRE(k.fallback.headers.size() == 1);
  CHECK(k.fallback.headers[0].first == "Content-Type");
  CHECK(k.fallback.headers[0].second == "application/json");
  CHECK(k.fallback.body == R"({"cached":true})");
}

TEST_CASE("breaker keys left out keep their defaults beside the ones given") {
  const shm::BreakerPolicy p = policy_of("      failure_rate: { window: 30s }\n      open: { jitter: 0 }\n");
  check_same_policy(p, shm::BreakerPolicy{.window_ms = 30'000, .open_jitter_pct = 0});
}

TEST_CASE("percentages are whole, with or without a % sign; 0 turns a rate rule off") {
  CHECK(policy_of("      failure_rate: { threshold: 50 }\n").failure_rate_pct == 50);
  CHECK(policy_of("      failure_rate: { threshold: 100% }\n").failure_rate_pct == 100);
  CHECK(policy_of("      failure_rate: { threshold: 0% }\n").failure_rate_pct == 0);
  CHECK(policy_of("      failure_rate: { threshold: 0 }\n").failure_rate_pct == 0);
  CHECK(breaker_error("      failure_rate: { threshold: 150% }\n") ==
        R"(fusebox.yaml:11: clusters[0] (payments).breaker.failure_rate.threshold: "150%" is not a percentage (0-100%))");
  CHECK(breaker_error("      slow_calls: { threshold: 12.5% }\n") ==
        R"(fusebox.yaml:11: clusters[0] (payments).breaker.slow_calls.threshold: "12.5%" is not a percentage (0-100%))");
  CHECK(breaker_error("      failure_rate: { threshold: half }\n") ==
        R"(fusebox.yaml:11: clusters[0] (payments).breaker.failure_rate.threshold: "half" is not a percentage (0-100%))");
}

TEST_CASE("a window is a duration or a number of calls, never both") {
  const shm::BreakerPolicy time = policy_of("      failure_rate: { window: 10s }\n");
  CHECK(time.window_ms == 10'000);
  CHECK(time.window_calls == 0);
  const shm::BreakerPolicy count = policy_of("      failure_rate: { window: 100 calls, minimum_calls: 10 }\n");
  CHECK(count.window_calls == 100);
  CHECK(count.window_ms == 0);
  CHECK(policy_of("      failure_rate: { window: 1000 calls }\n").window_calls == 1000);
  CHECK(policy_of("      failure_rate: { window: 1 call, minimum_calls: 1 }\n").window_calls == 1);
  CHECK(policy_of("      failure_rate: { window: 24h }\n").window_ms == 86'400'000);
  const std::string at = "fusebox.yaml:11: clusters[0] (payments).breaker.failure_rate.window: ";
  CHECK(breaker_error("      failure_rate: { window: 1001 calls }\n") ==
        at + R"("1001 calls" is not a number of calls from 1 to 1000)");
  CHECK(breaker_error("      failure_rate: { window: 0 calls }\n") ==
        at + R"("0 calls" is not a number of calls from 1 to 1000)");
  CHECK(breaker_error("      failure_rate: { window: 100 }\n") ==
        at + R"("100" has no unit (write 100s for the last 100 seconds, or "100 calls" for the last 100 calls))");
  CHECK(breaker_error("      failure_rate: { window: 100 cals }\n") ==
        at + R"("100 cals" is not a window (write a duration, e.g. 10s, or a number of calls, e.g. 100 calls))");
  CHECK(breaker_error("      failure_rate: { window: 0 }\n") ==
        at + R"("0" is an empty window; a window must be more than 0)");
  CHECK(breaker_error("      failure_rate: { window: 25h }\n") ==
        at + R"("25h" is more than 24h, the longest a breaker duration may be)");
  CHECK(breaker_error("      failure_rate: { window: 1.5s }\n") ==
        at + R"("1.5s" is not a whole number; write a smaller unit (1500ms, not 1.5s))");
}

TEST_CASE("a count window smaller than minimum_calls is refused: no rate could trip the breaker") {
  CHECK(breaker_error("      failure_rate: { window: 10 calls }\n") ==
        "fusebox.yaml:11: clusters[0] (payments).breaker.failure_rate.minimum_calls: 20 (the default) is more "
        "than the window's 10 calls, so no rate could ever trip the breaker; lower minimum_calls or widen the window");
  CHECK(breaker_error("      failure_rate:\n        window: 10 calls\n        minimum_calls: 11\n") ==
        "fusebox.yaml:13: clusters[0] (payments).breaker.failure_rate.minimum_calls: 11 is more than the "
        "window's 10 calls, so no rate could ever trip the breaker; lower minimum_calls or widen the window");
  // With both rate rules off the window only feeds metrics, and any minimum is harmless.
  CHECK(policy_of("      failure_rate: { window: 10 calls, threshold: 0 }\n").window_calls == 10);
  CHECK(breaker_error("      failure_rate: { window: 10 calls, threshold: 0 }\n      slow_calls: { threshold: 50% }\n") ==
        "fusebox.yaml:11: clusters[0] (payments).breaker.failure_rate.minimum_calls: 20 (the default) is more "
        "than the window's 10 calls, so no rate could ever trip the breaker; lower minimum_calls or widen the window");
}

TEST_CASE("minimum_calls and consecutive_failures are whole numbers in range") {
  CHECK(policy_of("      consecutive_failures: 0\n").consecutive_failures == 0);
  CHECK(policy_of("      failure_rate: { minimum_calls: 1 }\n").minimum_calls == 1);
  CHECK(breaker_error("      consecutive_failures: -1\n") ==
        R"(fusebox.yaml:11: clusters[0] (payments).breaker.consecutive_failures: "-1" is not a number from 0 to 1000000)");
  CHECK(breaker_error("      failure_rate: { minimum_calls: 0 }\n") ==
        R"(fusebox.yaml:11: clusters[0] (payments).breaker.failure_rate.minimum_calls: "0" is not a number from 1 to 1000000)");
}

TEST_CASE("slow_calls is off unless given, and needs a threshold when given") {
  CHECK(policy_of("      consecutive_failures: 3\n").slow_rate_pct == 0);
  const shm::BreakerPolicy p = policy_of("      slow_calls: { threshold: 30% }\n");
  CHECK(p.slow_rate_pct == 30);
  CHECK(p.slow_call_ms == 2'000);
  CHECK(breaker_error("      slow_calls: { duration: 1s }\n") ==
        "fusebox.yaml:11: clusters[0] (payments).breaker.slow_calls.threshold: missing; slow_calls needs one "
        "(e.g. threshold: 80%)");
  CHECK(breaker_error("      slow_calls:\n        threshold: 80%\n        duration: 0\n") ==
        R"(fusebox.yaml:13: clusters[0] (payments).breaker.slow_calls.duration: "0" would count every call as slow; a slow call duration must be more than 0)");
}

TEST_CASE("failure_statuses are single statuses and ranges from 100 to 599, or none") {
  const auto statuses = [](const std::string& list) {
    return load(kBase + "    breaker:\n      failure_statuses: " + list + "\n").clusters.at(0).breaker.failure_statuses;
  };
  CHECK(statuses("[]").empty());
  REQUIRE(statuses("[100-599]").size() == 1);
  CHECK(statuses("[100-599]")[0].first == 100);
  CHECK(statuses("[429, 503]").size() == 2);
  const std::string at = "fusebox.yaml:11: clusters[0] (payments).breaker.failure_statuses";
  CHECK(breaker_error("      failure_statuses: [500-599, 5xx]\n") ==
        at + R"([1]: "5xx" is not a status or a range of statuses (write 503 or 500-599; statuses are 100 to 599))");
  CHECK(breaker_error("      failure_statuses: [600]\n") ==
        at + R"([0]: "600" is not a status or a range of statuses (write 503 or 500-599; statuses are 100 to 599))");
  CHECK(breaker_error("      failure_statuses: [99-200]\n") ==
        at + R"([0]: "99-200" is not a status or a range of statuses (write 503 or 500-599; statuses are 100 to 599))");
  CHECK(breaker_error("      failure_statuses: [599-500]\n") == at + R"([0]: "599-500" is backwards (write 500-599))");
  CHECK(breaker_error("      failure_statuses: 500-599\n") ==
        at + R"(: expected a list (lines starting with "- "), found "500-599")");
  CHECK(breaker_error("      failure_statuses:\n        - [500]\n") ==
        "fusebox.yaml:12: clusters[0] (payments).breaker.failure_statuses[0]: expected a single value, found a list");
}

TEST_CASE("open takes durations, a multiplier of at least 1 and a jitter fraction") {
  CHECK(policy_of("      open: { multiplier: 1 }\n").open_multiplier_x100 == 100);
  CHECK(policy_of("      open: { multiplier: 2 }\n").open_multiplier_x100 == 200);
  CHECK(policy_of("      open: { multiplier: 1.25 }\n").open_multiplier_x100 == 125);
  CHECK(policy_of("      open: { multiplier: 1.005 }\n").open_multiplier_x100 == 101);  // rounded half up
  CHECK(policy_of("      open: { multiplier: 1.004 }\n").open_multiplier_x100 == 100);
  CHECK(policy_of("      open: { multiplier: 100 }\n").open_multiplier_x100 == 10'000);
  CHECK(policy_of("      open: { jitter: 0.1 }\n").open_jitter_pct == 10);
  CHECK(policy_of("      open: { jitter: 0 }\n").open_jitter_pct == 0);
  CHECK(policy_of("      open: { jitter: 1 }\n").open_jitter_pct == 100);
  CHECK(policy_of("      open: { jitter: 1.0 }\n").open_jitter_pct == 100);
  CHECK(policy_of("      open: { jitter: 0.125 }\n").open_jitter_pct == 13);
  CHECK(policy_of("      open: { jitter: 15% }\n").open_jitter_pct == 15);
  const shm::BreakerPolicy p = policy_of("      open: { base: 1s, max: 1s }\n");
  CHECK(p.open_base_ms == 1'000);
  CHECK(p.open_max_ms == 1'000);
  const std::string at = "fusebox.yaml:11: clusters[0] (payments).breaker.open.";
  for (const std::string bad : {"0.99", "0", "100.01", "1e2", ".5", "-2", "1.", "two"}) {
    CHECK(breaker_error("      open: { multiplier: " + bad + " }\n") ==
          at + "multiplier: \"" + bad + R"(" is not a number from 1 to 100 (2 doubles the open time on each trip in a row))");
  }
  for (const std::string bad : {"1.01", "2", "10", "-0.1", "1/10"}) {
    CHECK(breaker_error("      open: { jitter: " + bad + " }\n") ==
          at + "jitter: \"" + bad + R"(" is not a fraction from 0 to 1 (0.1 spreads the open time by ±10%))");
  }
  CHECK(breaker_error("      open: { jitter: 110% }\n") == at + R"(jitter: "110%" is not a percentage (0-100%))");
  CHECK(breaker_error("      open: { base: 0s }\n") ==
        at + R"(base: "0s" would not keep the breaker open at all; an open time must be more than 0)");
  CHECK(breaker_error("      open: { base: 30 }\n") == at + R"(base: "30" has no unit (write 30s or 30ms))");
}

TEST_CASE("open.max below open.base is refused, naming a default that causes it") {
  CHECK(breaker_error("      open:\n        base: 1m\n        max: 30s\n") ==
        "fusebox.yaml:13: clusters[0] (payments).breaker.open.max: 30s is less than base, 1m; raise max or lower base");
  CHECK(breaker_error("      open:\n        base: 10m\n") ==
        "fusebox.yaml:11: clusters[0] (payments).breaker.open.max: 5m (the default) is less than base, 10m; "
        "raise max or lower base");
  CHECK(breaker_error("      open: { max: 10s }\n") ==
        "fusebox.yaml:11: clusters[0] (payments).breaker.open.max: 10s is less than base, 30s (the default); "
        "raise max or lower base");
}

TEST_CASE("half_open permits 1 to 1000 trials, and successes at most that many") {
  const shm::BreakerPolicy p = policy_of("      half_open: { permits: 1000, successes: 1 }\n");
  CHECK(p.half_open_permits == 1000);
  CHECK(p.half_open_successes == 1);
  const std::string at = "fusebox.yaml:11: clusters[0] (payments).breaker.half_open.";
  CHECK(breaker_error("      half_open: { permits: 0 }\n") == at + R"(permits: "0" is not a number from 1 to 1000)");
  CHECK(breaker_error("      half_open: { permits: 1001 }\n") == at + R"(permits: "1001" is not a number from 1 to 1000)");
  CHECK(breaker_error("      half_open: { permits: 2, successes: 0 }\n") ==
        at + R"(successes: "0" is not a number from 1 to 1000)");
  CHECK(breaker_error("      half_open: { permits: 2, successes: 3 }\n") ==
        at + "successes: 3 is more than permits, 2, so the trials could never close the breaker; lower successes "
             "or raise permits");
  CHECK(breaker_error("      half_open: { permits: 1 }\n") ==
        at + "successes: 3 (the default) is more than permits, 1, so the trials could never close the breaker; "
             "lower successes or raise permits");
}

TEST_CASE("mode is one of the four operator modes") {
  CHECK(policy_of("      mode: normal\n").mode == shm::Mode::Normal);
  CHECK(policy_of("      mode: forced_open\n").mode == shm::Mode::ForcedOpen);
  CHECK(policy_of("      mode: disabled\n").mode == shm::Mode::Disabled);
  CHECK(policy_of("      mode: metrics_only\n").mode == shm::Mode::MetricsOnly);
  CHECK(breaker_error("      mode: off\n") ==
        R"(fusebox.yaml:11: clusters[0] (payments).breaker.mode: "off" is not a mode (normal, forced_open, disabled or metrics_only))");
}

TEST_CASE("breaker keys are checked like every other: unknown, duplicate, wrong kind") {
  CHECK(breaker_error("      consecutive_failure: 3\n") ==
        "fusebox.yaml:11: clusters[0] (payments).breaker.consecutive_failure: unknown key (did you mean "
        "consecutive_failures?)");
  CHECK(breaker_error("      failure_rate: { treshold: 50% }\n") ==
        "fusebox.yaml:11: clusters[0] (payments).breaker.failure_rate.treshold: unknown key (did you mean threshold?)");
  CHECK(breaker_error("      open: { maximum: 5m }\n") ==
        "fusebox.yaml:11: clusters[0] (payments).breaker.open.maximum: unknown key (known keys here: base, "
        "multiplier, max, jitter)");
  CHECK(breaker_error("      half_open: { permit: 3 }\n") ==
        "fusebox.yaml:11: clusters[0] (payments).breaker.half_open.permit: unknown key (did you mean permits?)");
  CHECK(breaker_error("      slow_calls: { threshold: 80%, durration: 1s }\n") ==
        "fusebox.yaml:11: clusters[0] (payments).breaker.slow_calls.durration: unknown key (did you mean duration?)");
  CHECK(breaker_error("      mode: normal\n      mode: disabled\n") ==
        "fusebox.yaml:12: clusters[0] (payments).breaker.mode: duplicate key (first given on line 11)");
  CHECK(only_error(kBase + "    breaker: on\n") ==
        R"(fusebox.yaml:10: clusters[0] (payments).breaker: expected a mapping (key: value lines), found "on")");
  CHECK(breaker_error("      open: 30s\n") ==
        R"(fusebox.yaml:11: clusters[0] (payments).breaker.open: expected a mapping (key: value lines), found "30s")");
}

TEST_CASE("each cluster has its own breaker") {
  const Config c = load(kBase + R"(    breaker: { consecutive_failures: 9 }
  - name: refunds
    endpoints: [127.0.0.1:8081]
)");
  CHECK(c.clusters.at(0).breaker.policy.consecutive_failures == 9);
  check_default_breaker(c.clusters.at(1).breaker);
}

TEST_CASE("a fallback turns on when given, with its status, headers in order and body") {
  const Config c = load(kBase + R"(    fallback:
      status: 200
      headers:
        X-Fallback: "1"
        Content-Type: application/json
        Cache-Control: no-store
      body: '{"cached":true}'
)");
  const FallbackConfig& f = c.clusters.at(0).fallback;
  CHECK(f.enabled);
  CHECK(f.status == 200);
  REQUIRE(f.headers.size() == 3);
  CHECK(f.headers[0] == std::pair<std::string, std::string>{"X-Fallback", "1"});
  CHECK(f.headers[1] == std::pair<std::string, std::string>{"Content-Type", "application/json"});
  CHECK(f.headers[2] == std::pair<std::string, std::string>{"Cache-Control", "no-store"});
  CHECK(f.body == R"({"cached":true})");
  const FallbackConfig empty = load(kBase + "    fallback: {}\n").clusters.at(0).fallback;
  CHECK(empty.enabled);
  CHECK(empty.status == 503);
  CHECK(empty.headers.empty());
  CHECK(empty.body.empty());
  CHECK(load(kBase + "    fallback: { status: 204 }\n").clusters.at(0).fallback.status == 204);
}

TEST_CASE("a fallback's status is final, its headers well formed and not about framing") {
  const std::string at = "fusebox.yaml:11: clusters[0] (payments).fallback.";
  const auto error = [](const std::string& fallback) { return only_error(kBase + "    fallback:\n" + fallback); };
  CHECK(error("      status: 100\n") == at + R"(status: "100" is not a status from 200 to 599 (a fallback is a final response))");
  CHECK(error("      status: 600\n") == at + R"(status: "600" is not a status from 200 to 599 (a fallback is a final response))");
  CHECK(error("      status: 204\n      body: hello\n") ==
        "fusebox.yaml:12: clusters[0] (payments).fallback.body: a 204 response has no body; remove body or choose "
        "another status");
  CHECK(error("      body: {cached: true}\n") == at + "body: expected a single value, found a mapping");
  CHECK(error("      headers: [Content-Type]\n") ==
        at + R"(headers: expected a mapping (key: value lines), found a list)");
  const std::string headers = "fusebox.yaml:12: clusters[0] (payments).fallback.headers.";
  CHECK(error("      headers:\n        Bad Name: x\n") ==
        headers + R"(Bad Name: "Bad Name" is not a header name (letters, digits and !#$%&'*+-.^_`|~ only))");
  CHECK(error("      headers:\n        X-Split: \"a\\r\\nSet-Cookie: b\"\n") ==
        headers + "X-Split: a header value may not contain CR, LF or NUL (RFC 9110 §5.5)");
  CHECK(error("      headers:\n        Content-Length: \"5\"\n") ==
        headers + "Content-Length: fusebox sets Content-Length from the body; leave it out");
  CHECK(error("      headers:\n        transfer-encoding: chunked\n") ==
        headers + "transfer-encoding: fusebox sets transfer-encoding from the body; leave it out");
  CHECK(error("      headers:\n        X-A: x\n        x-a: y\n") ==
        "fusebox.yaml:13: clusters[0] (payments).fallback.headers.x-a: the same header as X-A (header names ignore case)");
  CHECK(error("      headers:\n        X-A: x\n        X-A: y\n") ==
        "fusebox.yaml:13: clusters[0] (payments).fallback.headers.X-A: duplicate key (first given on line 12)");
  CHECK(error("      headers:\n        X-A:\n") == headers + "X-A: no value given");
  CHECK(error("      stauts: 200\n") == at + "stauts: unknown key (did you mean status?)");
}

TEST_CASE("shm takes a segment name and a number of breaker slots") {
  const Config c = load("shm:\n  name: fb_payments.v2-eu\n  max_breakers: 65536\n" + kBase);
  CHECK(c.shm.name == "fb_payments.v2-eu");
  CHECK(c.shm.max_breakers == 65'536);
  CHECK(load("shm: { max_breakers: 1 }\n" + kBase).shm.max_breakers == 1);
  CHECK(load("shm: { name: " + std::string(200, 'a') + " }\n" + kBase).shm.name.size() == 200);
  const std::string name_problem =
      R"( is not a segment name (1 to 200 letters, digits, "_", "." and "-"; not "." or ".."))";
  CHECK(only_error("shm: { name: fusebox/payments }\n" + kBase) == R"(fusebox.yaml:1: shm.name: "fusebox/payments")" + name_problem);
  CHECK(only_error("shm: { name: \"..\" }\n" + kBase) == R"(fusebox.yaml:1: shm.name: "..")" + name_problem);
  CHECK(only_error("shm: { name: \"\" }\n" + kBase) == R"(fusebox.yaml:1: shm.name: "")" + name_problem);
  CHECK(only_error("shm: { name: " + std::string(201, 'a') + " }\n" + kBase) ==
        "fusebox.yaml:1: shm.name: \"" + std::string(201, 'a') + "\"" + name_problem);
  CHECK(only_error("shm: { max_breakers: 0 }\n" + kBase) ==
        R"(fusebox.yaml:1: shm.max_breakers: "0" is not a number from 1 to 65536)");
  CHECK(only_error("shm: { max_breakers: 65537 }\n" + kBase) ==
        R"(fusebox.yaml:1: shm.max_breakers: "65537" is not a number from 1 to 65536)");
  CHECK(only_error("shm: { nmae: x }\n" + kBase) == "fusebox.yaml:1: shm.nmae: unknown key (did you mean name?)");
  CHECK(only_error("shm: fusebox\n" + kBase) ==
        R"(fusebox.yaml:1: shm: expected a mapping (key: value lines), found "fusebox")");
}

TEST_CASE("more clusters than shm.max_breakers is refused on the clusters line") {
  CHECK(only_error("shm: { max_breakers: 1 }\n" + kBase + "  - name: refunds\n    endpoints: [127.0.0.1:8081]\n") ==
        "fusebox.yaml:7: clusters: 2 clusters but shm.max_breakers is 1; raise shm.max_breakers");
  // The default, 256: kBase's cluster and 255 more fit; one more does not.
  std::string clusters;
  for (int i = 0; i < 255; ++i) clusters += "  - {name: c" + std::to_string(i) + ", endpoints: [127.0.0.1:8080]}\n";
  CHECK(load(kBase + clusters).clusters.size() == 256);
  CHECK(only_error(kBase + clusters + "  - {name: one_more, endpoints: [127.0.0.1:8080]}\n") ==
        "fusebox.yaml:6: clusters: 257 clusters but shm.max_breakers is 256; raise shm.max_breakers");
  // A max_breakers that is itself wrong is reported alone, not measured against.
  ConfigErrors errors;
  CHECK_FALSE(parse_config("shm: { max_breakers: none }\n" + kBase + clusters + "  - {name: x, endpoints: [127.0.0.1:8080]}\n",
                           "fusebox.yaml", &errors).ok());
  CHECK(errors.errors == std::vector<std::string>{R"(fusebox.yaml:1: shm.max_breakers: "none" is not a number from 1 to 65536)"});
}

TEST_CASE("a segment is named by shm.name, or after the admin address") {
  Config c;
  CHECK(segment_name(c) == "fusebox-127.0.0.1-9901");
  c.admin_address = {"::1", 9902};
  CHECK(segment_name(c) == "fusebox-__1-9902");
  c.admin_address = {"admin.local", 80};
  CHECK(segment_name(c) == "fusebox-admin.local-80");
  c.shm.name = "fusebox-payments";
  CHECK(segment_name(c) == "fusebox-payments");
  CHECK(segment_name(default_config()) == "fusebox-127.0.0.1-9901");
  CHECK(segment_name(load("admin: {address: \"[fe80::1]:9901\"}\n" + kBase)) == "fusebox-fe80__1-9901");
}

// ---- files ----

TEST_CASE("a config file is read and named in messages by its path") {
  const auto path = std::filesystem::temp_directory_path() / ("fusebox-config-test-" + std::to_string(getpid()) + ".yaml");
  {
    std::ofstream out(path);
    out << kBase << "    connect_timeout: fast\n";
  }
  auto bad = load_config_file(path.string());
  {
    std::ofstream out(path);
    out << kBase;
  }
  auto good = load_config_file(path.string());
  std::filesystem::remove(path);
  CHECK(error_of(bad) == path.string()
                             + R"(:10: clusters[0] (payments).connect_timeout: "fast" is not a duration (write 250ms, 5s or 2m))");
  REQUIRE(good.ok());
  CHECK(good.value().source == path.string());
}

TEST_CASE("a config file that cannot be read says why") {
  ConfigErrors errors;
  auto missing = load_config_file("/nonexistent/fusebox.yaml", &errors);
  CHECK(error_of(missing) == "config /nonexistent/fusebox.yaml: cannot read: No such file or directory");
  CHECK(errors.errors == std::vector<std::string>{error_of(missing)});
  const std::string dir = std::filesystem::temp_directory_path().string();
  CHECK(error_of(load_config_file(dir)) == "config " + dir + ": cannot read: Is a directory");
}

// ---- the embedded default and the command line ----

TEST_CASE("the embedded default config parses to the documented shape") {
  auto parsed = parse_config(kEmbeddedConfigYaml, "<embedded>");
  INFO(error_of(parsed));
  REQUIRE(parsed.ok());
  const Config c = default_config();
  CHECK(c.source == "<embedded>");
  CHECK(c.workers == 0);
  CHECK(c.admin_address.to_string() == "127.0.0.1:9901");
  REQUIRE(c.listeners.size() == 1);
  CHECK(c.listeners[0].name == "default");
  CHECK(c.listeners[0].address.to_string() == "127.0.0.1:15001");
  REQUIRE(c.listeners[0].routes.size() == 1);
  CHECK(c.listeners[0].routes[0].prefix == "/");
  CHECK(c.listeners[0].routes[0].cluster == "default");
  CHECK(c.listeners[0].routes[0].cluster_index == 0);
  REQUIRE(c.clusters.size() == 1);
  CHECK(c.clusters[0].name == "default");
  REQUIRE(c.clusters[0].endpoints.size() == 1);
  CHECK(c.clusters[0].endpoints[0].to_string() == "127.0.0.1:8080");
  CHECK(c.clusters[0].connect_timeout == 1s);
  CHECK(c.clusters[0].request_timeout == 30s);
}

TEST_CASE("--listen and --upstream make the default config with those addresses") {
  auto c = command_line_config("0.0.0.0:0", "[::1]:9000");
  INFO(error_of(c));
  REQUIRE(c.ok());
  CHECK(c.value().source == "<command line>");
  REQUIRE(c.value().listeners.size() == 1);
  CHECK(c.value().listeners[0].name == "default");
  CHECK(c.value().listeners[0].address.to_string() == "0.0.0.0:0");
  REQUIRE(c.value().clusters.size() == 1);
  CHECK(c.value().clusters[0].endpoints.size() == 1);
  CHECK(c.value().clusters[0].endpoints[0].to_string() == "[::1]:9000");
  CHECK(c.value().clusters[0].connect_timeout == 1s);
}

TEST_CASE("bad --listen and --upstream addresses are both reported, by flag") {
  CHECK(error_of(command_line_config("x", "127.0.0.1:0")) ==
        "--listen: \"x\" has no port (write host:port, e.g. 127.0.0.1:8080)\n"
        "--upstream: \"127.0.0.1:0\" has port 0, which cannot be connected to (write the upstream's port)");
  CHECK(error_of(command_line_config("127.0.0.1:9901", "127.0.0.1:8080")) ==
        "--listen: 127.0.0.1:9901 is also the admin address (set FUSEBOX_ADMIN_ADDRESS to move it)");
}

// ---- environment overrides ----

TEST_CASE("FUSEBOX_* variables replace the config's values") {
  g_env = {{"FUSEBOX_WORKERS", "3"},
           {"FUSEBOX_LOG_LEVEL", "error"},
           {"FUSEBOX_ADMIN_ADDRESS", "0.0.0.0:9999"},
           {"FUSEBOX_ACCESS_LOG", "/tmp/access.log"},
           {"FUSEBOX_DRAIN_TIMEOUT", "30s"}};
  Config c = default_config();
  REQUIRE(apply_environment(c, fake_getenv).ok());
  CHECK(c.workers == 3);
  CHECK(c.log_level == LogLevel::Error);
  CHECK(c.admin_address.to_string() == "0.0.0.0:9999");
  CHECK(c.access_log == AccessLogTarget::File);
  CHECK(c.access_log_path == "/tmp/access.log");
  CHECK(c.drain_timeout == 30s);
  g_env = {{"FUSEBOX_WORKERS", "auto"}, {"FUSEBOX_ACCESS_LOG", "stdout"}};
  REQUIRE(apply_environment(c, fake_getenv).ok());
  CHECK(c.workers == 0);
  CHECK(c.access_log == AccessLogTarget::Stdout);
}

TEST_CASE("unset and empty FUSEBOX_* variables leave the config alone") {
  g_env = {{"FUSEBOX_LOG_LEVEL", ""}};
  Config c = default_config();
  REQUIRE(apply_environment(c, fake_getenv).ok());
  CHECK(c.log_level == LogLevel::Info);
  CHECK(c.workers == 0);
  CHECK(c.drain_timeout == Config{}.drain_timeout);
}

TEST_CASE("bad FUSEBOX_* values are all reported by variable, and none is applied") {
  g_env = {{"FUSEBOX_WORKERS", "lots"},
           {"FUSEBOX_LOG_LEVEL", "debug"},
           {"FUSEBOX_ADMIN_ADDRESS", "127.0.0.1:15001"},
           {"FUSEBOX_ACCESS_LOG", "no"},
           {"FUSEBOX_DRAIN_TIMEOUT", "15"}};
  Config c = default_config();
  auto result = apply_environment(c, fake_getenv);
  REQUIRE_FALSE(result.ok());
  CHECK(result.error().message ==
        "environment FUSEBOX_WORKERS: \"lots\" is not auto or a number from 1 to 32\n"
        "environment FUSEBOX_ADMIN_ADDRESS: 127.0.0.1:15001 is already the address of listeners[0] (default)\n"
        "environment FUSEBOX_ACCESS_LOG: \"no\" is not an access log (write off, stdout, stderr or a file path)\n"
        "environment FUSEBOX_DRAIN_TIMEOUT: \"15\" has no unit (write 15s or 15ms)");
  CHECK(c.log_level == LogLevel::Info);  // valid, but not applied: all or nothing
  g_env = {{"FUSEBOX_LOG_LEVEL", "loud"}};
  CHECK(error_of(apply_environment(c, fake_getenv)) ==
        "environment FUSEBOX_LOG_LEVEL: \"loud\" is not a log level (debug, info, warn or error)");
  g_env.clear();
}

}  // namespace fusebox::proxy
