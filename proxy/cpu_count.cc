// proxy/cpu_count.cc: see cpu_count.h.
#include "proxy/cpu_count.h"

#include <sched.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace fusebox::proxy {
namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

unsigned ceil_div(long long quota, long long period) noexcept {
  if (quota <= 0 || period <= 0) return 0;
  return static_cast<unsigned>((quota + period - 1) / period);
}

bool lists(const std::string& controllers, const std::string& wanted) {
  std::istringstream in(controllers);
  std::string c;
  while (std::getline(in, c, ','))
    if (c == wanted) return true;
  return false;
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

std::string cgroup_path(const std::string& proc_self_cgroup, const std::string& v1_controller) {
  std::istringstream in(proc_self_cgroup);
  std::string line;
  while (std::getline(in, line)) {
    // hierarchy-ID:controller-list:cgroup-path; the path may itself hold colons.
    const size_t first = line.find(':');
    const size_t second = first == std::string::npos ? first : line.find(':', first + 1);
    if (second == std::string::npos) continue;
    const std::string id = line.substr(0, first);
    const std::string controllers = line.substr(first + 1, second - first - 1);
    const bool match = v1_controller.empty() ? id == "0" && controllers.empty() : lists(controllers, v1_controller);
    if (match) {
      std::string path = line.substr(second + 1);
      return path.empty() || path.front() != '/' ? "/" : path;
    }
  }
  return "/";
}

unsigned lowest_quota(const std::string& path, const std::function<unsigned(const std::string&)>& quota_at) {
  unsigned lowest = 0;
  std::string level = path;
  while (!level.empty() && level.back() == '/') level.pop_back();  // "/" is the root: ""
  for (;;) {
    const unsigned q = quota_at(level);
    if (q > 0 && (lowest == 0 || q < lowest)) lowest = q;
    if (level.empty()) return lowest;
    level.erase(level.rfind('/'));
  }
}

unsigned usable_cpus() noexcept {
  unsigned cpus = 1;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) cpus = std::max(1, CPU_COUNT(&set));
  unsigned quota = 0;
  try {
    const std::string self = read_file("/proc/self/cgroup");
    quota = lowest_quota(cgroup_path(self, ""), [](const std::string& level) {
      return cpus_from_cgroup_v2(read_file("/sys/fs/cgroup" + level + "/cpu.max"));
    });
    const unsigned v1 = lowest_quota(cgroup_path(self, "cpu"), [](const std::string& level) {
      const std::string dir = "/sys/fs/cgroup/cpu" + level;
      return cpus_from_cgroup_v1(read_file(dir + "/cpu.cfs_quota_us"), read_file(dir + "/cpu.cfs_period_us"));
    });
    if (v1 > 0 && (quota == 0 || v1 < quota)) quota = v1;
  } catch (...) {  // std::bad_alloc at start-up: count the affinity mask alone
  }
  if (quota > 0) cpus = std::min(cpus, quota);
  return std::max(1u, cpus);
}

}  // namespace fusebox::proxy
