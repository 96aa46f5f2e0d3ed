// tests/unit/shm/breaker_test.cc: the breaker state machine over a slot of an anonymous segment,
// driven by a manual clock across every threshold; nothing sleeps. (Which answers count as
// failures, e.g. 4xx as success, is the proxy's business: here an outcome is already classified.)
#include "shm/breaker.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <vector>

#include "shm/clock.h"
#include "shm/segment.h"

using namespace fusebox::shm;

namespace {

constexpr int64_t kMs = kNsPerMs;
constexpr int64_t kSecond = 1000 * kMs;
constexpr uint64_t kNoJitter = uint64_t{1} << 63;  // the middle of the range: ± 0

// The defaults, with the jitter off so that open times are exact.
BreakerPolicy exact() {
  BreakerPolicy p;
  p.open_jitter_pct = 0;
  return p;
}

// One breaker in an anonymous segment (the production layout) and a manual clock. The clock
// starts at 1 s, which is the start of a bucket for a 10 s window (ten 1 s buckets).
struct TestBreaker {
  explicit TestBreaker(const BreakerPolicy& p)
      : policy(p), seg(Segment::anonymous(4)), slot(seg->slot(seg->find_or_add("payments").value())),
        b(slot, policy) {}

  int64_t now() const { return clock.now_ns(); }
  // One call through the breaker: admitted now, its outcome recorded now.
  Admission call(bool failure, int64_t duration_ns = 0, uint64_t random = kNoJitter) {
    const Admission a = b.admit(now());
    if (a.kind != Admission::Rejected) b.record(a, {failure, duration_ns}, now(), random);
    return a;
  }
  void calls(int n, bool failure, int64_t duration_ns = 0) {
    for (int i = 0; i < n; ++i) call(failure, duration_ns);
  }
  void succeed(int n) { calls(n, false); }
  void fail(int n) { calls(n, true); }
  std::vector<Transition> ring() const { return slot.transitions.read(); }
  Transition last() const {
    const auto all = ring();
    REQUIRE(!all.empty());
    return all.back();
  }
  int64_t retry_after_ms() {
    const Admission a = b.admit(now());
    REQUIRE(a.kind == Admission::Rejected);
    return a.retry_after_ns / kMs;
  }
  // Trips it on consecutive failures (the policy must have them on).
  void trip() {
    while (b.state() == State::Closed) call(true);
  }

  BreakerPolicy policy;
  ManualClock clock;
  std::unique_ptr<Segment> seg;
  BreakerSlot& slot;
  Breaker b;
};

BreakerPolicy consecutive_only(uint32_t n) {
  BreakerPolicy p = exact();
  p.consecutive_failures = n;
  p.failure_rate_pct = 0;
  return p;
}

BreakerPolicy rate_only(uint32_t pct, uint32_t minimum_calls) {
  BreakerPolicy p = exact();
  p.consecutive_failures = 0;
  p.failure_rate_pct = pct;
  p.minimum_calls = minimum_calls;
  return p;
}

}  // namespace

// ---- closed ----------------------------------------------------------------------------------

TEST_CASE("a new breaker is closed and lets calls through") {
  TestBreaker t(exact());
  CHECK(t.b.state() == State::Closed);
  const Admission a = t.b.admit(t.now());
  CHECK(a.kind == Admission::Allowed);
  CHECK(a.generation == 0u);
  CHECK(t.ring().empty());
  CHECK(t.b.window(t.now()).calls == 0u);
}

TEST_CASE("consecutive failures trip the breaker at exactly the threshold, and say so") {
  TestBreaker t(consecutive_only(5));
  t.fail(4);
  CHECK(t.b.state() == State::Closed);
  t.fail(1);
  REQUIRE(t.b.state() == State::Open);
  const Transition tr = t.last();
  CHECK(tr.from == State::Closed);
  CHECK(tr.to == State::Open);
  CHECK(tr.reason.why == Why::ConsecutiveFailures);
  CHECK(tr.generation == 1u);
  CHECK(tr.at_ns == t.now());
  CHECK(describe(tr.reason) == "5 failures in a row (threshold 5)");
  CHECK(t.ring().size() == 1);
}

TEST_CASE("a success between failures starts the consecutive count again") {
  TestBreaker t(consecutive_only(5));
  t.fail(4);
  t.succeed(1);
  t.fail(4);
  CHECK(t.b.state() == State::Closed);
  t.fail(1);
  CHECK(t.b.state() == State::Open);
}

TEST_CASE("consecutive_failures 0 turns the rule off") {
  TestBreaker t(consecutive_only(0));
  t.fail(1000);
  CHECK(t.b.state() == State::Closed);
  CHECK(t.ring().empty());
}

TEST_CASE("a breaker trips on failure rate and records why") {
  TestBreaker t(rate_only(50, 40));
  t.succeed(25);
  t.fail(15);  // 15 of 40: 37.5%
  CHECK(t.b.state() == State::Closed);
  CHECK(t.b.window(t.now()).calls == 40u);
  CHECK(t.b.window(t.now()).failures == 15u);
  t.fail(9);  // 24 of 49: 49%
  CHECK(t.b.state() == State::Closed);
  t.fail(1);  // 25 of 50: 50%
  REQUIRE(t.b.state() == State::Open);
  CHECK(t.last().reason.why == Why::FailureRate);
  CHECK(describe(t.last().reason) == "failure rate 50% ≥ 50% over 50 calls");
}

