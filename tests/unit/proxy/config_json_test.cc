// tests/unit/proxy/config_json_test.cc: the running config as JSON (proxy/config_json.cc): every
// key written with its effective value, in the file's order and in forms the parsers read back,
// so that the dump, loaded as a config file, gives the same config again.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <string>
#include <vector>

#include "proxy/config.h"
#include "proxy/config_json.h"
#include "proxy/config_values.h"

namespace fusebox::proxy {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::ordered_json;

Config load(const std::string& yaml) {
  auto config = parse_config(yaml, "fusebox.yaml");
  INFO((config.ok() ? std::string() : config.error().message));
  REQUIRE(config.ok());
  return std::move(config).value();
}

// The config that the JSON of `config` loads into, as PUT /admin/config would load it.
Config reload(const Config& config) {
  const std::string text = config_to_json(config).dump();
  INFO(text);
  auto reloaded = parse_config(text, "<admin>");
  INFO((reloaded.ok() ? std::string() : reloaded.error().message));
  REQUIRE(reloaded.ok());
  return std::move(reloaded).value();
}

std::vector<std::string> keys_of(const Json& object) {
  std::vector<std::string> keys;
  for (const auto& item : object.items()) keys.push_back(item.key());
  return keys;
}

// Every member of the two configs but `source`, which names where each came from. The JSON's own
// round trip cannot see a member that config_to_json leaves out; this can.
void check_same_config(const Config& a, const Config& b) {
  CHECK(a.workers == b.workers);
  CHECK(a.admin_address.to_string() == b.admin_address.to_string());
  CHECK(a.admin_token_file == b.admin_token_file);
  CHECK(a.log_level == b.log_level);
  CHECK(a.access_log == b.access_log);
  CHECK(a.access_log_path == b.access_log_path);
  CHECK(a.drain_timeout == b.drain_timeout);
  CHECK(a.shm.name == b.shm.name);
  CHECK(a.shm.max_breakers == b.shm.max_breakers);
  REQUIRE(a.listeners.size() == b.listeners.size());
  for (size_t i = 0; i < a.listeners.size(); ++i) {
    const ListenerConfig& x = a.listeners[i];
    const ListenerConfig& y = b.listeners[i];
    CHECK(x.name == y.name);
    CHECK(x.address.to_string() == y.address.to_string());
    CHECK(x.idle_timeout == y.idle_timeout);
    CHECK(x.header_timeout == y.header_timeout);
    CHECK(x.max_header_bytes == y.max_header_bytes);
    CHECK(x.max_body_bytes == y.max_body_bytes);
    REQUIRE(x.routes.size() == y.routes.size());
    for (size_t r = 0; r < x.routes.size(); ++r) {
      CHECK(x.routes[r].prefix == y.routes[r].prefix);
      CHECK(x.routes[r].host == y.routes[r].host);
      CHECK(x.routes[r].cluster == y.routes[r].cluster);
      CHECK(x.routes[r].cluster_index == y.routes[r].cluster_index);
      CHECK(x.routes[r].name == y.routes[r].name);
      CHECK(x.routes[r].own_breaker == y.routes[r].own_breaker);
      CHECK(x.routes[r].breaker.policy.consecutive_failures == y.routes[r].breaker.policy.consecutive_failures);
      CHECK(x.routes[r].breaker.policy.mode == y.routes[r].breaker.policy.mode);
    }
  }
  REQUIRE(a.clusters.size() == b.clusters.size());
  for (size_t i = 0; i < a.clusters.size(); ++i) {
    const ClusterConfig& x = a.clusters[i];
    const ClusterConfig& y = b.clusters[i];
    CHECK(x.name == y.name);
    REQUIRE(x.endpoints.size() == y.endpoints.size());
    for (size_t e = 0; e < x.endpoints.size(); ++e)
      CHECK(x.endpoints[e].to_string() == y.endpoints[e].to_string());
    CHECK(x.connect_timeout == y.connect_timeout);
    CHECK(x.response_header_timeout == y.response_header_timeout);
    CHECK(x.request_timeout == y.request_timeout);
    CHECK(x.idle_timeout == y.idle_timeout);
    CHECK(x.dns_refresh == y.dns_refresh);
    CHECK(x.max_connections == y.max_connections);
    CHECK(x.max_idle == y.max_idle);
    const shm::BreakerPolicy& p = x.breaker.policy;
    const shm::BreakerPolicy& q = y.breaker.policy;
    CHECK(p.consecutive_failures == q.consecutive_failures);
    CHECK(p.failure_rate_pct == q.failure_rate_pct);
    CHECK(p.minimum_calls == q.minimum_calls);
    CHECK(p.window_ms == q.window_ms);
    CHECK(p.window_calls == q.window_calls);
    CHECK(p.slow_rate_pct == q.slow_rate_pct);
    CHECK(p.slow_call_ms == q.slow_call_ms);
    CHECK(p.open_base_ms == q.open_base_ms);
    CHECK(p.open_multiplier_x100 == q.open_multiplier_x100);
    CHECK(p.open_max_ms == q.open_max_ms);
    CHECK(p.open_jitter_pct == q.open_jitter_pct);
    CHECK(p.half_open_permits == q.half_open_permits);
    CHECK(p.half_open_successes == q.half_open_successes);
    CHECK(p.mode == q.mode);
    REQUIRE(x.breaker.failure_statuses.size() == y.breaker.failure_statuses.size());
    for (size_t s = 0; s < x.breaker.failure_statuses.size(); ++s) {
      CHECK(x.breaker.failure_statuses[s].first == y.breaker.failure_statuses[s].first);
      CHECK(x.breaker.failure_statuses[s].last == y.breaker.failure_statuses[s].last);
    }
    CHECK(x.fallback.enabled == y.fallback.enabled);
    CHECK(x.fallback.status == y.fallback.status);
    CHECK(x.fallback.headers == y.fallback.headers);
    CHECK(x.fallback.body == y.fallback.body);
  }
}

// The JSON of `config` loads into the same config, whose JSON is the same JSON.
void check_round_trip(const Config& config) {
  const Config reloaded = reload(config);
  check_same_config(reloaded, config);
  CHECK(config_to_json(reloaded) == config_to_json(config));
  // Indented, as an operator would save it from GET /admin/config and edit it.
  auto indented = parse_config(config_to_json(config).dump(2), "<admin>");
  REQUIRE(indented.ok());
  CHECK(config_to_json(indented.value()) == config_to_json(config));
}

// Every key set, none to its default; routes written in the order the loader will change.
const std::string kEveryKey = R"(workers: 3
admin:
  address: 0.0.0.0:9902
  token_file: /run/secrets/fusebox
log_level: warn
access_log: /var/log/fusebox/access.log
drain_timeout: 90000ms
shm: { name: fusebox-payments, max_breakers: 8 }
redis: { address: 127.0.0.1:6379 }
listeners:
  - name: ingress
    address: "[::]:15001"
    routes:
      - prefix: /
        cluster: search
      - prefix: /pay
        host: API.Example.com
        cluster: payments
    idle_timeout: 2m
    header_timeout: 5s
    max_header_bytes: 32KiB
    max_body_bytes: 1000
clusters:
  - name: payments
    endpoints: [10.0.0.7:8080, "payments.internal:8080", "[::1]:8081"]
    connect_timeout: 250ms
    response_header_timeout: 3s
    request_timeout: 1h
    idle_timeout: 45s
    dns_refresh: 1500ms
    max_connections: 100
    max_idle: 0
    breaker:
      consecutive_failures: 7
      failure_rate: { threshold: 40, minimum_calls: 30, window: 100 calls }
      slow_calls: { threshold: 80%, duration: 1500ms }
      failure_statuses: [ 502, 503, 520-529 ]
      open: { base: 10s, multiplier: 1.5, max: 2m, jitter: 0.25 }
      half_open: { permits: 5, successes: 2 }
      mode: metrics_only
    fallback:
      status: 200
      headers:
        X-Fallback: "1"
        Content-Type: application/json
        Cache-Control: no-store
      body: "{\"cached\":true, \"note\":\"caf\u00e9\\tbar\"}\n"
    retry: { attempts: 3 }
  - name: search
    endpoints: [search.internal:9200]
    breaker:
      consecutive_failures: 0
      failure_rate: { threshold: 0%, window: 250ms }
      failure_statuses: []
      open: { multiplier: 1.01, jitter: 0 }
      mode: forced_open
    fallback: {}
)";

}  // namespace

