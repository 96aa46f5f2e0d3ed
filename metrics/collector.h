// metrics/collector.h: fusebox's Prometheus metrics, built at scrape time from the segment. A
// prometheus-cpp Collectable: it sums the workers' stats blocks and reads the breakers' slots, on
// the master's loop, so the data path never calls prometheus-cpp (workers only bump their own
// counters). What the segment does not know, the names the running config uses and the master's
// own counts, comes in as a Scope, replaced at every reload.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <cstdint>
#include <string>
#include <vector>

#include "shm/segment.h"

namespace fusebox::metrics {

struct Scope {
  struct Cluster {
    std::string name;
    uint32_t slot = 0;  // its breaker, and its counters in every worker block
  };
  struct Series {
    std::string listener;
    std::string cluster;  // "" for the listener's own series
    uint32_t index = 0;
  };
  std::vector<Cluster> clusters;
  struct Breaker {
    std::string cluster;
    std::string route;  // "" for the cluster's own breaker
    uint32_t slot = 0;
  };
  std::vector<Breaker> breakers;  // the clusters', then the routes' own
  std::vector<Series> series;  // each listener's own first, then its listener × cluster pairs, no duplicates
  struct Endpoint {
    std::string cluster;
    std::string endpoint;  // "host:port"
    uint32_t index = 0;    // its health entry
  };
  std::vector<Endpoint> endpoints;  // of the clusters with health checks
  std::string version;
  std::string revision;
};

// Counts only the master has.
struct MasterCounts {
  uint64_t worker_restarts = 0;  // workers respawned after dying
  uint64_t config_generation = 0;
  uint64_t reloads = 0;
  uint64_t reload_failures = 0;
  uint32_t workers_running = 0;
};

class Collector : public prometheus::Collectable {
 public:
  explicit Collector(shm::Segment& segment) noexcept : segment_(segment) {}

  void set_scope(Scope scope) { scope_ = std::move(scope); }
  void set_master_counts(const MasterCounts& counts) noexcept { master_ = counts; }

  std::vector<prometheus::MetricFamily> Collect() const override;
  // Collect(), in the Prometheus text format (version 0.0.4).
  std::string scrape() const;

 private:
  shm::Segment& segment_;
  Scope scope_;
  MasterCounts master_;
};

}  // namespace fusebox::metrics
