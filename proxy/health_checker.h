// proxy/health_checker.h: active health checks, on the master's loop. For every endpoint of every
// cluster that has `health_check:`, one probe: a fresh TCP connection every `interval`, a GET of
// the path with `Connection: close`, and the status line's code against expected_statuses (a
// connect error, a reset or no status line within `timeout` fails it). Its verdicts go to the
// segment (EndpointHealth: workers route around an endpoint that is down) and to the cluster's
// breaker: when a down endpoint comes back up while the breaker is open, the breaker half-opens at
// once, so the dependency's return costs one check interval instead of the rest of the open time.
//
// While a breaker is open because its upstream refused connections, its probes pause: nothing
// listens, the breaker's own trial calls find out when something does, and every check would be
// one more connection attempt on a dependency the breaker exists to spare.
//
// Not here: passive ejection (outlier detection) and anything a worker does with a request.
#pragma once

#include <uv.h>

#include <memory>
#include <vector>

#include "proxy/config.h"
#include "proxy/segment_index.h"
#include "shm/segment.h"

namespace fusebox::proxy {

class HealthChecker {
 public:
  HealthChecker(uv_loop_t* loop, shm::Segment& segment) noexcept : loop_(loop), segment_(segment) {}
  ~HealthChecker();
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  // Stops the probes of the previous config and starts those of `config`. The probes copy what
  // they read of it: a retired one that still finishes a check never touches a freed config.
  void start(const Config& config, const SegmentIndex& index);
  void stop() noexcept;
  // In a forked worker: close the probes' sockets (descriptors only; the loop is the master's).
  void close_descriptors_in_child() noexcept;

 private:
  class Probe;

  uv_loop_t* loop_;
  shm::Segment& segment_;
  std::vector<Probe*> probes_;  // each deletes itself once its handles are closed
};

}  // namespace fusebox::proxy
