// tests/bench/breaker_bench.cc: the breaker's share of the hot path, per call: admission and the
// recording of a success on a closed breaker (alone, and with a second process doing the same on
// the same breaker, which is what the workers of one fusebox do), and the rejection of a call by
// an open breaker. Not a test: run build/tests/breaker_bench and quote the numbers (style.md §6).
// Targets: ≤ 25 ns per admit+record alone, ≤ 100 ns with two processes.
//
// Times come in as values, as in the proxy (one clock read per request, outside the breaker).
// Alone, they advance 1 µs per call, so that the time window's buckets roll over as under load.
// With two processes, both run the same times, 1 ns apart per call, so that both always count in
// the same bucket (the same cache line), as workers serving requests at the same instant do; and
// each process is pinned to its own CPU, so that they really run at once.
#include <sched.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <new>

#include "shm/breaker.h"
#include "shm/segment.h"

using namespace fusebox::shm;

namespace {

constexpr int64_t kStartNs = 1'000'000'000;
constexpr int64_t kStepNs = 1'000;

// The defaults a cluster gets: consecutive failures, failure rate over a 10 s time window.
const BreakerPolicy kPolicy{};

// One closed-breaker call: admitted, then its success recorded, as a worker does per request.
inline void call(BreakerSlot& slot, int64_t now) noexcept {
  Breaker b(slot, kPolicy);
  const Admission a = b.admit(now);
  benchmark::DoNotOptimize(a);
  b.record(a, {false, 1'000'000}, now, 0);
}

void BM_AdmitRecordSuccess(benchmark::State& state) {
  auto seg = Segment::anonymous(4);
  BreakerSlot& slot = seg->slot(seg->find_or_add("payments").value());
  int64_t now = kStartNs;
  for (auto _ : state) {
    call(slot, now);
    now += kStepNs;
  }
  if (Breaker(slot, kPolicy).state() != State::Closed) state.SkipWithError("the breaker tripped");
}
BENCHMARK(BM_AdmitRecordSuccess);

// The same, while a second process runs the same loop on the same breaker for the whole run.
// The time is the parent's, per call.
bool pin_to_cpu(int cpu) noexcept {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  return sched_setaffinity(0, sizeof(set), &set) == 0;
}

void BM_AdmitRecordSuccessTwoProcesses(benchmark::State& state) {
  cpu_set_t allowed;
  CPU_ZERO(&allowed);
  sched_getaffinity(0, sizeof(allowed), &allowed);
  int cpus[2] = {-1, -1};
  for (int c = 0, n = 0; c < CPU_SETSIZE && n < 2; ++c)
    if (CPU_ISSET(c, &allowed)) cpus[n++] = c;
  if (cpus[1] < 0) {
    state.SkipWithError("needs two CPUs");
    return;
  }
  auto seg = Segment::anonymous(4);
  BreakerSlot& slot = seg->slot(seg->find_or_add("payments").value());
  struct Control {
    std::atomic<int> running{0};
    std::atomic<int> stop{0};
    std::atomic<uint64_t> calls{0};
  };
  void* page = mmap(nullptr, sizeof(Control), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (page == MAP_FAILED) {
    state.SkipWithError("mmap failed");
    return;
  }
  auto* control = new (page) Control();
  const pid_t pid = fork();
  if (pid == 0) {
    pin_to_cpu(cpus[1]);
    int64_t now = kStartNs;
    uint64_t n = 0;
    control->running.store(1, std::memory_order_release);
    while (control->stop.load(std::memory_order_relaxed) == 0) {
      call(slot, now);
      now += 1;
      ++n;
    }
    control->calls.store(n, std::memory_order_release);
    _exit(0);
  }
  if (pid < 0) {
    state.SkipWithError("fork failed");
    munmap(page, sizeof(Control));
    return;
  }
  pin_to_cpu(cpus[0]);
  while (control->running.load(std::memory_order_acquire) == 0) sched_yield();

  int64_t now = kStartNs;
  for (auto _ : state) {
    call(slot, now);
    now += 1;
  }
  sched_setaffinity(0, sizeof(allowed), &allowed);

  control->stop.store(1, std::memory_order_relaxed);
  int status = 0;
  waitpid(pid, &status, 0);
  state.counters["other_process_calls"] = static_cast<double>(control->calls.load(std::memory_order_acquire));
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) state.SkipWithError("the second process failed");
  if (Breaker(slot, kPolicy).state() != State::Closed) state.SkipWithError("the breaker tripped");
  munmap(page, sizeof(Control));
}
BENCHMARK(BM_AdmitRecordSuccessTwoProcesses)->UseRealTime();

// An open breaker turns a call away: one load of the state word and one of open_until.
void BM_AdmitRejectedOpen(benchmark::State& state) {
  auto seg = Segment::anonymous(4);
  BreakerSlot& slot = seg->slot(seg->find_or_add("payments").value());
  {
    Breaker b(slot, kPolicy);
    b.force(State::Closed, kStartNs);
    for (int i = 0; i < 5; ++i) b.record(b.admit(kStartNs), {true, 0}, kStartNs, 0);
  }
  if (Breaker(slot, kPolicy).state() != State::Open) {
    state.SkipWithError("the breaker did not trip");
    return;
  }
  int64_t now = kStartNs;
  for (auto _ : state) {
    Breaker b(slot, kPolicy);
    const Admission a = b.admit(now);
    benchmark::DoNotOptimize(a);
    now += 1;  // stays within the open time (at least 27 s)
  }
}
BENCHMARK(BM_AdmitRejectedOpen);

}  // namespace

BENCHMARK_MAIN();
