// proxy/router.cc: see router.h.
#include "proxy/router.h"

#include "proxy/http_head.h"

namespace fusebox::proxy {

std::string_view host_without_port(std::string_view host) noexcept {
  host = trim_ows(host);
  if (!host.empty() && host.front() == '[') {
    const size_t close = host.find(']');
    return close == std::string_view::npos ? host : host.substr(0, close + 1);
  }
  const size_t colon = host.rfind(':');
  return colon == std::string_view::npos ? host : host.substr(0, colon);
}

std::optional<size_t> match_route(const ListenerConfig& listener, std::string_view host_header,
                                  std::string_view target) noexcept {
  std::string_view path = target.substr(0, target.find('?'));
  std::string_view host = host_without_port(host_header);
  // absolute-form ("http://h/p", RFC 9112 §3.2.2): its authority wins over Host
  for (const std::string_view scheme : {std::string_view("http://"), std::string_view("https://")}) {
    if (path.size() > scheme.size() && iequals(path.substr(0, scheme.size()), scheme)) {
      path.remove_prefix(scheme.size());
      const size_t slash = path.find('/');
      host = host_without_port(path.substr(0, slash));
      path = slash == std::string_view::npos ? std::string_view("/") : path.substr(slash);
    }
  }
  for (size_t i = 0; i < listener.routes.size(); ++i) {
    const Route& r = listener.routes[i];
    if (!r.host.empty() && !iequals(r.host, host)) continue;
    if (path.substr(0, r.prefix.size()) == r.prefix) return i;
  }
  return std::nullopt;
}

}  // namespace fusebox::proxy
