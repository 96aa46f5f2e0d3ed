// proxy/address_choice.h: which of a name's addresses an endpoint connects to.
#pragma once

#include <netdb.h>

namespace fusebox::proxy {

// The first IPv4 address the lookup returned, else its first address. getaddrinfo sorts ::1
// before 127.0.0.1 for a name with both (RFC 6724), as "localhost" has on most hosts, while
// most services that answer on localhost listen on IPv4 only: taking the first would refuse
// every call (Envoy's default, V4_PREFERRED, chooses the same way).
const addrinfo* preferred_address(const addrinfo* list) noexcept;

}  // namespace fusebox::proxy
