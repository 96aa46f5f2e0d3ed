// shm/breaker_slot.h: one breaker as it lives in the segment: fixed size, no pointers (every
// process maps the segment at its own address), every field a lock-free atomic, so that a worker
// killed at any instant leaves nothing half-locked. Only breaker.cc changes a slot's state.
#pragma once

#include <atomic>
#include <cstdint>

#include "shm/breaker_policy.h"
#include "shm/transition_ring.h"

namespace fusebox::shm {

// A time-window bucket. Each counter carries the bucket's epoch in its top 24 bits and the count
// in the low 40, so a counter from an older round of the ring resets itself in the same CAS that
// counts the new call: no increment is lost at a bucket boundary, whichever process gets there.
struct alignas(64) WindowBucket {
  std::atomic<uint64_t> calls{0};
  std::atomic<uint64_t> failures{0};
  std::atomic<uint64_t> slow{0};
};
constexpr int kEpochShift = 40;
constexpr uint64_t kCountMask = (uint64_t{1} << kEpochShift) - 1;
constexpr uint64_t kEpochMask = (uint64_t{1} << (64 - kEpochShift)) - 1;

// Outcome codes in the count-based ring.
constexpr uint8_t kEmpty = 0, kSuccess = 1, kFailure = 2, kSlowBit = 4;

struct alignas(64) BreakerSlot {
  // The hot line: read by every admission.
  std::atomic<uint64_t> state_word{0};        // StateWord
  std::atomic<int64_t> open_until_ns{0};      // CLOCK_MONOTONIC, the same in every process
  std::atomic<uint64_t> open_generation{0};   // the Open generation open_until_ns belongs to
  std::atomic<int64_t> trip_attempt_ns{0};    // written before a trip's CAS: the fallback deadline's
                                              // base if the winner dies before publishing its own
  std::atomic<int64_t> entered_ns{0};         // when the current state was entered ...
  std::atomic<uint64_t> entered_generation{0};  // ... if this is the current generation
  std::atomic<uint32_t> consecutive_failures{0};
  std::atomic<uint32_t> trips_in_a_row{0};    // sets the backoff; cleared when trials close it
  std::atomic<uint64_t> trial_successes{0};   // generation << 24 | successes in that generation
  std::atomic<uint32_t> window_era{0};        // +1 clears the time window (see Breaker::count)
  // The last failure was a refused connection: nothing listens. The master's health checks pause
  // while the breaker is open for that reason: its trial calls knock on the closed port anyway,
  // and a check more would only add a connection attempt.
  std::atomic<uint8_t> last_failure_refused{0};

  // (Totals for metrics are counted per worker, not here: a counter every worker bumps on every
  // call would bounce its cache line between cores.)
  WindowBucket buckets[kBuckets];

  // Count-based window: the last window_calls outcomes.
  alignas(64) std::atomic<uint64_t> count_next{0};
  std::atomic<int32_t> count_calls{0};
  std::atomic<int32_t> count_failures{0};
  std::atomic<int32_t> count_slow{0};
  std::atomic<uint8_t> count_ring[kMaxWindowCalls];

  // Identity: 0 free, 1 being claimed, 2 ready. The name is written before 2 is published.
  alignas(64) std::atomic<uint32_t> in_use{0};
  std::atomic<uint8_t> forced_by_config{0};  // the forced state came from `mode:`, not the API
  char name[64] = {};

  TransitionRing transitions;
  // Every transition ever made, by from and to: fusebox_breaker_transitions_total.
  std::atomic<uint64_t> transitions_total[kStates][kStates];
};

static_assert(std::atomic<uint64_t>::is_always_lock_free && std::atomic<int64_t>::is_always_lock_free &&
                  std::atomic<uint32_t>::is_always_lock_free && std::atomic<int32_t>::is_always_lock_free &&
                  std::atomic<uint8_t>::is_always_lock_free,
              "a lock in the segment stays locked forever if a worker dies holding it");

}  // namespace fusebox::shm
