// proxy/master.cc: see master.h.
#include "proxy/master.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "proxy/cpu_count.h"
#include "proxy/listen_socket.h"
#include "proxy/log.h"
#include "proxy/worker.h"
#include "shm/breaker.h"
#include "shm/clock.h"

namespace fusebox::proxy {
namespace {

constexpr uint64_t kHealthyAfterMs = 10'000;  // a worker that lived this long resets the backoff
constexpr int kSignals[] = {SIGTERM, SIGINT, SIGHUP, SIGCHLD};

// A listener's socket is found again across reloads by its address, so a renamed listener keeps
// it (binding a second socket on a port still listening would fail, and refuse the reload).
// Port 0 binds a new port each time: its listeners are told apart by name. (The config refuses
// two listeners on one fixed address.)
std::string socket_key(const ListenerConfig& l) {
  return l.address.port == 0 ? l.name + "|" + l.address.to_string() : l.address.to_string();
}

// auto: one per usable CPU, at most 32 (the most a config may ask for; see parse_workers).
unsigned worker_count(const Config& c) { return c.workers > 0 ? c.workers : std::min(usable_cpus(), 32u); }

}  // namespace

Master::Master(Config config, Reload reload, Adopt adopt)
    : loop_(uv_default_loop()), reload_(std::move(reload)), adopt_(std::move(adopt)) {
  current_ = std::make_unique<Generation>();
  current_->config = std::make_unique<Config>(std::move(config));
}

Master::~Master() = default;

Result<void> Master::bind_all(const Config& config, std::vector<int>* fds) {
  fds->clear();
  std::map<std::string, int> fresh;
  for (const ListenerConfig& l : config.listeners) {
    const std::string key = socket_key(l);
    if (auto it = sockets_.find(key); it != sockets_.end()) {
      fds->push_back(it->second);
      continue;
    }
    auto bound = bind_listener(l, kListenBacklog);
    if (!bound) {
      for (auto& [k, fd] : fresh) ::close(fd);
      return bound.error();
    }
    fresh[key] = bound.value().fd;
    fds->push_back(bound.value().fd);
    FB_LOG(Info, "listening listener=%s address=%s", l.name.c_str(), bound.value().bound.to_string().c_str());
  }
  for (auto& [k, fd] : fresh) sockets_[k] = fd;
  return {};
}

// Finds (or claims) each cluster's (and each route's own) breaker slot. A name claimed stays in
// the table, so adopt() claims only once nothing else can refuse the config.
Result<void> Master::resolve_breakers(Generation& gen) {
  gen.index.breaker_slots.clear();
  for (const ClusterConfig& c : gen.config->clusters) {
    auto slot = segment_->find_or_add(c.name);
    if (!slot) return Error{"cluster " + c.name + ": " + slot.error().message};
    gen.index.breaker_slots.push_back(slot.value());
  }
  gen.index.route_breakers.clear();
  for (const ListenerConfig& l : gen.config->listeners) {
    std::vector<uint32_t> slots;
    for (const Route& r : l.routes) {
      if (!r.own_breaker) {
        slots.push_back(SegmentIndex::kNone);
        continue;
      }
      auto slot = segment_->find_or_add(r.name);
      if (!slot) return Error{"route " + r.name + ": " + slot.error().message};
      slots.push_back(slot.value());
    }
    gen.index.route_breakers.push_back(std::move(slots));
  }
  return {};
}

// Applies the config's `mode:` once it is adopted: a forced mode from the config is forced; a
// breaker the config had forced before and no longer does is reset. A state forced through the
// admin API stays, across restarts too.
void Master::apply_modes(const Generation& gen) {
  struct Named {
    const std::string* name;
    const BreakerConfig* config;
    uint32_t slot;
  };
  std::vector<Named> all;
  for (size_t i = 0; i < gen.config->clusters.size(); ++i)
    all.push_back({&gen.config->clusters[i].name, &gen.config->clusters[i].breaker, gen.index.breaker_slots[i]});
  for (size_t l = 0; l < gen.config->listeners.size(); ++l)
    for (size_t r = 0; r < gen.config->listeners[l].routes.size(); ++r)
      if (const Route& route = gen.config->listeners[l].routes[r]; route.own_breaker)
        all.push_back({&route.name, &route.breaker, gen.index.route_breakers[l][r]});
  const shm::MonotonicClock clock;
  for (const Named& n : all) {
    const BreakerConfig& c = *n.config;
    const uint32_t slot = n.slot;
    shm::BreakerSlot& s = segment_->slot(slot);
    shm::Breaker breaker(s, c.policy);
    const int64_t now = clock.now_ns();
    switch (c.policy.mode) {
      case shm::Mode::ForcedOpen: breaker.force(shm::State::ForcedOpen, now, true); break;
      case shm::Mode::Disabled: breaker.force(shm::State::Disabled, now, true); break;
      case shm::Mode::MetricsOnly: breaker.force(shm::State::MetricsOnly, now, true); break;
      case shm::Mode::Normal:
        if (s.forced_by_config.load() != 0) breaker.reset(now);
        break;
    }
    FB_LOG(Debug, "breaker %s: slot %u, %s", n.name->c_str(), slot, shm::to_string(breaker.state()));
  }
}

// Finds (or claims) the metric series of each listener and of each listener × cluster its routes
// send to.
Result<void> Master::resolve_series(Generation& gen) {
  SegmentIndex& index = gen.index;
  index.listener_series.clear();
  index.route_series.clear();
  index.endpoint_health.clear();
  for (const ClusterConfig& c : gen.config->clusters) {
    std::vector<uint32_t> entries;
    if (c.health_check.enabled) {
      for (const HostPort& e : c.endpoints) {
        auto entry = segment_->find_or_add_endpoint(c.name, e.to_string());
        if (!entry) return entry.error();
        entries.push_back(entry.value());
      }
    }
    index.endpoint_health.push_back(std::move(entries));
  }
  for (const ListenerConfig& l : gen.config->listeners) {
    auto own = segment_->find_or_add_series(l.name, "");
    if (!own) return own.error();
    index.listener_series.push_back(own.value());
    std::vector<uint32_t> routes;
    for (const Route& r : l.routes) {
      auto series = segment_->find_or_add_series(l.name, r.cluster);
      if (!series) return series.error();
      routes.push_back(series.value());
    }
    index.route_series.push_back(std::move(routes));
  }
  return {};
}

// A stats block no live worker writes: a reload's new generation never shares one with the old
// generation still draining.
int Master::claim_block() noexcept {
  for (uint32_t i = 0; i < blocks_in_use_.size(); ++i) {
    if (!blocks_in_use_[i]) {
      blocks_in_use_[i] = true;
      return static_cast<int>(i);
    }
  }
  return -1;
}

int Master::run() {
  const Config& config = *current_->config;
  // The admin port first: a second fusebox started by mistake on the same address (so on the
  // same segment) must fail here, before it writes its names and modes into the first one's
  // breakers. (No request is served before the loop runs, below.)
  if (auto token = load_token(config); !token) {
    FB_LOG(Error, "%s", token.error().message.c_str());
    return 1;
  } else {
    admin_token_ = std::move(token).value();
  }
  admin_ = std::make_unique<AdminServer>(loop_, [this](const AdminRequest& req) { return handle_admin(*this, req); });
  if (auto listening = admin_->listen(config.admin_address); !listening) {
    FB_LOG(Error, "%s", listening.error().message.c_str());
    return 1;
  }
  FB_LOG(Info, "admin listening address=%s (token %s)", admin_->bound().to_string().c_str(),
         admin_token_.empty() ? "not configured: changes refused" : "configured");
  auto segment = shm::Segment::open(segment_name(config), config.shm.max_breakers, /*recreate_incompatible=*/true);
  if (!segment) {
    FB_LOG(Error, "%s", segment.error().message.c_str());
    return 1;
  }
  segment_ = std::move(segment).value();
  if (segment_->opened() == shm::Segment::Opened::Recreated)
    FB_LOG(Warn, "%s; it was recreated, and the breakers start closed", segment_->incompatibility().c_str());
  FB_LOG(Info, "breakers in shared memory \"%s\" (%s, %u of %u slots used)", segment_->name().c_str(),
         segment_->opened() == shm::Segment::Opened::Attached ? "attached: state kept" : "created",
         segment_->used(), segment_->capacity());
  if (auto resolved = resolve_breakers(*current_); !resolved) {
    FB_LOG(Error, "%s", resolved.error().message.c_str());
    return 1;
  }
  if (auto resolved = resolve_series(*current_); !resolved) {
    FB_LOG(Error, "%s", resolved.error().message.c_str());
    return 1;
  }
  apply_modes(*current_);
  collector_ = std::make_unique<metrics::Collector>(*segment_);
  health_ = std::make_unique<HealthChecker>(loop_, *segment_);
  health_->start(*current_->config, current_->index);
  update_scope();
  // The admin port is ours (bound above), so no other fusebox runs on this segment (its name
  // comes from the same address, or is set apart). Workers of an earlier one that are gone hold
  // no connection now: their gauges start from zero; their counters stay. A block whose process
  // still lives (a worker of a killed master, still draining) is left alone.
  for (uint32_t b = 0; b < shm::kWorkerBlocks; ++b) {
    const pid_t pid = static_cast<pid_t>(segment_->worker(b).head->pid.load(std::memory_order_relaxed));
    if (pid > 0 && kill(pid, 0) == 0) {
      blocks_in_use_[b] = true;
      continue;
    }
    release_block(b);
  }
  if (auto bound = bind_all(*current_->config, &current_->fds); !bound) {
    FB_LOG(Error, "%s", bound.error().message.c_str());
    return 1;
  }
  for (size_t i = 0; i < std::size(kSignals); ++i) {
    uv_signal_init(loop_, &signals_[i]);
    signals_[i].data = this;
    uv_signal_start(&signals_[i], on_signal, kSignals[i]);
  }
  uv_timer_init(loop_, &kill_timer_);
  kill_timer_.data = this;

  make_slots(*current_);
  FB_LOG(Info, "fusebox %s (%s) starting %u workers, config %s", FUSEBOX_VERSION, FUSEBOX_REVISION,
         current_->workers, current_->config->source.c_str());
  for (unsigned i = 0; i < current_->workers; ++i) spawn(i);
  uv_run(loop_, UV_RUN_DEFAULT);
  return exit_code_;
}

// One worker slot (a place to respawn into, with its backoff timer) per worker of the generation.
void Master::make_slots(Generation& gen) {
  gen.workers = worker_count(*gen.config);
  for (unsigned i = 0; i < gen.workers; ++i) {
    auto slot = std::make_unique<Slot>();
    slot->master = this;
    slot->index = i;
    uv_timer_init(loop_, &slot->respawn_timer);
    slot->respawn_timer.data = slot.get();
    gen.slots.push_back(std::move(slot));
  }
}

// The worker is gone, and with it its connections: its gauges drop to zero (its counters stay,
// and keep counting in the next worker to get the block).
void Master::release_block(uint32_t block) noexcept {
  blocks_in_use_[block] = false;
  shm::WorkerBlock stats = segment_->worker(block);
  // A block no worker ever had is all zeros; touching it would only make its pages resident.
  if (stats.head->used.load(std::memory_order_acquire) == 0) return;
  stats.head->ready.store(0, std::memory_order_relaxed);
  stats.head->pid.store(0, std::memory_order_relaxed);
  for (uint32_t i = 0; i < segment_->series_capacity(); ++i) stats.series[i].active.store(0, std::memory_order_relaxed);
  for (uint32_t i = 0; i < segment_->capacity(); ++i)
    stats.clusters[i].upstream_active.store(0, std::memory_order_relaxed);
}

void Master::spawn(unsigned slot) {
  const Config& config = *current_->config;
  const int block = claim_block();
  if (block < 0) {
    FB_LOG(Error, "cannot start worker %u: all %u stats blocks are in use (old workers still draining); "
           "trying again in 1 s", slot, shm::kWorkerBlocks);
    uv_timer_start(&current_->slots[slot]->respawn_timer, on_respawn, 1000, 0);
    return;
  }
  shm::WorkerBlock stats = segment_->worker(static_cast<uint32_t>(block));
  stats.head->ready.store(0, std::memory_order_relaxed);
  stats.head->generation.store(generation_, std::memory_order_relaxed);
  stats.head->used.store(1, std::memory_order_release);
  // No signal may run a handler in the child before it has let go of the master's: libuv's
  // handler, inherited, would write the child's SIGTERM into the master's own signal pipe (and
  // the master would shut down). Blocked across fork, they wait in the child until then.
  sigset_t all, before;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &before);
  const pid_t master_pid = getpid();
  const pid_t pid = fork();
  if (pid != 0) pthread_sigmask(SIG_SETMASK, &before, nullptr);
  if (pid < 0) {
    blocks_in_use_[static_cast<size_t>(block)] = false;
    FB_LOG(Error, "cannot start worker %u: fork: %s; trying again in 1 s", slot, std::strerror(errno));
    uv_timer_start(&current_->slots[slot]->respawn_timer, on_respawn, 1000, 0);
    return;
  }
  if (pid == 0) {
    // The child: leave the master's loop alone (its signal handles would otherwise still
    // receive this process's signals through libuv's global handler), run a worker, exit.
    for (uv_signal_t& s : signals_) uv_signal_stop(&s);
    pthread_sigmask(SIG_SETMASK, &before, nullptr);  // a SIGTERM now ends this child alone
    // A master that dies (SIGKILL, OOM) takes its workers with it: left alone they would serve
    // on with frozen health checks and hold the ports a restarted master must bind. SIGTERM
    // drains; the check covers a master that died before the prctl.
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != master_pid) _exit(0);
    admin_->close_descriptors_in_child();
    health_->close_descriptors_in_child();
    char role[32];
    std::snprintf(role, sizeof role, "worker %u", slot);
    log::init(config.log_level, role);
    for (auto& [key, fd] : sockets_) {
      if (std::find(current_->fds.begin(), current_->fds.end(), fd) == current_->fds.end()) ::close(fd);
    }
    int rc;
    {
      Worker worker(config, slot, current_->fds, segment_.get(), current_->index, static_cast<uint32_t>(block));
      rc = worker.run();
    }
    _exit(rc);
  }
  stats.head->pid.store(pid, std::memory_order_relaxed);
  workers_[pid] = {pid, slot, generation_, uv_now(loop_), static_cast<uint32_t>(block)};
  FB_LOG(Debug, "worker %u started, pid %d", slot, pid);
}

