// proxy/health_checker.cc: see health_checker.h.
#include "proxy/health_checker.h"

#include <unistd.h>

#include <cstring>
#include <string>

#include "proxy/address_choice.h"
#include "proxy/log.h"
#include "shm/breaker.h"
#include "shm/clock.h"

namespace fusebox::proxy {
namespace {

constexpr size_t kStatusLineBytes = 512;  // more without a CRLF: not an HTTP status line

// "HTTP/1.1 200 OK" -> 200; -1 if it is not a status line.
int status_of(std::string_view line) {
  if (line.size() < 12 || line.substr(0, 7) != "HTTP/1." || line[8] != ' ') return -1;
  int status = 0;
  for (size_t i = 9; i < 12; ++i) {
    if (line[i] < '0' || line[i] > '9') return -1;
    status = status * 10 + (line[i] - '0');
  }
  if (line.size() > 12 && line[12] != ' ') return -1;
  return status;
}

}  // namespace

// One endpoint's checks. Its timer paces them (interval) and bounds each (timeout); its TCP handle
// is opened for a check and closed after it.
class HealthChecker::Probe {
 public:
  Probe(uv_loop_t* loop, shm::Segment& segment, const ClusterConfig& cluster, size_t endpoint,
        const SegmentIndex& index, size_t cluster_index)
      : segment_(segment),
        cluster_name_(cluster.name),
        check_(cluster.health_check),
        endpoint_(cluster.endpoints[endpoint]),
        name_(endpoint_.to_string()),
        health_(segment.endpoint(index.endpoint_health[cluster_index][endpoint])),
        breaker_slot_(segment.slot(index.breaker_slots[cluster_index])) {
    uv_timer_init(loop, &timer_);
    timer_.data = this;
    resolve_req_.data = this;
    const std::string host = check_.host.empty() ? endpoint_.host : check_.host;
    request_ = "GET " + check_.path + " HTTP/1.1\r\nHost: " + host +
               "\r\nUser-Agent: fusebox-health-check\r\nAccept: */*\r\nConnection: close\r\n\r\n";
    // Picks up where the segment says the endpoint is: a restarted fusebox does not forget.
    down_ = health_.down.load(std::memory_order_relaxed) != 0;
    literal_ = uv_ip4_addr(endpoint_.host.c_str(), endpoint_.port, reinterpret_cast<sockaddr_in*>(&address_)) == 0 ||
               uv_ip6_addr(endpoint_.host.c_str(), endpoint_.port, reinterpret_cast<sockaddr_in6*>(&address_)) == 0;
    // The first check soon, spread over the interval so that many endpoints do not all go at once.
    const auto interval = static_cast<uint64_t>(check_.interval.count());
    uv_timer_start(&timer_, on_timer, (reinterpret_cast<uintptr_t>(this) >> 6) % (interval + 1), 0);
  }

  // Stops; deletes itself once every handle is closed.
  void retire() noexcept {
    retired_ = true;
    uv_timer_stop(&timer_);
    if (resolving_) uv_cancel(reinterpret_cast<uv_req_t*>(&resolve_req_));
    if (tcp_open_) close_tcp();
    uv_close(reinterpret_cast<uv_handle_t*>(&timer_), on_closed);
  }

  int fd() const noexcept {
    uv_os_fd_t fd = -1;
    if (tcp_open_) uv_fileno(reinterpret_cast<const uv_handle_t*>(&tcp_), &fd);
    return fd;
  }

 private:
  static void on_closed(uv_handle_t* h) noexcept {
    auto* self = static_cast<Probe*>(h->data);
    if (--self->refs_ == 0 && self->retired_ && !self->resolving_) delete self;
  }

  static void on_timer(uv_timer_t* t) noexcept {
    auto* self = static_cast<Probe*>(t->data);
    if (self->checking_) {
      self->finish(false, "timed out");
    } else {
      self->begin();
    }
  }

  void schedule_next() noexcept {
    if (retired_) return;
    uv_timer_start(&timer_, on_timer, static_cast<uint64_t>(check_.interval.count()), 0);
  }

  // Whether this round's check is worth a connection attempt (health_check.h says why not).
  bool paused() const noexcept {
    const shm::StateWord w(breaker_slot_.state_word.load(std::memory_order_acquire));
    return w.state() == shm::State::Open && breaker_slot_.last_failure_refused.load(std::memory_order_relaxed) != 0;
  }

