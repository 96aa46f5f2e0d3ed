// shm/reason.h: why a breaker changed state, stored as numbers (Why::FailureRate, 62, 50, 40) and
// put into words only when read ("failure rate 62% ≥ 50% over 40 calls"): recording a transition
// allocates nothing, and the words can change without changing the segment's layout.
#pragma once

#include <cstdint>
#include <string>

namespace fusebox::shm {

enum class Why : uint8_t {
  ConsecutiveFailures,  // a = failures in a row, b = threshold
  FailureRate,          // a = rate %, b = threshold %, c = calls in the window
  SlowCallRate,         // a = rate %, b = threshold %, c = calls in the window
  OpenElapsed,          // a = how long it was open, ms
  TrialFailed,          // a = trial calls that had succeeded before it
  TrialsSucceeded,      // a = successes, b = required
  Forced,               // the operator: to the state in `to`
  Reset,                // the operator: back to closed, counts and backoff cleared
  HealthCheckPassed,    // a = checks passed in a row, b = healthy_threshold
};

constexpr const char* to_string(Why w) noexcept {
  switch (w) {
    case Why::ConsecutiveFailures: return "consecutive_failures";
    case Why::FailureRate: return "failure_rate";
    case Why::SlowCallRate: return "slow_call_rate";
    case Why::OpenElapsed: return "open_elapsed";
    case Why::TrialFailed: return "trial_failed";
    case Why::TrialsSucceeded: return "trials_succeeded";
    case Why::Forced: return "forced";
    case Why::Reset: return "reset";
    case Why::HealthCheckPassed: return "health_check_passed";
  }
  return "unknown";
}

struct Reason {
  Why why = Why::Reset;
  uint32_t a = 0;
  uint32_t b = 0;
  uint32_t c = 0;
};

// "failure rate 62% ≥ 50% over 40 calls", "5 failures in a row (threshold 5)", ...
std::string describe(const Reason& r);

}  // namespace fusebox::shm
