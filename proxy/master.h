// proxy/master.h: the control-plane process. Binds every listener once, forks the workers (they
// inherit the sockets), respawns a worker that dies (with backoff, logged), reloads on SIGHUP
// (a new generation of workers on the new config; listeners that stay keep their sockets, so no
// connection is refused; a bad config is refused and the old one serves on) and drains on SIGTERM.
// It serves the admin API and the metrics on its own loop (admin_server.h, admin_api.h). It never
// touches a proxied byte.
#pragma once

#include <sys/types.h>
#include <uv.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "metrics/collector.h"
#include "proxy/admin_api.h"
#include "proxy/admin_server.h"
#include "proxy/config.h"
#include "proxy/health_checker.h"
#include "proxy/segment_index.h"
#include "shm/result.h"
#include "shm/segment.h"

namespace fusebox::proxy {

class Master final : public ControlPlane {
 public:
  // `reload` re-reads the configuration (the file, the environment, the command line's flags); it
  // is empty when the config came from the command line or the embedded default. `adopt` turns a
  // config's text (from PUT /admin/config) into a Config the same way.
  using Reload = std::function<Result<Config>()>;
  using Adopt = std::function<Result<Config>(const std::string& text, ConfigErrors* errors)>;
  Master(Config config, Reload reload, Adopt adopt = {});
  ~Master();
  Master(const Master&) = delete;
  Master& operator=(const Master&) = delete;

  // Binds, forks, supervises; returns the exit code once drained.
  int run();

  // ControlPlane, for the admin API.
  const Config& config() const override { return *current_->config; }
  uint64_t config_generation() const override { return generation_; }
  const SegmentIndex& segment_index() const override { return current_->index; }
  shm::Segment& segment() override { return *segment_; }
  Readiness readiness() const override;
  std::string scrape() override;
  Result<uint64_t> apply_config(const std::string& text, std::vector<std::string>* errors) override;
  const std::string& admin_token() const override { return admin_token_; }

 private:
  struct WorkerProcess {
    pid_t pid = 0;
    unsigned slot = 0;
    unsigned generation = 0;
    uint64_t started_ms = 0;
    uint32_t block = 0;  // its stats block in the segment
  };
  struct Slot {
    unsigned crashes = 0;  // in a row, without 10 s of good health in between
    uv_timer_t respawn_timer{};
    Master* master = nullptr;
    unsigned index = 0;
  };
  struct Generation {
    unsigned number = 0;   // generation_ while it was the current one
    std::unique_ptr<Config> config;
    std::vector<int> fds;  // one per listener of config, in its order
    SegmentIndex index;  // the config's breakers and metric series in the segment
    unsigned workers = 0;
    std::vector<std::unique_ptr<Slot>> slots;
  };

  Result<void> bind_all(const Config& config, std::vector<int>* fds);
  Result<void> resolve_breakers(Generation& gen);
  Result<void> resolve_series(Generation& gen);
  int claim_block() noexcept;
  void release_block(uint32_t block) noexcept;
  void make_slots(Generation& gen);
  void spawn(unsigned slot);
  void on_child_exit(pid_t pid, int status);
  // Frees the retired generations no worker runs any more: their config, index and slots (the
  // slots' timers closed first). Without it every reload would keep its config for good.
  void release_retired() noexcept;
  void reload();
  // Starts a new generation of workers on `next` (listeners that stay keep their sockets); the
  // running config stays if it cannot be applied.
  Result<void> adopt(Config next);
  Result<std::string> load_token(const Config& config);
  void apply_modes(const Generation& gen);
  void update_scope();
  void shutdown(int signum);
  void maybe_exit();
  void retire_listeners_not_in(const std::vector<int>& keep);

  static void on_signal(uv_signal_t* handle, int signum) noexcept;
  static void on_respawn(uv_timer_t* timer) noexcept;
  static void on_kill_deadline(uv_timer_t* timer) noexcept;

  uv_loop_t* loop_;
  Reload reload_;
  Adopt adopt_;
  std::unique_ptr<metrics::Collector> collector_;
  std::unique_ptr<AdminServer> admin_;
  std::unique_ptr<HealthChecker> health_;
  std::string admin_token_;
  uint64_t worker_restarts_ = 0;
  uint64_t reloads_ = 0;
  uint64_t reload_failures_ = 0;
  std::unique_ptr<shm::Segment> segment_;  // mapped before any fork: every worker inherits it
  unsigned generation_ = 0;
  std::unique_ptr<Generation> current_;
  std::vector<std::unique_ptr<Generation>> retired_;
  std::map<pid_t, WorkerProcess> workers_;
  // Bound sockets by listener identity (name and configured address): kept across reloads.
  std::map<std::string, int> sockets_;
  uv_signal_t signals_[4]{};
  uv_timer_t kill_timer_{};
  std::vector<bool> blocks_in_use_ = std::vector<bool>(shm::kWorkerBlocks);
  bool shutting_down_ = false;
  int exit_code_ = 0;
};

}  // namespace fusebox::proxy
