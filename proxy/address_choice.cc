// proxy/address_choice.cc: see address_choice.h.
#include "proxy/address_choice.h"

#include <sys/socket.h>

namespace fusebox::proxy {

const addrinfo* preferred_address(const addrinfo* list) noexcept {
  for (const addrinfo* a = list; a != nullptr; a = a->ai_next)
    if (a->ai_family == AF_INET) return a;
  return list;
}

}  // namespace fusebox::proxy
