// metrics/collector.cc: see collector.h.
#include "metrics/collector.h"

#include <array>
#include <limits>

#include "metrics/text_format.h"
#include "shm/state_word.h"

namespace fusebox::metrics {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

MetricFamily family(const char* name, const char* help, MetricType type) {
  return MetricFamily{.name = name, .help = help, .type = type, .metric = {}};
}

void add_counter(MetricFamily& f, std::vector<ClientMetric::Label> labels, double value) {
  ClientMetric m;
  m.label = std::move(labels);
  m.counter.value = value;
  f.metric.push_back(std::move(m));
}

void add_gauge(MetricFamily& f, std::vector<ClientMetric::Label> labels, double value) {
  ClientMetric m;
  m.label = std::move(labels);
  m.gauge.value = value;
  f.metric.push_back(std::move(m));
}

// One series' counters summed over every worker block.
struct SeriesSum {
  uint64_t requests[shm::kCodeClasses][shm::kRequestOutcomes] = {};
  uint64_t accepted = 0;
  int64_t active = 0;
  uint64_t bytes_received = 0;
  uint64_t bytes_sent = 0;
};

struct ClusterSum {
  uint64_t buckets[shm::kDurationBuckets] = {};
  uint64_t sum_ns = 0;
  uint64_t count = 0;
  uint64_t connects = 0;
  uint64_t connect_failures = 0;
  uint64_t reuses = 0;
  int64_t active = 0;
  uint64_t bytes_sent = 0;
  uint64_t bytes_received = 0;
  uint64_t rejected[shm::kRejectReasons] = {};
};

}  // namespace