  void begin() noexcept {
    if (retired_) return;
    if (paused()) {
      schedule_next();
      return;
    }
    if (resolving_) {
      // The last round's lookup has not come back: the resolver is slower than the whole check.
      // It must not be asked again with the same request still in its hands.
      finish(false, "the name lookup is still running");
      return;
    }
    checking_ = true;
    uv_timer_start(&timer_, on_timer, static_cast<uint64_t>(check_.timeout.count()), 0);
    if (literal_) {
      connect();
      return;
    }
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    const std::string port = std::to_string(endpoint_.port);
    if (uv_getaddrinfo(timer_.loop, &resolve_req_, on_resolved, endpoint_.host.c_str(), port.c_str(), &hints) != 0) {
      finish(false, "cannot resolve");
      return;
    }
    resolving_ = true;
  }

  static void on_resolved(uv_getaddrinfo_t* req, int status, addrinfo* res) noexcept {
    auto* self = static_cast<Probe*>(req->data);
    self->resolving_ = false;
    if (self->retired_) {
      if (res != nullptr) uv_freeaddrinfo(res);
      if (self->refs_ == 0) delete self;
      return;
    }
    if (status != 0 || res == nullptr) {
      if (res != nullptr) uv_freeaddrinfo(res);
      if (self->checking_) self->finish(false, "cannot resolve");
      return;
    }
    const addrinfo* chosen = preferred_address(res);
    std::memcpy(&self->address_, chosen->ai_addr, chosen->ai_addrlen);
    uv_freeaddrinfo(res);
    if (self->checking_) self->connect();
  }

  void connect() noexcept {
    uv_tcp_init(timer_.loop, &tcp_);
    tcp_.data = this;
    tcp_open_ = true;
    refs_++;  // the handle, until its close callback
    connect_req_.data = this;
    received_.clear();
    if (const int rc = uv_tcp_connect(&connect_req_, &tcp_, reinterpret_cast<const sockaddr*>(&address_), on_connect);
        rc != 0) {
      finish(false, uv_strerror(rc));
    }
  }

  static void on_connect(uv_connect_t* req, int status) noexcept {
    auto* self = static_cast<Probe*>(req->data);
    if (!self->checking_ || self->retired_ || !self->tcp_open_) return;
    if (status != 0) {
      self->finish(false, uv_strerror(status));
      return;
    }
    uv_buf_t b = uv_buf_init(self->request_.data(), static_cast<unsigned>(self->request_.size()));
    self->write_req_.data = self;
    if (uv_write(&self->write_req_, reinterpret_cast<uv_stream_t*>(&self->tcp_), &b, 1, on_written) != 0 ||
        uv_read_start(reinterpret_cast<uv_stream_t*>(&self->tcp_), on_alloc, on_read) != 0)
      self->finish(false, "cannot send the request");
  }

  static void on_written(uv_write_t*, int) noexcept {}  // a failed write shows as a failed read

  static void on_alloc(uv_handle_t* h, size_t, uv_buf_t* buf) noexcept {
    auto* self = static_cast<Probe*>(h->data);
    *buf = uv_buf_init(self->read_buf_, sizeof self->read_buf_);
  }

  static void on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) noexcept {
    auto* self = static_cast<Probe*>(s->data);
    if (!self->checking_) return;
    if (nread < 0) {
      self->finish(false, nread == UV_EOF ? "closed before a status line" : uv_strerror(static_cast<int>(nread)));
      return;
    }
    self->received_.append(buf->base, static_cast<size_t>(nread));
    const size_t eol = self->received_.find("\r\n");
    if (eol == std::string::npos) {
      if (self->received_.size() > kStatusLineBytes) self->finish(false, "not an HTTP response");
      return;
    }
    const int status = status_of(std::string_view(self->received_).substr(0, eol));
    if (status < 0) {
      self->finish(false, "not an HTTP response");
    } else if (self->check_.is_expected(status)) {
      self->status_ = status;
      self->finish(true, nullptr);
    } else {
      self->status_ = status;
      self->finish(false, "unexpected status");
    }
  }