TEST_CASE("the embedded default comes back as the same config, with every default written out") {
  const Config c = default_config();
  check_round_trip(c);
  const Json j = config_to_json(c);
  CHECK(keys_of(j) == std::vector<std::string>{"workers", "admin", "log_level", "access_log", "drain_timeout",
                                               "shm", "listeners", "clusters"});
  CHECK(j["workers"] == "auto");
  CHECK(j["admin"] == Json{{"address", "127.0.0.1:9901"}});  // no token_file when none is set
  CHECK(j["log_level"] == "info");
  CHECK(j["access_log"] == "off");
  CHECK(j["drain_timeout"] == "15s");
  CHECK(j["shm"] == Json{{"max_breakers", 256}});  // no name: it is derived from the admin address
  CHECK(j["listeners"].dump()
        == R"([{"name":"default","address":"127.0.0.1:15001","routes":[{"prefix":"/","cluster":"default"}],)"
           R"("idle_timeout":"1m","header_timeout":"10s","max_header_bytes":"16KiB","max_body_bytes":0}])");
  const Json& k = j["clusters"][0];
  CHECK(keys_of(k) == std::vector<std::string>{"name", "endpoints", "connect_timeout", "response_header_timeout",
                                               "request_timeout", "idle_timeout", "dns_refresh", "max_connections",
                                               "max_idle", "breaker"});  // no fallback: off
  CHECK(k["endpoints"] == Json{"127.0.0.1:8080"});
  CHECK(k["connect_timeout"] == "1s");
  CHECK(k["response_header_timeout"] == "15s");
  CHECK(k["request_timeout"] == "30s");
  CHECK(k["idle_timeout"] == "1m");
  CHECK(k["dns_refresh"] == "30s");
  CHECK(k["max_connections"] == 1024);
  CHECK(k["max_idle"] == 256);
  // No slow_calls: off by default, as in the file.
  CHECK(k["breaker"].dump()
        == R"({"consecutive_failures":5,"failure_rate":{"threshold":"50%","minimum_calls":20,"window":"10s"},)"
           R"("failure_statuses":["500-599"],"open":{"base":"30s","multiplier":2,"max":"5m","jitter":0.1},)"
           R"("half_open":{"permits":3,"successes":3},"mode":"normal"})");
}

