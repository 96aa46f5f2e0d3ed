// tests/unit/proxy/cpu_count_test.cc
#include "proxy/cpu_count.h"

#include <doctest/doctest.h>

using namespace fusebox::proxy;

TEST_CASE("a cgroup v2 quota rounds up to whole CPUs and max means no limit") {
  CHECK(cpus_from_cgroup_v2("max 100000\n") == 0);
  CHECK(cpus_from_cgroup_v2("200000 100000\n") == 2);
  CHECK(cpus_from_cgroup_v2("150000 100000\n") == 2);
  CHECK(cpus_from_cgroup_v2("50000 100000\n") == 1);
  CHECK(cpus_from_cgroup_v2("") == 0);
}

TEST_CASE("a cgroup v1 quota of -1 means no limit") {
  CHECK(cpus_from_cgroup_v1("-1\n", "100000\n") == 0);
  CHECK(cpus_from_cgroup_v1("300000\n", "100000\n") == 3);
  CHECK(cpus_from_cgroup_v1("", "") == 0);
}

TEST_CASE("usable CPUs is at least one") { CHECK(usable_cpus() >= 1); }
