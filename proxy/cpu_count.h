// proxy/cpu_count.h: how many CPUs this process may really use, for `workers: auto`: the
// affinity mask, lowered by a cgroup CPU quota (a pod with `limits.cpu: 2` on a 64-core node
// gets 2 workers, not 64). The quota is looked for in the process's own cgroup (from
// /proc/self/cgroup) and each of its ancestors, the lowest winning as the kernel enforces it:
// cgroup v2 (cpu.max) and v1 (cpu.cfs_quota_us under the cpu controller) are both read.
#pragma once

#include <functional>
#include <string>

namespace fusebox::proxy {

unsigned usable_cpus() noexcept;

// Parsers, exposed for tests: a quota file's text -> CPUs (rounded up), 0 for "no limit".
unsigned cpus_from_cgroup_v2(const std::string& cpu_max) noexcept;
unsigned cpus_from_cgroup_v1(const std::string& quota_us, const std::string& period_us) noexcept;

// The process's cgroup path ("/kubepods/pod1/c2") from /proc/self/cgroup's text: the v2 line
// ("0::/path") when `v1_controller` is empty, else the v1 line whose controller list holds it
// ("4:cpu,cpuacct:/path"). "/" when there is no such line.
std::string cgroup_path(const std::string& proc_self_cgroup, const std::string& v1_controller);

// The lowest quota (in CPUs, 0 = none) over `path` and its ancestors up to "/": `quota_at`
// returns the quota of one cgroup, given as a path under the hierarchy's mount point ("" for
// its root). A cgroup namespace or a container's own mount makes the process's cgroup look like
// the root, and levels that do not exist under the mount simply have no quota.
unsigned lowest_quota(const std::string& path, const std::function<unsigned(const std::string&)>& quota_at);

}  // namespace fusebox::proxy
