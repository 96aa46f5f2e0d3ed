// tests/unit/proxy/cpu_count_test.cc
#include "proxy/cpu_count.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

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

TEST_CASE("the process's cgroup is read from /proc/self/cgroup, v2 and v1") {
  const std::string v1 = "9:name=systemd:/\n4:memory:/a\n2:cpu,cpuacct:/kubepods/pod1/c2\n0::/\n";
  CHECK(cgroup_path(v1, "cpu") == "/kubepods/pod1/c2");
  CHECK(cgroup_path(v1, "") == "/");
  CHECK(cgroup_path(v1, "cpuset") == "/");
  CHECK(cgroup_path("0::/system.slice/x:y.service\n", "") == "/system.slice/x:y.service");
  CHECK(cgroup_path("", "") == "/");
  CHECK(cgroup_path("garbage\n", "cpu") == "/");
}

TEST_CASE("the lowest quota over a cgroup and its ancestors wins, and levels without one count for none") {
  std::vector<std::string> asked;
  const auto quotas = [&](const std::string& level) -> unsigned {
    asked.push_back(level);
    if (level == "/kubepods") return 4;
    if (level == "/kubepods/pod1") return 2;
    return 0;
  };
  CHECK(lowest_quota("/kubepods/pod1/c2", quotas) == 2);
  CHECK(asked == std::vector<std::string>{"/kubepods/pod1/c2", "/kubepods/pod1", "/kubepods", ""});
  asked.clear();
  CHECK(lowest_quota("/", quotas) == 0);
  CHECK(asked == std::vector<std::string>{""});
  CHECK(lowest_quota("/kubepods/", quotas) == 4);
}
