// tests/unit/shm/reason_test.cc
#include "shm/reason.h"

#include <doctest/doctest.h>

#include <cstring>

using namespace fusebox::shm;

TEST_CASE("every reason is put into words from its numbers") {
  CHECK(describe({Why::ConsecutiveFailures, 5, 5}) == "5 failures in a row (threshold 5)");
  CHECK(describe({Why::FailureRate, 62, 50, 40}) == "failure rate 62% \u2265 50% over 40 calls");
  CHECK(describe({Why::FailureRate, 62, 50, 40}) == "failure rate 62% ≥ 50% over 40 calls");
  CHECK(describe({Why::SlowCallRate, 30, 25, 100}) == "slow call rate 30% ≥ 25% over 100 calls");
  CHECK(describe({Why::OpenElapsed, 30000}) == "open for 30000 ms: trial calls allowed");
  CHECK(describe({Why::TrialFailed, 2}) == "a trial call failed (after 2 succeeded)");
  CHECK(describe({Why::TrialFailed, 0}) == "a trial call failed (after 0 succeeded)");
  CHECK(describe({Why::TrialsSucceeded, 3, 3}) == "3/3 trial calls succeeded");
  CHECK(describe({Why::Forced}) == "forced by the operator");
  CHECK(describe({Why::Reset}) == "reset by the operator");
}

TEST_CASE("the numbers of a reason print in full, up to 32 bits") {
  CHECK(describe({Why::ConsecutiveFailures, 4294967295u, 0}) == "4294967295 failures in a row (threshold 0)");
  CHECK(describe({Why::OpenElapsed, 0}) == "open for 0 ms: trial calls allowed");
}

TEST_CASE("a reason the binary does not know (a newer writer) reads as unknown") {
  CHECK(describe({static_cast<Why>(200)}) == "unknown");
  CHECK(std::strcmp(to_string(static_cast<Why>(200)), "unknown") == 0);
}

TEST_CASE("every reason has a label for logs, the admin API and metrics") {
  CHECK(std::strcmp(to_string(Why::ConsecutiveFailures), "consecutive_failures") == 0);
  CHECK(std::strcmp(to_string(Why::FailureRate), "failure_rate") == 0);
  CHECK(std::strcmp(to_string(Why::SlowCallRate), "slow_call_rate") == 0);
  CHECK(std::strcmp(to_string(Why::OpenElapsed), "open_elapsed") == 0);
  CHECK(std::strcmp(to_string(Why::TrialFailed), "trial_failed") == 0);
  CHECK(std::strcmp(to_string(Why::TrialsSucceeded), "trials_succeeded") == 0);
  CHECK(std::strcmp(to_string(Why::Forced), "forced") == 0);
  CHECK(std::strcmp(to_string(Why::Reset), "reset") == 0);
}

TEST_CASE("a default reason is an operator's reset") {
  const Reason r;
  CHECK(r.why == Why::Reset);
  CHECK(describe(r) == "reset by the operator");
}