void Master::on_signal(uv_signal_t* handle, int signum) noexcept {
  auto* self = static_cast<Master*>(handle->data);
  switch (signum) {
    case SIGCHLD: {
      int status = 0;
      pid_t pid;
      while ((pid = waitpid(-1, &status, WNOHANG)) > 0) self->on_child_exit(pid, status);
      break;
    }
    case SIGHUP:
      self->reload();
      break;
    default:
      self->shutdown(signum);
  }
}

void Master::on_child_exit(pid_t pid, int status) {
  auto it = workers_.find(pid);
  if (it == workers_.end()) return;
  const WorkerProcess w = it->second;
  workers_.erase(it);
  release_block(w.block);
  const uint64_t lived = uv_now(loop_) - w.started_ms;
  if (shutting_down_ || w.generation != generation_) {
    FB_LOG(Debug, "worker %u (pid %d, generation %u) exited", w.slot, pid, w.generation);
    release_retired();
    maybe_exit();
    return;
  }
  Slot& slot = *current_->slots[w.slot];
  slot.crashes = lived >= kHealthyAfterMs ? 1 : slot.crashes + 1;
  // 0 ms for a first crash (a lone kill should not cost capacity), then 100 ms doubling to 5 s:
  // a worker that dies at start must not turn the master into a fork loop.
  const uint64_t delay = slot.crashes <= 1 ? 0 : std::min<uint64_t>(5000, 100ull << std::min(slot.crashes - 2, 6u));
  if (WIFSIGNALED(status)) {
    FB_LOG(Error, "worker %u (pid %d) was killed by signal %d (%s) after %llu ms; respawning in %llu ms", w.slot,
           pid, WTERMSIG(status), strsignal(WTERMSIG(status)), static_cast<unsigned long long>(lived),
           static_cast<unsigned long long>(delay));
  } else {
    FB_LOG(Error, "worker %u (pid %d) exited with status %d after %llu ms; respawning in %llu ms", w.slot, pid,
           WEXITSTATUS(status), static_cast<unsigned long long>(lived), static_cast<unsigned long long>(delay));
  }
  ++worker_restarts_;
  uv_timer_start(&slot.respawn_timer, on_respawn, delay, 0);
}

