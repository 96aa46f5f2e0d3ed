// proxy/cpu_count.h: how many CPUs this process may really use, for `workers: auto`: the
// affinity mask, lowered by a cgroup CPU quota (a pod with `limits.cpu: 2` on a 64-core node
// gets 2 workers, not 64). cgroup v2 (cpu.max) and v1 (cpu.cfs_quota_us) are both read.
#pragma once

#include <string>

namespace fusebox::proxy {

unsigned usable_cpus() noexcept;

// Parsers, exposed for tests: a quota file's text -> CPUs (rounded up), 0 for "no limit".
unsigned cpus_from_cgroup_v2(const std::string& cpu_max) noexcept;
unsigned cpus_from_cgroup_v1(const std::string& quota_us, const std::string& period_us) noexcept;

}  // namespace fusebox::proxy
