// proxy/cpu_count.cc: see cpu_count.h.
#include "proxy/cpu_count.h"

#include <sched.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace fusebox::proxy {
namespace {

std::string read_file(const char* path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

unsigned ceil_div(long long quota, long long period) noexcept {
  if (quota <= 0 || period <= 0) return 0;
  return static_cast<unsigned>((quota + period - 1) / period);
}

}  // namespace

unsigned cpus_from_cgroup_v2(const std::string& cpu_max) noexcept {
  // "max 100000" (no limit) or "150000 100000" (1.5 CPUs: 2 workers)
  std::istringstream in(cpu_max);
  std::string quota;
  long long period = 0;
  if (!(in >> quota >> period) || quota == "max") return 0;
  return ceil_div(std::atoll(quota.c_str()), period);
}

unsigned cpus_from_cgroup_v1(const std::string& quota_us, const std::string& period_us) noexcept {
  return ceil_div(std::atoll(quota_us.c_str()), std::atoll(period_us.c_str()));  // quota -1: none
}

unsigned usable_cpus() noexcept {
  unsigned cpus = 1;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) cpus = std::max(1, CPU_COUNT(&set));
  unsigned quota = cpus_from_cgroup_v2(read_file("/sys/fs/cgroup/cpu.max"));
  if (quota == 0)
    quota = cpus_from_cgroup_v1(read_file("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"),
                                read_file("/sys/fs/cgroup/cpu/cpu.cfs_period_us"));
  if (quota > 0) cpus = std::min(cpus, quota);
  return std::max(1u, cpus);
}

}  // namespace fusebox::proxy