TEST_CASE("the failure rate in the reason is rounded down") {
  TestBreaker t(rate_only(60, 40));
  t.succeed(15);
  t.fail(25);  // 25 of 40: 62.5%
  REQUIRE(t.b.state() == State::Open);
  CHECK(describe(t.last().reason) == "failure rate 62% ≥ 60% over 40 calls");
}

TEST_CASE("the failure rate waits for minimum_calls in the window") {
  TestBreaker t(rate_only(50, 20));
  t.fail(19);  // 100%, but 19 calls
  CHECK(t.b.state() == State::Closed);
  t.fail(1);
  REQUIRE(t.b.state() == State::Open);
  CHECK(describe(t.last().reason) == "failure rate 100% ≥ 50% over 20 calls");
}

TEST_CASE("only a failure trips: reaching minimum_calls with a success leaves it closed until the next failure") {
  TestBreaker t(rate_only(50, 20));
  t.fail(19);
  t.succeed(1);  // 19 of 20, but a success does not evaluate the window
  CHECK(t.b.state() == State::Closed);
  t.fail(1);
  REQUIRE(t.b.state() == State::Open);
  CHECK(describe(t.last().reason) == "failure rate 95% ≥ 50% over 21 calls");
}

TEST_CASE("failure_rate_pct 0 turns the rate rule off") {
  TestBreaker t(rate_only(0, 1));
  t.fail(500);
  CHECK(t.b.state() == State::Closed);
}