TEST_CASE("a config with every key set comes back as the same config, each value as the parsers read it") {
  const Config c = load(kEveryKey);
  check_round_trip(c);
  const Json j = config_to_json(c);
  CHECK(j["workers"] == 3);
  CHECK(j["admin"] == Json{{"address", "0.0.0.0:9902"}, {"token_file", "/run/secrets/fusebox"}});
  CHECK(j["log_level"] == "warn");
  CHECK(j["access_log"] == "/var/log/fusebox/access.log");
  CHECK(j["drain_timeout"] == "90s");  // the largest unit that is exact
  CHECK(j["shm"] == Json{{"name", "fusebox-payments"}, {"max_breakers", 8}});
  CHECK_FALSE(j.contains("redis"));  // accepted and ignored: nothing of it is kept to write

  const Json& l = j["listeners"][0];
  CHECK(l["address"] == "[::]:15001");
  // Sorted at load, host-specific first; the host lowercased as it is matched.
  CHECK(l["routes"].dump()
        == R"([{"prefix":"/pay","host":"api.example.com","cluster":"payments"},{"prefix":"/","cluster":"search"}])");
  CHECK(l["idle_timeout"] == "2m");
  CHECK(l["header_timeout"] == "5s");
  CHECK(l["max_header_bytes"] == "32KiB");
  CHECK(l["max_body_bytes"] == 1000);

  const Json& k = j["clusters"][0];
  CHECK(k["endpoints"] == Json{"10.0.0.7:8080", "payments.internal:8080", "[::1]:8081"});
  CHECK(k["connect_timeout"] == "250ms");
  CHECK(k["response_header_timeout"] == "3s");
  CHECK(k["request_timeout"] == "1h");
  CHECK(k["idle_timeout"] == "45s");
  CHECK(k["dns_refresh"] == "1500ms");
  CHECK(k["max_connections"] == 100);
  CHECK(k["max_idle"] == 0);
  CHECK_FALSE(k.contains("retry"));
  const Json& b = k["breaker"];
  CHECK(b["consecutive_failures"] == 7);
  CHECK(b["failure_rate"] == Json{{"threshold", "40%"}, {"minimum_calls", 30}, {"window", "100 calls"}});
  CHECK(b["slow_calls"] == Json{{"threshold", "80%"}, {"duration", "1500ms"}});
  CHECK(b["failure_statuses"] == Json{"502", "503", "520-529"});
  CHECK(b["open"]["base"] == "10s");
  CHECK(b["open"]["multiplier"] == 1.5);
  CHECK(b["open"]["max"] == "2m");
  CHECK(b["open"]["jitter"] == 0.25);
  CHECK(b["half_open"] == Json{{"permits", 5}, {"successes", 2}});
  CHECK(b["mode"] == "metrics_only");
  const Json& f = k["fallback"];
  CHECK(f["status"] == 200);
  CHECK(f["headers"].dump() == R"({"X-Fallback":"1","Content-Type":"application/json","Cache-Control":"no-store"})");
  CHECK(f["body"] == "{\"cached\":true, \"note\":\"caf\xC3\xA9\\tbar\"}\n");

  const Json& s = j["clusters"][1];
  CHECK(s["connect_timeout"] == "1s");  // defaults are written too
  CHECK(s["breaker"]["consecutive_failures"] == 0);
  CHECK(s["breaker"]["failure_rate"] == Json{{"threshold", "0%"}, {"minimum_calls", 20}, {"window", "250ms"}});
  CHECK_FALSE(s["breaker"].contains("slow_calls"));
  CHECK(s["breaker"]["failure_statuses"] == Json::array());  // none: not the default 500-599
  CHECK(s["breaker"]["open"]["multiplier"] == 1.01);
  CHECK(s["breaker"]["open"].dump() == R"({"base":"30s","multiplier":1.01,"max":"5m","jitter":0})");
  CHECK(s["breaker"]["mode"] == "forced_open");
  // `fallback: {}` is on, with the default status: written out in full.
  CHECK(s["fallback"] == Json{{"status", 503}, {"headers", Json::object()}, {"body", ""}});
}

