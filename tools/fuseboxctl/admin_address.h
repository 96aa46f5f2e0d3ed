// tools/fuseboxctl/admin_address.h: where fuseboxctl finds fusebox's admin API, as written in
// --admin or FUSEBOX_ADMIN_ADDRESS: "http://host:port" or "host:port" (IPv6 in brackets).
// Not a URL parser: no https (the admin API speaks no TLS), no user info, no path, no query.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "shm/result.h"

namespace fusebox::fuseboxctl {

// fusebox's own default admin.address.
inline constexpr std::string_view kDefaultAdminAddress = "127.0.0.1:9901";

struct AdminAddress {
  std::string host;  // a DNS name, an IPv4 address, or an IPv6 address without its brackets
  uint16_t port = 0;

  // "host:port", "[::1]:9901": for the Host header and for messages.
  std::string text() const;
};

// The error says what is wrong, without repeating the text: the caller names where it came from.
Result<AdminAddress> parse_admin_address(std::string_view text);

}  // namespace fusebox::fuseboxctl
