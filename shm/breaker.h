// shm/breaker.h: the breaker state machine over a slot in the segment: admission (may this call
// go?), outcome recording (and the trips it causes), and the operator's overrides. Every
// transition goes through one function that CASes the state word and records the reason, so a
// change of state always has an answer to "why".
//
// Pure: no clock (times come in as values), no randomness (the jitter's random number comes in),
// no I/O. Safe for any number of processes on one slot at once.
#pragma once

#include <cstdint>
#include <string_view>

#include "shm/breaker_policy.h"
#include "shm/breaker_slot.h"
#include "shm/reason.h"
#include "shm/state_word.h"

namespace fusebox::shm {

struct Admission {
  enum Kind : uint8_t {
    Allowed,   // a normal call: its outcome counts in the window
    Trial,     // a half-open trial call: its outcome decides the breaker
    Rejected,  // do not call: answer with the fallback or 503
  };
  Kind kind = Allowed;
  uint64_t generation = 0;     // of the state that admitted it
  int64_t retry_after_ns = 0;  // Rejected: until the next trial call may go
};

struct Outcome {
  bool failure = false;
  int64_t duration_ns = 0;
  bool refused = false;  // a failure to connect at all: nothing listens (see last_failure_refused)
};

// What the window holds right now.
struct WindowCounts {
  uint32_t calls = 0;
  uint32_t failures = 0;
  uint32_t slow = 0;
};

class Breaker {
 public:
  Breaker(BreakerSlot& slot, const BreakerPolicy& policy) noexcept : slot_(slot), policy_(policy) {}

  Admission admit(int64_t now_ns) noexcept;
  // `random` (any 64-bit value) spreads the open time by ± jitter, so that replicas that tripped
  // together do not all probe together.
  void record(const Admission& admission, const Outcome& outcome, int64_t now_ns, uint64_t random) noexcept;

  // An admitted call that ends with no outcome to record (the client left, or the request was
  // refused by a check of ours after admission): a trial call gives its permit back, so the
  // half-open round is not left one trial short until it times out. At most once per admission,
  // and only instead of record().
  void abandon(const Admission& admission) noexcept;

  // The operator's overrides: ForcedOpen, Disabled, MetricsOnly; Closed releases them (Reset).
  void force(State to, int64_t now_ns, bool by_config = false) noexcept;
  void reset(int64_t now_ns) noexcept;
  // The operator closes it: a fresh window, but the backoff stays (trips_in_a_row), so that a
  // dependency that fails again at once is kept out for longer, as after a failed trial.
  void close(int64_t now_ns) noexcept;
  // Open -> HalfOpen before the open time is out: a health check saw the dependency come back.
  // False if it was not open (or another process moved it first).
  bool half_open_now(const Reason& reason, int64_t now_ns) noexcept;

  State state() const noexcept { return StateWord(slot_.state_word.load(std::memory_order_acquire)).state(); }
  StateWord word() const noexcept { return StateWord(slot_.state_word.load(std::memory_order_acquire)); }
  WindowCounts window(int64_t now_ns) const noexcept;
  // Open: how long until trial calls may go (0 if they may now); -1 in any other state.
  int64_t next_trial_in_ns(int64_t now_ns) const noexcept;
  // How long the next trip would keep it open (before jitter): base × multiplier^trips, capped.
  int64_t open_duration_ns(uint32_t trips) const noexcept;
  // Whether a call on this object changed the state, and how: so the caller can log it (the
  // same change is in the slot's transition ring for everybody else).
  bool changed() const noexcept { return changed_; }
  const Transition& last_change() const noexcept { return last_; }

 private:
  bool transition(StateWord seen, State to, uint32_t permits, const Reason& reason, int64_t now_ns) noexcept;
  bool transition_from(StateWord seen, State to, uint32_t permits, const Reason& reason, int64_t now_ns) noexcept;
  bool open_until(uint64_t generation, int64_t* until) const noexcept;
  void trip(StateWord seen, const Reason& reason, int64_t now_ns, uint64_t random) noexcept;
  void count(const Outcome& outcome, bool slow, int64_t now_ns) noexcept;
  void evaluate(StateWord seen, uint32_t in_a_row, int64_t now_ns, uint64_t random) noexcept;
  void clear_window(int64_t now_ns) noexcept;
  int64_t bucket_ns() const noexcept;

  BreakerSlot& slot_;
  const BreakerPolicy& policy_;
  bool changed_ = false;
  Transition last_;
};

}  // namespace fusebox::shm