TEST_CASE("--listen and --upstream come back as the same config") {
  auto c = command_line_config("0.0.0.0:0", "[::1]:9000");
  REQUIRE(c.ok());
  check_round_trip(c.value());
  const Json j = config_to_json(c.value());
  CHECK(j["listeners"][0]["address"] == "0.0.0.0:0");
  CHECK(j["clusters"][0]["endpoints"] == Json{"[::1]:9000"});
  CHECK(j["clusters"][0]["connect_timeout"] == "1s");
  CHECK(j["clusters"][0]["breaker"]["open"]["jitter"] == 0.1);
}

TEST_CASE("environment overrides show in the JSON as the values that run") {
  Config c = default_config();
  const GetEnv getenv_fn = [](const char* name) -> const char* {
    const std::string n = name;
    if (n == "FUSEBOX_WORKERS") return "2";
    if (n == "FUSEBOX_ACCESS_LOG") return "stderr";
    if (n == "FUSEBOX_DRAIN_TIMEOUT") return "0";
    if (n == "FUSEBOX_LOG_LEVEL") return "debug";
    return nullptr;
  };
  REQUIRE(apply_environment(c, getenv_fn).ok());
  check_round_trip(c);
  const Json j = config_to_json(c);
  CHECK(j["workers"] == 2);
  CHECK(j["access_log"] == "stderr");
  CHECK(j["drain_timeout"] == "0");
  CHECK(j["log_level"] == "debug");
}

