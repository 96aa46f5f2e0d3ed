// tests/unit/proxy/router_test.cc
#include "proxy/router.h"

#include <doctest/doctest.h>

using namespace fusebox::proxy;

namespace {

ListenerConfig listener_with(std::initializer_list<Route> routes) {
  ListenerConfig l;
  l.routes = routes;  // already in match order, as the loader sorts them
  return l;
}

}  // namespace

TEST_CASE("the host part of a Host header drops the port") {
  CHECK(host_without_port("example.com:8080") == "example.com");
  CHECK(host_without_port("example.com") == "example.com");
  CHECK(host_without_port("[::1]:80") == "[::1]");
  CHECK(host_without_port(" a.b ") == "a.b");
}

TEST_CASE("the first matching route wins and prefixes match the path without its query") {
  const auto l = listener_with({{.prefix = "/api/v2", .cluster = "v2", .cluster_index = 1},
                                {.prefix = "/api", .cluster = "v1", .cluster_index = 0},
                                {.prefix = "/", .cluster = "web", .cluster_index = 2}});
  CHECK(match_route(l, "h", "/api/v2/users?x=/api") == 0u);
  CHECK(match_route(l, "h", "/api/v1") == 1u);
  CHECK(match_route(l, "h", "/apix") == 1u);  // plain string prefix, as Envoy's `prefix`
  CHECK(match_route(l, "h", "/other") == 2u);
}

TEST_CASE("a route with a host matches only that host, case-insensitively and without port") {
  const auto l = listener_with({{.prefix = "/", .host = "payments.local", .cluster = "p", .cluster_index = 0},
                                {.prefix = "/only", .cluster = "o", .cluster_index = 1}});
  CHECK(match_route(l, "Payments.Local:7001", "/x") == 0u);
  CHECK(match_route(l, "other", "/only/x") == 1u);
  CHECK_FALSE(match_route(l, "other", "/x").has_value());
}

TEST_CASE("an absolute-form target routes on its own authority and path") {
  const auto l = listener_with({{.prefix = "/", .host = "api", .cluster = "a", .cluster_index = 0},
                                {.prefix = "/pub", .cluster = "p", .cluster_index = 1}});
  CHECK(match_route(l, "ignored", "http://api:80/anything") == 0u);
  CHECK(match_route(l, "api", "http://elsewhere/pub/x") == 1u);
  CHECK_FALSE(match_route(l, "api", "http://elsewhere/x").has_value());
}
