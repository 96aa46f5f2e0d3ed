// tests/unit/shm/state_word_test.cc
#include "shm/state_word.h"

#include <doctest/doctest.h>

#include <cstring>

using namespace fusebox::shm;

TEST_CASE("a zero state word is a closed breaker of generation 0 with no permits out") {
  const StateWord w;
  CHECK(w.state() == State::Closed);
  CHECK(w.permits() == 0u);
  CHECK(w.generation() == 0u);
  CHECK(w.raw() == 0u);
}

TEST_CASE("a state word packs state, permits and generation and gives each back") {
  for (int s = 0; s < kStates; ++s) {
    const auto state = static_cast<State>(s);
    const StateWord w = StateWord::make(state, 3, 42);
    CHECK(w.state() == state);
    CHECK(w.permits() == 3u);
    CHECK(w.generation() == 42u);
    CHECK(StateWord(w.raw()).raw() == w.raw());
  }
  // bits 0-7 state, 8-23 permits, 24-63 generation
  CHECK(StateWord::make(State::HalfOpen, 0xffff, 0).raw() == (0xffffull << 8 | 2));
  CHECK(StateWord::make(State::Closed, 0, 1).raw() == 1ull << 24);
}

TEST_CASE("permits are kept to 16 bits and cannot spill into the generation") {
  const StateWord w = StateWord::make(State::HalfOpen, 0x1'0005, 9);
  CHECK(w.permits() == 5u);
  CHECK(w.generation() == 9u);
}

TEST_CASE("the generation holds 40 bits") {
  const uint64_t big = (uint64_t{1} << 40) - 1;
  const StateWord w = StateWord::make(State::Open, 7, big);
  CHECK(w.generation() == big);
  CHECK(w.state() == State::Open);
  CHECK(w.permits() == 7u);
}

TEST_CASE("next() moves to another state, sets the permits and adds one to the generation") {
  const StateWord open = StateWord::make(State::Open, 0, 7);
  const StateWord half = open.next(State::HalfOpen, 1);
  CHECK(half.state() == State::HalfOpen);
  CHECK(half.permits() == 1u);
  CHECK(half.generation() == 8u);
  // permits do not carry over into the next state
  const StateWord closed = StateWord::make(State::HalfOpen, 3, 8).next(State::Closed, 0);
  CHECK(closed.permits() == 0u);
  CHECK(closed.generation() == 9u);
  // a move to the same state is still a new generation (a new round of trials)
  CHECK(half.next(State::HalfOpen, 1).generation() == 9u);
}

TEST_CASE("with_permit() hands out one more permit in the same state and generation") {
  const StateWord w = StateWord::make(State::HalfOpen, 1, 12);
  const StateWord w2 = w.with_permit();
  CHECK(w2.state() == State::HalfOpen);
  CHECK(w2.permits() == 2u);
  CHECK(w2.generation() == 12u);
  CHECK(w2.raw() != w.raw());  // so a CAS on the old word fails
  CHECK(w2.with_permit().permits() == 3u);
}

TEST_CASE("every state has a name") {
  CHECK(std::strcmp(to_string(State::Closed), "closed") == 0);
  CHECK(std::strcmp(to_string(State::Open), "open") == 0);
  CHECK(std::strcmp(to_string(State::HalfOpen), "half_open") == 0);
  CHECK(std::strcmp(to_string(State::ForcedOpen), "forced_open") == 0);
  CHECK(std::strcmp(to_string(State::Disabled), "disabled") == 0);
  CHECK(std::strcmp(to_string(State::MetricsOnly), "metrics_only") == 0);
  CHECK(std::strcmp(to_string(static_cast<State>(kStates)), "unknown") == 0);
}
