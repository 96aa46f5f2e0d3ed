// tests/unit/shm/processes.h: real child processes for the shm tests. A child runs a function and
// _exit()s with its result (never returning into doctest, never running atexit handlers twice);
// the parent reaps every child, and kills any that outlives the test's deadline, so a hung
// child fails the test instead of hanging the suite. A page of shared memory of our own lets the
// processes start together and count what they saw.
#pragma once

#include <signal.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <vector>

namespace fusebox::shm::testing {

// Shared between the parent and every child forked after it is made (MAP_SHARED | MAP_ANONYMOUS).
template <typename T>
class SharedPage {
 public:
  SharedPage() {
    void* p = mmap(nullptr, sizeof(T), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    value_ = new (p) T();
  }
  ~SharedPage() {
    value_->~T();
    munmap(value_, sizeof(T));
  }
  SharedPage(const SharedPage&) = delete;
  SharedPage& operator=(const SharedPage&) = delete;
  T* operator->() noexcept { return value_; }
  T& operator*() noexcept { return *value_; }

 private:
  T* value_;
};

// Children wait at the gate until the parent opens it, so that they hammer the slot at once
// rather than one after the other as fork() returns.
struct Gate {
  std::atomic<int> ready{0};
  std::atomic<int> open{0};

  void arrive_and_wait() noexcept {
    ready.fetch_add(1, std::memory_order_acq_rel);
    while (open.load(std::memory_order_acquire) == 0) {
    }
  }
  // Returns false if the children did not all arrive before the deadline.
  bool release_when(int children, std::chrono::steady_clock::time_point deadline) noexcept {
    while (ready.load(std::memory_order_acquire) < children) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      sched_yield();
    }
    open.store(1, std::memory_order_release);
    return true;
  }
};

// Runs fn() in a child that _exit()s with its return value (0 = fine).
template <typename Fn>
pid_t spawn(Fn&& fn) {
  const pid_t pid = fork();
  if (pid == 0) {
    int code = 99;
    try {
      code = fn();
    } catch (...) {
      code = 98;
    }
    _exit(code);
  }
  return pid;
}

struct Exit {
  pid_t pid = 0;
  bool exited = false;  // _exit()ed by itself
  int code = -1;        // its exit status, if it did
  int signal = 0;       // the signal that ended it, if one did
  bool timed_out = false;
};

// Reaps `pid`, SIGKILLing it at the deadline.
inline Exit reap(pid_t pid, std::chrono::steady_clock::time_point deadline) {
  Exit e{.pid = pid};
  for (;;) {
    int status = 0;
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      e.exited = WIFEXITED(status);
      e.code = e.exited ? WEXITSTATUS(status) : -1;
      e.signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
      return e;
    }
    if (r < 0) return e;  // not our child (cannot happen here)
    if (std::chrono::steady_clock::now() > deadline) {
      e.timed_out = true;
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return e;
    }
    sched_yield();
  }
}

inline std::vector<Exit> reap_all(const std::vector<pid_t>& pids, std::chrono::steady_clock::time_point deadline) {
  std::vector<Exit> out;
  for (const pid_t pid : pids) out.push_back(reap(pid, deadline));
  return out;
}

inline std::chrono::steady_clock::time_point deadline_in(std::chrono::seconds s) {
  return std::chrono::steady_clock::now() + s;
}

}  // namespace fusebox::shm::testing
