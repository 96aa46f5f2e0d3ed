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
  // absolute-form ("http://h/p", RFC 9112 §3.2.2): its authority wins over Host
  const RequestTarget t = split_target(target);
  std::string_view path = t.origin_form.substr(0, t.origin_form.find('?'));
  if (path.empty()) path = "/";
  const std::string_view host = host_without_port(t.absolute ? t.authority : host_header);
  for (size_t i = 0; i < listener.routes.size(); ++i) {
    const Route& r = listener.routes[i];
    if (!r.host.empty() && !iequals(r.host, host)) continue;
    if (path.substr(0, r.prefix.size()) == r.prefix) return i;
  }
  return std::nullopt;
}

}  // namespace fusebox::proxy
