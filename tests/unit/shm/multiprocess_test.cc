// tests/unit/shm/multiprocess_test.cc: real processes on one slot of a real segment (anonymous,
// shared across fork, and once named): counts add up exactly, half-open hands out exactly its
// permits across processes, and a process SIGKILLed at any instant leaves the slot usable. Every
// child _exit()s; the parent reaps them all and kills any that outlives its deadline.
#include <signal.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "shm/breaker.h"
#include "shm/clock.h"
#include "shm/segment.h"
#include "tests/unit/shm/processes.h"

using namespace fusebox::shm;
using namespace fusebox::shm::testing;
using namespace std::chrono_literals;

namespace {

constexpr int64_t kMs = kNsPerMs;
constexpr uint64_t kNoJitter = uint64_t{1} << 63;

void check_all_exited_cleanly(const std::vector<Exit>& exits) {
  for (const Exit& e : exits) {
    CAPTURE(e.pid);
    CHECK_FALSE(e.timed_out);
    CHECK(e.exited);
    CHECK(e.code == 0);
  }
}

BreakerPolicy never_trips() {
  BreakerPolicy p;
  p.consecutive_failures = 0;
  p.failure_rate_pct = 0;
  p.slow_rate_pct = 0;
  return p;
}

// 4 processes × 50 000 calls on one breaker, one failure in five; the clock frozen inside one
// bucket, so the window must hold every call.
constexpr int kCounters = 4;
constexpr int kCallsEach = 50'000;

int count_calls(BreakerSlot& slot, const BreakerPolicy& policy, int64_t now, Gate& gate) {
  Breaker b(slot, policy);
  gate.arrive_and_wait();
  for (int i = 0; i < kCallsEach; ++i) {
    const Admission a = b.admit(now);
    if (a.kind != Admission::Allowed) return 1;
    b.record(a, {i % 5 == 0, 0}, now, kNoJitter);
  }
  return 0;
}

}  // namespace

