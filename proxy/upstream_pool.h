// proxy/upstream_pool.h: a worker's connections to one cluster. Endpoints are chosen round robin;
// each keeps a list of idle keep-alive connections, reused last-in first-out (the warmest socket,
// and the coldest ones age out by idle_timeout). Bounded: at most max_connections open and
// max_idle idle per worker. Names are resolved with uv_getaddrinfo at start and every dns_refresh,
// so a Service's address change is picked up without a restart; literals are parsed once.
#pragma once

#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "proxy/config.h"
#include "proxy/failure.h"
#include "shm/endpoint_health.h"
#include "shm/worker_stats.h"

namespace fusebox::proxy {

class Downstream;
class Upstream;

class UpstreamPool {
 public:
  // `stats`: this worker's counters for the cluster, in the segment. `health`: per endpoint, what
  // the master's health checks say (empty: the cluster has none).
  UpstreamPool(uv_loop_t* loop, const ClusterConfig& config, size_t buffer_bytes, shm::ClusterStats* stats,
               std::vector<const shm::EndpointHealth*> health = {});
  ~UpstreamPool();
  UpstreamPool(const UpstreamPool&) = delete;
  UpstreamPool& operator=(const UpstreamPool&) = delete;

  void start() noexcept;
  // Closes idle connections and stops resolving: the worker is draining.
  void stop() noexcept;

  // An upstream attached to d: idle and connected (d is told on_upstream_connected at once) or
  // connecting. nullptr when none can be had, with the reason in *failure and *detail.
  // `fresh`: skip idle connections (a retry after a reused one turned out to be closed).
  Upstream* acquire(Downstream* d, bool fresh, Failure* failure, const char** detail) noexcept;
  // The exchange is over: back to the idle list when reusable, else closed.
  void release(Upstream* u, bool reusable) noexcept;
  // Bookkeeping from Upstream.
  // A connection closed (EOF, idle timeout, failure): it no longer counts against
  // max_connections from this instant, even though its handles take a loop turn to close.
  void on_closed(Upstream* u, bool was_idle) noexcept;
  void on_recycled(Upstream* u) noexcept;  // its last reference went: back to the free list

  const ClusterConfig& config() const noexcept { return config_; }
  const std::string& endpoint_name(size_t i) const noexcept { return endpoints_[i].name; }
  uint64_t idle_timeout_ms() const noexcept { return static_cast<uint64_t>(config_.idle_timeout.count()); }
  shm::ClusterStats& stats() noexcept { return *stats_; }

 private:
  struct Endpoint {
    HostPort host_port;
    std::string name;  // "host:port", for logs
    sockaddr_storage address{};
    bool resolved = false;
    bool literal = false;
    uv_getaddrinfo_t resolve_req{};
    bool resolving = false;
    Upstream* idle_head = nullptr;  // most recently used first
    uint32_t idle_count = 0;
    UpstreamPool* pool = nullptr;
    const shm::EndpointHealth* health = nullptr;  // null: not checked, always usable
    bool up() const noexcept { return health == nullptr || health->down.load(std::memory_order_relaxed) == 0; }
  };

  void resolve(Endpoint& e) noexcept;
  static void on_resolved(uv_getaddrinfo_t* req, int status, addrinfo* res) noexcept;
  static void on_refresh(uv_timer_t* timer) noexcept;
  void unlink_idle(Upstream* u) noexcept;

  uv_loop_t* loop_;
  const ClusterConfig& config_;
  size_t buffer_bytes_;
  shm::ClusterStats* stats_;
  std::vector<Endpoint> endpoints_;
  size_t next_endpoint_ = 0;
  uint32_t open_ = 0;  // connections counted against max_connections
  std::vector<Upstream*> free_;
  uv_timer_t refresh_timer_{};
  bool stopped_ = false;
};

}  // namespace fusebox::proxy