  void close_tcp() noexcept {
    tcp_open_ = false;
    uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), on_closed);
  }

  // One check's verdict: counted, and the endpoint's health (and maybe the breaker) follows.
  void finish(bool passed, const char* why) noexcept {
    checking_ = false;
    if (tcp_open_) close_tcp();
    if (passed) {
      shm::bump(health_.checks_passed);
      failures_in_a_row_ = 0;
      ++passes_in_a_row_;
      if (down_ && passes_in_a_row_ >= check_.healthy_threshold) mark_up();
    } else {
      shm::bump(health_.checks_failed);
      passes_in_a_row_ = 0;
      ++failures_in_a_row_;
      if (!down_ && failures_in_a_row_ >= check_.unhealthy_threshold) mark_down(why);
    }
    status_ = 0;
    schedule_next();
  }

  void mark_down(const char* why) noexcept {
    down_ = true;
    health_.down.store(1, std::memory_order_release);
    health_.changed_ns.store(shm::MonotonicClock().now_ns(), std::memory_order_relaxed);
    FB_LOG(Warn, "endpoint %s of cluster %s is down: %u health checks failed in a row (last: %s%s%s)", name_.c_str(),
           cluster_name_.c_str(), failures_in_a_row_, why ? why : "failed", status_ > 0 ? ", status " : "",
           status_ > 0 ? std::to_string(status_).c_str() : "");
  }

  void mark_up() noexcept {
    down_ = false;
    const int64_t now = shm::MonotonicClock().now_ns();
    health_.down.store(0, std::memory_order_release);
    health_.changed_ns.store(now, std::memory_order_relaxed);
    FB_LOG(Warn, "endpoint %s of cluster %s is up: %u health checks passed in a row", name_.c_str(),
           cluster_name_.c_str(), passes_in_a_row_);
    // The cluster's breaker, and every route's own breaker on this cluster.
    const shm::Reason reason{shm::Why::HealthCheckPassed, passes_in_a_row_, check_.healthy_threshold};
    for (const Target& t : breakers_) {
      shm::Breaker breaker(*t.slot, t.policy);
      if (breaker.half_open_now(reason, now))
        FB_LOG(Warn, "breaker %s: open -> half_open: %s", t.name.c_str(), shm::describe(reason).c_str());
    }
  }

  // Copies, not references into the config: a retired probe may outlive its generation's
  // config, which the master frees once that generation's workers are gone.
  struct Target {
    shm::BreakerSlot* slot;
    shm::BreakerPolicy policy;
    std::string name;
  };
  std::vector<Target> breakers_;

 public:
  void add_breaker(shm::BreakerSlot& slot, const shm::BreakerPolicy& policy, const std::string& name) {
    breakers_.push_back({&slot, policy, name});
  }

 private:

  shm::Segment& segment_;
  std::string cluster_name_;
  HealthCheckConfig check_;
  HostPort endpoint_;
  std::string name_;
  shm::EndpointHealth& health_;
  shm::BreakerSlot& breaker_slot_;
  std::string request_;
  sockaddr_storage address_{};
  bool literal_ = false;
  uv_timer_t timer_{};
  uv_tcp_t tcp_{};
  uv_connect_t connect_req_{};
  uv_write_t write_req_{};
  uv_getaddrinfo_t resolve_req_{};
  char read_buf_[kStatusLineBytes];
  std::string received_;
  int refs_ = 1;  // the timer
  int status_ = 0;
  uint32_t passes_in_a_row_ = 0;
  uint32_t failures_in_a_row_ = 0;
  bool down_ = false;
  bool checking_ = false;
  bool tcp_open_ = false;
  bool resolving_ = false;
  bool retired_ = false;
};

HealthChecker::~HealthChecker() { stop(); }

void HealthChecker::start(const Config& config, const SegmentIndex& index) {
  stop();
  for (size_t c = 0; c < config.clusters.size(); ++c) {
    const ClusterConfig& cluster = config.clusters[c];
    if (!cluster.health_check.enabled) continue;
    for (size_t e = 0; e < cluster.endpoints.size(); ++e)
    {
      auto* probe = new Probe(loop_, segment_, cluster, e, index, c);
      probe->add_breaker(segment_.slot(index.breaker_slots[c]), cluster.breaker.policy, cluster.name);
      for (size_t l = 0; l < config.listeners.size(); ++l)
        for (size_t r = 0; r < config.listeners[l].routes.size(); ++r)
          if (const Route& route = config.listeners[l].routes[r]; route.own_breaker && route.cluster_index == c)
            probe->add_breaker(segment_.slot(index.route_breakers[l][r]), route.breaker.policy, route.name);
      probes_.push_back(probe);
    }
  }
}

void HealthChecker::stop() noexcept {
  for (Probe* p : probes_) p->retire();
  probes_.clear();
}

void HealthChecker::close_descriptors_in_child() noexcept {
  for (Probe* p : probes_)
    if (const int fd = p->fd(); fd >= 0) ::close(fd);
}

}  // namespace fusebox::proxy
