// tests/bench/collector_bench.cc: what a /metrics scrape costs in the master with 1,000 clusters,
// split into reading the segment into families (Collect) and writing the text (scrape). The
// end-to-end figure, through the admin listener, is tools/bench/scrape.sh's.
#include <benchmark/benchmark.h>

#include <string>

#include "metrics/collector.h"
#include "shm/segment.h"

namespace {

constexpr uint32_t kClusters = 1000;

struct Fixture {
  std::unique_ptr<fusebox::shm::Segment> segment = fusebox::shm::Segment::anonymous(kClusters + 24);
  fusebox::metrics::Collector collector{*segment};

  Fixture() {
    fusebox::metrics::Scope scope;
    scope.version = "0.1.0";
    scope.revision = "bench";
    auto listener = segment->find_or_add_series("bench", "");
    scope.series.push_back({"bench", "", listener.value()});
    for (uint32_t i = 0; i < kClusters; ++i) {
      const std::string name = "cluster-" + std::to_string(i);
      const uint32_t slot = segment->find_or_add(name).value();
      const uint32_t series = segment->find_or_add_series("bench", name).value();
      scope.clusters.push_back({name, slot});
      scope.breakers.push_back({name, "", slot});
      scope.series.push_back({"bench", name, series});
      // Two workers' worth of traffic: a few outcomes and durations per cluster.
      for (uint32_t w = 0; w < 2; ++w) {
        fusebox::shm::WorkerBlock b = segment->worker(w);
        b.head->used.store(1);
        fusebox::shm::bump(b.series[series].requests[1][0], 100 + i);
        fusebox::shm::bump(b.series[series].requests[4][1], i % 7);
        fusebox::shm::bump(b.clusters[slot].duration_buckets[i % fusebox::shm::kDurationBuckets], 100 + i);
        fusebox::shm::bump(b.clusters[slot].duration_count, 100 + i);
        fusebox::shm::bump(b.clusters[slot].upstream_connects, 3);
      }
    }
    collector.set_scope(std::move(scope));
  }
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

void BM_Collect(benchmark::State& state) {
  Fixture& f = fixture();
  for (auto _ : state) benchmark::DoNotOptimize(f.collector.Collect());
}
BENCHMARK(BM_Collect)->Unit(benchmark::kMillisecond);

void BM_Scrape(benchmark::State& state) {
  Fixture& f = fixture();
  size_t bytes = 0;
  for (auto _ : state) {
    const std::string text = f.collector.scrape();
    bytes = text.size();
    benchmark::DoNotOptimize(text.data());
  }
  state.counters["bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_Scrape)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
