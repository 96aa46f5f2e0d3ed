// tests/unit/proxy/address_choice_test.cc
#include "proxy/address_choice.h"

#include <doctest/doctest.h>
#include <sys/socket.h>

#include <cstddef>
#include <initializer_list>

using namespace fusebox::proxy;

namespace {

// A lookup result of the given families, linked in order.
struct Lookup {
  explicit Lookup(std::initializer_list<int> families) {
    size_t i = 0;
    for (const int family : families) entries[i++].ai_family = family;
    for (size_t j = 0; j + 1 < i; ++j) entries[j].ai_next = &entries[j + 1];
  }
  addrinfo entries[4]{};
};

}  // namespace

TEST_CASE("an endpoint connects to the name's first IPv4 address, else its first") {
  const Lookup v6_then_v4{AF_INET6, AF_INET6, AF_INET};
  CHECK(preferred_address(v6_then_v4.entries) == &v6_then_v4.entries[2]);
  const Lookup v4_then_v6{AF_INET, AF_INET6};
  CHECK(preferred_address(v4_then_v6.entries) == &v4_then_v6.entries[0]);
  const Lookup v6_only{AF_INET6, AF_INET6};
  CHECK(preferred_address(v6_only.entries) == &v6_only.entries[0]);
}
