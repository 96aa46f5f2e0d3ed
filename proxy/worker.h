// proxy/worker.h: one data-plane process: one libuv loop that accepts on every listener socket
// the master bound (inherited across fork: one shared accept queue per listener), runs the
// client connections and keeps a pool of upstream connections per cluster. Shares nothing with
// other workers. SIGTERM drains it: stop accepting, finish what is in flight, exit.
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "proxy/config.h"
#include "proxy/segment_index.h"
#include "proxy/upstream_pool.h"
#include "shm/segment.h"

namespace fusebox::proxy {

class Downstream;

class Worker {
 public:
  // `block`: this worker's stats block in the segment, which no other live process writes.
  Worker(const Config& config, unsigned index, const std::vector<int>& listen_fds, shm::Segment* segment,
         const SegmentIndex& segment_index, uint32_t block);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Runs until drained; returns the process exit code.
  int run() noexcept;

  uv_loop_t* loop() noexcept { return &loop_; }
  const Config& config() const noexcept { return config_; }
  UpstreamPool& pool(size_t cluster) noexcept { return *pools_[cluster]; }
  // The cluster's breaker slot in the segment, resolved by the master at config load.
  shm::BreakerSlot& breaker_slot(size_t cluster) noexcept {
    return segment_->slot(segment_index_.breaker_slots[cluster]);
  }
  // A route's own breaker, if it has one (see Route::own_breaker).
  shm::BreakerSlot& route_breaker_slot(size_t listener, size_t route) noexcept {
    return segment_->slot(segment_index_.route_breakers[listener][route]);
  }
  // This worker's counters: of a listener, of a listener's route, of a cluster.
  shm::SeriesStats& listener_stats(size_t listener) noexcept {
    return stats_.series[segment_index_.listener_series[listener]];
  }
  shm::SeriesStats& route_stats(size_t listener, size_t route) noexcept {
    return stats_.series[segment_index_.route_series[listener][route]];
  }
  shm::ClusterStats& cluster_stats(size_t cluster) noexcept {
    return stats_.clusters[segment_index_.breaker_slots[cluster]];
  }
  // Nanoseconds of CLOCK_MONOTONIC as of this loop iteration: the breakers' time, with no system
  // call per request (libuv reads the clock once per iteration).
  int64_t now_ns() noexcept { return static_cast<int64_t>(uv_now(&loop_)) * 1'000'000; }
  uint64_t random() noexcept;
  bool draining() const noexcept { return draining_; }

  // 32 hex digits, random (a per-worker xorshift seeded from the kernel): ids are unique across
  // workers and restarts without a syscall per request.
  void make_request_id(char out[32]) noexcept;
  // Error logs on the data path are limited to a burst of 20 and 10 a second, so an outage does
  // not turn into a log flood that costs more than the requests; the next line that passes says
  // how many were suppressed.
  bool allow_error_log() noexcept;
  // One JSON line (already formatted, ending in \n) to the access log, if it is on.
  void write_access_log(const char* line, size_t len) noexcept;
  bool access_log_enabled() const noexcept { return access_log_fd_ >= 0; }

  void on_downstream_recycled(Downstream* d) noexcept;

 private:
  struct Listener {
    uv_tcp_t tcp{};
    Worker* worker = nullptr;
    size_t index = 0;
  };

  static void on_connection(uv_stream_t* server, int status) noexcept;
  static void on_signal(uv_signal_t* handle, int signum) noexcept;
  static void on_drain_deadline(uv_timer_t* timer) noexcept;
  void start_drain() noexcept;
  void maybe_exit() noexcept;

  const Config& config_;
  unsigned index_;
  shm::Segment* segment_;
  SegmentIndex segment_index_;
  shm::WorkerBlock stats_;
  uv_loop_t loop_{};
  std::vector<std::unique_ptr<Listener>> listeners_;
  std::vector<int> listen_fds_;
  std::vector<std::unique_ptr<UpstreamPool>> pools_;
  std::vector<std::vector<Downstream*>> free_downstreams_;  // per listener
  Downstream* connections_ = nullptr;  // every open client connection, for drain
  size_t open_connections_ = 0;
  uv_signal_t sigterm_{};
  uv_signal_t sigint_{};
  uv_timer_t drain_timer_{};
  bool draining_ = false;
  uint64_t rng_state_[2] = {};
  double log_tokens_ = 20;
  uint64_t log_refill_ms_ = 0;
  uint64_t log_suppressed_ = 0;
  int access_log_fd_ = -1;
};

}  // namespace fusebox::proxy
