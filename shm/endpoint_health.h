// shm/endpoint_health.h: what the master's health checks found out about one endpoint of a
// cluster, kept in the segment so that every worker routes around an endpoint that is down the
// instant the master marks it (and a restarted fusebox still knows). The master writes; workers
// only read `down`.
#pragma once

#include <atomic>
#include <cstdint>

namespace fusebox::shm {

struct alignas(64) EndpointHealth {
  std::atomic<uint32_t> in_use{0};       // 0 free, 1 being claimed, 2 ready
  std::atomic<uint32_t> down{0};         // 1: failing its checks; workers send elsewhere if they can
  std::atomic<int64_t> changed_ns{0};    // CLOCK_MONOTONIC of the last up/down change
  std::atomic<uint64_t> checks_passed{0};
  std::atomic<uint64_t> checks_failed{0};
  char cluster[64] = {};
  char endpoint[128] = {};  // "host:port" as configured
};

static_assert(std::atomic<uint32_t>::is_always_lock_free && std::atomic<int64_t>::is_always_lock_free &&
                  std::atomic<uint64_t>::is_always_lock_free,
              "a lock in the segment stays locked forever if a process dies holding it");

}  // namespace fusebox::shm