TEST_CASE("failures older than the time window no longer count") {
  BreakerPolicy p = rate_only(50, 10);
  p.window_ms = 10'000;  // ten buckets of 1 s
  TestBreaker t(p);
  const int64_t t0 = t.now();  // the start of a bucket
  t.fail(9);
  SUBCASE("just inside the window, the tenth failure trips it") {
    t.clock.set_ns(t0 + 10'000 * kMs - 1);
    CHECK(t.b.window(t.now()).calls == 9u);
    t.fail(1);
    CHECK(t.b.state() == State::Open);
  }
  SUBCASE("once window_ms has passed, the tenth failure is alone") {
    t.clock.set_ns(t0 + 10'000 * kMs);
    CHECK(t.b.window(t.now()).calls == 0u);
    t.fail(1);
    CHECK(t.b.state() == State::Closed);
    CHECK(t.b.window(t.now()).calls == 1u);
    CHECK(t.b.window(t.now()).failures == 1u);
  }
}

TEST_CASE("the time window rolls over a bucket at a time") {
  BreakerPolicy p = rate_only(0, 1);  // counting only
  p.window_ms = 10'000;
  TestBreaker t(p);
  const int64_t t0 = t.now();
  t.fail(5);                          // bucket 0, at its start
  t.clock.set_ns(t0 + 999 * kMs);
  t.fail(4);                          // bucket 0, at its end
  t.clock.set_ns(t0 + 1'000 * kMs);
  t.succeed(3);                       // bucket 1
  t.clock.set_ns(t0 + 9'500 * kMs);
  t.succeed(2);                       // bucket 9

  t.clock.set_ns(t0 + 10'000 * kMs - 1);
  WindowCounts w = t.b.window(t.now());
  CHECK(w.calls == 14u);
  CHECK(w.failures == 9u);

  // Bucket 0 leaves as a whole, even its failures that are only 9.001 s old: the window is
  // window_ms to within one bucket.
  t.clock.set_ns(t0 + 10'000 * kMs);
  w = t.b.window(t.now());
  CHECK(w.calls == 5u);
  CHECK(w.failures == 0u);

  t.clock.set_ns(t0 + 11'000 * kMs);
  CHECK(t.b.window(t.now()).calls == 2u);
  t.clock.set_ns(t0 + 19'500 * kMs);
  CHECK(t.b.window(t.now()).calls == 0u);
}

TEST_CASE("a bucket reused by a later round of the ring starts from zero") {
  BreakerPolicy p = rate_only(0, 1);
  p.window_ms = 10'000;
  TestBreaker t(p);
  const int64_t t0 = t.now();
  t.fail(7);
  t.clock.set_ns(t0 + 10'000 * kMs);  // the same bucket of the ring, ten buckets later
  t.succeed(2);
  const WindowCounts w = t.b.window(t.now());
  CHECK(w.calls == 2u);
  CHECK(w.failures == 0u);
  t.clock.set_ns(t0 + 100'000 * kMs);  // long idle: all buckets stale
  CHECK(t.b.window(t.now()).calls == 0u);
}

TEST_CASE("a count-based window holds only the last window_calls calls") {
  BreakerPolicy p = rate_only(50, 100);
  p.window_ms = 0;
  p.window_calls = 100;
  TestBreaker t(p);
  t.fail(49);
  t.succeed(51);
  CHECK(t.b.window(t.now()).calls == 100u);
  CHECK(t.b.window(t.now()).failures == 49u);
  t.succeed(100);  // pushes the 49 failures out
  CHECK(t.b.window(t.now()).calls == 100u);
  CHECK(t.b.window(t.now()).failures == 0u);
  t.clock.advance_ms(3'600'000);  // time does not age a count-based window
  t.fail(49);
  CHECK(t.b.window(t.now()).failures == 49u);
  CHECK(t.b.state() == State::Closed);
  t.fail(1);  // 50 of the last 100
  REQUIRE(t.b.state() == State::Open);
  CHECK(describe(t.last().reason) == "failure rate 50% ≥ 50% over 100 calls");
}

TEST_CASE("a count-based window holds at most kMaxWindowCalls") {
  BreakerPolicy p = rate_only(0, 1);
  p.window_ms = 0;
  p.window_calls = 5000;
  TestBreaker t(p);
  t.succeed(3000);
  CHECK(t.b.window(t.now()).calls == kMaxWindowCalls);
}

TEST_CASE("slow calls trip the breaker, even when they succeed") {
  BreakerPolicy p = rate_only(0, 10);
  p.slow_rate_pct = 50;
  p.slow_call_ms = 2'000;
  TestBreaker t(p);
  t.calls(5, false, 1'999 * kMs);  // not slow: below slow_call_ms
  t.calls(4, false, 2'000 * kMs);  // slow: at least slow_call_ms
  CHECK(t.b.window(t.now()).slow == 4u);
  CHECK(t.b.state() == State::Closed);
  t.calls(1, false, 5'000 * kMs);  // 5 slow of 10
  REQUIRE(t.b.state() == State::Open);
  CHECK(t.last().reason.why == Why::SlowCallRate);
  CHECK(describe(t.last().reason) == "slow call rate 50% ≥ 50% over 10 calls");
}

TEST_CASE("the slow-call rule waits for minimum_calls and is off at slow_rate_pct 0") {
  BreakerPolicy p = rate_only(0, 10);
  p.slow_rate_pct = 50;
  p.slow_call_ms = 100;
  SUBCASE("minimum_calls") {
    TestBreaker t(p);
    t.calls(9, false, 1'000 * kMs);
    CHECK(t.b.state() == State::Closed);
    t.calls(1, false, 1'000 * kMs);
    CHECK(t.b.state() == State::Open);
  }
  SUBCASE("off") {
    p.slow_rate_pct = 0;
    TestBreaker t(p);
    t.calls(100, false, 60'000 * kMs);
    CHECK(t.b.state() == State::Closed);
    CHECK(t.b.window(t.now()).slow == 0u);
  }
}

TEST_CASE("when failure rate and slow rate are both reached, the reason is the failure rate") {
  BreakerPolicy p = rate_only(50, 4);
  p.slow_rate_pct = 50;
  p.slow_call_ms = 100;
  TestBreaker t(p);
  t.calls(4, true, 1'000 * kMs);
  REQUIRE(t.b.state() == State::Open);
  CHECK(t.last().reason.why == Why::FailureRate);
}

// ---- open ------------------------------------------------------------------------------------

TEST_CASE("an open breaker rejects until open_until, then the first caller gets a trial") {
  TestBreaker t(consecutive_only(1));
  const int64_t tripped = t.now();
  t.trip();
  REQUIRE(t.b.state() == State::Open);
  CHECK(t.slot.open_until_ns.load() == tripped + 30'000 * kMs);

  Admission a = t.b.admit(t.now());
  CHECK(a.kind == Admission::Rejected);
  CHECK(a.generation == 1u);
  CHECK(a.retry_after_ns == 30'000 * kMs);  // open_until − now

  t.clock.set_ns(tripped + 10'000 * kMs);
  CHECK(t.b.admit(t.now()).retry_after_ns == 20'000 * kMs);

  t.clock.set_ns(tripped + 30'000 * kMs - kMs);  // open at 29 999 ms
  a = t.b.admit(t.now());
  CHECK(a.kind == Admission::Rejected);
  CHECK(a.retry_after_ns == kMs);
  CHECK(t.b.state() == State::Open);

  t.clock.set_ns(tripped + 30'000 * kMs);  // half-open at 30 000 ms
  a = t.b.admit(t.now());
  CHECK(a.kind == Admission::Trial);
  CHECK(a.generation == 2u);
  CHECK(t.b.state() == State::HalfOpen);
  const Transition tr = t.last();
  CHECK(tr.from == State::Open);
  CHECK(tr.to == State::HalfOpen);
  CHECK(tr.generation == 2u);
  CHECK(describe(tr.reason) == "open for 30000 ms: trial calls allowed");
}

TEST_CASE("outcomes of calls let through before the trip do not move an open breaker") {
  TestBreaker t(consecutive_only(3));
  const Admission early = t.b.admit(t.now());
  t.trip();
  const int64_t until = t.slot.open_until_ns.load();
  for (int i = 0; i < 10; ++i) t.b.record(early, {true, 0}, t.now(), kNoJitter);
  CHECK(t.b.state() == State::Open);
  CHECK(t.b.word().generation() == 1u);
  CHECK(t.slot.open_until_ns.load() == until);
  CHECK(t.ring().size() == 1);
}

// ---- half-open -------------------------------------------------------------------------------

TEST_CASE("an abandoned trial gives its permit back; a stale or normal one changes nothing") {
  BreakerPolicy p = consecutive_only(1);
  p.half_open_permits = 1;
  p.half_open_successes = 1;
  TestBreaker t(p);
  t.trip();
  t.clock.advance_ms(30'000);
  const Admission trial = t.b.admit(t.now());
  REQUIRE(trial.kind == Admission::Trial);
  CHECK(t.b.admit(t.now()).kind == Admission::Rejected);  // the only permit is out
  t.b.abandon(trial);
  CHECK(t.b.word().permits() == 0);
  CHECK(t.b.word().generation() == trial.generation);  // not a transition
  const Admission again = t.b.admit(t.now());
  CHECK(again.kind == Admission::Trial);
  CHECK(t.b.word().permits() == 1);
  t.b.record(again, {false, 0}, t.now(), kNoJitter);
  CHECK(t.b.state() == State::Closed);
  t.b.abandon(again);  // stale: another generation
  CHECK(t.b.state() == State::Closed);
  const Admission normal = t.b.admit(t.now());
  t.b.abandon(normal);  // a closed breaker's call has no permit to give back
  CHECK(t.b.word().raw() == StateWord::make(State::Closed, 0, t.b.word().generation()).raw());
}

TEST_CASE("a half-open breaker admits exactly `permits` trials, then rejects") {
  BreakerPolicy p = consecutive_only(1);
  p.half_open_permits = 3;
  TestBreaker t(p);
  t.trip();
  t.clock.advance_ms(30'000);
  for (int i = 0; i < 3; ++i) {
    CAPTURE(i);
    const Admission a = t.b.admit(t.now());
    CHECK(a.kind == Admission::Trial);
    CHECK(a.generation == 2u);
    CHECK(t.b.word().permits() == static_cast<uint32_t>(i + 1));
  }
  const Admission a = t.b.admit(t.now());
  CHECK(a.kind == Admission::Rejected);
  CHECK(a.retry_after_ns == 1'000 * kMs);
  CHECK(t.b.state() == State::HalfOpen);
  CHECK(t.b.word().generation() == 2u);  // handing out permits is not a transition
  CHECK(t.ring().size() == 2);
}

TEST_CASE("enough trial successes close the breaker and reset the backoff") {
  BreakerPolicy p = consecutive_only(1);
  p.half_open_permits = 3;
  p.half_open_successes = 3;
  TestBreaker t(p);
  t.trip();
  t.clock.advance_ms(30'000);
  std::vector<Admission> trials;
  for (int i = 0; i < 3; ++i) trials.push_back(t.b.admit(t.now()));
  // one more trip in a row before it closes: the backoff has grown to 60 s
  t.b.record(trials[0], {true, 0}, t.now(), kNoJitter);
  REQUIRE(t.b.state() == State::Open);
  CHECK(t.retry_after_ms() == 60'000);
  t.clock.advance_ms(60'000);
  trials.clear();
  for (int i = 0; i < 3; ++i) trials.push_back(t.b.admit(t.now()));
  for (const Admission& a : trials) REQUIRE(a.kind == Admission::Trial);

  t.b.record(trials[0], {false, 0}, t.now(), kNoJitter);
  t.b.record(trials[1], {false, 0}, t.now(), kNoJitter);
  CHECK(t.b.state() == State::HalfOpen);
  t.b.record(trials[2], {false, 0}, t.now(), kNoJitter);
  REQUIRE(t.b.state() == State::Closed);
  const Transition tr = t.last();
  CHECK(tr.from == State::HalfOpen);
  CHECK(tr.to == State::Closed);
  CHECK(tr.reason.why == Why::TrialsSucceeded);
  CHECK(describe(tr.reason) == "3/3 trial calls succeeded");
  CHECK(t.slot.trips_in_a_row.load() == 0u);

  // The backoff starts again from the base.
  t.trip();
  CHECK(t.retry_after_ms() == 30'000);
}

TEST_CASE("with fewer successes required than permits, the first successes close it") {
  BreakerPolicy p = consecutive_only(1);
  p.half_open_permits = 3;
  p.half_open_successes = 2;
  TestBreaker t(p);
  t.trip();
  t.clock.advance_ms(30'000);
  const Admission a1 = t.b.admit(t.now()), a2 = t.b.admit(t.now()), a3 = t.b.admit(t.now());
  t.b.record(a1, {false, 0}, t.now(), kNoJitter);
  CHECK(t.b.state() == State::HalfOpen);
  t.b.record(a2, {false, 0}, t.now(), kNoJitter);
  REQUIRE(t.b.state() == State::Closed);
  CHECK(describe(t.last().reason) == "2/2 trial calls succeeded");
  // The third trial reports after the breaker closed: a stale trial decides nothing.
  t.b.record(a3, {true, 0}, t.now(), kNoJitter);
  CHECK(t.b.state() == State::Closed);
}

TEST_CASE("one failed trial reopens the breaker, for longer each time, up to open_max_ms") {
  BreakerPolicy p = consecutive_only(1);
  p.open_base_ms = 30'000;
  p.open_multiplier_x100 = 200;
  p.open_max_ms = 300'000;
  p.half_open_permits = 3;
  TestBreaker t(p);
  t.trip();
  int64_t open_ms = t.retry_after_ms();
  CHECK(open_ms == 30'000);
  uint64_t generation = t.b.word().generation();
  // base × multiplier^(trips − 1): 30, 60, 120, 240, then capped at 300
  for (const int64_t expected_ms : {60'000, 120'000, 240'000, 300'000, 300'000}) {
    CAPTURE(expected_ms);
    t.clock.advance_ms(open_ms);
    const Admission good = t.b.admit(t.now());
    const Admission bad = t.b.admit(t.now());
    REQUIRE(good.kind == Admission::Trial);
    REQUIRE(bad.kind == Admission::Trial);
    t.b.record(good, {false, 0}, t.now(), kNoJitter);
    t.b.record(bad, {true, 0}, t.now(), kNoJitter);
    REQUIRE(t.b.state() == State::Open);
    const Transition tr = t.last();
    CHECK(tr.from == State::HalfOpen);
    CHECK(tr.to == State::Open);
    CHECK(tr.generation == generation + 2);
    CHECK(describe(tr.reason) == "a trial call failed (after 1 succeeded)");
    generation = tr.generation;
    open_ms = t.retry_after_ms();
    CHECK(open_ms == expected_ms);
  }
}

TEST_CASE("the open time is base × multiplier^(trips − 1), capped") {
  BreakerPolicy p = exact();
  p.open_base_ms = 1'000;
  p.open_multiplier_x100 = 150;  // 1.5
  p.open_max_ms = 4'000;
  TestBreaker t(p);
  CHECK(t.b.open_duration_ns(0) == 1'000 * kMs);
  CHECK(t.b.open_duration_ns(1) == 1'000 * kMs);
  CHECK(t.b.open_duration_ns(2) == 1'500 * kMs);
  CHECK(t.b.open_duration_ns(3) == 2'250 * kMs);
  CHECK(t.b.open_duration_ns(4) == 3'375 * kMs);
  CHECK(t.b.open_duration_ns(5) == 4'000 * kMs);
  CHECK(t.b.open_duration_ns(1000) == 4'000 * kMs);
}

TEST_CASE("the jitter spreads the open time by at most ± open_jitter_pct") {
  BreakerPolicy p = consecutive_only(1);
  p.open_base_ms = 30'000;
  p.open_jitter_pct = 10;
  TestBreaker t(p);
  // Each trip is a first trip (reset clears the backoff), so the open time is 30 s ± 10%.
  const auto open_ns_with = [&](uint64_t random) {
    t.b.reset(t.now());
    t.call(true, 0, random);
    REQUIRE(t.b.state() == State::Open);
    return t.slot.open_until_ns.load() - t.now();
  };
  CHECK(open_ns_with(0) == 27'000 * kMs);                 // random 0: − jitter
  CHECK(open_ns_with(kNoJitter) == 30'000 * kMs);         // the middle: ± 0
  const int64_t top = open_ns_with(std::numeric_limits<uint64_t>::max());  // + jitter (less 2^-53)
  CHECK(top <= 33'000 * kMs);
  CHECK(top >= 33'000 * kMs - 1'000);

  int64_t lowest = std::numeric_limits<int64_t>::max(), highest = 0;
  uint64_t x = 0x9e3779b97f4a7c15ull;
  for (int i = 0; i < 2000; ++i) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;  // xorshift64
    const int64_t ns = open_ns_with(x);
    lowest = std::min(lowest, ns);
    highest = std::max(highest, ns);
  }
  CHECK(lowest >= 27'000 * kMs);
  CHECK(highest <= 33'000 * kMs);
  CHECK(lowest < 27'300 * kMs);   // and it does spread
  CHECK(highest > 32'700 * kMs);
}

TEST_CASE("jitter applies to the backed-off open time too") {
  BreakerPolicy p = consecutive_only(1);
  p.open_base_ms = 1'000;
  p.open_multiplier_x100 = 200;
  p.open_jitter_pct = 20;
  TestBreaker t(p);
  t.call(true, 0, 0);  // first trip, − 20%: 800 ms
  CHECK(t.retry_after_ms() == 800);
  t.clock.advance_ms(800);
  const Admission trial = t.b.admit(t.now());
  t.b.record(trial, {true, 0}, t.now(), 0);  // second trip: 2 s − 20%
  CHECK(t.retry_after_ms() == 1'600);
}

TEST_CASE("an outcome from an earlier half-open round decides nothing") {
  BreakerPolicy p = consecutive_only(1);
  p.open_base_ms = 30'000;
  p.half_open_permits = 1;
  p.half_open_successes = 1;
  TestBreaker t(p);
  t.trip();
  t.clock.advance_ms(30'000);
  const Admission old_trial = t.b.admit(t.now());
  REQUIRE(old_trial.kind == Admission::Trial);
  t.clock.advance_ms(30'000);  // it never reported: a new round
  const Admission new_trial = t.b.admit(t.now());
  REQUIRE(new_trial.kind == Admission::Trial);
  REQUIRE(new_trial.generation == old_trial.generation + 1);

  t.b.record(old_trial, {true, 0}, t.now(), kNoJitter);   // a stale failure does not reopen it
  CHECK(t.b.state() == State::HalfOpen);
  t.b.record(old_trial, {false, 0}, t.now(), kNoJitter);  // nor does a stale success close it
  CHECK(t.b.state() == State::HalfOpen);
  CHECK(t.b.word().generation() == new_trial.generation);

  t.b.record(new_trial, {false, 0}, t.now(), kNoJitter);
  CHECK(t.b.state() == State::Closed);
}

TEST_CASE("a trial that reports after another trial reopened the breaker decides nothing") {
  BreakerPolicy p = consecutive_only(1);
  p.half_open_permits = 2;
  p.half_open_successes = 1;
  TestBreaker t(p);
  t.trip();
  t.clock.advance_ms(30'000);
  const Admission first = t.b.admit(t.now()), second = t.b.admit(t.now());
  t.b.record(first, {true, 0}, t.now(), kNoJitter);
  REQUIRE(t.b.state() == State::Open);
  const int64_t until = t.slot.open_until_ns.load();
  const uint32_t trips = t.slot.trips_in_a_row.load();
  t.b.record(second, {false, 0}, t.now(), kNoJitter);  // would have closed it
  CHECK(t.b.state() == State::Open);
  t.b.record(second, {true, 0}, t.now(), kNoJitter);   // would have reopened it for longer
  CHECK(t.b.state() == State::Open);
  CHECK(t.slot.open_until_ns.load() == until);
  CHECK(t.slot.trips_in_a_row.load() == trips);
  CHECK(t.ring().size() == 3);
}

TEST_CASE("a slow trial counts as a failed trial") {
  BreakerPolicy p = consecutive_only(1);
  p.slow_rate_pct = 50;
  p.slow_call_ms = 1'000;
  TestBreaker t(p);
  t.trip();
  t.clock.advance_ms(30'000);
  const Admission a = t.b.admit(t.now());
  t.b.record(a, {false, 1'000 * kMs}, t.now(), kNoJitter);
  CHECK(t.b.state() == State::Open);
  CHECK(t.last().reason.why == Why::TrialFailed);
}

TEST_CASE("trials that never report: after the trial timeout a new round starts") {
  BreakerPolicy p = consecutive_only(1);
  p.open_base_ms = 30'000;  // the trial timeout is max(10 s, open_base_ms)
  p.half_open_permits = 2;
  TestBreaker t(p);
  t.trip();
  t.clock.advance_ms(30'000);
  const int64_t half_opened = t.now();
  REQUIRE(t.b.admit(t.now()).kind == Admission::Trial);
  REQUIRE(t.b.admit(t.now()).kind == Admission::Trial);

  t.clock.set_ns(half_opened + 30'000 * kMs - 1);
  CHECK(t.b.admit(t.now()).kind == Admission::Rejected);

  t.clock.set_ns(half_opened + 30'000 * kMs);
  const Admission a = t.b.admit(t.now());
  CHECK(a.kind == Admission::Trial);
  CHECK(a.generation == 3u);
  CHECK(t.b.state() == State::HalfOpen);
  CHECK(t.b.word().permits() == 1u);
  const Transition tr = t.last();
  CHECK(tr.from == State::HalfOpen);
  CHECK(tr.to == State::HalfOpen);
  CHECK(tr.generation == 3u);
  CHECK(describe(tr.reason) == "open for 30000 ms: trial calls allowed");
  // and the new round has its full permits
  CHECK(t.b.admit(t.now()).kind == Admission::Trial);
  CHECK(t.b.admit(t.now()).kind == Admission::Rejected);
}

TEST_CASE("the trial timeout is at least 10 s, however short the open time") {
  BreakerPolicy p = consecutive_only(1);
  p.open_base_ms = 1'000;
  p.half_open_permits = 1;
  TestBreaker t(p);
  t.trip();
  t.clock.advance_ms(1'000);
  REQUIRE(t.b.admit(t.now()).kind == Admission::Trial);
  t.clock.advance_ms(9'999);
  CHECK(t.b.admit(t.now()).kind == Admission::Rejected);
  t.clock.advance_ms(1);
  CHECK(t.b.admit(t.now()).kind == Admission::Trial);
}

TEST_CASE("a process killed between opening the breaker and writing its deadline does not keep it open for ever") {
  // What a worker SIGKILLed right after its trip's CAS would leave: the state word says Open, and
  // entered_ns says since when, but nothing else about that trip was written.
  BreakerPolicy p = consecutive_only(1);
  p.open_jitter_pct = 10;
  TestBreaker t(p);
  t.slot.state_word.store(t.b.word().next(State::Open, 0).raw());
  t.slot.entered_ns.store(t.now());
  CHECK(t.b.admit(t.now()).kind == Admission::Rejected);  // open, for now
  t.clock.advance_ms(2 * p.open_max_ms + 1);                // longer than any trip could open it
  const Admission a = t.b.admit(t.now());
  CHECK(a.kind == Admission::Trial);
  CHECK(t.b.state() == State::HalfOpen);
}

TEST_CASE("a process that sees half-open before the time it was entered is written takes no second trial") {
  // The interleaving of two processes, laid out by hand: A has moved the breaker from open to
  // half-open (its CAS took the one permit) but has not yet stored entered_ns, which still says
  // when the breaker opened; B admits now. The trial timeout must not count from the opening.
  BreakerPolicy p = consecutive_only(1);
  p.open_base_ms = 30'000;  // trial timeout: 30 s
  p.half_open_permits = 1;
  TestBreaker t(p);
  t.trip();
  t.clock.advance_ms(30'000);
  t.b.record(t.b.admit(t.now()), {true, 0}, t.now(), kNoJitter);  // reopened for 60 s
  REQUIRE(t.retry_after_ms() == 60'000);
  t.clock.advance_ms(60'000);
  const StateWord open = t.b.word();
  t.slot.state_word.store(open.next(State::HalfOpen, 1).raw());  // A's CAS, and nothing more yet

  const Admission b = t.b.admit(t.now());
  CHECK(b.kind == Admission::Rejected);
  CHECK(t.b.word().generation() == open.generation() + 1);
}

// ---- the operator's overrides ----------------------------------------------------------------

TEST_CASE("forced open rejects every call and nothing it records moves it") {
  TestBreaker t(consecutive_only(1));
  t.b.force(State::ForcedOpen, t.now());
  REQUIRE(t.b.state() == State::ForcedOpen);
  const Transition tr = t.last();
  CHECK(tr.from == State::Closed);
  CHECK(tr.to == State::ForcedOpen);
  CHECK(tr.generation == 1u);
  CHECK(describe(tr.reason) == "forced by the operator");
  for (int i = 0; i < 3; ++i) {
    const Admission a = t.b.admit(t.now());
    CHECK(a.kind == Admission::Rejected);
    CHECK(a.retry_after_ns == 0);
    t.clock.advance_ms(3'600'000);
  }
  t.b.record({Admission::Allowed, 1, 0}, {true, 0}, t.now(), kNoJitter);
  CHECK(t.b.state() == State::ForcedOpen);
  CHECK(t.ring().size() == 1);
}

TEST_CASE("disabled lets every call through and never trips, but still counts") {
  TestBreaker t(consecutive_only(1));
  t.b.force(State::Disabled, t.now());
  t.fail(100);
  CHECK(t.b.state() == State::Disabled);
  CHECK(t.b.admit(t.now()).kind == Admission::Allowed);
  CHECK(t.b.window(t.now()).failures == 100u);
  CHECK(t.ring().size() == 1);
  CHECK(describe(t.last().reason) == "forced by the operator");
}

TEST_CASE("metrics-only never rejects nor trips, and counts") {
  BreakerPolicy p = rate_only(50, 10);
  p.consecutive_failures = 3;
  p.slow_rate_pct = 10;
  TestBreaker t(p);
  t.b.force(State::MetricsOnly, t.now());
  t.calls(50, true, 60'000 * kMs);
  CHECK(t.b.state() == State::MetricsOnly);
  const WindowCounts w = t.b.window(t.now());
  CHECK(w.calls == 50u);
  CHECK(w.failures == 50u);
  CHECK(w.slow == 50u);
  const Admission a = t.b.admit(t.now());
  CHECK(a.kind == Admission::Allowed);
  CHECK(t.ring().size() == 1);
}

TEST_CASE("force() from any state, and reset() back to closed, with the operator's reasons") {
  TestBreaker t(consecutive_only(1));
  t.trip();  // Open, generation 1
  t.b.force(State::ForcedOpen, t.now());
  t.b.force(State::ForcedOpen, t.now());  // already there: no transition
  t.b.force(State::MetricsOnly, t.now());
  t.b.reset(t.now());
  t.b.reset(t.now());  // already closed: no transition
  const auto ring = t.ring();
  REQUIRE(ring.size() == 4);
  CHECK(ring[1].from == State::Open);
  CHECK(ring[1].to == State::ForcedOpen);
  CHECK(describe(ring[1].reason) == "forced by the operator");
  CHECK(ring[2].from == State::ForcedOpen);
  CHECK(ring[2].to == State::MetricsOnly);
  CHECK(ring[3].from == State::MetricsOnly);
  CHECK(ring[3].to == State::Closed);
  CHECK(ring[3].reason.why == Why::Reset);
  CHECK(describe(ring[3].reason) == "reset by the operator");
  CHECK(t.b.word().generation() == 4u);
  CHECK(t.b.admit(t.now()).kind == Admission::Allowed);
}

TEST_CASE("force() remembers whether the config or the operator forced it") {
  TestBreaker t(exact());
  t.b.force(State::ForcedOpen, t.now(), true);
  CHECK(t.slot.forced_by_config.load() == 1);
  t.b.force(State::Disabled, t.now());
  CHECK(t.slot.forced_by_config.load() == 0);
}

TEST_CASE("reset clears the backoff") {
  BreakerPolicy p = consecutive_only(1);
  TestBreaker t(p);
  t.trip();
  for (int i = 0; i < 3; ++i) {  // three failed trials: 240 s
    t.clock.advance_ms(t.retry_after_ms());
    t.b.record(t.b.admit(t.now()), {true, 0}, t.now(), kNoJitter);
  }
  CHECK(t.retry_after_ms() == 240'000);
  t.b.reset(t.now());
  t.trip();
  CHECK(t.retry_after_ms() == 30'000);
}

TEST_CASE("reset clears the consecutive failures") {
  TestBreaker t(consecutive_only(5));
  t.fail(4);
  t.b.reset(t.now());
  t.fail(4);
  CHECK(t.b.state() == State::Closed);
}

TEST_CASE("reset clears the window: failures from before it do not trip the breaker again") {
  TestBreaker t(rate_only(50, 20));
  t.fail(20);
  REQUIRE(t.b.state() == State::Open);
  t.b.reset(t.now());  // the same instant, so the same bucket
  CHECK(t.b.window(t.now()).calls == 0u);
  CHECK(t.b.window(t.now()).failures == 0u);
  t.fail(1);  // one failure of one call, under minimum_calls
  CHECK(t.b.state() == State::Closed);
}

TEST_CASE("reset clears a count-based window") {
  BreakerPolicy p = rate_only(50, 20);
  p.window_ms = 0;
  p.window_calls = 50;
  TestBreaker t(p);
  t.fail(20);
  REQUIRE(t.b.state() == State::Open);
  t.b.reset(t.now());
  CHECK(t.b.window(t.now()).calls == 0u);
  t.fail(1);
  CHECK(t.b.state() == State::Closed);
  CHECK(t.b.window(t.now()).calls == 1u);
}

TEST_CASE("a breaker closed by its trials starts with a clean window") {
  BreakerPolicy p = rate_only(50, 20);
  p.half_open_permits = 1;
  p.half_open_successes = 1;
  TestBreaker t(p);
  std::vector<Admission> early;
  for (int i = 0; i < 30; ++i) early.push_back(t.b.admit(t.now()));
  t.fail(20);
  REQUIRE(t.b.state() == State::Open);
  t.clock.advance_ms(30'000);
  const Admission trial = t.b.admit(t.now());
  // Calls let through before the trip report late, while it is half-open: counted, not deciding.
  for (const Admission& a : early) t.b.record(a, {true, 0}, t.now(), kNoJitter);
  CHECK(t.b.state() == State::HalfOpen);
  t.b.record(trial, {false, 0}, t.now(), kNoJitter);
  REQUIRE(t.b.state() == State::Closed);
  CHECK(t.b.window(t.now()).calls == 0u);
  t.fail(1);
  CHECK(t.b.state() == State::Closed);
}

TEST_CASE("a window cleared many times still forgets everything before the last clearing") {
  TestBreaker t(rate_only(50, 20));
  t.fail(19);  // 19 of 19, under minimum_calls
  REQUIRE(t.b.state() == State::Closed);
  for (int i = 0; i < 256; ++i) t.b.reset(t.now());  // e.g. an operator's script, or reloads
  CHECK(t.b.window(t.now()).calls == 0u);
  t.fail(1);
  CHECK(t.b.state() == State::Closed);
}

// ---- the record of transitions ---------------------------------------------------------------

TEST_CASE("every transition is in the ring with from, to, reason, generation and time") {
  BreakerPolicy p = consecutive_only(5);
  p.half_open_permits = 3;
  p.half_open_successes = 3;
  TestBreaker t(p);
  struct Want {
    State from, to;
    Why why;
    uint32_t a, b;
    int64_t at_ns;
  };
  std::vector<Want> want;

  t.fail(5);
  want.push_back({State::Closed, State::Open, Why::ConsecutiveFailures, 5, 5, t.now()});
  t.clock.advance_ms(30'000);
  const Admission first = t.b.admit(t.now());
  want.push_back({State::Open, State::HalfOpen, Why::OpenElapsed, 30'000, 0, t.now()});
  t.b.record(first, {true, 0}, t.now(), kNoJitter);
  want.push_back({State::HalfOpen, State::Open, Why::TrialFailed, 0, 0, t.now()});
  t.clock.advance_ms(60'000);
  std::vector<Admission> trials;
  for (int i = 0; i < 3; ++i) trials.push_back(t.b.admit(t.now()));
  want.push_back({State::Open, State::HalfOpen, Why::OpenElapsed, 60'000, 0, t.now()});
  t.clock.advance_ms(5);
  for (const Admission& a : trials) t.b.record(a, {false, 0}, t.now(), kNoJitter);
  want.push_back({State::HalfOpen, State::Closed, Why::TrialsSucceeded, 3, 3, t.now()});
  t.clock.advance_ms(1);
  t.b.force(State::ForcedOpen, t.now());
  want.push_back({State::Closed, State::ForcedOpen, Why::Forced, 0, 0, t.now()});
  t.b.force(State::Disabled, t.now());
  want.push_back({State::ForcedOpen, State::Disabled, Why::Forced, 0, 0, t.now()});
  t.b.force(State::MetricsOnly, t.now());
  want.push_back({State::Disabled, State::MetricsOnly, Why::Forced, 0, 0, t.now()});
  t.clock.advance_ms(1);
  t.b.reset(t.now());
  want.push_back({State::MetricsOnly, State::Closed, Why::Reset, 0, 0, t.now()});

  const auto ring = t.ring();
  REQUIRE(ring.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    CAPTURE(i);
    CHECK(ring[i].from == want[i].from);
    CHECK(ring[i].to == want[i].to);
    CHECK(ring[i].reason.why == want[i].why);
    CHECK(ring[i].reason.a == want[i].a);
    CHECK(ring[i].reason.b == want[i].b);
    CHECK(ring[i].generation == i + 1);
    CHECK(ring[i].at_ns == want[i].at_ns);
  }
  CHECK(t.b.word().generation() == want.size());
  CHECK(t.slot.transitions.total() == want.size());
}

TEST_CASE("the entered time of a state is when its transition happened") {
  TestBreaker t(consecutive_only(1));
  t.clock.advance_ms(123);
  t.trip();
  CHECK(t.slot.entered_ns.load() == t.now());
}

TEST_CASE("a Breaker says whether a call on it changed the state, and how") {
  TestBreaker t(consecutive_only(2));
  t.fail(1);
  CHECK_FALSE(t.b.changed());
  t.fail(1);
  REQUIRE(t.b.changed());
  const Transition& c = t.b.last_change();
  const Transition r = t.last();
  CHECK(c.from == r.from);
  CHECK(c.to == State::Open);
  CHECK(c.reason.why == Why::ConsecutiveFailures);
  CHECK(c.generation == r.generation);
  CHECK(c.at_ns == r.at_ns);
  // Another Breaker on the same slot (another worker, another request) changed nothing itself.
  Breaker other(t.slot, t.policy);
  CHECK(other.admit(t.now()).kind == Admission::Rejected);
  CHECK_FALSE(other.changed());
}
