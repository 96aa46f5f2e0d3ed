// tools/fuseboxctl/admin_address.cc: see admin_address.h.
#include "tools/fuseboxctl/admin_address.h"

#include <arpa/inet.h>

#include <algorithm>

namespace fusebox::fuseboxctl {

namespace {

constexpr std::string_view kExample = " (write host:port or http://host:port, e.g. 127.0.0.1:9901)";

bool starts_with_nocase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i)
    if ((s[i] >= 'A' && s[i] <= 'Z' ? s[i] - 'A' + 'a' : s[i]) != prefix[i]) return false;
  return true;
}

// A DNS name or an IPv4 address: what getaddrinfo() will take without surprises.
bool valid_plain_host(std::string_view host) {
  if (host.empty() || host.size() > 253) return false;
  return std::all_of(host.begin(), host.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.'
           || c == '_';
  });
}

}  // namespace

// Built by appending: GCC 12 at -O3 warns falsely (-Wrestrict, PR105651) on "[" + std::string.
std::string AdminAddress::text() const {
  const bool v6 = host.find(':') != std::string::npos;
  std::string out;
  out.append(v6 ? "[" : "").append(host).append(v6 ? "]:" : ":").append(std::to_string(port));
  return out;
}

Result<AdminAddress> parse_admin_address(std::string_view text) {
  if (starts_with_nocase(text, "http://")) {
    text.remove_prefix(7);
    // "http://host:port/" is what a browser's address bar gives back: the root path is harmless.
    if (!text.empty() && text.back() == '/') text.remove_suffix(1);
  } else if (text.find("://") != std::string_view::npos) {
    return Error{"only http:// is supported (the admin API speaks no TLS)"};
  }
  if (text.empty()) return Error{"no host and port" + std::string(kExample)};
  if (text.find('/') != std::string_view::npos || text.find('?') != std::string_view::npos)
    return Error{"has a path; write only the host and port" + std::string(kExample)};
  if (text.find('@') != std::string_view::npos)
    return Error{"has user info, which fuseboxctl does not send; pass --token"};

  AdminAddress address;
  std::string_view port_text;
  if (text[0] == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos) return Error{"has no closing \"]\"" + std::string(kExample)};
    address.host = std::string(text.substr(1, close - 1));
    in6_addr v6{};
    if (inet_pton(AF_INET6, address.host.c_str(), &v6) != 1)
      return Error{"has a bad IPv6 address \"" + address.host + "\""};
    if (close + 1 >= text.size() || text[close + 1] != ':') return Error{"has no port" + std::string(kExample)};
    port_text = text.substr(close + 2);
  } else {
    const size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return Error{"has no port" + std::string(kExample)};
    address.host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
    if (address.host.find(':') != std::string::npos)
      return Error{"is ambiguous: write an IPv6 address in brackets, e.g. [::1]:9901"};
    if (address.host.empty()) return Error{"has no host (write 127.0.0.1" + std::string(text) + " for this machine)"};
    if (!valid_plain_host(address.host))
      return Error{"has a bad host \"" + address.host + "\" (a DNS name, an IPv4 address, or [IPv6])"};
  }
  if (port_text.empty()) return Error{"has no port" + std::string(kExample)};
  unsigned port = 0;
  bool digits = port_text.size() <= 5;
  for (size_t i = 0; digits && i < port_text.size(); ++i) {
    digits = port_text[i] >= '0' && port_text[i] <= '9';
    port = port * 10 + static_cast<unsigned>(port_text[i] - '0');
  }
  if (!digits || port == 0 || port > 65535)
    return Error{"has a bad port \"" + std::string(port_text) + "\" (a number from 1 to 65535)"};
  address.port = static_cast<uint16_t>(port);
  return address;
}

}  // namespace fusebox::fuseboxctl