void Master::release_retired() noexcept {
  for (auto it = retired_.begin(); it != retired_.end();) {
    Generation& gen = **it;
    const bool running = std::any_of(workers_.begin(), workers_.end(),
                                     [&](const auto& entry) { return entry.second.generation == gen.number; });
    if (running) {
      ++it;
      continue;
    }
    for (auto& slot : gen.slots) {
      uv_close(reinterpret_cast<uv_handle_t*>(&slot.release()->respawn_timer),
               [](uv_handle_t* h) { delete static_cast<Slot*>(h->data); });
    }
    FB_LOG(Debug, "generation %u released: its workers are gone", gen.number);
    it = retired_.erase(it);
  }
}

void Master::on_respawn(uv_timer_t* timer) noexcept {
  auto* slot = static_cast<Slot*>(timer->data);
  Master* self = slot->master;
  if (self->shutting_down_) return;
  self->spawn(slot->index);
}

void Master::reload() {
  if (shutting_down_) return;
  if (!reload_) {
    FB_LOG(Warn, "SIGHUP: nothing to reload (the config came from the command line or the embedded default)");
    return;
  }
  auto next = reload_();
  if (!next) {
    ++reload_failures_;
    FB_LOG(Error, "reload refused, the running config stays:\n%s", next.error().message.c_str());
    return;
  }
  if (auto adopted = adopt(std::move(next).value()); !adopted)
    FB_LOG(Error, "reload refused, the running config stays: %s", adopted.error().message.c_str());
}

