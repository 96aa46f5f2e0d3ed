// proxy/segment_index.h: where one config's names live in the segment, resolved by the master once
// at config load so that a worker never looks a name up on the data path.
#pragma once

#include <cstdint>
#include <vector>

namespace fusebox::proxy {

struct SegmentIndex {
  std::vector<uint32_t> breaker_slots;            // per cluster: its breaker (and its cluster stats)
  static constexpr uint32_t kNone = UINT32_MAX;
  std::vector<std::vector<uint32_t>> route_breakers;  // per listener, per route: its own breaker, or kNone
  std::vector<uint32_t> listener_series;          // per listener: its own series (cluster "")
  std::vector<std::vector<uint32_t>> route_series;  // per listener, per route: listener × cluster
  // per cluster, per endpoint: its health entry; empty for a cluster without health checks
  std::vector<std::vector<uint32_t>> endpoint_health;
};

}  // namespace fusebox::proxy
