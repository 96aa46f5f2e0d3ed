// proxy/worker.cc: see worker.h.
#include "proxy/worker.h"

#include <fcntl.h>
#include <sys/random.h>
#include <unistd.h>

#include <cstring>

#include "proxy/downstream.h"
#include "proxy/listen_socket.h"
#include "proxy/log.h"

namespace fusebox::proxy {
namespace {

constexpr size_t kBodyBufferBytes = 16 * 1024;     // body bytes read per client read, at least
constexpr size_t kUpstreamBufferBytes = 32 * 1024; // also the largest response head we take

}  // namespace

Worker::Worker(const Config& config, unsigned index, const std::vector<int>& listen_fds, shm::Segment* segment,
               const SegmentIndex& segment_index, uint32_t block)
    : config_(config),
      index_(index),
      segment_(segment),
      segment_index_(segment_index),
      stats_(segment->worker(block)),
      listen_fds_(listen_fds) {}

Worker::~Worker() = default;

int Worker::run() noexcept {
  if (const int rc = uv_loop_init(&loop_); rc != 0) {
    FB_LOG(Error, "cannot start the event loop: %s", uv_strerror(rc));
    return 1;
  }
  if (getrandom(rng_state_, sizeof rng_state_, 0) != sizeof rng_state_ || (rng_state_[0] | rng_state_[1]) == 0) {
    rng_state_[0] = static_cast<uint64_t>(getpid()) * 0x9E3779B97F4A7C15ull + uv_hrtime();
    rng_state_[1] = uv_hrtime() | 1;
  }
  if (config_.access_log == AccessLogTarget::Stdout) access_log_fd_ = STDOUT_FILENO;
  if (config_.access_log == AccessLogTarget::Stderr) access_log_fd_ = STDERR_FILENO;
  if (config_.access_log == AccessLogTarget::File) {
    access_log_fd_ = ::open(config_.access_log_path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (access_log_fd_ < 0)
      FB_LOG(Error, "access log %s: cannot open: %s; access logging is off", config_.access_log_path.c_str(),
             std::strerror(errno));
  }

  pools_.reserve(config_.clusters.size());
  for (size_t i = 0; i < config_.clusters.size(); ++i) {
    std::vector<const shm::EndpointHealth*> health;
    for (const uint32_t entry : segment_index_.endpoint_health[i]) health.push_back(&segment_->endpoint(entry));
    pools_.push_back(std::make_unique<UpstreamPool>(&loop_, config_.clusters[i], kUpstreamBufferBytes,
                                                    &cluster_stats(i), std::move(health)));
    pools_.back()->start();
  }
  free_downstreams_.resize(config_.listeners.size());
  for (auto& free : free_downstreams_) free.reserve(1024);  // no growth on the hot path below that
  for (size_t i = 0; i < listen_fds_.size(); ++i) {
    auto l = std::make_unique<Listener>();
    l->worker = this;
    l->index = i;
    uv_tcp_init(&loop_, &l->tcp);
    l->tcp.data = l.get();
    int rc = uv_tcp_open(&l->tcp, listen_fds_[i]);
    if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(&l->tcp), kListenBacklog, on_connection);
    if (rc != 0) {
      FB_LOG(Error, "listener %s: cannot accept: %s", config_.listeners[i].name.c_str(), uv_strerror(rc));
      return 1;
    }
    listeners_.push_back(std::move(l));
  }

  uv_signal_init(&loop_, &sigterm_);
  sigterm_.data = this;
  uv_signal_start(&sigterm_, on_signal, SIGTERM);
  uv_signal_init(&loop_, &sigint_);
  sigint_.data = this;
  uv_signal_start(&sigint_, on_signal, SIGINT);
  uv_timer_init(&loop_, &drain_timer_);
  drain_timer_.data = this;

  FB_LOG(Debug, "worker %u accepting on %zu listeners", index_, listeners_.size());
  stats_.head->ready.store(1, std::memory_order_release);
  uv_run(&loop_, UV_RUN_DEFAULT);
  return 0;
}

void Worker::on_connection(uv_stream_t* server, int status) noexcept {
  auto* l = static_cast<Listener*>(server->data);
  Worker* self = l->worker;
  if (status != 0) {
    FB_LOG(Warn, "listener %s: accept: %s", self->config_.listeners[l->index].name.c_str(), uv_strerror(status));
    return;
  }
  if (self->draining_) return;
  auto& free = self->free_downstreams_[l->index];
  Downstream* d;
  if (!free.empty()) {
    d = free.back();
    free.pop_back();
  } else {
    const ListenerConfig& lc = self->config_.listeners[l->index];
    const size_t buffer = lc.max_header_bytes + kBodyBufferBytes;
    const size_t out = std::max<size_t>(lc.max_header_bytes, kUpstreamBufferBytes) + 2048;
    d = new Downstream(self, l->index, buffer, out);
  }
  d->prev = nullptr;
  d->next = self->connections_;
  if (self->connections_ != nullptr) self->connections_->prev = d;
  self->connections_ = d;
  ++self->open_connections_;
  shm::SeriesStats& stats = self->listener_stats(l->index);
  shm::bump(stats.accepted);
  stats.active.fetch_add(1, std::memory_order_relaxed);
  if (const int rc = d->accept(server); rc != 0)
    FB_LOG(Debug, "accept on %s: %s", self->config_.listeners[l->index].name.c_str(), uv_strerror(rc));
}

void Worker::on_downstream_recycled(Downstream* d) noexcept {
  if (d->prev != nullptr) d->prev->next = d->next;
  if (d->next != nullptr) d->next->prev = d->prev;
  if (connections_ == d) connections_ = d->next;
  d->prev = d->next = nullptr;
  --open_connections_;
  listener_stats(d->listener()).active.fetch_sub(1, std::memory_order_relaxed);
  free_downstreams_[d->listener()].push_back(d);
  if (draining_) maybe_exit();
}

void Worker::on_signal(uv_signal_t* handle, int) noexcept { static_cast<Worker*>(handle->data)->start_drain(); }

void Worker::start_drain() noexcept {
  if (draining_) return;
  draining_ = true;
  FB_LOG(Info, "draining: %zu connections open, %lld ms at most", open_connections_,
         static_cast<long long>(config_.drain_timeout.count()));
  for (auto& l : listeners_) uv_close(reinterpret_cast<uv_handle_t*>(&l->tcp), nullptr);
  for (Downstream* d = connections_; d != nullptr;) {
    Downstream* next = d->next;  // drain() may close d, which unlinks it later, not now
    d->drain();
    d = next;
  }
  for (auto& p : pools_) p->stop();
  uv_timer_start(&drain_timer_, on_drain_deadline, static_cast<uint64_t>(config_.drain_timeout.count()), 0);
  maybe_exit();
}

void Worker::on_drain_deadline(uv_timer_t* timer) noexcept {
  auto* self = static_cast<Worker*>(timer->data);
  FB_LOG(Warn, "drain deadline passed with %zu connections open: closing them", self->open_connections_);
  _exit(0);
}

void Worker::maybe_exit() noexcept {
  if (open_connections_ > 0) return;
  FB_LOG(Debug, "drained");
  // Every client connection is done; what is left (idle upstream sockets closing, signal handles)
  // needs no goodbye.
  _exit(0);
}

// xorshift128+: fast, and enough for ids and jitter (not for secrets).
uint64_t Worker::random() noexcept {
  uint64_t s1 = rng_state_[0];
  const uint64_t s0 = rng_state_[1];
  rng_state_[0] = s0;
  s1 ^= s1 << 23;
  rng_state_[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
  return rng_state_[1] + s0;
}

void Worker::make_request_id(char out[32]) noexcept {
  static constexpr char kHex[] = "0123456789abcdef";
  for (int half = 0; half < 2; ++half) {
    uint64_t v = random();
    for (int i = 0; i < 16; ++i, v >>= 4) out[half * 16 + i] = kHex[v & 15];
  }
}

bool Worker::allow_error_log() noexcept {
  const uint64_t now = uv_now(&loop_);
  log_tokens_ = std::min(20.0, log_tokens_ + static_cast<double>(now - log_refill_ms_) / 100.0);
  log_refill_ms_ = now;
  if (log_tokens_ < 1.0) {
    ++log_suppressed_;
    return false;
  }
  log_tokens_ -= 1.0;
  if (log_suppressed_ > 0) {
    FB_LOG(Warn, "%llu error lines suppressed (more than 10 a second)",
           static_cast<unsigned long long>(log_suppressed_));
    log_suppressed_ = 0;
  }
  return true;
}

void Worker::write_access_log(const char* line, size_t len) noexcept {
  if (access_log_fd_ < 0) return;
  // One write per line: O_APPEND keeps lines of all workers whole.
  ssize_t ignored = ::write(access_log_fd_, line, len);
  (void)ignored;
}

}  // namespace fusebox::proxy