Result<uint64_t> Master::apply_config(const std::string& text, std::vector<std::string>* errors) {
  if (shutting_down_) return Error{"fusebox is shutting down"};
  ConfigErrors all;
  auto next = adopt_ ? adopt_(text, &all) : Result<Config>(Error{"this fusebox cannot take a config through the API"});
  if (!next) {
    ++reload_failures_;
    *errors = all.errors.empty() ? std::vector<std::string>{next.error().message} : all.errors;
    FB_LOG(Error, "PUT /admin/config refused, the running config stays:\n%s", next.error().message.c_str());
    return next.error();
  }
  if (auto adopted = adopt(std::move(next).value()); !adopted) {
    errors->push_back(adopted.error().message);
    FB_LOG(Error, "PUT /admin/config refused, the running config stays: %s", adopted.error().message.c_str());
    return adopted.error();
  }
  return uint64_t{generation_};
}

Result<void> Master::adopt(Config next) {
  auto gen = std::make_unique<Generation>();
  gen->config = std::make_unique<Config>(std::move(next));
  auto refuse = [this](std::string message) -> Result<void> {
    ++reload_failures_;
    return Error{std::move(message)};
  };
  if (segment_name(*gen->config) != segment_->name() || gen->config->shm.max_breakers != segment_->capacity())
    return refuse("shm.name and shm.max_breakers take a restart");
  if (gen->config->admin_address.to_string() != current_->config->admin_address.to_string())
    return refuse("admin.address takes a restart");
  auto token = load_token(*gen->config);
  if (!token) return refuse(token.error().message);
  if (auto bound = bind_all(*gen->config, &gen->fds); !bound) return refuse(bound.error().message);
  // The names go into the segment's tables last: a config refused for a port or a token claims
  // no slot. Only a full table can still refuse it here, and then the sockets just bound close.
  auto resolved = resolve_breakers(*gen);
  if (resolved) resolved = resolve_series(*gen);
  if (!resolved) {
    retire_listeners_not_in(current_->fds);
    return refuse(resolved.error().message);
  }
  admin_token_ = std::move(token).value();
  apply_modes(*gen);
  log::set_level(gen->config->log_level);
  make_slots(*gen);
  // The old generation drains; its respawn timers must not fire for it any more.
  for (auto& slot : current_->slots) uv_timer_stop(&slot->respawn_timer);
  current_->number = generation_;
  retired_.push_back(std::move(current_));
  current_ = std::move(gen);
  const unsigned old_generation = generation_++;
  ++reloads_;
  update_scope();
  health_->start(*current_->config, current_->index);
  for (unsigned i = 0; i < current_->workers; ++i) spawn(i);
  for (auto& [pid, w] : workers_)
    if (w.generation == old_generation) kill(pid, SIGTERM);
  retire_listeners_not_in(current_->fds);
  release_retired();  // any earlier generation whose workers are all gone by now
  FB_LOG(Info, "reloaded %s: %zu listeners, %zu clusters, %u workers (generation %u)",
         current_->config->source.c_str(), current_->config->listeners.size(), current_->config->clusters.size(),
         current_->workers, generation_);
  return {};
}