std::vector<MetricFamily> Collector::Collect() const {
  // Sum the blocks first: one pass over each block, in the order it lies in memory.
  std::vector<SeriesSum> series(scope_.series.size());
  std::vector<ClusterSum> clusters(scope_.clusters.size());
  for (uint32_t b = 0; b < shm::kWorkerBlocks; ++b) {
    const shm::WorkerBlock block = segment_.worker(b);
    // A block no worker ever had is all zeros: reading it would cost more than the rest.
    if (block.head->used.load(std::memory_order_acquire) == 0) continue;
    for (size_t i = 0; i < scope_.series.size(); ++i) {
      const shm::SeriesStats& s = block.series[scope_.series[i].index];
      SeriesSum& sum = series[i];
      for (int c = 0; c < shm::kCodeClasses; ++c)
        for (int o = 0; o < shm::kRequestOutcomes; ++o) sum.requests[c][o] += shm::read(s.requests[c][o]);
      sum.accepted += shm::read(s.accepted);
      sum.active += s.active.load(std::memory_order_relaxed);
      sum.bytes_received += shm::read(s.bytes_received);
      sum.bytes_sent += shm::read(s.bytes_sent);
    }
    for (size_t i = 0; i < scope_.clusters.size(); ++i) {
      const shm::ClusterStats& s = block.clusters[scope_.clusters[i].slot];
      ClusterSum& sum = clusters[i];
      for (int k = 0; k < shm::kDurationBuckets; ++k) sum.buckets[k] += shm::read(s.duration_buckets[k]);
      sum.sum_ns += shm::read(s.duration_sum_ns);
      sum.count += shm::read(s.duration_count);
      sum.connects += shm::read(s.upstream_connects);
      sum.connect_failures += shm::read(s.upstream_connect_failures);
      sum.reuses += shm::read(s.upstream_reuses);
      sum.active += s.upstream_active.load(std::memory_order_relaxed);
      sum.bytes_sent += shm::read(s.upstream_bytes_sent);
      sum.bytes_received += shm::read(s.upstream_bytes_received);
      for (int r = 0; r < shm::kRejectReasons; ++r) sum.rejected[r] += shm::read(s.rejected[r]);
    }
  }

  std::vector<MetricFamily> out;
  auto requests = family("fusebox_requests_total",
                         "Requests that began an exchange, by listener, cluster (empty: no route), status class "
                         "(none: no status sent) and outcome.",
                         MetricType::Counter);
  auto conns_total = family("fusebox_downstream_connections_total", "Client connections accepted.", MetricType::Counter);
  auto conns_active = family("fusebox_downstream_connections_active", "Client connections open.", MetricType::Gauge);
  auto down_in = family("fusebox_downstream_received_bytes_total", "Bytes received from clients.", MetricType::Counter);
  auto down_out = family("fusebox_downstream_sent_bytes_total", "Bytes sent to clients.", MetricType::Counter);
  for (size_t i = 0; i < scope_.series.size(); ++i) {
    const Scope::Series& s = scope_.series[i];
    const SeriesSum& sum = series[i];
    // Only the combinations that happened: 30 per series would be mostly zeros.
    for (int c = 0; c < shm::kCodeClasses; ++c) {
      for (int o = 0; o < shm::kRequestOutcomes; ++o) {
        if (sum.requests[c][o] == 0) continue;
        add_counter(requests,
                    {{"listener", s.listener},
                     {"cluster", s.cluster},
                     {"code_class", shm::code_class_name(c)},
                     {"outcome", shm::to_string(static_cast<shm::RequestOutcome>(o))}},
                    static_cast<double>(sum.requests[c][o]));
      }
    }
    if (!s.cluster.empty()) continue;
    add_counter(conns_total, {{"listener", s.listener}}, static_cast<double>(sum.accepted));
    add_gauge(conns_active, {{"listener", s.listener}}, static_cast<double>(std::max<int64_t>(0, sum.active)));
    add_counter(down_in, {{"listener", s.listener}}, static_cast<double>(sum.bytes_received));
    add_counter(down_out, {{"listener", s.listener}}, static_cast<double>(sum.bytes_sent));
  }

  auto duration = family("fusebox_upstream_request_duration_seconds",
                         "Time from sending a request upstream to its response head (or its failure).",
                         MetricType::Histogram);
  auto state = family("fusebox_breaker_state", "The breaker's state: 1 for the current one.", MetricType::Gauge);
  auto transitions = family("fusebox_breaker_transitions_total", "Breaker state changes, by from and to.",
                            MetricType::Counter);
  auto rejected = family("fusebox_rejected_requests_total",
                         "Requests not sent upstream: a breaker was open (breaker), or the worker's "
                         "max_connections to the cluster were in use (connection_limit).",
                         MetricType::Counter);
  auto up_active = family("fusebox_upstream_connections_active", "Upstream connections open, idle or in use.",
                          MetricType::Gauge);
  auto up_connects = family("fusebox_upstream_connects_total", "Upstream connections opened (attempts).",
                            MetricType::Counter);
  auto up_connect_failures = family("fusebox_upstream_connect_failures_total",
                                    "Upstream connection attempts that failed: refused, unreachable, timed out.",
                                    MetricType::Counter);
  auto up_reuses = family("fusebox_upstream_connection_reuses_total",
                          "Requests sent on a pooled keep-alive upstream connection.", MetricType::Counter);
  auto up_out = family("fusebox_upstream_sent_bytes_total", "Bytes sent to upstreams.", MetricType::Counter);
  auto up_in = family("fusebox_upstream_received_bytes_total", "Bytes received from upstreams.", MetricType::Counter);
  for (size_t i = 0; i < scope_.clusters.size(); ++i) {
    const std::string& name = scope_.clusters[i].name;
    const ClusterSum& sum = clusters[i];

    ClientMetric h;
    h.label = {{"cluster", name}};
    h.histogram.sample_count = sum.count;
    h.histogram.sample_sum = static_cast<double>(sum.sum_ns) / 1e9;
    uint64_t cumulative = 0;
    for (int k = 0; k < shm::kDurationBuckets; ++k) {
      cumulative += sum.buckets[k];
      h.histogram.bucket.push_back(
          {.cumulative_count = cumulative,
           .upper_bound = k < shm::kDurationBuckets - 1 ? shm::kDurationBoundsSeconds[k]
                                                         : std::numeric_limits<double>::infinity()});
    }
    // The count is read apart from the buckets, while workers add to both: keep them consistent.
    h.histogram.sample_count = cumulative;
    duration.metric.push_back(std::move(h));

    for (int r = 0; r < shm::kRejectReasons; ++r)
      add_counter(rejected, {{"cluster", name}, {"reason", shm::to_string(static_cast<shm::RejectReason>(r))}},
                  static_cast<double>(sum.rejected[r]));
    add_gauge(up_active, {{"cluster", name}}, static_cast<double>(std::max<int64_t>(0, sum.active)));
    add_counter(up_connects, {{"cluster", name}}, static_cast<double>(sum.connects));
    add_counter(up_connect_failures, {{"cluster", name}}, static_cast<double>(sum.connect_failures));
    add_counter(up_reuses, {{"cluster", name}}, static_cast<double>(sum.reuses));
    add_counter(up_out, {{"cluster", name}}, static_cast<double>(sum.bytes_sent));
    add_counter(up_in, {{"cluster", name}}, static_cast<double>(sum.bytes_received));
  }

  // The breakers: every cluster's, then the routes' own (labelled with their route too).
  for (const Scope::Breaker& b : scope_.breakers) {
    const shm::BreakerSlot& slot = segment_.slot(b.slot);
    auto labels = [&b](std::initializer_list<ClientMetric::Label> more) {
      std::vector<ClientMetric::Label> l{{"cluster", b.cluster}};
      if (!b.route.empty()) l.push_back({"route", b.route});
      l.insert(l.end(), more);
      return l;
    };
    const shm::State now = shm::StateWord(slot.state_word.load(std::memory_order_acquire)).state();
    for (int s = 0; s < shm::kStates; ++s) {
      const auto st = static_cast<shm::State>(s);
      add_gauge(state, labels({{"state", shm::to_string(st)}}), st == now ? 1 : 0);
    }
    for (int from = 0; from < shm::kStates; ++from) {
      for (int to = 0; to < shm::kStates; ++to) {
        const uint64_t n = slot.transitions_total[from][to].load(std::memory_order_relaxed);
        if (n == 0) continue;
        add_counter(transitions,
                    labels({{"from", shm::to_string(static_cast<shm::State>(from))},
                            {"to", shm::to_string(static_cast<shm::State>(to))}}),
                    static_cast<double>(n));
      }
    }
  }

  auto endpoint_up = family("fusebox_endpoint_up",
                            "1 while an endpoint passes its health checks, 0 once it failed unhealthy_threshold in a row.",
                            MetricType::Gauge);
  auto checks = family("fusebox_health_checks_total", "Active health checks of an endpoint, by result.",
                       MetricType::Counter);
  for (const Scope::Endpoint& e : scope_.endpoints) {
    const shm::EndpointHealth& h = segment_.endpoint(e.index);
    add_gauge(endpoint_up, {{"cluster", e.cluster}, {"endpoint", e.endpoint}},
              h.down.load(std::memory_order_relaxed) == 0 ? 1 : 0);
    add_counter(checks, {{"cluster", e.cluster}, {"endpoint", e.endpoint}, {"result", "passed"}},
                static_cast<double>(h.checks_passed.load(std::memory_order_relaxed)));
    add_counter(checks, {{"cluster", e.cluster}, {"endpoint", e.endpoint}, {"result", "failed"}},
                static_cast<double>(h.checks_failed.load(std::memory_order_relaxed)));
  }

  auto restarts = family("fusebox_worker_restarts_total", "Workers respawned after they died.", MetricType::Counter);
  add_counter(restarts, {}, static_cast<double>(master_.worker_restarts));
  auto workers = family("fusebox_workers", "Worker processes running.", MetricType::Gauge);
  add_gauge(workers, {}, master_.workers_running);
  auto generation = family("fusebox_config_generation", "The running config's generation: +1 at every reload.",
                           MetricType::Gauge);
  add_gauge(generation, {}, static_cast<double>(master_.config_generation));
  auto reloads = family("fusebox_config_reloads_total", "Config reloads, by result.", MetricType::Counter);
  add_counter(reloads, {{"result", "applied"}}, static_cast<double>(master_.reloads));
  add_counter(reloads, {{"result", "refused"}}, static_cast<double>(master_.reload_failures));
  auto info = family("fusebox_build_info", "fusebox's version and source revision.", MetricType::Gauge);
  add_gauge(info, {{"version", scope_.version}, {"revision", scope_.revision}}, 1);

  for (MetricFamily* f : {&requests, &duration, &state, &transitions, &rejected, &conns_active, &conns_total,
                          &down_in, &down_out, &up_active, &up_connects, &up_connect_failures, &up_reuses,
                          &up_in, &up_out, &endpoint_up, &checks, &restarts, &workers, &generation, &reloads, &info})
    out.push_back(std::move(*f));
  return out;
}

std::string Collector::scrape() const { return to_text(Collect()); }

}  // namespace fusebox::metrics
