// shm/transition_ring.h: the last kTransitions state changes of one breaker, with their reasons,
// kept in the segment so that "why did it trip?" still has an answer after the worker that tripped
// it has died. Many writers (any worker may trip a breaker), any number of readers; the oldest
// entry is overwritten. Each entry carries a sequence number written before and after its fields
// (odd while being written), so a reader detects a torn or overwritten entry and skips it.
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include "shm/reason.h"
#include "shm/state_word.h"

namespace fusebox::shm {

constexpr uint32_t kTransitions = 64;

struct Transition {
  State from = State::Closed;
  State to = State::Closed;
  Reason reason;
  uint64_t generation = 0;  // of the state entered
  int64_t at_ns = 0;        // CLOCK_MONOTONIC
};

struct TransitionEntry {
  std::atomic<uint64_t> seq{0};      // 2i+1 while entry i is written, 2i+2 once written
  std::atomic<uint64_t> states{0};   // from | to << 8 | why << 16 | a << 32
  std::atomic<uint64_t> values{0};   // b | c << 32
  std::atomic<uint64_t> generation{0};
  std::atomic<int64_t> at_ns{0};
};

struct TransitionRing {
  std::atomic<uint64_t> head{0};  // entries written so far
  TransitionEntry entries[kTransitions];

  void push(const Transition& t) noexcept;
  // The entries still in the ring, oldest first; torn ones (being rewritten) are left out.
  std::vector<Transition> read() const;
  uint64_t total() const noexcept { return head.load(std::memory_order_acquire); }
};

}  // namespace fusebox::shm
