// proxy/router.h: picks the route of a listener for a request. Routes are sorted at config load
// (host-specific first, then longest prefix first), so the first match is the most specific one.
// Prefixes match as plain string prefixes of the path (the target without its query), as Envoy's
// `prefix` does: "/api" matches "/api/x" and "/apix".
#pragma once

#include <optional>
#include <string_view>

#include "proxy/config.h"

namespace fusebox::proxy {

// The host part of a Host header value: "Example.com:8080" -> "Example.com", "[::1]:80" -> "[::1]".
std::string_view host_without_port(std::string_view host) noexcept;

// The index into listener.routes of the matching route, or nullopt: 404.
std::optional<size_t> match_route(const ListenerConfig& listener, std::string_view host_header,
                                  std::string_view target) noexcept;

}  // namespace fusebox::proxy
