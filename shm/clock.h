// shm/clock.h: the time the breakers see. CLOCK_MONOTONIC is shared by every process of the host,
// so a deadline written by one worker means the same instant to another. Injected as an
// interface so tests step a manual clock across thresholds instead of sleeping.
#pragma once

#include <atomic>
#include <cstdint>
#include <ctime>

namespace fusebox::shm {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual int64_t now_ns() const noexcept = 0;
};

class MonotonicClock final : public Clock {
 public:
  int64_t now_ns() const noexcept override {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
  }
};

class ManualClock final : public Clock {
 public:
  explicit ManualClock(int64_t start_ns = 1'000'000'000) : now_(start_ns) {}
  int64_t now_ns() const noexcept override { return now_.load(std::memory_order_relaxed); }
  void advance_ms(int64_t ms) noexcept { now_.fetch_add(ms * 1'000'000, std::memory_order_relaxed); }
  void set_ns(int64_t ns) noexcept { now_.store(ns, std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> now_;
};



}  // namespace fusebox::shm
