// shm/worker_stats.h: the counters one worker keeps in the segment for the metrics. Each worker
// has a block of its own (the master hands out the block when it forks it), so the hot path bumps
// only cache lines no other process writes; the metrics collector sums the blocks at scrape time.
// The counters outlive the worker that wrote them (a respawned worker, or a restarted fusebox,
// counts on), as Prometheus counters should; the gauges of a dead worker are zeroed by the master,
// since its connections died with it.
//
// Series (a listener and a cluster its routes send to) are found by name in the segment, like
// breakers, and resolved to an index once at config load; a cluster's counters sit at its
// breaker's index.
#pragma once

#include <atomic>
#include <cstdint>

namespace fusebox::shm {

// Upper bounds of fusebox_upstream_request_duration_seconds, in seconds; +Inf is implied.
constexpr double kDurationBoundsSeconds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                             0.1,    0.25,  0.5,    1,     2.5,  5,     10};
constexpr int kDurationBuckets = sizeof(kDurationBoundsSeconds) / sizeof(kDurationBoundsSeconds[0]) + 1;
constexpr int64_t kDurationBoundsNs[kDurationBuckets - 1] = {
    500'000,     1'000'000,   2'500'000,     5'000'000,     10'000'000,    25'000'000,    50'000'000,
    100'000'000, 250'000'000, 500'000'000, 1'000'000'000, 2'500'000'000, 5'000'000'000, 10'000'000'000};
// The bucket a call of duration_ns falls in (the last one is +Inf).
constexpr int duration_bucket(int64_t duration_ns) noexcept {
  int i = 0;
  while (i < kDurationBuckets - 1 && duration_ns > kDurationBoundsNs[i]) ++i;
  return i;
}

// What became of a request, the `outcome` label of fusebox_requests_total.
enum class RequestOutcome : uint8_t {
  Success,   // the upstream answered, and the breaker counts the answer a success (4xx included)
  Failure,   // the upstream failed by the breaker's rules: a failure status, connect error, reset, timeout
  Rejected,  // not sent: a breaker was open, or the worker's connection limit to the cluster was reached
  Error,     // answered by fusebox for the request's own sake: 400, 404, 405, 408, 413, 431
  Cancelled, // the client went away before the whole answer was written
};
constexpr int kRequestOutcomes = 5;
constexpr const char* to_string(RequestOutcome o) noexcept {
  switch (o) {
    case RequestOutcome::Success: return "success";
    case RequestOutcome::Failure: return "failure";
    case RequestOutcome::Rejected: return "rejected";
    case RequestOutcome::Error: return "error";
    case RequestOutcome::Cancelled: return "cancelled";
  }
  return "unknown";
}

// The `code_class` label: 1xx .. 5xx, and "none" for a request that got no status line.
constexpr int kCodeClasses = 6;
constexpr int code_class_index(int status) noexcept { return status >= 100 && status < 600 ? status / 100 - 1 : 5; }
constexpr const char* code_class_name(int index) noexcept {
  constexpr const char* kNames[kCodeClasses] = {"1xx", "2xx", "3xx", "4xx", "5xx", "none"};
  return index >= 0 && index < kCodeClasses ? kNames[index] : "none";
}

// Why a request was rejected, the `reason` label of fusebox_rejected_requests_total.
enum class RejectReason : uint8_t { Breaker, ConnectionLimit };
constexpr int kRejectReasons = 2;
constexpr const char* to_string(RejectReason r) noexcept {
  return r == RejectReason::Breaker ? "breaker" : "connection_limit";
}

using Counter = std::atomic<uint64_t>;
using Gauge = std::atomic<int64_t>;

// A load and a store, not a locked read-modify-write: every counter has one writer (a worker's
// block belongs to that worker alone; an endpoint's checks, to the master), and the readers want
// a sum, not an order.
inline void bump(Counter& c, uint64_t n = 1) noexcept {
  c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}
inline uint64_t read(const Counter& c) noexcept { return c.load(std::memory_order_relaxed); }

// Per series and per worker. A series is a listener and a cluster its routes send to; the
// listener's own series (cluster "") holds its connections, its bytes, and the requests that
// reached no cluster (400, 404, ...).
struct alignas(64) SeriesStats {
  Counter requests[kCodeClasses][kRequestOutcomes];
  Counter accepted;        // listener series only: connections accepted
  Gauge active;            // ... open now
  Counter bytes_received;  // ... from clients
  Counter bytes_sent;      // ... to clients
};

// Per cluster and per worker.
struct alignas(64) ClusterStats {
  Counter duration_buckets[kDurationBuckets];  // not cumulative: the collector adds them up
  Counter duration_sum_ns;
  Counter duration_count;
  Counter upstream_connects;          // new connections opened (attempts)
  Counter upstream_connect_failures;  // ... that failed: refused, unreachable, timed out
  Counter upstream_reuses;            // requests sent on a pooled keep-alive connection
  Gauge upstream_active;              // open connections, idle in the pool or lent
  Counter upstream_bytes_sent;
  Counter upstream_bytes_received;
  Counter rejected[kRejectReasons];
};

// A series' name in the segment's series table.
struct SeriesName {
  std::atomic<uint32_t> in_use{0};  // 0 free, 1 being claimed, 2 ready
  char listener[64] = {};
  char cluster[64] = {};
};

// The head of a worker's block.
struct alignas(64) WorkerHead {
  std::atomic<int64_t> pid{0};         // 0: never used
  std::atomic<uint64_t> generation{0};  // the config generation it runs
  std::atomic<uint32_t> ready{0};      // 1 once its loop runs (for /readyz)
  std::atomic<uint32_t> used{0};       // 1 once any worker had the block: readers skip the others
};

static_assert(Counter::is_always_lock_free && Gauge::is_always_lock_free,
              "a lock in the segment stays locked forever if a worker dies holding it");

// One worker's block, as pointers into the segment.
struct WorkerBlock {
  WorkerHead* head = nullptr;
  SeriesStats* series = nullptr;     // [max_series]
  ClusterStats* clusters = nullptr;  // [max_breakers], at the breaker's index
};

}  // namespace fusebox::shm