TEST_CASE("durations and sizes are written in the largest unit that is exact") {
  Config c = default_config();
  ListenerConfig& l = c.listeners.at(0);
  ClusterConfig& k = c.clusters.at(0);
  c.access_log = AccessLogTarget::Stdout;
  c.drain_timeout = 7'200'000ms;
  l.idle_timeout = 61s;
  l.header_timeout = 1'001ms;
  l.max_header_bytes = 1'536;        // not whole KiB
  l.max_body_bytes = 3ull << 30;     // 3 GiB
  k.request_timeout = 90min;
  k.breaker.policy.open_base_ms = 60'000;
  k.breaker.policy.open_max_ms = 86'400'000;  // 24h, the most a breaker duration may be
  k.breaker.policy.open_multiplier_x100 = 100;
  k.breaker.policy.open_jitter_pct = 100;
  check_round_trip(c);
  const Json j = config_to_json(c);
  CHECK(j["access_log"] == "stdout");
  CHECK(j["drain_timeout"] == "2h");
  CHECK(j["listeners"][0]["idle_timeout"] == "61s");
  CHECK(j["listeners"][0]["header_timeout"] == "1001ms");
  CHECK(j["listeners"][0]["max_header_bytes"] == 1'536);
  CHECK(j["listeners"][0]["max_body_bytes"] == "3GiB");
  CHECK(j["clusters"][0]["request_timeout"] == "90m");
  CHECK(j["clusters"][0]["breaker"]["open"].dump() == R"({"base":"1m","multiplier":1,"max":"24h","jitter":1})");
  l.max_header_bytes = 1 << 20;
  CHECK(config_to_json(c)["listeners"][0]["max_header_bytes"] == "1MiB");
}

TEST_CASE("every multiplier and jitter the parsers accept is written as a decimal they read back") {
  Config c = default_config();
  shm::BreakerPolicy& p = c.clusters.at(0).breaker.policy;
  size_t wrong = 0;
  for (uint32_t x100 = 0; x100 <= 10'000; ++x100) {
    p.open_multiplier_x100 = x100;
    p.open_jitter_pct = x100;
    const Json open = config_to_json(c)["clusters"][0]["breaker"]["open"];
    if (x100 >= 100) {
      auto multiplier = parse_multiplier(open["multiplier"].dump());
      if (!multiplier.ok() || multiplier.value() != x100) ++wrong;
    }
    if (x100 <= 100) {
      auto jitter = parse_jitter(open["jitter"].dump());
      if (!jitter.ok() || jitter.value() != x100) ++wrong;
    }
  }
  CHECK(wrong == 0);
}

TEST_CASE("a fallback body that is not UTF-8 dumps only with nlohmann's replace handler") {
  // A file may hold raw bytes that yaml-cpp passes through; JSON text cannot.
  const Config c = load("listeners: [{name: a, address: 127.0.0.1:1, routes: [{cluster: b}]}]\n"
                        "clusters: [{name: b, endpoints: [127.0.0.1:2], fallback: {body: \"x\xFFy\"}}]\n");
  REQUIRE(c.clusters.at(0).fallback.body == "x\xFFy");
  const Json j = config_to_json(c);
  CHECK_THROWS_AS((void)j.dump(), nlohmann::json::type_error);
  CHECK(j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).find("x\xEF\xBF\xBDy") != std::string::npos);
}


TEST_CASE("a route's name and its own breaker come back as written, health checks too") {
  const Config c = load(R"(listeners:
  - name: edge
    address: 127.0.0.1:15001
    routes:
      - { prefix: /reports, cluster: payments, name: reports, breaker: { consecutive_failures: 2, mode: metrics_only } }
      - { prefix: /, cluster: payments, name: rest }
clusters:
  - name: payments
    endpoints: [ 127.0.0.1:8080 ]
    health_check: { path: /health, host: p.internal, interval: 250ms, timeout: 100ms, healthy_threshold: 1,
                    unhealthy_threshold: 3, expected_statuses: [200, 204-206] }
)");
  check_round_trip(c);
  const Json j = config_to_json(c);
  const Json& reports = j["listeners"][0]["routes"][0];
  CHECK(reports["name"] == "reports");
  CHECK(reports["breaker"]["consecutive_failures"] == 2);
  CHECK(reports["breaker"]["mode"] == "metrics_only");
  CHECK(j["listeners"][0]["routes"][1]["name"] == "rest");
  CHECK_FALSE(j["listeners"][0]["routes"][1].contains("breaker"));
  CHECK(j["clusters"][0]["health_check"].dump() ==
        R"({"path":"/health","host":"p.internal","interval":"250ms","timeout":"100ms","healthy_threshold":1,)"
        R"("unhealthy_threshold":3,"expected_statuses":["200","204-206"]})");
  const Config reloaded = reload(c);
  CHECK(reloaded.clusters[0].health_check.enabled);
  CHECK(reloaded.clusters[0].health_check.is_expected(205));
}

}  // namespace fusebox::proxy
