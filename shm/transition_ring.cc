// shm/transition_ring.cc: see transition_ring.h.
#include "shm/transition_ring.h"

namespace fusebox::shm {

void TransitionRing::push(const Transition& t) noexcept {
  const uint64_t i = head.fetch_add(1, std::memory_order_acq_rel);
  TransitionEntry& e = entries[i % kTransitions];
  e.seq.store(2 * i + 1, std::memory_order_release);
  std::atomic_thread_fence(std::memory_order_release);
  e.states.store(static_cast<uint64_t>(t.from) | static_cast<uint64_t>(t.to) << 8 |
                     static_cast<uint64_t>(t.reason.why) << 16 | static_cast<uint64_t>(t.reason.a) << 32,
                 std::memory_order_relaxed);
  e.values.store(static_cast<uint64_t>(t.reason.b) | static_cast<uint64_t>(t.reason.c) << 32,
                 std::memory_order_relaxed);
  e.generation.store(t.generation, std::memory_order_relaxed);
  e.at_ns.store(t.at_ns, std::memory_order_relaxed);
  e.seq.store(2 * i + 2, std::memory_order_release);
}

std::vector<Transition> TransitionRing::read() const {
  std::vector<Transition> out;
  const uint64_t end = head.load(std::memory_order_acquire);
  const uint64_t begin = end > kTransitions ? end - kTransitions : 0;
  for (uint64_t i = begin; i < end; ++i) {
    const TransitionEntry& e = entries[i % kTransitions];
    if (e.seq.load(std::memory_order_acquire) != 2 * i + 2) continue;
    const uint64_t states = e.states.load(std::memory_order_relaxed);
    const uint64_t values = e.values.load(std::memory_order_relaxed);
    Transition t;
    t.generation = e.generation.load(std::memory_order_relaxed);
    t.at_ns = e.at_ns.load(std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_acquire);
    if (e.seq.load(std::memory_order_relaxed) != 2 * i + 2) continue;  // rewritten meanwhile
    t.from = static_cast<State>(states & 0xff);
    t.to = static_cast<State>((states >> 8) & 0xff);
    t.reason.why = static_cast<Why>((states >> 16) & 0xff);
    t.reason.a = static_cast<uint32_t>(states >> 32);
    t.reason.b = static_cast<uint32_t>(values & 0xffffffff);
    t.reason.c = static_cast<uint32_t>(values >> 32);
    out.push_back(t);
  }
  return out;
}

}  // namespace fusebox::shm
