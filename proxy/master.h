// proxy/master.h: the control-plane process. Binds every listener once, forks the workers (they
// inherit the sockets), respawns a worker that dies (with backoff, logged), reloads on SIGHUP
// (a new generation of workers on the new config; listeners that stay keep their sockets, so no
// connection is refused; a bad config is refused and the old one serves on) and drains on SIGTERM.
// It never touches a proxied byte.
#pragma once

#include <sys/types.h>
#include <uv.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "proxy/config.h"
#include "shm/result.h"
#include "shm/segment.h"

namespace fusebox::proxy {

class Master {
 public:
  // `reload` re-reads the configuration (the file, the environment, the command line's flags); it
  // is empty when the config came from the command line or the embedded default.
  using Reload = std::function<Result<Config>()>;
  Master(Config config, Reload reload);
  ~Master();
  Master(const Master&) = delete;
  Master& operator=(const Master&) = delete;

  // Binds, forks, supervises; returns the exit code once drained.
  int run();

 private:
  struct WorkerProcess {
    pid_t pid = 0;
    unsigned slot = 0;
    unsigned generation = 0;
    uint64_t started_ms = 0;
  };
  struct Slot {
    unsigned crashes = 0;  // in a row, without 10 s of good health in between
    uv_timer_t respawn_timer{};
    Master* master = nullptr;
    unsigned index = 0;
  };
  struct Generation {
    std::unique_ptr<Config> config;
    std::vector<int> fds;  // one per listener of config, in its order
    std::vector<uint32_t> breaker_slots;  // one per cluster of config: its slot in the segment
    unsigned workers = 0;
    std::vector<std::unique_ptr<Slot>> slots;
  };

  Result<void> bind_all(const Config& config, std::vector<int>* fds);
  Result<void> resolve_breakers(Generation& gen);
  void make_slots(Generation& gen);
  void spawn(unsigned slot);
  void on_child_exit(pid_t pid, int status);
  void reload();
  void shutdown(int signum);
  void maybe_exit();
  void retire_listeners_not_in(const std::vector<int>& keep);

  static void on_signal(uv_signal_t* handle, int signum) noexcept;
  static void on_respawn(uv_timer_t* timer) noexcept;
  static void on_kill_deadline(uv_timer_t* timer) noexcept;

  uv_loop_t* loop_;
  Reload reload_;
  std::unique_ptr<shm::Segment> segment_;  // mapped before any fork: every worker inherits it
  unsigned generation_ = 0;
  std::unique_ptr<Generation> current_;
  std::vector<std::unique_ptr<Generation>> retired_;
  std::map<pid_t, WorkerProcess> workers_;
  // Bound sockets by listener identity (name and configured address): kept across reloads.
  std::map<std::string, int> sockets_;
  uv_signal_t signals_[4]{};
  uv_timer_t kill_timer_{};
  bool shutting_down_ = false;
  int exit_code_ = 0;
};

}  // namespace fusebox::proxy
