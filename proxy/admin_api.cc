// proxy/admin_api.cc: see admin_api.h.
#include "proxy/admin_api.h"

#include <time.h>

#include <nlohmann/json.hpp>
#include <optional>
#include <string_view>

#include "proxy/config_json.h"
#include "proxy/log.h"
#include "shm/breaker.h"
#include "shm/clock.h"

namespace fusebox::proxy {
namespace {

using Json = nlohmann::ordered_json;

// A fallback body from the config may hold bytes that are not UTF-8: they come out as U+FFFD
// rather than failing the whole answer.
AdminResponse json_answer(int status, const Json& j) {
  return AdminResponse{.status = status, .body = j.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n"};
}

AdminResponse method_not_allowed(std::string_view allow) {
  AdminResponse r = admin_error(405, "method_not_allowed", "this path takes " + std::string(allow));
  r.headers.emplace_back("Allow", std::string(allow));
  return r;
}

// A CLOCK_MONOTONIC instant as UTC wall-clock time, "2026-11-24T14:03:11.250Z". The offset between
// the clocks is taken once, in nanoseconds: the same instant then reads the same in every answer
// (a script comparing `since` between polls sees no false change), at the price of not following
// a later step of the wall clock.
std::string wall_time(int64_t monotonic_ns) {
  static const int64_t offset_ns = [] {
    timespec real{}, mono{};
    clock_gettime(CLOCK_REALTIME, &real);
    clock_gettime(CLOCK_MONOTONIC, &mono);
    return (int64_t{real.tv_sec} - mono.tv_sec) * 1'000'000'000 + (real.tv_nsec - mono.tv_nsec);
  }();
  const int64_t at_ms = (monotonic_ns + offset_ns) / 1'000'000;
  const time_t seconds = static_cast<time_t>(at_ms / 1000);
  tm utc{};
  gmtime_r(&seconds, &utc);
  char text[40];
  const size_t n = strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &utc);
  std::snprintf(text + n, sizeof text - n, ".%03dZ", static_cast<int>(at_ms % 1000));
  return text;
}

// Constant time in the token's length: a wrong guess takes as long whatever it shares with the
// right one.
bool same_token(std::string_view a, std::string_view b) noexcept {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
  return diff == 0;
}

// nullopt if the caller may change things, else the refusal.
std::optional<AdminResponse> refuse_unless_authorized(ControlPlane& control, const AdminRequest& req) {
  const std::string& token = control.admin_token();
  if (token.empty())
    return admin_error(403, "no_admin_token",
                       "changes are refused: no admin token is configured; set FUSEBOX_ADMIN_TOKEN or "
                       "admin.token_file where fusebox runs");
  constexpr std::string_view kBearer = "Bearer ";
  const std::string_view auth = req.authorization;
  if (auth.size() <= kBearer.size() || auth.substr(0, kBearer.size()) != kBearer ||
      !same_token(auth.substr(kBearer.size()), token))
    return admin_error(401, "unauthorized",
                       auth.empty() ? "this call needs Authorization: Bearer <token>"
                                    : "the bearer token is wrong");
  return std::nullopt;
}

// A breaker of the running config: a cluster's, or a route's own.
struct BreakerRef {
  const std::string* name;     // what the API calls it: the cluster's name, or the route's
  size_t cluster;              // index into Config::clusters
  const Route* route;          // null for a cluster's breaker
  const BreakerConfig* config;
  uint32_t slot;
};

// Every breaker: the clusters' in config order, then the routes' own.
std::vector<BreakerRef> all_breakers(ControlPlane& control) {
  const Config& config = control.config();
  const SegmentIndex& index = control.segment_index();
  std::vector<BreakerRef> out;
  for (size_t i = 0; i < config.clusters.size(); ++i)
    out.push_back({&config.clusters[i].name, i, nullptr, &config.clusters[i].breaker, index.breaker_slots[i]});
  for (size_t l = 0; l < config.listeners.size(); ++l) {
    for (size_t r = 0; r < config.listeners[l].routes.size(); ++r) {
      const Route& route = config.listeners[l].routes[r];
      if (route.own_breaker)
        out.push_back({&route.name, route.cluster_index, &route, &route.breaker, index.route_breakers[l][r]});
    }
  }
  return out;
}

std::optional<BreakerRef> find_breaker(ControlPlane& control, std::string_view name) {
  for (const BreakerRef& b : all_breakers(control))
    if (*b.name == name) return b;
  return std::nullopt;
}

// The breaker's settings as the config file writes them.
Json breaker_config_json(ControlPlane& control, const BreakerRef& b) {
  const Json config = config_to_json(control.config());
  if (b.route == nullptr) return config["clusters"][b.cluster]["breaker"];
  for (const Json& l : config["listeners"])
    for (const Json& r : l["routes"])
      if (r.contains("name") && r["name"] == *b.name && r.contains("breaker")) return r["breaker"];
  return Json(nullptr);
}

Json breaker_json(ControlPlane& control, const BreakerRef& b, bool detailed) {
  const ClusterConfig& c = control.config().clusters[b.cluster];
  shm::BreakerSlot& slot = control.segment().slot(b.slot);
  const shm::Breaker breaker(slot, b.config->policy);
  const int64_t now = shm::MonotonicClock().now_ns();
  const shm::StateWord word = breaker.word();
  const shm::WindowCounts w = breaker.window(now);
  const std::vector<shm::Transition> transitions = slot.transitions.read();
  auto pct = [](uint32_t part, uint32_t whole) { return whole == 0 ? 0.0 : 100.0 * part / whole; };

  Json j;
  j["cluster"] = c.name;
  if (b.route != nullptr) j["route"] = *b.name;  // a route's own breaker: GET /admin/breakers/{route}
  j["state"] = shm::to_string(word.state());
  j["generation"] = word.generation();
  j["window"] = {{"calls", w.calls},
                 {"failures", w.failures},
                 {"slow", w.slow},
                 {"failure_rate", pct(w.failures, w.calls)},
                 {"slow_rate", pct(w.slow, w.calls)}};
  j["consecutive_failures"] = slot.consecutive_failures.load(std::memory_order_relaxed);
  j["trips_in_a_row"] = slot.trips_in_a_row.load(std::memory_order_relaxed);
  j["half_open_permits_used"] = word.state() == shm::State::HalfOpen ? word.permits() : 0;
  const int64_t next_trial = breaker.next_trial_in_ns(now);
  j["next_trial_in_ms"] = next_trial < 0 ? Json(nullptr) : Json(next_trial / 1'000'000);
  const bool entered_known = slot.entered_generation.load(std::memory_order_acquire) == word.generation() &&
                             word.generation() > 0;
  j["since"] = entered_known ? Json(wall_time(slot.entered_ns.load(std::memory_order_relaxed))) : Json(nullptr);
  j["last_reason"] = transitions.empty() ? Json(nullptr) : Json(shm::describe(transitions.back().reason));
  if (!detailed) return j;
  j["config"] = breaker_config_json(control, b);
  if (!control.segment_index().endpoint_health[b.cluster].empty()) {
    Json endpoints = Json::array();
    const auto& entries = control.segment_index().endpoint_health[b.cluster];
    for (size_t e = 0; e < entries.size(); ++e) {
      const shm::EndpointHealth& h = control.segment().endpoint(entries[e]);
      endpoints.push_back({{"endpoint", c.endpoints[e].to_string()},
                           {"up", h.down.load(std::memory_order_relaxed) == 0},
                           {"checks_passed", h.checks_passed.load(std::memory_order_relaxed)},
                           {"checks_failed", h.checks_failed.load(std::memory_order_relaxed)}});
    }
    j["endpoints"] = std::move(endpoints);
  }
  Json list = Json::array();
  for (const shm::Transition& t : transitions) {
    list.push_back({{"at", wall_time(t.at_ns)},
                    {"from", shm::to_string(t.from)},
                    {"to", shm::to_string(t.to)},
                    {"why", shm::to_string(t.reason.why)},
                    {"reason", shm::describe(t.reason)},
                    {"generation", t.generation}});
  }
  j["transitions"] = std::move(list);
  return j;
}

AdminResponse breaker_action(ControlPlane& control, const BreakerRef& b, std::string_view action) {
  shm::BreakerSlot& slot = control.segment().slot(b.slot);
  shm::Breaker breaker(slot, b.config->policy);
  const shm::State before = breaker.state();
  const int64_t now = shm::MonotonicClock().now_ns();
  if (action == "open") {
    breaker.force(shm::State::ForcedOpen, now);
  } else if (action == "close") {
    breaker.close(now);
  } else if (action == "reset") {
    breaker.reset(now);
  } else if (action == "disable") {
    breaker.force(shm::State::Disabled, now);
  } else if (action == "metrics-only") {
    breaker.force(shm::State::MetricsOnly, now);
  } else {
    std::string message = "\"";
    message.append(action).append("\" is not an action: open, close, reset, disable or metrics-only");
    return admin_error(404, "unknown_action", message);
  }
  FB_LOG(Warn, "breaker %s: %s -> %s: %.*s through the admin API", b.name->c_str(), shm::to_string(before),
         shm::to_string(breaker.state()), static_cast<int>(action.size()), action.data());
  Json j = breaker_json(control, b, false);
  j["action"] = action;
  return json_answer(200, j);
}

AdminResponse breakers(ControlPlane& control, const AdminRequest& req, std::string_view rest) {
  if (rest.empty()) {
    if (req.method != "GET") return method_not_allowed("GET");
    Json list = Json::array();
    for (const BreakerRef& b : all_breakers(control)) list.push_back(breaker_json(control, b, false));
    return json_answer(200, Json{{"breakers", std::move(list)}});
  }
  const size_t slash = rest.find('/');
  const std::string_view name = rest.substr(0, slash);
  const auto b = find_breaker(control, name);
  if (!b)
    return admin_error(404, "unknown_cluster",
                       std::string("no cluster is named \"").append(name).append("\""));
  if (slash == std::string_view::npos) {
    if (req.method != "GET") return method_not_allowed("GET");
    return json_answer(200, breaker_json(control, *b, true));
  }
  const std::string_view action = rest.substr(slash + 1);
  if (req.method != "POST") return method_not_allowed("POST");
  if (auto refused = refuse_unless_authorized(control, req)) return *refused;
  return breaker_action(control, *b, action);
}

AdminResponse config_path(ControlPlane& control, const AdminRequest& req) {
  if (req.method == "GET") {
    return json_answer(200, Json{{"generation", control.config_generation()},
                                 {"source", control.config().source},
                                 {"config", config_to_json(control.config())}});
  }
  if (req.method != "PUT") return method_not_allowed("GET, PUT");
  if (auto refused = refuse_unless_authorized(control, req)) return *refused;
  if (req.body.empty()) return admin_error(400, "bad_request", "PUT /admin/config needs a whole config as its body");
  std::vector<std::string> errors;
  auto applied = control.apply_config(std::string(req.body), &errors);
  if (!applied) {
    if (errors.empty()) errors.push_back(applied.error().message);
    Json j;
    j["error"] = "invalid_config";
    j["message"] = "the config was refused; the running one stays: " + errors.front();
    j["errors"] = errors;
    return json_answer(400, j);
  }
  return json_answer(200, Json{{"applied", true}, {"generation", applied.value()}});
}

}  // namespace

AdminResponse handle_admin(ControlPlane& control, const AdminRequest& req) {
  const std::string_view path = req.path;
  if (path == "/healthz") {
    if (req.method != "GET" && req.method != "HEAD") return method_not_allowed("GET, HEAD");
    return json_answer(200, Json{{"status", "ok"}});
  }
  if (path == "/readyz") {
    if (req.method != "GET" && req.method != "HEAD") return method_not_allowed("GET, HEAD");
    const Readiness r = control.readiness();
    const bool ready = r.workers > 0 && r.workers_ready >= r.workers;
    return json_answer(ready ? 200 : 503, Json{{"status", ready ? "ready" : "not_ready"},
                                               {"workers", r.workers},
                                               {"workers_ready", r.workers_ready}});
  }
  if (path == "/metrics") {
    if (req.method != "GET") return method_not_allowed("GET");
    return AdminResponse{.status = 200, .content_type = "text/plain; version=0.0.4; charset=utf-8", .body = control.scrape()};
  }
  constexpr std::string_view kBreakers = "/admin/breakers";
  if (path.substr(0, kBreakers.size()) == kBreakers &&
      (path.size() == kBreakers.size() || path[kBreakers.size()] == '/')) {
    std::string_view rest = path.substr(kBreakers.size());
    if (!rest.empty()) rest.remove_prefix(1);
    return breakers(control, req, rest);
  }
  if (path == "/admin/config") return config_path(control, req);
  return admin_error(404, "not_found",
                     "no such path; try /healthz, /readyz, /metrics, /admin/breakers or /admin/config");
}

}  // namespace fusebox::proxy