TEST_CASE("4 processes recording at once on one breaker: the time window counts every call") {
  auto seg = Segment::anonymous(4);
  const uint32_t index = seg->find_or_add("payments").value();
  const BreakerPolicy policy = never_trips();
  const int64_t now = ManualClock(7'500 * kMs).now_ns();  // frozen inside one bucket
  SharedPage<Gate> gate;
  std::vector<pid_t> pids;
  for (int i = 0; i < kCounters; ++i)
    pids.push_back(spawn([&] { return count_calls(seg->slot(index), policy, now, *gate); }));
  const auto deadline = deadline_in(30s);
  CHECK(gate->release_when(kCounters, deadline));
  check_all_exited_cleanly(reap_all(pids, deadline));

  const WindowCounts w = Breaker(seg->slot(index), policy).window(now);
  CHECK(w.calls == uint32_t{kCounters * kCallsEach});
  CHECK(w.failures == uint32_t{kCounters * kCallsEach / 5});
  CHECK(w.slow == 0u);
  CHECK(Breaker(seg->slot(index), policy).state() == State::Closed);
}

TEST_CASE("4 processes recording at once: the count window stays consistent with its ring") {
  auto seg = Segment::anonymous(4);
  BreakerSlot& slot = seg->slot(seg->find_or_add("payments").value());
  BreakerPolicy policy = never_trips();
  policy.window_ms = 0;
  policy.window_calls = kMaxWindowCalls;
  SharedPage<Gate> gate;
  std::vector<pid_t> pids;
  for (int i = 0; i < kCounters; ++i) pids.push_back(spawn([&] { return count_calls(slot, policy, 0, *gate); }));
  const auto deadline = deadline_in(30s);
  CHECK(gate->release_when(kCounters, deadline));
  check_all_exited_cleanly(reap_all(pids, deadline));

  uint32_t failures_in_ring = 0;
  for (const auto& e : slot.count_ring) failures_in_ring += (e.load() & kFailure) ? 1 : 0;
  const WindowCounts w = Breaker(slot, policy).window(0);
  CHECK(w.calls == kMaxWindowCalls);
  CHECK(w.failures == failures_in_ring);
  CHECK(slot.count_next.load() == uint64_t{kCounters * kCallsEach});
}

TEST_CASE("4 processes recording at once on a named segment each opened by name") {
  const std::string name = "fusebox-test-multiprocess-" + std::to_string(getpid());
  Segment::remove(name);
  {
    auto created = Segment::open(name, 4, false);
    REQUIRE(created.ok());
    REQUIRE(created.value()->find_or_add("payments").ok());
  }
  const BreakerPolicy policy = never_trips();
  const int64_t now = 7'500 * kMs;
  SharedPage<Gate> gate;
  std::vector<pid_t> pids;
  for (int i = 0; i < kCounters; ++i) {
    pids.push_back(spawn([&] {
      auto seg = Segment::open(name, 4, false);  // a process of its own, attaching by name
      if (!seg.ok() || seg.value()->opened() != Segment::Opened::Attached) return 2;
      const int64_t index = seg.value()->find("payments");
      if (index < 0) return 3;
      return count_calls(seg.value()->slot(static_cast<uint32_t>(index)), policy, now, *gate);
    }));
  }
  const auto deadline = deadline_in(30s);
  CHECK(gate->release_when(kCounters, deadline));
  check_all_exited_cleanly(reap_all(pids, deadline));

  auto seg = Segment::open(name, 4, false);
  REQUIRE(seg.ok());
  const WindowCounts w = Breaker(seg.value()->slot(static_cast<uint32_t>(seg.value()->find("payments"))), policy).window(now);
  CHECK(w.calls == uint32_t{kCounters * kCallsEach});
  CHECK(w.failures == uint32_t{kCounters * kCallsEach / 5});
  seg.value().reset();
  Segment::remove(name);
}

TEST_CASE("half-open admits exactly `permits` trials in total across 4 processes") {
  auto seg = Segment::anonymous(4);
  BreakerSlot& slot = seg->slot(seg->find_or_add("payments").value());
  BreakerPolicy policy;
  policy.consecutive_failures = 1;
  policy.open_jitter_pct = 0;
  policy.half_open_permits = 3;
  Breaker b(slot, policy);
  struct Counts {
    Gate gate;
    std::atomic<int> trials{0};
    std::atomic<int> rejected{0};
    std::atomic<int> allowed{0};
  };
  for (int round = 0; round < 25; ++round) {
    CAPTURE(round);
    int64_t now = 1'000'000 * kMs * (round + 1);
    b.reset(now);
    b.record(b.admit(now), {true, 0}, now, kNoJitter);
    REQUIRE(b.state() == State::Open);
    now = slot.open_until_ns.load();  // every process sees the same instant: open_until
    SharedPage<Counts> counts;
    std::vector<pid_t> pids;
    for (int i = 0; i < 4; ++i) {
      pids.push_back(spawn([&] {
        Breaker mine(slot, policy);
        counts->gate.arrive_and_wait();
        for (int k = 0; k < 2'000; ++k) {
          const Admission a = mine.admit(now);
          if (a.kind == Admission::Trial) counts->trials.fetch_add(1);
          if (a.kind == Admission::Rejected) counts->rejected.fetch_add(1);
          if (a.kind == Admission::Allowed) counts->allowed.fetch_add(1);
        }
        return 0;
      }));
    }
    const auto deadline = deadline_in(20s);
    CHECK(counts->gate.release_when(4, deadline));
    check_all_exited_cleanly(reap_all(pids, deadline));
    CHECK(counts->trials.load() == 3);
    CHECK(counts->rejected.load() == 4 * 2'000 - 3);
    CHECK(counts->allowed.load() == 0);
    CHECK(b.state() == State::HalfOpen);
    CHECK(b.word().permits() == 3u);
  }
}

TEST_CASE("a trial failure reopens the breaker even while other processes take the other permits") {
  auto seg = Segment::anonymous(4);
  BreakerSlot& slot = seg->slot(seg->find_or_add("payments").value());
  BreakerPolicy policy;
  policy.consecutive_failures = 1;
  policy.open_jitter_pct = 0;
  policy.half_open_permits = 3;
  policy.half_open_successes = 3;
  Breaker b(slot, policy);
  struct Counts {
    Gate gate;
    std::atomic<int> trials{0};
    std::atomic<int> lost{0};  // a trial failure after which the same round was still half-open
  };
  int lost = 0, rounds = 0;
  const auto stop = deadline_in(8s);
  for (int round = 0; round < 300 && std::chrono::steady_clock::now() < stop; ++round, ++rounds) {
    int64_t now = 1'000'000 * kMs * (round + 1);
    b.reset(now);
    b.record(b.admit(now), {true, 0}, now, kNoJitter);
    REQUIRE(b.state() == State::Open);
    now = slot.open_until_ns.load();
    SharedPage<Counts> counts;
    std::vector<pid_t> pids;
    for (int i = 0; i < 3; ++i) {
      pids.push_back(spawn([&] {
        Breaker mine(slot, policy);
        counts->gate.arrive_and_wait();
        for (int k = 0; k < 200; ++k) {
          const Admission a = mine.admit(now);
          if (a.kind != Admission::Trial) continue;
          counts->trials.fetch_add(1);
          mine.record(a, {true, 0}, now, kNoJitter);  // every trial fails
          const StateWord w = mine.word();
          if (w.state() == State::HalfOpen && w.generation() == a.generation) counts->lost.fetch_add(1);
        }
        return 0;
      }));
    }
    const auto deadline = deadline_in(20s);
    CHECK(counts->gate.release_when(3, deadline));
    check_all_exited_cleanly(reap_all(pids, deadline));
    lost += counts->lost.load();
    // Every trial failed, so the breaker must not be left half-open for more trials to close it.
    if (b.state() != State::Open) {
      ++lost;
    }
  }
  INFO("rounds: " << rounds);
  CHECK(lost == 0);
}

TEST_CASE("a trip that loses the race to another process leaves the winner's open_until alone") {
  auto seg = Segment::anonymous(4);
  BreakerSlot& slot = seg->slot(seg->find_or_add("payments").value());
  BreakerPolicy policy;
  policy.consecutive_failures = 1;
  policy.failure_rate_pct = 0;
  policy.open_jitter_pct = 0;
  policy.open_base_ms = 1'000;
  policy.open_multiplier_x100 = 200;
  Breaker b(slot, policy);
  int wrong = 0, rounds = 0;
  int64_t worst_ms = 1'000;
  const auto stop = deadline_in(8s);
  for (int round = 0; round < 300 && std::chrono::steady_clock::now() < stop; ++round, ++rounds) {
    const int64_t base = 1'000'000 * kMs * (round + 1);
    b.reset(base);
    SharedPage<Gate> gate;
    std::vector<pid_t> pids;
    for (int i = 0; i < 3; ++i) {
      pids.push_back(spawn([&, i] {
        Breaker mine(slot, policy);
        const int64_t now = base + i * kMs;  // each process its own instant
        gate->arrive_and_wait();
        mine.record(mine.admit(now), {true, 0}, now, kNoJitter);
        return 0;
      }));
    }
    const auto deadline = deadline_in(20s);
    CHECK(gate->release_when(3, deadline));
    check_all_exited_cleanly(reap_all(pids, deadline));
    REQUIRE(b.state() == State::Open);
    const Transition tripped = slot.transitions.read().back();
    // The first trip after a reset opens for the base time, from the instant of the trip that won.
    const int64_t open_ms = (slot.open_until_ns.load() - tripped.at_ns) / kMs;
    if (open_ms != 1'000) {
      ++wrong;
      worst_ms = std::max(worst_ms, open_ms);
    }
  }
  INFO("rounds: " << rounds << ", wrong: " << wrong << ", longest open time: " << worst_ms << " ms");
  CHECK(wrong == 0);
}

TEST_CASE("a process SIGKILLed in the middle of transitions leaves the slot usable") {
  BreakerPolicy policy;
  policy.consecutive_failures = 3;
  policy.failure_rate_pct = 50;
  policy.minimum_calls = 4;
  policy.open_base_ms = 5;
  policy.open_max_ms = 40;
  policy.half_open_permits = 2;
  policy.half_open_successes = 2;
  std::mt19937_64 rng(20240601);

  const auto run = [&](Segment& seg) {
    BreakerSlot& slot = seg.slot(seg.find_or_add("payments").value());
    struct Progress {
      std::atomic<uint64_t> steps{0};
    };
    SharedPage<Progress> progress;
    const uint64_t kill_at = 1 + rng() % 200'000;
    const uint64_t seed = rng();
    const pid_t pid = spawn([&] {
      Breaker mine(slot, policy);
      std::mt19937_64 r(seed);
      int64_t now = 1'000 * kMs;
      for (uint64_t step = 0;; ++step) {  // until killed
        now += static_cast<int64_t>(r() % 3) * kMs;
        const uint64_t dice = r() % 1000;
        if (dice == 0) {
          mine.force(State::ForcedOpen, now);
        } else if (dice == 1) {
          mine.reset(now);
        } else if (dice == 2) {
          mine.force(State::MetricsOnly, now);
        } else {
          const Admission a = mine.admit(now);
          if (a.kind != Admission::Rejected) mine.record(a, {r() % 2 == 0, static_cast<int64_t>(r() % 10) * kMs}, now, r());
        }
        progress->steps.store(step, std::memory_order_relaxed);
      }
      return 0;
    });
    const auto deadline = deadline_in(10s);
    while (progress->steps.load() < kill_at && std::chrono::steady_clock::now() < deadline) sched_yield();
    kill(pid, SIGKILL);
    const Exit e = reap(pid, deadline_in(10s));
    CHECK(e.signal == SIGKILL);

    // The word is a valid state, the ring reads, and the breaker works on.
    const StateWord w(slot.state_word.load());
    CHECK(static_cast<int>(w.state()) < kStates);
    CHECK(w.permits() <= policy.half_open_permits);
    for (const Transition& t : slot.transitions.read()) {
      CHECK(static_cast<int>(t.from) < kStates);
      CHECK(static_cast<int>(t.to) < kStates);
      CHECK(t.generation <= w.generation());
    }
    Breaker b(slot, policy);
    int64_t now = 1'000'000'000 * kMs;  // after anything the child saw
    // Left alone, it lets calls through again in time (only the operator's forced open does not).
    const Admission later = b.admit(now);
    CAPTURE(to_string(w.state()));
    if (w.state() != State::ForcedOpen) CHECK(later.kind != Admission::Rejected);
    b.reset(now);
    CHECK(b.state() == State::Closed);
    CHECK(b.admit(now).kind == Admission::Allowed);
    for (int i = 0; i < 3; ++i) b.record(b.admit(now), {true, 0}, now, kNoJitter);
    CHECK(b.state() == State::Open);
    CHECK(b.admit(now).kind == Admission::Rejected);
    now = slot.open_until_ns.load();
    const Admission t1 = b.admit(now), t2 = b.admit(now);
    CHECK(t1.kind == Admission::Trial);
    CHECK(t2.kind == Admission::Trial);
    b.record(t1, {false, 0}, now, kNoJitter);
    b.record(t2, {false, 0}, now, kNoJitter);
    CHECK(b.state() == State::Closed);
    b.force(State::ForcedOpen, now);
    CHECK(b.admit(now).kind == Admission::Rejected);
    b.reset(now);
    CHECK(b.admit(now).kind == Admission::Allowed);
    CHECK(StateWord(slot.state_word.load()).generation() > w.generation());
  };

  SUBCASE("anonymous segment") {
    for (int i = 0; i < 8; ++i) {
      CAPTURE(i);
      auto seg = Segment::anonymous(4);
      run(*seg);
    }
  }
  SUBCASE("named segment, attached again after the kill") {
    const std::string name = "fusebox-test-sigkill-" + std::to_string(getpid());
    Segment::remove(name);
    for (int i = 0; i < 3; ++i) {
      CAPTURE(i);
      auto seg = Segment::open(name, 4, false);
      REQUIRE(seg.ok());
      run(*seg.value());
    }
    Segment::remove(name);
  }
}
