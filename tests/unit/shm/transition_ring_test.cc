// tests/unit/shm/transition_ring_test.cc
#include "shm/transition_ring.h"

#include <doctest/doctest.h>

#include <memory>

using namespace fusebox::shm;

namespace {

// The i-th transition of a made-up history: every field differs from one entry to the next.
Transition nth(uint64_t i) {
  return {.from = static_cast<State>(i % kStates),
          .to = static_cast<State>((i + 1) % kStates),
          .reason = {.why = static_cast<Why>(i % 8),
                     .a = static_cast<uint32_t>(4'000'000'000u + i),
                     .b = static_cast<uint32_t>(1000 + i),
                     .c = static_cast<uint32_t>(3'000'000'000u + i)},
          .generation = (uint64_t{1} << 39) + i,
          .at_ns = 1'000'000'000'000 + static_cast<int64_t>(i)};
}

void check_same(const Transition& got, const Transition& want) {
  CHECK(got.from == want.from);
  CHECK(got.to == want.to);
  CHECK(got.reason.why == want.reason.why);
  CHECK(got.reason.a == want.reason.a);
  CHECK(got.reason.b == want.reason.b);
  CHECK(got.reason.c == want.reason.c);
  CHECK(got.generation == want.generation);
  CHECK(got.at_ns == want.at_ns);
}

}  // namespace

TEST_CASE("an empty ring reads as no transitions") {
  auto ring = std::make_unique<TransitionRing>();
  CHECK(ring->read().empty());
  CHECK(ring->total() == 0u);
}

TEST_CASE("a transition pushed is read back with every field, oldest first") {
  auto ring = std::make_unique<TransitionRing>();
  for (uint64_t i = 0; i < 3; ++i) ring->push(nth(i));
  const auto got = ring->read();
  REQUIRE(got.size() == 3);
  for (uint64_t i = 0; i < 3; ++i) {
    CAPTURE(i);
    check_same(got[i], nth(i));
  }
  CHECK(ring->total() == 3u);
}

TEST_CASE("a full ring holds exactly the last 64 transitions") {
  auto ring = std::make_unique<TransitionRing>();
  for (uint64_t i = 0; i < kTransitions; ++i) ring->push(nth(i));
  auto got = ring->read();
  REQUIRE(got.size() == kTransitions);
  check_same(got.front(), nth(0));
  check_same(got.back(), nth(kTransitions - 1));

  ring->push(nth(kTransitions));  // the 65th overwrites the first
  got = ring->read();
  REQUIRE(got.size() == kTransitions);
  check_same(got.front(), nth(1));
  check_same(got.back(), nth(kTransitions));
}

TEST_CASE("after wrapping around several times the ring reads the last 64, oldest first") {
  auto ring = std::make_unique<TransitionRing>();
  const uint64_t n = 3 * kTransitions + 17;
  for (uint64_t i = 0; i < n; ++i) ring->push(nth(i));
  const auto got = ring->read();
  REQUIRE(got.size() == kTransitions);
  for (uint64_t k = 0; k < kTransitions; ++k) {
    CAPTURE(k);
    check_same(got[k], nth(n - kTransitions + k));
  }
  CHECK(ring->total() == n);
}

TEST_CASE("an entry left half-written (its writer killed) is skipped, the others still read") {
  auto ring = std::make_unique<TransitionRing>();
  for (uint64_t i = 0; i < 5; ++i) ring->push(nth(i));
  // What a writer killed between its two sequence stores leaves: an odd sequence number.
  ring->entries[2].seq.store(2 * 2 + 1);
  const auto got = ring->read();
  REQUIRE(got.size() == 4);
  check_same(got[0], nth(0));
  check_same(got[1], nth(1));
  check_same(got[2], nth(3));
  check_same(got[3], nth(4));
}

TEST_CASE("a writer killed after taking an index but before writing leaves a gap, not an old entry") {
  auto ring = std::make_unique<TransitionRing>();
  const uint64_t n = kTransitions + 1;  // 0..64 written; entry 0 holds transition 64
  for (uint64_t i = 0; i < n; ++i) ring->push(nth(i));
  ring->head.fetch_add(1);  // index 65 taken (entry 1, still holding transition 1), nothing written
  const auto got = ring->read();
  REQUIRE(got.size() == kTransitions - 1);  // 2..64: transition 1 is out of the window, 65 torn
  check_same(got.front(), nth(2));
  check_same(got.back(), nth(n - 1));
  CHECK(ring->total() == n + 1);
}
