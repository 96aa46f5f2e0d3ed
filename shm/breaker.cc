// shm/breaker.cc: see breaker.h.
#include "shm/breaker.h"

#include <algorithm>
#include <cmath>

namespace fusebox::shm {
namespace {

// Trial calls that have not all reported back after this long (the worker running one died, say)
// no longer hold the breaker half-open: a new round of trials starts.
constexpr int64_t kMinTrialTimeoutNs = 10'000 * kNsPerMs;

// Adds one to an epoch-tagged counter, restarting it at 1 if it belongs to another epoch.
void bump(std::atomic<uint64_t>& counter, uint64_t epoch) noexcept {
  const uint64_t tag = (epoch & kEpochMask) << kEpochShift;
  uint64_t seen = counter.load(std::memory_order_relaxed);
  for (;;) {
    const uint64_t next = (seen & ~kCountMask) == tag ? seen + 1 : tag | 1;
    if (counter.compare_exchange_weak(seen, next, std::memory_order_relaxed)) return;
  }
}

// The tag a bucket's counters carry: its epoch, shifted by the window's era so that clearing the
// window (a new era) makes every earlier count stale at once. 2^16 epochs per era: a stale tag
// could match again only after 2^24 bucket widths (more than 4 hours at 1 ms buckets).
uint64_t era_tag(uint64_t epoch, uint32_t era) noexcept { return epoch + (uint64_t{era} << 16); }

uint64_t count_in(const std::atomic<uint64_t>& counter, uint64_t epoch) noexcept {
  const uint64_t v = counter.load(std::memory_order_relaxed);
  return (v >> kEpochShift) == (epoch & kEpochMask) ? (v & kCountMask) : 0;
}

}  // namespace

int64_t Breaker::bucket_ns() const noexcept {
  return std::max<int64_t>(1, static_cast<int64_t>(policy_.window_ms) * kNsPerMs / kBuckets);
}

int64_t Breaker::open_duration_ns(uint32_t trips) const noexcept {
  const double base = static_cast<double>(policy_.open_base_ms);
  const double factor = std::pow(static_cast<double>(policy_.open_multiplier_x100) / 100.0,
                                 static_cast<double>(trips > 0 ? trips - 1 : 0));
  const double ms = std::min(base * factor, static_cast<double>(policy_.open_max_ms));
  return static_cast<int64_t>(ms * static_cast<double>(kNsPerMs));
}

// The only code that changes the state word. Returns false if another process changed it first;
// the caller re-reads and decides again.
bool Breaker::transition(StateWord seen, State to, uint32_t permits, const Reason& reason, int64_t now_ns) noexcept {
  const StateWord next = seen.next(to, permits);
  uint64_t expected = seen.raw();
  if (!slot_.state_word.compare_exchange_strong(expected, next.raw(), std::memory_order_acq_rel)) return false;
  // Published after the state: a reader that sees the new state before its time checks the tag.
  slot_.entered_ns.store(now_ns, std::memory_order_release);
  slot_.entered_generation.store(next.generation(), std::memory_order_release);
  last_ = {seen.state(), to, reason, next.generation(), now_ns};
  changed_ = true;
  slot_.transitions.push(last_);
  slot_.transitions_total[static_cast<int>(seen.state())][static_cast<int>(to)].fetch_add(1, std::memory_order_relaxed);
  return true;
}

// Like transition, but keeps trying while the breaker is still in `seen`'s state and generation:
// a half-open permit handed out meanwhile changes the word, not the decision.
bool Breaker::transition_from(StateWord seen, State to, uint32_t permits, const Reason& reason, int64_t now_ns) noexcept {
  for (;;) {
    if (transition(seen, to, permits, reason, now_ns)) return true;
    const StateWord now_word = word();
    if (now_word.state() != seen.state() || now_word.generation() != seen.generation()) return false;
    seen = now_word;
  }
}

// The deadline of Open generation `generation`, if its winner has published it yet. Seqlock-like:
// the generation is read before and after, so a deadline from another generation is never used.
bool Breaker::open_until(uint64_t generation, int64_t* until) const noexcept {
  if (slot_.open_generation.load(std::memory_order_acquire) != generation) return false;
  *until = slot_.open_until_ns.load(std::memory_order_acquire);
  return slot_.open_generation.load(std::memory_order_acquire) == generation;
}

void Breaker::abandon(const Admission& admission) noexcept {
  if (admission.kind != Admission::Trial) return;
  for (;;) {
    const StateWord w = word();
    if (w.state() != State::HalfOpen || w.generation() != admission.generation || w.permits() == 0) return;
    uint64_t expected = w.raw();
    const StateWord back = StateWord::make(State::HalfOpen, w.permits() - 1, w.generation());
    if (slot_.state_word.compare_exchange_strong(expected, back.raw(), std::memory_order_acq_rel)) return;
  }
}

int64_t Breaker::next_trial_in_ns(int64_t now_ns) const noexcept {
  const StateWord w = word();
  int64_t until = 0;
  if (w.state() != State::Open || !open_until(w.generation(), &until)) return -1;
  return until > now_ns ? until - now_ns : 0;
}

void Breaker::trip(StateWord seen, const Reason& reason, int64_t now_ns, uint64_t random) noexcept {
  const uint32_t trips = slot_.trips_in_a_row.load(std::memory_order_relaxed) + 1;
  int64_t open_ns = open_duration_ns(trips);
  if (policy_.open_jitter_pct > 0) {
    // ± jitter_pct, uniform: so that replicas that tripped together don't all probe together
    const double u = static_cast<double>(random >> 11) / static_cast<double>(uint64_t{1} << 53);  // [0, 1)
    const double spread = static_cast<double>(policy_.open_jitter_pct) / 100.0 * (2.0 * u - 1.0);
    open_ns += static_cast<int64_t>(static_cast<double>(open_ns) * spread);
  }
  // Only the process whose transition wins writes the deadline, tagged with the generation it
  // opened: a process that lost the race writes nothing, and a reader that sees Open before the
  // deadline is published rejects (see admit).
  slot_.trip_attempt_ns.store(now_ns, std::memory_order_release);
  if (transition_from(seen, State::Open, 0, reason, now_ns)) {
    slot_.open_until_ns.store(now_ns + open_ns, std::memory_order_release);
    slot_.open_generation.store(last_.generation, std::memory_order_release);
    slot_.trips_in_a_row.store(trips, std::memory_order_relaxed);
    slot_.consecutive_failures.store(0, std::memory_order_relaxed);
  }
}

Admission Breaker::admit(int64_t now_ns) noexcept {
  for (;;) {
    const StateWord w(slot_.state_word.load(std::memory_order_acquire));
    switch (w.state()) {
      case State::Closed:
      case State::Disabled:
      case State::MetricsOnly:
        return {Admission::Allowed, w.generation(), 0};
      case State::ForcedOpen:
        return {Admission::Rejected, w.generation(), 0};
      case State::Open: {
        int64_t until = 0;
        if (!open_until(w.generation(), &until)) {
          // Opened by a process that has not written the deadline yet (an instant ago, or it was
          // killed in between): estimate it from when the trip was attempted, without jitter, so
          // that a dead writer cannot keep the breaker open for ever.
          const uint32_t trips = slot_.trips_in_a_row.load(std::memory_order_relaxed) + 1;
          until = slot_.trip_attempt_ns.load(std::memory_order_acquire) + open_duration_ns(trips);
        }
        if (now_ns < until) return {Admission::Rejected, w.generation(), until - now_ns};
        const int64_t opened = slot_.entered_ns.load(std::memory_order_relaxed);
        const Reason why{Why::OpenElapsed, static_cast<uint32_t>((now_ns - opened) / kNsPerMs)};
        if (transition(w, State::HalfOpen, 1, why, now_ns)) return {Admission::Trial, w.generation() + 1, 0};
        continue;  // another process moved it: decide again
      }
      case State::HalfOpen: {
        if (w.permits() < policy_.half_open_permits) {
          uint64_t expected = w.raw();
          if (slot_.state_word.compare_exchange_strong(expected, w.with_permit().raw(), std::memory_order_acq_rel))
            return {Admission::Trial, w.generation(), 0};
          continue;
        }
        // When this round of trials started: only if the process that started it has written it
        // (until then, the round is new by definition).
        int64_t since = now_ns;
        if (slot_.entered_generation.load(std::memory_order_acquire) == w.generation()) {
          since = slot_.entered_ns.load(std::memory_order_acquire);
          if (slot_.entered_generation.load(std::memory_order_acquire) != w.generation()) since = now_ns;
        }
        const int64_t timeout = std::max<int64_t>(kMinTrialTimeoutNs, static_cast<int64_t>(policy_.open_base_ms) * kNsPerMs);
        if (now_ns - since >= timeout) {
          // The trials never all reported (a worker died mid-call): a new round.
          const Reason why{Why::OpenElapsed, static_cast<uint32_t>((now_ns - since) / kNsPerMs)};
          if (transition(w, State::HalfOpen, 1, why, now_ns)) return {Admission::Trial, w.generation() + 1, 0};
          continue;
        }
        // The trials decide soon; a client should not come back before a second has passed.
        return {Admission::Rejected, w.generation(), 1'000 * kNsPerMs};
      }
    }
  }
}

void Breaker::count(const Outcome& outcome, bool slow, int64_t now_ns) noexcept {
  if (policy_.window_calls > 0) {
    const uint32_t n = std::min(policy_.window_calls, kMaxWindowCalls);
    const uint8_t code = static_cast<uint8_t>((outcome.failure ? kFailure : kSuccess) | (slow ? kSlowBit : 0));
    const uint64_t i = slot_.count_next.fetch_add(1, std::memory_order_relaxed);
    const uint8_t old = slot_.count_ring[i % n].exchange(code, std::memory_order_relaxed);
    // The exchange makes each adjustment exact, whatever other processes do meanwhile.
    if (old == kEmpty) slot_.count_calls.fetch_add(1, std::memory_order_relaxed);
    const int failures = ((code & kFailure) ? 1 : 0) - ((old & kFailure) ? 1 : 0);
    const int slows = ((code & kSlowBit) ? 1 : 0) - ((old & kSlowBit) ? 1 : 0);
    if (failures != 0) slot_.count_failures.fetch_add(failures, std::memory_order_relaxed);
    if (slows != 0) slot_.count_slow.fetch_add(slows, std::memory_order_relaxed);
    return;
  }
  const uint64_t epoch = static_cast<uint64_t>(now_ns / bucket_ns());
  WindowBucket& b = slot_.buckets[epoch % kBuckets];
  const uint64_t tag = era_tag(epoch, slot_.window_era.load(std::memory_order_relaxed));
  bump(b.calls, tag);
  if (outcome.failure) bump(b.failures, tag);
  if (slow) bump(b.slow, tag);
}

WindowCounts Breaker::window(int64_t now_ns) const noexcept {
  WindowCounts w;
  if (policy_.window_calls > 0) {
    w.calls = static_cast<uint32_t>(std::max(0, slot_.count_calls.load(std::memory_order_relaxed)));
    w.failures = static_cast<uint32_t>(std::max(0, slot_.count_failures.load(std::memory_order_relaxed)));
    w.slow = static_cast<uint32_t>(std::max(0, slot_.count_slow.load(std::memory_order_relaxed)));
    return w;
  }
  const uint64_t current = static_cast<uint64_t>(now_ns / bucket_ns());
  const uint32_t era = slot_.window_era.load(std::memory_order_relaxed);
  for (uint64_t k = 0; k < kBuckets && k <= current; ++k) {
    const uint64_t epoch = current - k;
    const WindowBucket& b = slot_.buckets[epoch % kBuckets];
    const uint64_t tag = era_tag(epoch, era);
    w.calls += static_cast<uint32_t>(count_in(b.calls, tag));
    w.failures += static_cast<uint32_t>(count_in(b.failures, tag));
    w.slow += static_cast<uint32_t>(count_in(b.slow, tag));
  }
  return w;
}

void Breaker::clear_window(int64_t now_ns) noexcept {
  (void)now_ns;
  // A new era: every counter written before carries another tag, and counts for nothing from
  // this instant, even in the bucket being filled (a start time could not split a bucket).
  slot_.window_era.fetch_add(1, std::memory_order_relaxed);
  // And the counters go to zero, so that no old tag can ever match again, however many eras pass.
  for (WindowBucket& b : slot_.buckets) {
    b.calls.store(0, std::memory_order_relaxed);
    b.failures.store(0, std::memory_order_relaxed);
    b.slow.store(0, std::memory_order_relaxed);
  }
  slot_.consecutive_failures.store(0, std::memory_order_relaxed);
  if (policy_.window_calls > 0) {
    for (auto& entry : slot_.count_ring) {
      const uint8_t old = entry.exchange(kEmpty, std::memory_order_relaxed);
      if (old == kEmpty) continue;
      slot_.count_calls.fetch_sub(1, std::memory_order_relaxed);
      if (old & kFailure) slot_.count_failures.fetch_sub(1, std::memory_order_relaxed);
      if (old & kSlowBit) slot_.count_slow.fetch_sub(1, std::memory_order_relaxed);
    }
  }
}

// A normal call failed or was slow while closed: does the breaker trip?
void Breaker::evaluate(StateWord seen, uint32_t in_a_row, int64_t now_ns, uint64_t random) noexcept {
  if (policy_.consecutive_failures > 0 && in_a_row >= policy_.consecutive_failures) {
    trip(seen, {Why::ConsecutiveFailures, in_a_row, policy_.consecutive_failures}, now_ns, random);
    return;
  }
  const WindowCounts w = window(now_ns);
  if (w.calls == 0 || w.calls < policy_.minimum_calls) return;
  if (policy_.failure_rate_pct > 0 && uint64_t{w.failures} * 100 >= uint64_t{policy_.failure_rate_pct} * w.calls) {
    trip(seen, {Why::FailureRate, w.failures * 100 / w.calls, policy_.failure_rate_pct, w.calls}, now_ns, random);
    return;
  }
  if (policy_.slow_rate_pct > 0 && uint64_t{w.slow} * 100 >= uint64_t{policy_.slow_rate_pct} * w.calls)
    trip(seen, {Why::SlowCallRate, w.slow * 100 / w.calls, policy_.slow_rate_pct, w.calls}, now_ns, random);
}

void Breaker::record(const Admission& admission, const Outcome& outcome, int64_t now_ns, uint64_t random) noexcept {
  const bool slow = policy_.slow_rate_pct > 0 &&
                    outcome.duration_ns >= static_cast<int64_t>(policy_.slow_call_ms) * kNsPerMs;
  if (outcome.failure) slot_.last_failure_refused.store(outcome.refused ? 1 : 0, std::memory_order_relaxed);
  const StateWord w(slot_.state_word.load(std::memory_order_acquire));
  if (admission.kind == Admission::Trial) {
    // A trial of an earlier round (the breaker has moved on since) decides nothing.
    if (w.state() != State::HalfOpen || w.generation() != admission.generation) return;
    if (outcome.failure || slow) {
      const uint64_t s = slot_.trial_successes.load(std::memory_order_relaxed);
      const uint32_t before = (s >> 24) == (w.generation() & 0xffffffffff) ? static_cast<uint32_t>(s & 0xffffff) : 0;
      trip(w, {Why::TrialFailed, before}, now_ns, random);
      return;
    }
    // Successes of this generation: the tag resets the count when a new round starts.
    const uint64_t tag = (w.generation() & 0xffffffffff) << 24;
    uint64_t seen = slot_.trial_successes.load(std::memory_order_relaxed);
    uint64_t next;
    do {
      next = (seen & ~uint64_t{0xffffff}) == tag ? seen + 1 : tag | 1;
    } while (!slot_.trial_successes.compare_exchange_weak(seen, next, std::memory_order_acq_rel));
    const uint32_t successes = static_cast<uint32_t>(next & 0xffffff);
    if (successes >= policy_.half_open_successes &&
        transition_from(w, State::Closed, 0, {Why::TrialsSucceeded, successes, policy_.half_open_successes}, now_ns)) {
      slot_.trips_in_a_row.store(0, std::memory_order_relaxed);
      clear_window(now_ns);  // a recovered dependency starts with a clean record
    }
    return;
  }
  count(outcome, slow, now_ns);
  uint32_t in_a_row = 0;
  if (outcome.failure) {
    in_a_row = slot_.consecutive_failures.fetch_add(1, std::memory_order_relaxed) + 1;
  } else if (slot_.consecutive_failures.load(std::memory_order_relaxed) != 0) {
    slot_.consecutive_failures.store(0, std::memory_order_relaxed);  // no write when already 0
  }
  // Only a failure or a slow call can trip a closed breaker; MetricsOnly and Disabled never trip.
  if (w.state() == State::Closed && (outcome.failure || slow)) evaluate(w, in_a_row, now_ns, random);
}

void Breaker::force(State to, int64_t now_ns, bool by_config) noexcept {
  for (;;) {
    const StateWord w = word();
    if (w.state() == to) break;
    if (transition(w, to, 0, {to == State::Closed ? Why::Reset : Why::Forced}, now_ns)) break;
  }
  slot_.forced_by_config.store(by_config ? 1 : 0, std::memory_order_relaxed);
  if (to == State::Closed) {
    slot_.trips_in_a_row.store(0, std::memory_order_relaxed);
    clear_window(now_ns);
  }
}

void Breaker::reset(int64_t now_ns) noexcept { force(State::Closed, now_ns); }

bool Breaker::half_open_now(const Reason& reason, int64_t now_ns) noexcept {
  const StateWord w = word();
  if (w.state() != State::Open) return false;
  return transition(w, State::HalfOpen, 0, reason, now_ns);
}

void Breaker::close(int64_t now_ns) noexcept {
  for (;;) {
    const StateWord w = word();
    if (w.state() == State::Closed) break;
    if (transition(w, State::Closed, 0, {Why::Forced}, now_ns)) break;
  }
  slot_.forced_by_config.store(0, std::memory_order_relaxed);
  clear_window(now_ns);
}

}  // namespace fusebox::shm
