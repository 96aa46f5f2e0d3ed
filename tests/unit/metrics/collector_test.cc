// tests/unit/metrics/collector_test.cc: the collector sums every used worker block, labels with
// the scope's names, and reads the breakers' state and transitions from their slots.
#include "metrics/collector.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>

#include "shm/breaker.h"

namespace {

using fusebox::metrics::Collector;
using fusebox::metrics::Scope;
namespace shm = fusebox::shm;

const prometheus::MetricFamily& family(const std::vector<prometheus::MetricFamily>& all, const std::string& name) {
  for (const auto& f : all)
    if (f.name == name) return f;
  FAIL("no family " << name);
  throw;
}

// The sample whose labels include every one given.
const prometheus::ClientMetric* sample(const prometheus::MetricFamily& f,
                                       const std::vector<prometheus::ClientMetric::Label>& labels) {
  for (const auto& m : f.metric) {
    bool all = true;
    for (const auto& l : labels) all = all && std::find(m.label.begin(), m.label.end(), l) != m.label.end();
    if (all) return &m;
  }
  return nullptr;
}

}  // namespace

TEST_CASE("the collector sums the worker blocks into labelled families") {
  auto segment = shm::Segment::anonymous(8);
  const uint32_t slot = segment->find_or_add("payments").value();
  const uint32_t own = segment->find_or_add_series("edge", "").value();
  const uint32_t route = segment->find_or_add_series("edge", "payments").value();
  Scope scope;
  scope.clusters = {{"payments", slot}};
  scope.breakers = {{"payments", "", slot}};
  scope.series = {{"edge", "", own}, {"edge", "payments", route}};
  scope.version = "9.9.9";
  scope.revision = "abc";
  Collector collector(*segment);
  collector.set_scope(scope);

  // Two workers' blocks, and a third block with counts but never marked used: not read.
  for (uint32_t b : {0u, 5u, 7u}) {
    shm::WorkerBlock w = segment->worker(b);
    if (b != 7) w.head->used.store(1);
    shm::bump(w.series[route].requests[shm::code_class_index(200)][static_cast<int>(shm::RequestOutcome::Success)], 10);
    shm::bump(w.series[route].requests[shm::code_class_index(503)][static_cast<int>(shm::RequestOutcome::Rejected)], 2);
    shm::bump(w.series[own].requests[shm::code_class_index(404)][static_cast<int>(shm::RequestOutcome::Error)]);
    shm::bump(w.series[own].accepted, 3);
    w.series[own].active.fetch_add(2);
    shm::bump(w.clusters[slot].duration_buckets[shm::duration_bucket(700'000)], 4);      // 0.7 ms: le 0.001
    shm::bump(w.clusters[slot].duration_buckets[shm::duration_bucket(3'000'000'000)]);   // 3 s: le 5
    shm::bump(w.clusters[slot].duration_sum_ns, 3'002'800'000);
    shm::bump(w.clusters[slot].duration_count, 5);
    shm::bump(w.clusters[slot].rejected[static_cast<int>(shm::RejectReason::Breaker)], 2);
  }
  // A trip, then a forced open: two transitions.
  shm::BreakerPolicy policy;
  policy.consecutive_failures = 1;
  shm::Breaker breaker(segment->slot(slot), policy);
  const auto a = breaker.admit(1'000'000'000);
  breaker.record(a, {.failure = true, .duration_ns = 1}, 1'000'000'000, 0);
  breaker.force(shm::State::ForcedOpen, 2'000'000'000);

  collector.set_master_counts({.worker_restarts = 3, .config_generation = 2, .reloads = 2, .reload_failures = 1,
                               .workers_running = 2});
  const auto all = collector.Collect();

  const auto& requests = family(all, "fusebox_requests_total");
  CHECK(requests.metric.size() == 3);  // only the combinations that happened
  REQUIRE(sample(requests, {{"cluster", "payments"}, {"code_class", "2xx"}, {"outcome", "success"}}));
  CHECK(sample(requests, {{"cluster", "payments"}, {"code_class", "2xx"}, {"outcome", "success"}})->counter.value == 20);
  CHECK(sample(requests, {{"cluster", "payments"}, {"code_class", "5xx"}, {"outcome", "rejected"}})->counter.value == 4);
  CHECK(sample(requests, {{"listener", "edge"}, {"cluster", ""}, {"code_class", "4xx"}, {"outcome", "error"}})
            ->counter.value == 2);
  CHECK(sample(family(all, "fusebox_downstream_connections_total"), {{"listener", "edge"}})->counter.value == 6);
  CHECK(sample(family(all, "fusebox_downstream_connections_active"), {{"listener", "edge"}})->gauge.value == 4);

  const auto& h = family(all, "fusebox_upstream_request_duration_seconds").metric.at(0);
  CHECK(h.histogram.sample_count == 10);
  CHECK(h.histogram.sample_sum == doctest::Approx(6.0056));
  REQUIRE(h.histogram.bucket.size() == shm::kDurationBuckets);
  CHECK(h.histogram.bucket[0].cumulative_count == 0);   // le 0.0005
  CHECK(h.histogram.bucket[1].cumulative_count == 8);   // le 0.001
  CHECK(h.histogram.bucket[11].cumulative_count == 8);  // le 2.5
  CHECK(h.histogram.bucket[12].cumulative_count == 10); // le 5
  CHECK(std::isinf(h.histogram.bucket.back().upper_bound));
  CHECK(h.histogram.bucket.back().cumulative_count == 10);

  const auto& state = family(all, "fusebox_breaker_state");
  CHECK(state.metric.size() == shm::kStates);
  CHECK(sample(state, {{"state", "forced_open"}})->gauge.value == 1);
  CHECK(sample(state, {{"state", "open"}})->gauge.value == 0);
  CHECK(sample(state, {{"state", "closed"}})->gauge.value == 0);
  const auto& transitions = family(all, "fusebox_breaker_transitions_total");
  CHECK(transitions.metric.size() == 2);
  CHECK(sample(transitions, {{"from", "closed"}, {"to", "open"}})->counter.value == 1);
  CHECK(sample(transitions, {{"from", "open"}, {"to", "forced_open"}})->counter.value == 1);
  CHECK(sample(family(all, "fusebox_rejected_requests_total"), {{"reason", "breaker"}})->counter.value == 4);
  CHECK(sample(family(all, "fusebox_rejected_requests_total"), {{"reason", "connection_limit"}})->counter.value == 0);

  CHECK(family(all, "fusebox_worker_restarts_total").metric.at(0).counter.value == 3);
  CHECK(family(all, "fusebox_workers").metric.at(0).gauge.value == 2);
  CHECK(sample(family(all, "fusebox_config_reloads_total"), {{"result", "refused"}})->counter.value == 1);
  CHECK(sample(family(all, "fusebox_build_info"), {{"version", "9.9.9"}, {"revision", "abc"}})->gauge.value == 1);
}