// The admin token: FUSEBOX_ADMIN_TOKEN if set, else the first line of admin.token_file, else none
// (and then every change through the API is refused).
Result<std::string> Master::load_token(const Config& config) {
  if (const char* env = std::getenv("FUSEBOX_ADMIN_TOKEN"); env != nullptr && *env != '\0') return std::string(env);
  if (config.admin_token_file.empty()) return std::string();
  std::ifstream in(config.admin_token_file);
  std::string line;
  if (!in || !std::getline(in, line))
    return Error{"admin.token_file " + config.admin_token_file + ": cannot read it: " + std::strerror(errno)};
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.pop_back();
  if (line.empty()) return Error{"admin.token_file " + config.admin_token_file + ": its first line is empty"};
  return line;
}

// The names the metrics label with: the running config's.
void Master::update_scope() {
  metrics::Scope scope;
  const Config& c = *current_->config;
  const SegmentIndex& index = current_->index;
  for (size_t i = 0; i < c.clusters.size(); ++i) {
    scope.clusters.push_back({c.clusters[i].name, index.breaker_slots[i]});
    scope.breakers.push_back({c.clusters[i].name, "", index.breaker_slots[i]});
  }
  for (size_t l = 0; l < c.listeners.size(); ++l)
    for (size_t r = 0; r < c.listeners[l].routes.size(); ++r)
      if (const Route& route = c.listeners[l].routes[r]; route.own_breaker)
        scope.breakers.push_back({route.cluster, route.name, index.route_breakers[l][r]});
  for (size_t l = 0; l < c.listeners.size(); ++l) {
    scope.series.push_back({c.listeners[l].name, "", index.listener_series[l]});
    for (size_t r = 0; r < c.listeners[l].routes.size(); ++r) {
      const uint32_t series = index.route_series[l][r];
      bool seen = false;
      for (const auto& s : scope.series) seen = seen || s.index == series;
      if (!seen) scope.series.push_back({c.listeners[l].name, c.listeners[l].routes[r].cluster, series});
    }
  }
  for (size_t i = 0; i < c.clusters.size(); ++i)
    for (size_t e = 0; e < index.endpoint_health[i].size(); ++e)
      scope.endpoints.push_back({c.clusters[i].name, c.clusters[i].endpoints[e].to_string(), index.endpoint_health[i][e]});
  scope.version = FUSEBOX_VERSION;
  scope.revision = FUSEBOX_REVISION;
  collector_->set_scope(std::move(scope));
}

