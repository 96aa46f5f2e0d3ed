// proxy/upstream_pool.cc: see upstream_pool.h.
#include "proxy/upstream_pool.h"

#include <cstring>

#include "proxy/address_choice.h"
#include "proxy/downstream.h"
#include "proxy/log.h"
#include "proxy/upstream.h"

namespace fusebox::proxy {

UpstreamPool::UpstreamPool(uv_loop_t* loop, const ClusterConfig& config, size_t buffer_bytes,
                           shm::ClusterStats* stats, std::vector<const shm::EndpointHealth*> health)
    : loop_(loop), config_(config), buffer_bytes_(buffer_bytes), stats_(stats), endpoints_(config.endpoints.size()) {
  for (size_t i = 0; i < endpoints_.size(); ++i) {
    Endpoint& e = endpoints_[i];
    e.pool = this;
    if (i < health.size()) e.health = health[i];
    e.host_port = config.endpoints[i];
    e.name = e.host_port.to_string();
    auto* v4 = reinterpret_cast<sockaddr_in*>(&e.address);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&e.address);
    if (uv_ip4_addr(e.host_port.host.c_str(), e.host_port.port, v4) == 0 ||
        uv_ip6_addr(e.host_port.host.c_str(), e.host_port.port, v6) == 0) {
      e.literal = e.resolved = true;
    }
  }
  free_.reserve(64);
}

UpstreamPool::~UpstreamPool() {
  // The worker exits by returning from its loop once every handle closed; what is on the free
  // list has no handle left.
  for (Upstream* u : free_) delete u;
}

void UpstreamPool::start() noexcept {
  bool any_name = false;
  for (Endpoint& e : endpoints_) {
    if (!e.literal) {
      resolve(e);
      any_name = true;
    }
  }
  if (any_name) {
    uv_timer_init(loop_, &refresh_timer_);
    refresh_timer_.data = this;
    const auto every = static_cast<uint64_t>(config_.dns_refresh.count());
    if (every > 0) uv_timer_start(&refresh_timer_, on_refresh, every, every);
    uv_unref(reinterpret_cast<uv_handle_t*>(&refresh_timer_));  // never keeps the loop alive
  }
}

void UpstreamPool::stop() noexcept {
  stopped_ = true;
  if (refresh_timer_.data != nullptr && !uv_is_closing(reinterpret_cast<uv_handle_t*>(&refresh_timer_)))
    uv_close(reinterpret_cast<uv_handle_t*>(&refresh_timer_), nullptr);
  for (Endpoint& e : endpoints_) {
    while (e.idle_head != nullptr) e.idle_head->close();  // close() unlinks it
    if (e.resolving) uv_cancel(reinterpret_cast<uv_req_t*>(&e.resolve_req));
  }
}

void UpstreamPool::resolve(Endpoint& e) noexcept {
  if (e.resolving || stopped_) return;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  e.resolve_req.data = &e;
  char port[8];
  std::snprintf(port, sizeof port, "%u", e.host_port.port);
  if (uv_getaddrinfo(loop_, &e.resolve_req, on_resolved, e.host_port.host.c_str(), port, &hints) == 0)
    e.resolving = true;
}

void UpstreamPool::on_resolved(uv_getaddrinfo_t* req, int status, addrinfo* res) noexcept {
  auto* e = static_cast<Endpoint*>(req->data);
  e->resolving = false;
  if (status == 0 && res != nullptr) {
    const addrinfo* chosen = preferred_address(res);
    std::memcpy(&e->address, chosen->ai_addr, chosen->ai_addrlen);
    if (!e->resolved) FB_LOG(Info, "resolved %s", e->name.c_str());
    e->resolved = true;
  } else if (status != UV_ECANCELED) {
    // Keep the last good address: a DNS hiccup must not take the endpoint away.
    FB_LOG(Warn, "cannot resolve %s: %s%s", e->name.c_str(), uv_strerror(status),
           e->resolved ? " (keeping the last address)" : "");
  }
  if (res != nullptr) uv_freeaddrinfo(res);
}

