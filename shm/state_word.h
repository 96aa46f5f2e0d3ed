// shm/state_word.h: a breaker's state, its generation and the half-open permits handed out, in one
// 64-bit word, so that every transition is one compare-and-swap: two workers can never move the
// same breaker to two different places, and a worker killed at any instant leaves no lock held.
//
//   bits 0-7    State
//   bits 8-23   half-open trial calls admitted in this generation
//   bits 24-63  generation: +1 on every transition (a stale outcome can tell it is stale)
#pragma once

#include <cstdint>

namespace fusebox::shm {

enum class State : uint8_t {
  Closed,       // calls pass; outcomes are counted and may trip it
  Open,         // calls are rejected until open_until; then the first caller makes it HalfOpen
  HalfOpen,     // exactly `permits` trial calls pass; `successes` close it, one failure reopens
  ForcedOpen,   // the operator's: every call is rejected
  Disabled,     // the operator's: every call passes, nothing trips (outcomes still counted)
  MetricsOnly,  // counts and evaluates as Closed would, but never rejects
};
constexpr int kStates = 6;

constexpr const char* to_string(State s) noexcept {
  switch (s) {
    case State::Closed: return "closed";
    case State::Open: return "open";
    case State::HalfOpen: return "half_open";
    case State::ForcedOpen: return "forced_open";
    case State::Disabled: return "disabled";
    case State::MetricsOnly: return "metrics_only";
  }
  return "unknown";
}

class StateWord {
 public:
  constexpr StateWord() = default;
  constexpr explicit StateWord(uint64_t raw) : raw_(raw) {}
  static constexpr StateWord make(State s, uint32_t permits, uint64_t generation) {
    return StateWord(static_cast<uint64_t>(s) | (static_cast<uint64_t>(permits & 0xffff) << 8) |
                     (generation << 24));
  }
  constexpr State state() const { return static_cast<State>(raw_ & 0xff); }
  constexpr uint32_t permits() const { return static_cast<uint32_t>((raw_ >> 8) & 0xffff); }
  constexpr uint64_t generation() const { return raw_ >> 24; }
  // The next word: another state (generation + 1, permits as given).
  constexpr StateWord next(State s, uint32_t permits) const { return make(s, permits, generation() + 1); }
  // The same state and generation with one more permit handed out.
  constexpr StateWord with_permit() const { return make(state(), permits() + 1, generation()); }
  constexpr uint64_t raw() const { return raw_; }

 private:
  uint64_t raw_ = 0;
};

static_assert(StateWord::make(State::HalfOpen, 3, 7).state() == State::HalfOpen);
static_assert(StateWord::make(State::HalfOpen, 3, 7).permits() == 3);
static_assert(StateWord::make(State::HalfOpen, 3, 7).generation() == 7);
static_assert(StateWord::make(State::Open, 0, 7).next(State::HalfOpen, 1).generation() == 8);

}  // namespace fusebox::shm