Readiness Master::readiness() const {
  Readiness r;
  if (shutting_down_) return r;
  r.workers = current_->workers;
  for (const auto& [pid, w] : workers_) {
    if (w.generation != generation_) continue;
    const shm::WorkerBlock block = segment_->worker(w.block);
    if (block.head->ready.load(std::memory_order_acquire) != 0) ++r.workers_ready;
  }
  return r;
}

std::string Master::scrape() {
  metrics::MasterCounts counts;
  counts.worker_restarts = worker_restarts_;
  counts.config_generation = generation_;
  counts.reloads = reloads_;
  counts.reload_failures = reload_failures_;
  counts.workers_running = static_cast<uint32_t>(workers_.size());
  collector_->set_master_counts(counts);
  return collector_->scrape();
}

// A listener that the new config dropped: the master closes its copy; the old workers close
// theirs as they drain, and then the port is free.
void Master::retire_listeners_not_in(const std::vector<int>& keep) {
  for (auto it = sockets_.begin(); it != sockets_.end();) {
    if (std::find(keep.begin(), keep.end(), it->second) == keep.end()) {
      ::close(it->second);
      it = sockets_.erase(it);
    } else {
      ++it;
    }
  }
}

void Master::shutdown(int signum) {
  if (shutting_down_) {
    FB_LOG(Warn, "second %s: stopping the workers now", strsignal(signum));
    for (auto& [pid, w] : workers_) kill(pid, SIGKILL);
    return;
  }
  shutting_down_ = true;
  const auto drain_ms = static_cast<uint64_t>(current_->config->drain_timeout.count());
  FB_LOG(Info, "%s: draining %zu workers (at most %llu ms)", strsignal(signum), workers_.size(),
         static_cast<unsigned long long>(drain_ms));
  // New connections are refused from now on: our copies of the sockets close here, the workers'
  // as they start draining.
  retire_listeners_not_in({});
  health_->stop();
  for (auto& slot : current_->slots) uv_timer_stop(&slot->respawn_timer);
  for (auto& [pid, w] : workers_) kill(pid, SIGTERM);
  // Workers stop themselves at the drain deadline; this is the backstop if one cannot.
  uv_timer_start(&kill_timer_, on_kill_deadline, drain_ms + 2000, 0);
  maybe_exit();
}

void Master::on_kill_deadline(uv_timer_t* timer) noexcept {
  auto* self = static_cast<Master*>(timer->data);
  for (auto& [pid, w] : self->workers_) {
    FB_LOG(Warn, "worker %u (pid %d) did not drain in time: killing it", w.slot, pid);
    kill(pid, SIGKILL);
  }
}

void Master::maybe_exit() {
  if (!shutting_down_ || !workers_.empty()) return;
  FB_LOG(Info, "all workers drained; exiting");
  uv_stop(loop_);
}

}  // namespace fusebox::proxy