void UpstreamPool::on_refresh(uv_timer_t* timer) noexcept {
  auto* self = static_cast<UpstreamPool*>(timer->data);
  for (Endpoint& e : self->endpoints_)
    if (!e.literal) self->resolve(e);
}

Upstream* UpstreamPool::acquire(Downstream* d, bool fresh, Failure* failure, const char** detail) noexcept {
  // Round robin over endpoints with an address that the health checks do not say are down; if
  // every one is down, over all of them (as Envoy's panic threshold: a checker that is wrong about
  // every endpoint must not take the whole cluster away). All unresolved: fail.
  Endpoint* chosen = nullptr;
  size_t index = 0;
  for (int pass = 0; pass < 2 && chosen == nullptr; ++pass) {
    for (size_t tries = 0; tries < endpoints_.size(); ++tries) {
      index = next_endpoint_++ % endpoints_.size();
      if (endpoints_[index].resolved && (pass == 1 || endpoints_[index].up())) {
        chosen = &endpoints_[index];
        break;
      }
    }
  }
  if (chosen == nullptr) {
    *failure = Failure::UpstreamUnresolved;
    *detail = endpoints_[0].name.c_str();
    return nullptr;
  }
  if (!fresh && chosen->idle_head != nullptr) {
    Upstream* u = chosen->idle_head;
    unlink_idle(u);
    u->attach(d);
    shm::bump(stats_->upstream_reuses);
    return u;
  }
  if (open_ >= config_.max_connections) {
    // Close an idle connection elsewhere to make room, rather than refuse.
    for (Endpoint& e : endpoints_) {
      if (e.idle_head != nullptr) {
        e.idle_head->close();
        break;
      }
    }
    if (open_ >= config_.max_connections) {
      *failure = Failure::UpstreamOverloaded;
      *detail = "max_connections reached";
      shm::bump(stats_->rejected[static_cast<int>(shm::RejectReason::ConnectionLimit)]);
      return nullptr;
    }
  }
  Upstream* u;
  if (!free_.empty()) {
    u = free_.back();
    free_.pop_back();
  } else {
    u = new Upstream(this, buffer_bytes_);
  }
  const auto timeout = static_cast<uint64_t>(config_.connect_timeout.count());
  shm::bump(stats_->upstream_connects);
  if (const int rc = u->connect(loop_, reinterpret_cast<const sockaddr*>(&chosen->address), index, d, timeout);
      rc != 0) {
    *failure = Failure::UpstreamConnectFailed;
    *detail = uv_strerror(rc);
    shm::bump(stats_->upstream_connect_failures);
    return nullptr;  // u recycles itself once its handles closed; it was never counted
  }
  ++open_;  // given back in on_closed
  stats_->upstream_active.fetch_add(1, std::memory_order_relaxed);
  return u;
}

void UpstreamPool::release(Upstream* u, bool reusable) noexcept {
  Endpoint& e = endpoints_[u->endpoint()];
  if (!reusable || stopped_ || e.idle_count >= config_.max_idle) {
    u->close();
    return;
  }
  u->make_idle();
  u->idle_prev = nullptr;
  u->idle_next = e.idle_head;
  if (e.idle_head != nullptr) e.idle_head->idle_prev = u;
  e.idle_head = u;
  ++e.idle_count;
}

void UpstreamPool::unlink_idle(Upstream* u) noexcept {
  Endpoint& e = endpoints_[u->endpoint()];
  if (u->idle_prev != nullptr) u->idle_prev->idle_next = u->idle_next;
  if (u->idle_next != nullptr) u->idle_next->idle_prev = u->idle_prev;
  if (e.idle_head == u) e.idle_head = u->idle_next;
  u->idle_prev = u->idle_next = nullptr;
  --e.idle_count;
}

void UpstreamPool::on_closed(Upstream* u, bool was_idle) noexcept {
  if (was_idle) unlink_idle(u);
  if (open_ > 0) --open_;
  stats_->upstream_active.fetch_sub(1, std::memory_order_relaxed);
}

void UpstreamPool::on_recycled(Upstream* u) noexcept { free_.push_back(u); }

}  // namespace fusebox::proxy
