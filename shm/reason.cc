// shm/reason.cc: see reason.h.
#include "shm/reason.h"

namespace fusebox::shm {

std::string describe(const Reason& r) {
  const auto n = [](uint32_t v) { return std::to_string(v); };
  switch (r.why) {
    case Why::ConsecutiveFailures:
      return n(r.a) + " failures in a row (threshold " + n(r.b) + ")";
    case Why::FailureRate:
      return "failure rate " + n(r.a) + "% \u2265 " + n(r.b) + "% over " + n(r.c) + " calls";
    case Why::SlowCallRate:
      return "slow call rate " + n(r.a) + "% \u2265 " + n(r.b) + "% over " + n(r.c) + " calls";
    case Why::OpenElapsed:
      return "open for " + n(r.a) + " ms: trial calls allowed";
    case Why::TrialFailed:
      return "a trial call failed (after " + n(r.a) + " succeeded)";
    case Why::TrialsSucceeded:
      return n(r.a) + "/" + n(r.b) + " trial calls succeeded";
    case Why::Forced:
      return "forced by the operator";
    case Why::Reset:
      return "reset by the operator";
    case Why::HealthCheckPassed:
      return "an endpoint passed " + n(r.a) + "/" + n(r.b) + " health checks: trial calls allowed";
  }
  return "unknown";
}

}  // namespace fusebox::shm
