// shm/breaker_policy.h: a breaker's thresholds, as plain values. Not in the segment: every process
// has the config it was started with, and a reload starts new workers; what the processes must
// agree on at every instant (the state, the counts) is in the segment.
#pragma once

#include <cstdint>

namespace fusebox::shm {

// The operator's overrides. Normal: the state machine decides.
enum class Mode : uint8_t { Normal, ForcedOpen, Disabled, MetricsOnly };

struct BreakerPolicy {
  // Trip after this many failures in a row; 0 = off.
  uint32_t consecutive_failures = 5;
  // Trip when failures are at least this share of the calls in the window, once the window holds
  // at least minimum_calls; 0 = off.
  uint32_t failure_rate_pct = 50;
  uint32_t minimum_calls = 20;
  // The window: time-based (window_ms > 0: the last window_ms, in kBuckets rolling buckets) or
  // count-based (window_calls > 0: the last window_calls calls, at most kMaxWindowCalls).
  uint32_t window_ms = 10'000;
  uint32_t window_calls = 0;
  // Slow calls: a call that took at least slow_call_ms is slow; trip when slow calls are at
  // least slow_rate_pct of the window's calls (minimum_calls applies). 0 = off.
  uint32_t slow_rate_pct = 0;
  uint32_t slow_call_ms = 2'000;
  // Open time: base × multiplier^(trips in a row − 1), capped at max, ± jitter_pct.
  uint32_t open_base_ms = 30'000;
  uint32_t open_multiplier_x100 = 200;  // 2.0
  uint32_t open_max_ms = 300'000;
  uint32_t open_jitter_pct = 10;
  // Half-open: exactly `permits` trial calls across all workers; `successes` of them close it.
  uint32_t half_open_permits = 3;
  uint32_t half_open_successes = 3;
  Mode mode = Mode::Normal;
};

constexpr uint32_t kBuckets = 10;
constexpr int64_t kNsPerMs = 1'000'000;
constexpr uint32_t kMaxWindowCalls = 1000;

}  // namespace fusebox::shm
