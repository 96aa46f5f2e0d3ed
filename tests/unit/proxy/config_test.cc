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

TEST_CASE("workers is auto or a number from 1 to 256") {
  CHECK(load("workers: auto\n" + kBase).workers == 0);
  CHECK(load("workers: 1\n" + kBase).workers == 1);
  CHECK(load("workers: 256\n" + kBase).workers == 256);
  CHECK(only_error(kBase + "workers: 0\n") == R"(fusebox.yaml:10: workers: "0" is not auto or a number from 1 to 256)");
  CHECK(only_error(kBase + "workers: 257\n") ==
        R"(fusebox.yaml:10: workers: "257" is not auto or a number from 1 to 256)");
  CHECK(only_error(kBase + "workers: lots\n") ==
        R"(fusebox.yaml:10: workers: "lots" is not auto or a number from 1 to 256)");
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
  const Config c = load(kBase + R"(    breaker: {failure_rate: {threshold: 50%}}
    retry: {attempts: 3}
    bulkhead: {max_concurrent: 10}
    health_check: {path: /healthz}
    cache: {ttl: 5s}
    fallback: {status: 503}
    dead_letter: {path: /var/lib/fusebox}
shm:
  name: fusebox-payments
redis:
  address: 127.0.0.1:6379
)");
  CHECK(c.clusters.size() == 1);
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
)") == "fusebox.yaml:6: listeners[0] (a).routes[0].weight: unknown key (known keys here: prefix, host, cluster)");
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
  CHECK(errors.errors[2] == R"(f.yaml:6: workers: "many" is not auto or a number from 1 to 256)");
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
        "environment FUSEBOX_WORKERS: \"lots\" is not auto or a number from 1 to 256\n"
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
