// proxy/downstream.cc: see downstream.h.
#include "proxy/downstream.h"

#include <linux/sockios.h>
#include <sys/ioctl.h>

#include <cstdio>
#include <cstring>

#include "proxy/config.h"
#include "proxy/head_check.h"
#include "proxy/head_writer.h"
#include "proxy/log.h"
#include "proxy/router.h"
#include "proxy/upstream_pool.h"
#include "proxy/worker.h"
#include "shm/breaker.h"

namespace fusebox::proxy {
namespace {

constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
constexpr uint64_t kDrainIdleGraceMs = 1000;   // how long an idle connection may still send, once draining
constexpr uint64_t kLingerMs = 1000;           // how long a closing connection reads and discards
constexpr uint64_t kLingerBytes = 1024 * 1024; // and how much

}  // namespace

const llhttp_settings_t Downstream::kSettings = HeadParser::settings(on_headers_complete, on_body, on_message_complete);

Downstream::Downstream(Worker* worker, size_t listener, size_t buffer_bytes, size_t out_bytes)
    : worker_(worker),
      listener_(listener),
      listener_stats_(&worker->listener_stats(listener)),
      buf_(new char[buffer_bytes]),
      cap_(buffer_bytes),
      req_out_(new char[out_bytes]),
      resp_out_(new char[out_bytes]),
      out_cap_(out_bytes) {
  count_written_bytes_in(&listener_stats_->bytes_sent);
}

int Downstream::accept(uv_stream_t* server) noexcept {
  config_ = &worker_->config().listeners[listener_];
  phase_ = Phase::Head;
  if (const int rc = open(worker_->loop()); rc != 0) {
    phase_ = Phase::Closed;
    return rc;
  }
  if (const int rc = uv_accept(server, stream()); rc != 0) {
    close();
    return rc;
  }
  uv_tcp_nodelay(&tcp_, 1);
  sockaddr_storage peer{};
  int peer_len = sizeof peer;
  client_address_[0] = '\0';
  if (uv_tcp_getpeername(&tcp_, reinterpret_cast<sockaddr*>(&peer), &peer_len) == 0) {
    if (peer.ss_family == AF_INET6) {
      uv_ip6_name(reinterpret_cast<sockaddr_in6*>(&peer), client_address_, sizeof client_address_);
    } else {
      uv_ip4_name(reinterpret_cast<sockaddr_in*>(&peer), client_address_, sizeof client_address_);
    }
  }
  llhttp_init(&parser_, HTTP_REQUEST, &kSettings);
  parser_.data = static_cast<HeadParser*>(this);
  up_ = nullptr;
  len_ = 0;
  lingered_bytes_ = 0;
  linger_check_ms_ = 0;
  begin_request();
  client_eof_ = draining_ = reading_ = close_after_ = false;
  resume_upstream_ = finish_on_write_ = interim_ = drive_ = driving_ = false;
  response_deadline_ms_ = request_deadline_ms_ = idle_deadline_ms_ = 0;
  // A new connection must send its first request head within header_timeout.
  header_deadline_ms_ = uv_now(worker_->loop()) + static_cast<uint64_t>(config_->header_timeout.count());
  arm_timer();
  update_reading();
  return 0;
}

// An idle keep-alive connection is not closed at once: its client may have sent its next request
// already. It gets kDrainIdleGraceMs for one: a request in that time is answered, with
// Connection: close; then it is closed as idle_timeout would (the same race every keep-alive
// client handles). Waiting for idle_timeout instead would hold every drain, and every pod's
// termination, for the whole drain deadline, and cut the connections then.
void Downstream::drain() noexcept {
  draining_ = true;
  if (phase_ == Phase::Head && len_ == 0 && !writing()) {
    const uint64_t grace = uv_now(worker_->loop()) + kDrainIdleGraceMs;
    if (idle_deadline_ms_ == 0 || grace < idle_deadline_ms_) idle_deadline_ms_ = grace;
    arm_timer();
  }
}

// ---- reading

void Downstream::on_alloc(uv_handle_t* handle, size_t, uv_buf_t* buf) noexcept {
  auto* self = static_cast<Downstream*>(handle->data);
  buf->base = self->buf_.get() + self->len_;
  buf->len = self->cap_ - self->len_;
}

void Downstream::update_reading() noexcept {
  if (phase_ == Phase::Closed) return;
  // While an answer of our own is written before closing, more request bytes are of no use; a
  // proxied exchange keeps reading even when the response started early (the upstream may be
  // echoing the body as it comes).
  const bool answering = phase_ == Phase::Exchange && response_done_ && up_ == nullptr && close_after_;
  const bool want = !client_eof_ && len_ < cap_ && !answering;
  if (want && !reading_) {
    if (uv_read_start(stream(), on_alloc, on_read) != 0) {
      close();
      return;
    }
  } else if (!want && reading_) {
    uv_read_stop(stream());
  }
  reading_ = want;
}

void Downstream::on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t*) noexcept {
  auto* self = static_cast<Downstream*>(stream->data);
  if (nread == 0 || self->phase_ == Phase::Closed) return;
  if (nread < 0) {
    self->on_client_eof(static_cast<int>(nread));
    return;
  }
  self->len_ += static_cast<size_t>(nread);
  shm::bump(self->listener_stats_->bytes_received, static_cast<uint64_t>(nread));
  switch (self->phase_) {
    case Phase::Head:
      if (self->idle_deadline_ms_ != 0) {
        // The first byte of the next request: from now on the head must arrive in time.
        self->idle_deadline_ms_ = 0;
        self->header_deadline_ms_ =
            uv_now(self->worker_->loop()) + static_cast<uint64_t>(self->config_->header_timeout.count());
        self->arm_timer();
      }
      self->drive_ = true;
      self->drive();
      break;
    case Phase::Exchange:
      if (!self->request_done_) {
        self->parse_body();
        self->forward();
      }
      break;
    case Phase::Tunnel:
      self->idle_deadline_ms_ =
          uv_now(self->worker_->loop()) + static_cast<uint64_t>(self->config_->idle_timeout.count());
      self->forward();
      break;
    case Phase::Lingering:
      self->lingered_bytes_ += static_cast<size_t>(nread);
      self->len_ = self->pos_ = 0;  // discarded
      if (self->lingered_bytes_ > kLingerBytes) self->close();
      return;
    case Phase::Closed:
      return;
  }
  self->update_reading();
}

void Downstream::on_client_eof(int status) noexcept {
  client_eof_ = true;
  if (phase_ == Phase::Lingering) {
    close();
    return;
  }
  if (reading_) uv_read_stop(stream());
  reading_ = false;
  // A client that half-closes after a whole request still wants its response (RFC 9112 §9.6),
  // and a tunnel carries the other direction on after a FIN; anything else (a reset, a request
  // cut short) ends the connection now.
  if (phase_ == Phase::Exchange && request_done_ && status == UV_EOF) {
    if (client_finished()) close_after_ = true;
    return;
  }
  if (phase_ == Phase::Tunnel && status == UV_EOF) {
    on_tunnel_progress();
    return;
  }
  close();
}

// Parses heads for as long as requests are waiting in the buffer. A loop, not recursion: a
// pipelined burst of requests that are answered at once (404, 503) would otherwise nest one call
// per request.
void Downstream::drive() noexcept {
  if (driving_) return;
  driving_ = true;
  while (drive_ && phase_ == Phase::Head) {
    drive_ = false;
    parse_head();
  }
  driving_ = false;
}

void Downstream::parse_head() noexcept {
  const size_t max_head = config_->max_header_bytes;
  const llhttp_errno_t err = llhttp_execute(&parser_, buf_.get() + pos_, len_ - pos_);
  if (err == HPE_OK) {
    pos_ = len_;
    if (len_ > max_head || len_ == cap_) {
      reply_error(Failure::HeaderTooLarge, nullptr);
    } else if (client_eof_) {
      close();  // a pipelined head cut short by the client's FIN: the rest will never come
    }
    return;
  }
  if (err == HPE_PAUSED && headers_done_) {
    head_end_ = static_cast<size_t>(llhttp_get_error_pos(&parser_) - buf_.get());
    pos_ = fwd_ = head_end_;
    if (head_end_ > max_head) {
      reply_error(Failure::HeaderTooLarge, nullptr);
      return;
    }
    start_exchange();
    return;
  }
  reply_error(too_many_fields_ ? Failure::HeaderTooLarge : Failure::BadRequest, llhttp_get_error_reason(&parser_));
}

// ---- one exchange

// Forgets everything about the previous request on this connection: an error found before the
// next head is complete must not answer with the old request's id, status or state.
void Downstream::begin_request() noexcept {
  head_.clear();
  phase_ = Phase::Head;
  headers_done_ = request_done_ = request_sent_ = head_sent_ = upstream_ready_ = false;
  response_started_ = response_head_written_ = response_done_ = retried_ = upstream_stopped_taking_ = false;
  body_too_big_ = keep_alive_ = upgrade_ = head_request_ = false;
  tunnel_client_shut_ = tunnel_shutting_ = false;
  status_ = 0;
  failure_ = Failure::Count;
  body_bytes_ = response_bytes_ = 0;
  request_id_len_ = 0;
  breaker_pending_ = false;
  series_ = listener_stats_;
  routed_ = counted_ = false;
  deferred_failure_ = Failure::Count;
  head_end_ = fwd_ = pos_ = 0;
  exchange_start_ms_ = uv_now(worker_->loop());
}

// The client's request id passes through (cut to what our storage holds); else a new one. Works
// on a partial head too, so an error found mid-head still names the client's id.
void Downstream::ensure_request_id() noexcept {
  if (request_id_len_ != 0) return;
  // The client's id is kept if it is a plain token (UUIDs, hex, base64url, trace ids) of at most
  // 128 bytes: it is written into logs and JSON, where a quote or a control byte must not go.
  // Else fusebox's own id replaces it, upstream too, so every hop names the request alike.
  const std::string_view id = trim_ows(head_.find("x-request-id"));
  const bool plain = !id.empty() && id.size() <= sizeof request_id_ &&
                     id.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:+/=-") ==
                         std::string_view::npos;
  if (plain) {
    request_id_len_ = id.size();
    std::memcpy(request_id_, id.data(), request_id_len_);
  } else {
    worker_->make_request_id(request_id_);
    request_id_len_ = 32;
  }
}

void Downstream::start_exchange() noexcept {
  phase_ = Phase::Exchange;
  exchange_start_ms_ = uv_now(worker_->loop());
  header_deadline_ms_ = idle_deadline_ms_ = 0;
  ensure_request_id();
  keep_alive_ = llhttp_should_keep_alive(&parser_) != 0;
  upgrade_ = llhttp_get_upgrade(&parser_) != 0;

  if (const char* problem = check_head_lines({buf_.get(), head_end_})) {
    reply_error(Failure::BadRequest, problem);
    return;
  }
  if (const char* problem = check_request_line(parser_)) {
    reply_error(Failure::BadRequest, problem);
    return;
  }
  const auto method = static_cast<llhttp_method_t>(llhttp_get_method(&parser_));
  if (method == HTTP_CONNECT) {
    reply_error(Failure::MethodNotAllowed, nullptr);
    return;
  }
  const bool http11 = parser_.http_major == 1 && parser_.http_minor >= 1;
  if (http11 && !head_.has("host")) {
    reply_error(Failure::BadRequest, "HTTP/1.1 request without a Host header");
    return;
  }
  head_request_ = method == HTTP_HEAD;
  const bool has_body = (parser_.flags & F_CHUNKED) != 0 ||
                        ((parser_.flags & F_CONTENT_LENGTH) != 0 && parser_.content_length > 0);
  if (config_->max_body_bytes > 0 && (parser_.flags & F_CONTENT_LENGTH) != 0 &&
      parser_.content_length > config_->max_body_bytes) {
    reply_error(Failure::BodyTooLarge, nullptr);
    return;
  }
  // What of the body came with the head is parsed now (not forwarded yet): a bodiless request
  // completes here, so an answer of ours (404) can keep the connection.
  llhttp_resume(&parser_);
  parse_body();
  if (phase_ != Phase::Exchange || response_started_) return;  // a bad body was answered already
  if (client_eof_ && !request_done_) {
    // A pipelined request whose body was cut short by the client's FIN: the rest will never
    // come, and sending the part we have would hold an upstream (and its breaker) to a timeout.
    close();
    return;
  }
  const auto route = match_route(*config_, head_.find("host"), head_.target);
  if (!route) {
    reply_error(Failure::NoRoute, nullptr);
    return;
  }
  cluster_ = config_->routes[*route].cluster_index;
  series_ = &worker_->route_stats(listener_, *route);
  routed_ = true;
  const ClusterConfig& cluster = worker_->pool(cluster_).config();
  if (const Route& r = config_->routes[*route]; r.own_breaker) {
    breaker_slot_ = &worker_->route_breaker_slot(listener_, *route);
    breaker_ = &r.breaker;
    breaker_name_ = &r.name;
  } else {
    breaker_slot_ = &worker_->breaker_slot(cluster_);
    breaker_ = &cluster.breaker;
    breaker_name_ = &cluster.name;
  }

  // The breaker decides before anything of the request goes anywhere: a rejected request never
  // touches the upstream or a pooled connection.
  {
    shm::Breaker breaker(*breaker_slot_, breaker_->policy);
    const int64_t now = worker_->now_ns();
    admission_ = breaker.admit(now);
    log_transition(breaker);
    if (admission_.kind == shm::Admission::Rejected) {
      reply_rejected(breaker.state());
      return;
    }
    breaker_pending_ = true;
    call_start_ns_ = now;
  }

  const UpstreamRequestShape shape{
      .client_address = client_address_,
      .request_id = {request_id_, request_id_len_},
      .upgrade = upgrade_,
      .default_host = worker_->pool(cluster_).endpoint_name(0),
  };
  req_out_len_ = write_upstream_request(req_out_.get(), out_cap_, head_, shape);
  if (req_out_len_ == 0) {
    reply_error(Failure::HeaderTooLarge, "the head grew too large with the forwarding headers");
    return;
  }
  request_deadline_ms_ = exchange_start_ms_ + static_cast<uint64_t>(cluster.request_timeout.count());
  arm_timer();

  // fusebox answers 100-continue itself (the Expect field is not forwarded): the route exists
  // and the body fits, so the client may send it. HTTP/1.0 clients never get a 1xx.
  const bool expect_continue = has_body && http11 && iequals(trim_ows(head_.find("expect")), "100-continue");
  if (expect_continue && !request_done_ && pos_ == len_) {
    uv_buf_t b = uv_buf_init(const_cast<char*>(kContinue.data()), static_cast<unsigned>(kContinue.size()));
    // 25 bytes on an idle socket: a client whose socket cannot take them at once is gone.
    if (uv_try_write(stream(), &b, 1) != static_cast<int>(kContinue.size())) {
      close();
      return;
    }
  }
  connect_upstream(false);
}

void Downstream::connect_upstream(bool fresh) noexcept {
  Failure failure = Failure::Count;
  const char* detail = nullptr;
  upstream_ready_ = false;
  Upstream* u = worker_->pool(cluster_).acquire(this, fresh, &failure, &detail);
  if (u == nullptr) {
    reply_error(failure, detail);
    return;
  }
  up_ = u;
  u->expect_response(head_request_);
  if (u->state() == Upstream::State::Busy) on_upstream_connected();  // a pooled connection
}

void Downstream::on_upstream_connected() noexcept {
  upstream_ready_ = true;
  forward();
  update_reading();
}

void Downstream::parse_body() noexcept {
  if (request_done_) return;
  const llhttp_errno_t err = llhttp_execute(&parser_, buf_.get() + pos_, len_ - pos_);
  if (err == HPE_OK) {
    pos_ = len_;
    return;
  }
  if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
    // The request ended; the parser stays paused so that pipelined bytes wait their turn.
    pos_ = static_cast<size_t>(llhttp_get_error_pos(&parser_) - buf_.get());
    request_done_ = true;
    return;
  }
  reply_error(body_too_big_ ? Failure::BodyTooLarge : Failure::BadRequest, llhttp_get_error_reason(&parser_));
}

// Hands the upstream what it has not had yet: the head, then the parsed body bytes (in a tunnel,
// every byte read). One write at a time; on_upstream_written calls back here.
void Downstream::forward() noexcept {
  if ((phase_ != Phase::Exchange && phase_ != Phase::Tunnel) || up_ == nullptr || !upstream_ready_ ||
      upstream_stopped_taking_ ||
      up_->writing())
    return;
  uv_buf_t bufs[2];
  unsigned n = 0;
  if (!head_sent_) bufs[n++] = uv_buf_init(req_out_.get(), static_cast<unsigned>(req_out_len_));
  const size_t end = phase_ == Phase::Tunnel ? len_ : pos_;
  if (fwd_ < end) bufs[n++] = uv_buf_init(buf_.get() + fwd_, static_cast<unsigned>(end - fwd_));
  if (n > 0) {
    head_sent_ = true;
    fwd_ = end;
    const int rc = up_->send(bufs, n);
    if (rc < 0) {
      upstream_write_failed(rc);
      return;
    }
    if (rc == 1) return;  // on_upstream_written goes on
    reclaim();
  }
  if (phase_ == Phase::Tunnel) {
    on_tunnel_progress();  // all written at once: a FIN from the client may follow it now
    return;
  }
  request_written();
}

void Downstream::on_upstream_written(int status) noexcept {
  if (status < 0) {
    upstream_write_failed(status);
    return;
  }
  reclaim();
  forward();
  if (phase_ == Phase::Tunnel) on_tunnel_progress();
  if (phase_ != Phase::Closed) update_reading();
}

// A tunnel ends when both directions have: each FIN is passed on once every byte before it was
// written, and the connections close when both FINs went through.
void Downstream::on_tunnel_progress() noexcept {
  if (phase_ != Phase::Tunnel) return;
  if (up_ == nullptr) {
    close();
    return;
  }
  if (client_eof_ && fwd_ == len_ && !up_->writing() && !up_->shutting()) up_->shutdown_write();
  if (up_ == nullptr) return;  // shutdown_write failed: everything closed
  if (up_->eof() && !writing() && !tunnel_client_shut_ && !tunnel_shutting_) {
    shutdown_req_.data = this;
    if (uv_shutdown(&shutdown_req_, stream(), on_shutdown) != 0) {
      release_upstream();
      close();
      return;
    }
    ref();  // the request points at us until its callback
    tunnel_shutting_ = true;
  }
  if (client_eof_ && up_->write_shut() && up_->eof() && tunnel_client_shut_) {
    release_upstream();
    close();
  }
}

void Downstream::upstream_write_failed(int status) noexcept {
  if (status == UV_ECANCELED || up_ == nullptr) return;  // we closed it ourselves
  if (phase_ == Phase::Tunnel) {
    // Nothing the client sends can reach the upstream any more: end the tunnel now, or a client
    // that keeps sending would keep a dead tunnel open (each byte refreshes the idle deadline).
    // A write to the client still on its way (the upstream's last bytes) finishes first:
    // on_tunnel_progress closes once it is done.
    release_upstream();
    if (!writing()) close();
    return;
  }
  if (phase_ == Phase::Exchange && (body_bytes_ > 0 || !request_done_)) {
    // An upstream may answer an upload early (413, 401) and close without reading the rest, so
    // the body's write fails, often before the answer is read. The answer is worth more than a
    // 502: send no more and let the read side decide (the answer, or EOF or a reset: 502).
    upstream_stopped_taking_ = true;
    return;
  }
  Upstream* u = up_;
  const bool may_retry = u->reused() && !response_started_;
  up_ = nullptr;
  u->abandon();
  on_upstream_failed(Failure::UpstreamReset, uv_strerror(status), may_retry);
}

// Once the whole request is written, the wait for the response head starts.
void Downstream::request_written() noexcept {
  if (phase_ != Phase::Exchange || request_sent_ || !request_done_ || fwd_ != pos_ || !head_sent_) return;
  request_sent_ = true;
  if (!response_started_) {
    const ClusterConfig& cluster = worker_->pool(cluster_).config();
    response_deadline_ms_ = uv_now(worker_->loop()) + static_cast<uint64_t>(cluster.response_header_timeout.count());
    arm_timer();
  }
}

// Body bytes the upstream has taken leave the buffer, so a large body streams through a small
// buffer. The head stays (its views are used until the exchange ends).
void Downstream::reclaim() noexcept {
  if (up_ != nullptr && up_->writing()) return;
  if (phase_ == Phase::Tunnel) {
    if (fwd_ == len_) len_ = pos_ = fwd_ = 0;
    return;
  }
  if (fwd_ == pos_ && pos_ > head_end_) {
    std::memmove(buf_.get() + head_end_, buf_.get() + pos_, len_ - pos_);
    len_ -= pos_ - head_end_;
    pos_ = fwd_ = head_end_;
  }
}

// RFC 9110 §9.2.2: a request that may have reached the upstream goes again only if repeating it
// changes nothing (a POST that failed on a reused connection may have been executed).
bool Downstream::idempotent(llhttp_method_t m) noexcept {
  return m == HTTP_GET || m == HTTP_HEAD || m == HTTP_OPTIONS || m == HTTP_TRACE || m == HTTP_PUT ||
         m == HTTP_DELETE;
}

void Downstream::on_upstream_failed(Failure failure, const char* detail, bool may_retry) noexcept {
  up_ = nullptr;
  upstream_ready_ = false;
  if (phase_ != Phase::Exchange) return;
  // A pooled connection the upstream had closed: the request never reached it, so it may go
  // again, once, on a new connection, if it has no body (a body may be partly gone already).
  if (may_retry && !retried_ && !response_started_ && request_done_ && body_bytes_ == 0 &&
      (parser_.flags & F_CHUNKED) == 0 && idempotent(static_cast<llhttp_method_t>(parser_.method))) {
    retried_ = true;
    head_sent_ = request_sent_ = false;
    response_deadline_ms_ = 0;
    connect_upstream(true);
    return;
  }
  reply_error(failure, detail);
}

// ---- the response

bool Downstream::on_response_head(const HttpHead& head, int status, bool close_delimited, bool* dechunk) noexcept {
  if (phase_ != Phase::Exchange) return false;
  const bool http10 = parser_.http_major == 1 && parser_.http_minor == 0;
  if (writing()) {
    // An earlier interim (1xx) head is still on its way: rare enough to end the connection.
    release_upstream();
    close();
    return false;
  }
  if (status >= 100 && status < 200 && status != 101) {
    if (http10) return true;  // RFC 9110 §15.2: no 1xx to an HTTP/1.0 client
    resp_out_len_ = write_downstream_response(resp_out_.get(), out_cap_, head, {.status = status});
    interim_ = resp_out_len_ > 0;
    return true;
  }
  if (status == 101 && !upgrade_) {
    release_upstream();
    reply_error(Failure::UpstreamBadResponse, "101 Switching Protocols to a request that asked for no upgrade");
    return false;
  }
  response_deadline_ms_ = 0;
  arm_timer();
  status_ = status;
  *dechunk = http10;
  // Close after this response when the client or we want it, when part of the request was not
  // read (an early response), or when the body is delimited by closing (RFC 9112 §6.3).
  // (A request body still arriving does not close by itself: finish_exchange closes if it has
  // not ended by the end of the response, without announcing it early to a client that may
  // finish sending in time.)
  // A request that asked for an upgrade and got none ends the connection too (finish_exchange):
  // the client must hear it, or it sends its next request into a closing socket.
  close_after_ = !keep_alive_ || draining_ || client_finished() || close_delimited ||
                 (http10 && head.has("transfer-encoding")) || (upgrade_ && status != 101) || close_after_;
  const DownstreamResponseShape shape{
      .status = status,
      .close = close_after_,
      .http10_keep_alive = http10 && !close_after_,
      .dechunk = http10,
      .upgrade = status == 101,
  };
  resp_out_len_ = write_downstream_response(resp_out_.get(), out_cap_, head, shape);
  if (resp_out_len_ == 0) {
    release_upstream();
    reply_error(Failure::UpstreamBadResponse, "response head too large");  // a failure, recorded there
    return false;
  }
  // The answer the breaker learns from: its status, once the head is known to be passable.
  record_outcome(breaker_->is_failure_status(status));
  response_started_ = true;
  response_head_written_ = false;
  return true;
}

Flow Downstream::on_response_data(const char* data, size_t len) noexcept {
  if (phase_ == Phase::Closed) return Flow::Aborted;
  if (phase_ == Phase::Tunnel)  // traffic either way keeps a tunnel alive
    idle_deadline_ms_ = uv_now(worker_->loop()) + static_cast<uint64_t>(config_->idle_timeout.count());
  response_bytes_ += len;
  return send_response(data, len, up_);
}

// Writes the response head if it has not gone yet, and data (which lives in `source`'s buffer).
Flow Downstream::send_response(const char* data, size_t len, Conn* source) noexcept {
  uv_buf_t bufs[2];
  unsigned n = 0;
  if (response_started_ && !response_head_written_) {
    bufs[n++] = uv_buf_init(resp_out_.get(), static_cast<unsigned>(resp_out_len_));
    response_head_written_ = true;
  }
  if (len > 0) bufs[n++] = uv_buf_init(const_cast<char*>(data), static_cast<unsigned>(len));
  if (n == 0) return Flow::Sent;
  return write_to_client(bufs, n, source);
}

// One write to the client, as a Flow for the upstream: Aborted (the client is gone: everything
// closed), Blocked (pending: see write_pending) or Sent.
Flow Downstream::write_to_client(uv_buf_t* bufs, unsigned n, Conn* source) noexcept {
  const int rc = write(bufs, n, source);
  if (rc < 0) {
    release_upstream();
    close();
    return Flow::Aborted;
  }
  if (rc == 1) {
    write_pending();
    return Flow::Blocked;
  }
  return Flow::Sent;
}

// A write to the client did not go out at once. Whoever owns the bytes, the upstream (if one is
// attached) waits for on_write_done, or its next bytes would find this write still in flight;
// and the client must take them within idle_timeout, or it is gone.
void Downstream::write_pending() noexcept {
  resume_upstream_ = up_ != nullptr;
  write_deadline_ms_ = uv_now(worker_->loop()) + static_cast<uint64_t>(config_->idle_timeout.count());
  arm_timer();
}

Flow Downstream::on_response_complete(bool informational) noexcept {
  if (phase_ != Phase::Exchange) return Flow::Aborted;
  if (informational) {
    if (!interim_) return Flow::Sent;
    interim_ = false;
    uv_buf_t b = uv_buf_init(resp_out_.get(), static_cast<unsigned>(resp_out_len_));
    return write_to_client(&b, 1, nullptr);
  }
  up_ = nullptr;  // the upstream went back to its pool (or closed) before telling us
  response_done_ = true;
  response_deadline_ms_ = request_deadline_ms_ = 0;
  if (send_response(nullptr, 0, nullptr) == Flow::Blocked || writing()) {
    finish_on_write_ = true;  // a bodiless response's head is still on its way
    return Flow::Blocked;
  }
  if (phase_ == Phase::Exchange) finish_exchange();
  return Flow::Sent;
}

void Downstream::on_response_aborted(const char* why) noexcept {
  up_ = nullptr;
  if (phase_ == Phase::Closed) return;
  // The upstream cut the response short: its failure, not the client's going away.
  if (failure_ == Failure::Count) failure_ = Failure::UpstreamReset;
  if (phase_ == Phase::Exchange && worker_->allow_error_log()) {
    FB_LOG(Warn, "response aborted request_id=%.*s status=%d: %s", static_cast<int>(request_id_len_),
           request_id_, status_, why);
  }
  close();
}

Flow Downstream::on_tunnel_ready() noexcept {
  if (phase_ != Phase::Exchange) return Flow::Aborted;
  phase_ = Phase::Tunnel;
  response_done_ = true;
  response_deadline_ms_ = request_deadline_ms_ = 0;
  idle_deadline_ms_ = uv_now(worker_->loop()) + static_cast<uint64_t>(config_->idle_timeout.count());
  arm_timer();
  count_request();
  log_access();
  const Flow head = send_response(nullptr, 0, nullptr);
  if (head == Flow::Aborted) return head;
  // Bytes the client sent after its upgrade request belong to the tunnel, after whatever of the
  // request's own body was not written yet (fwd_ stays where the request left off).
  forward();
  update_reading();
  return head;
}

void Downstream::on_write_done(int status) noexcept {
  write_deadline_ms_ = 0;
  if (phase_ == Phase::Closed) return;
  if (status < 0) {
    release_upstream();
    close();
    return;
  }
  if (deferred_failure_ != Failure::Count) {
    const Failure f = deferred_failure_;
    deferred_failure_ = Failure::Count;
    reply_error(f, deferred_detail_);
    return;
  }
  if (resume_upstream_) {
    resume_upstream_ = false;
    if (up_ != nullptr) up_->resume();
    on_tunnel_progress();
    return;
  }
  if (finish_on_write_) {
    finish_on_write_ = false;
    finish_exchange();
  }
}

void Downstream::finish_exchange() noexcept {
  count_request();
  log_access();
  if (close_after_ || !keep_alive_ || !request_done_ || draining_ || client_finished() || upgrade_) {
    linger();
    return;
  }
  next_request();
}

// Closing a socket that still has unread bytes from the client makes the kernel reset the
// connection, and a reset destroys what of our response was still on its way (a client that
// pipelined, or an upload we answered early). So, as nginx's lingering_close: send FIN once
// our writes are out, then read and discard for a bounded time, until the client closes too.
void Downstream::linger() noexcept {
  if (phase_ == Phase::Closed) return;
  release_upstream();
  if (client_eof_) {
    close();
    return;
  }
  phase_ = Phase::Lingering;
  header_deadline_ms_ = response_deadline_ms_ = request_deadline_ms_ = 0;
  idle_deadline_ms_ = uv_now(worker_->loop()) + kLingerMs;
  arm_timer();
  shutdown_req_.data = this;
  if (uv_shutdown(&shutdown_req_, stream(), on_shutdown) != 0) {
    close();
    return;
  }
  ref();  // the request points at us until its callback
  len_ = pos_ = 0;
  update_reading();
}

// Our FIN is queued behind the last response. Once the client has acknowledged every byte
// (nothing left in the kernel's send queue), a reset can no longer destroy anything: close.
void Downstream::on_shutdown(uv_shutdown_t* req, int status) noexcept {
  auto* self = static_cast<Downstream*>(req->data);
  if (self->phase_ == Phase::Lingering) self->linger_check();
  if (self->phase_ == Phase::Tunnel) {
    self->tunnel_shutting_ = false;
    self->tunnel_client_shut_ = true;
    if (status < 0) {
      self->release_upstream();
      self->close();
    } else {
      self->on_tunnel_progress();
    }
  }
  self->unref();
}

void Downstream::linger_check() noexcept {
  uv_os_fd_t fd;
  int unacked = 0;
  if (uv_fileno(reinterpret_cast<uv_handle_t*>(&tcp_), &fd) != 0 || ioctl(fd, SIOCOUTQ, &unacked) != 0 || unacked == 0) {
    close();
    return;
  }
  // Look again shortly; the linger deadline (idle_deadline_ms_) still bounds it.
  linger_check_ms_ = uv_now(worker_->loop()) + 10;
  arm_timer();
}

void Downstream::next_request() noexcept {
  // Pipelined bytes move to the front, so the next head starts at 0 and is contiguous.
  const size_t rest = len_ - pos_;
  std::memmove(buf_.get(), buf_.get() + pos_, rest);
  len_ = rest;
  begin_request();
  llhttp_resume(&parser_);
  const uint64_t now = uv_now(worker_->loop());
  if (len_ > 0) {
    header_deadline_ms_ = now + static_cast<uint64_t>(config_->header_timeout.count());
    drive_ = true;
  } else {
    idle_deadline_ms_ = now + static_cast<uint64_t>(config_->idle_timeout.count());
  }
  arm_timer();
  update_reading();
  drive();
}

// ---- the breaker

// The upstream's failures (not the client's, not ours) are what a breaker counts.
bool Downstream::counts_against_upstream(Failure f) noexcept {
  switch (f) {
    case Failure::UpstreamUnresolved:
    case Failure::UpstreamConnectFailed:
    case Failure::UpstreamReset:
    case Failure::UpstreamBadResponse:
    case Failure::UpstreamConnectTimeout:
    case Failure::ResponseHeaderTimeout:
    case Failure::RequestTimeout:
      return true;
    default:
      return false;
  }
}

// Once per admitted call: its outcome, and how long the upstream took to answer.
void Downstream::record_outcome(bool failure, bool refused) noexcept {
  if (!breaker_pending_) return;
  breaker_pending_ = false;
  shm::Breaker breaker(*breaker_slot_, breaker_->policy);
  const int64_t now = worker_->now_ns();
  const int64_t duration_ns = now - call_start_ns_;
  breaker.record(admission_, {.failure = failure, .duration_ns = duration_ns, .refused = refused}, now,
                 worker_->random());
  log_transition(breaker);
  shm::ClusterStats& stats = worker_->pool(cluster_).stats();
  shm::bump(stats.duration_buckets[shm::duration_bucket(duration_ns)]);
  shm::bump(stats.duration_sum_ns, static_cast<uint64_t>(std::max<int64_t>(0, duration_ns)));
  shm::bump(stats.duration_count);
}

// An admitted call that ends with no outcome: a trial's permit goes back (see Breaker::abandon).
void Downstream::abandon_admission() noexcept {
  if (!breaker_pending_) return;
  breaker_pending_ = false;
  // Once the request went out, the upstream has had its trial: the permit stays spent, or
  // clients that give up quickly would let any number of trials through.
  if (!head_sent_) shm::Breaker(*breaker_slot_, breaker_->policy).abandon(admission_);
}

void Downstream::log_transition(const shm::Breaker& breaker) noexcept {
  if (!breaker.changed()) return;
  const shm::Transition& t = breaker.last_change();
  FB_LOG(Warn, "breaker %s: %s -> %s: %s", breaker_name_->c_str(), shm::to_string(t.from),
         shm::to_string(t.to), shm::describe(t.reason).c_str());
}

// ---- errors, timers, closing

void Downstream::reply_error(Failure failure, const char* detail) noexcept {
  if (phase_ == Phase::Closed) return;
  if (counts_against_upstream(failure)) {
    record_outcome(true, failure == Failure::UpstreamConnectFailed);
  } else {
    abandon_admission();  // ours or the client's doing: nothing learned about the upstream
  }
  if (writing() && !response_started_) {
    // An interim (1xx) head is still on its way to the client: this answer follows it once it
    // is written (its bytes cannot be overwritten, nor the client left with half a head).
    deferred_failure_ = failure;
    deferred_detail_ = detail;
    release_upstream();
    response_deadline_ms_ = request_deadline_ms_ = 0;
    arm_timer();  // the write deadline: on_timer, which may have called us, re-arms nothing
    return;
  }
  const FailureInfo& f = info(failure);
  failure_ = failure;
  ensure_request_id();
  if (worker_->allow_error_log()) {
    FB_LOG(Warn, "%d %.*s request_id=%.*s client=%s %.*s %.*s: %.*s%s%s", f.status,
           static_cast<int>(f.label.size()), f.label.data(), static_cast<int>(request_id_len_), request_id_,
           client_address_, static_cast<int>(std::min<size_t>(head_.method.size(), 16)), head_.method.data(),
           static_cast<int>(std::min<size_t>(head_.target.size(), 256)), head_.target.data(),
           static_cast<int>(f.text.size()), f.text.data(), detail ? ": " : "", detail ? detail : "");
  }
  if (response_started_) {
    // The client has part of a response already: the only honest signal left is closing.
    release_upstream();
    close();
    return;
  }
  release_upstream();
  if (phase_ == Phase::Head) {
    phase_ = Phase::Exchange;
    request_done_ = false;
  }
  status_ = f.status;
  close_after_ = !keeps_connection(failure) || !request_done_ || !keep_alive_ || draining_ || client_finished() ||
                 upgrade_;
  resp_out_len_ = format_error_response(resp_out_.get(), out_cap_, failure, detail ? detail : "",
                                        {request_id_, request_id_len_}, close_after_);
  send_own_response();
}

// The breaker is open: the configured fallback, else 503 with Retry-After (seconds until the next
// trial call) and a header that names the breaker. Not logged per request: the transition that
// opened the breaker was, with its reason.
void Downstream::reply_rejected(shm::State state) noexcept {
  const ClusterConfig& cluster = worker_->pool(cluster_).config();
  failure_ = Failure::BreakerOpen;
  shm::bump(worker_->pool(cluster_).stats().rejected[static_cast<int>(shm::RejectReason::Breaker)]);
  release_upstream();
  close_after_ = !request_done_ || !keep_alive_ || draining_ || client_finished() || upgrade_;
  char extra[256];
  int n = std::snprintf(extra, sizeof extra, "x-fusebox-breaker: %s; state=%s\r\n", breaker_name_->c_str(),
                        state == shm::State::HalfOpen ? "half_open" : shm::to_string(state));
  if (admission_.retry_after_ns > 0) {
    const long long seconds = (admission_.retry_after_ns + 999'999'999) / 1'000'000'000;
    n += std::snprintf(extra + n, sizeof extra - static_cast<size_t>(n), "Retry-After: %lld\r\n", seconds);
  }
  const std::string_view extra_headers(extra, static_cast<size_t>(std::max(0, n)));
  if (cluster.fallback.enabled) {
    status_ = cluster.fallback.status;
    HeadWriter w(resp_out_.get(), out_cap_);
    w << "HTTP/1.1 " << static_cast<unsigned long long>(status_) << " " << reason_phrase(status_) << "\r\n";
    for (const auto& [name, value] : cluster.fallback.headers) w.header(name, value);
    w << "Content-Length: " << static_cast<unsigned long long>(cluster.fallback.body.size()) << "\r\n"
      << extra_headers << "x-fusebox-fallback: breaker_open\r\n" << (close_after_ ? "Connection: close\r\n" : "")
      << "\r\n" << cluster.fallback.body;
    resp_out_len_ = w.size();
  } else {
    status_ = info(Failure::BreakerOpen).status;
    resp_out_len_ = format_error_response(resp_out_.get(), out_cap_, Failure::BreakerOpen, *breaker_name_,
                                          {request_id_, request_id_len_}, close_after_, extra_headers);
  }
  send_own_response();
}

// Writes resp_out_, an answer of fusebox's own (error, rejection, fallback), and ends the exchange.
void Downstream::send_own_response() noexcept {
  if (writing()) {
    // An interim (1xx) head is still being written: this answer cannot follow it in order.
    close();
    return;
  }
  if (head_request_) {
    // A response to HEAD is its head alone (RFC 9110 §9.3.2), Content-Length kept: a body would
    // be read as the next response by a client that keeps the connection.
    const std::string_view answer(resp_out_.get(), resp_out_len_);
    if (const size_t end = answer.find("\r\n\r\n"); end != std::string_view::npos) resp_out_len_ = end + 4;
  }
  response_started_ = response_head_written_ = true;
  response_done_ = true;
  response_deadline_ms_ = request_deadline_ms_ = header_deadline_ms_ = 0;
  arm_timer();
  uv_buf_t b = uv_buf_init(resp_out_.get(), static_cast<unsigned>(resp_out_len_));
  const int rc = write(&b, 1, nullptr);
  if (rc < 0) {
    close();
  } else if (rc == 1) {
    finish_on_write_ = true;
    write_pending();
  } else {
    finish_exchange();
  }
}

void Downstream::arm_timer() noexcept {
  uint64_t first = 0;
  for (const uint64_t d :
       {header_deadline_ms_, idle_deadline_ms_, response_deadline_ms_, request_deadline_ms_, write_deadline_ms_,
        linger_check_ms_})
    if (d != 0 && (first == 0 || d < first)) first = d;
  arm_timer_at(first);  // a timer due earlier stays: on_timer finds nothing passed and re-arms
}

void Downstream::on_timer() noexcept {
  if (phase_ == Phase::Closed) return;
  const uint64_t now = uv_now(worker_->loop());
  auto passed = [now](uint64_t deadline) { return deadline != 0 && now >= deadline; };
  if (phase_ == Phase::Lingering && passed(linger_check_ms_) && !passed(idle_deadline_ms_)) {
    linger_check_ms_ = 0;
    linger_check();
    return;
  }
  if (passed(write_deadline_ms_)) {
    // The client has not taken a byte of what we wrote for idle_timeout: it is gone or stuck.
    release_upstream();
    close();
  } else if (passed(idle_deadline_ms_)) {
    close();  // an idle keep-alive connection or tunnel: nothing to say
  } else if (passed(header_deadline_ms_)) {
    if (phase_ == Phase::Head && len_ > 0) {
      reply_error(Failure::HeaderTimeout, nullptr);
    } else {
      close();
    }
  } else if (passed(response_deadline_ms_)) {
    reply_error(Failure::ResponseHeaderTimeout, nullptr);
  } else if (passed(request_deadline_ms_)) {
    reply_error(Failure::RequestTimeout, nullptr);
  } else {
    arm_timer();
  }
}

void Downstream::release_upstream() noexcept {
  if (up_ == nullptr) return;
  Upstream* u = up_;
  up_ = nullptr;
  u->abandon();
}

void Downstream::close() noexcept {
  if (phase_ == Phase::Closed) return;
  abandon_admission();  // the client went before the upstream answered: no outcome to record
  if (phase_ == Phase::Exchange) count_request();  // cut short: the client went, or the upstream
  phase_ = Phase::Closed;
  release_upstream();
  reading_ = false;
  close_handles();
}

void Downstream::recycle() noexcept { worker_->on_downstream_recycled(this); }

// Once per request that began an exchange (proxied, answered by us, or cut short).
void Downstream::count_request() noexcept {
  if (counted_) return;
  counted_ = true;
  shm::bump(series_->requests[shm::code_class_index(status_)][static_cast<int>(outcome())]);
}

shm::RequestOutcome Downstream::outcome() const noexcept {
  using O = shm::RequestOutcome;
  if (failure_ == Failure::BreakerOpen || failure_ == Failure::UpstreamOverloaded) return O::Rejected;
  if (failure_ != Failure::Count) return counts_against_upstream(failure_) ? O::Failure : O::Error;
  if (!response_done_) return O::Cancelled;
  if (routed_ && breaker_->is_failure_status(status_)) return O::Failure;
  return O::Success;
}

void Downstream::log_access() noexcept {
  if (!worker_->access_log_enabled()) return;
  char line[1024];
  const uint64_t ms = uv_now(worker_->loop()) - exchange_start_ms_;
  const std::string_view error = failure_ == Failure::Count ? std::string_view("") : info(failure_).label;
  // Method and target are tokens llhttp validated (no quotes or control bytes); the target is
  // cut to keep one line bounded.
  const int n = std::snprintf(
      line, sizeof line,
      "{\"request_id\":\"%.*s\",\"client\":\"%s\",\"listener\":\"%s\",\"method\":\"%.*s\",\"target\":\"%.*s\","
      "\"status\":%d,\"error\":\"%.*s\",\"request_body_bytes\":%llu,\"response_body_bytes\":%llu,"
      "\"duration_ms\":%llu}\n",
      static_cast<int>(request_id_len_), request_id_, client_address_, config_->name.c_str(),
      static_cast<int>(std::min<size_t>(head_.method.size(), 16)), head_.method.data(),
      static_cast<int>(std::min<size_t>(head_.target.size(), 512)), head_.target.data(), status_,
      static_cast<int>(error.size()), error.data(), static_cast<unsigned long long>(body_bytes_),
      static_cast<unsigned long long>(response_bytes_), static_cast<unsigned long long>(ms));
  if (n > 0) worker_->write_access_log(line, std::min(static_cast<size_t>(n), sizeof line - 1));
}

// ---- llhttp callbacks (HeadParser fills head_): count the body, pause at the end of the head and
// of the message.

int Downstream::on_headers_complete(llhttp_t* p) noexcept {
  of(p)->headers_done_ = true;
  return HPE_PAUSED;
}

int Downstream::on_body(llhttp_t* p, const char*, size_t len) noexcept {
  Downstream* self = of(p);
  self->body_bytes_ += len;
  const uint64_t limit = self->config_->max_body_bytes;
  if (limit > 0 && self->body_bytes_ > limit) {
    self->body_too_big_ = true;
    llhttp_set_error_reason(p, "the chunked body exceeds max_body_bytes");
    return HPE_USER;
  }
  return HPE_OK;
}

int Downstream::on_message_complete(llhttp_t* p) noexcept {
  (void)p;
  return HPE_PAUSED;
}

}  // namespace fusebox::proxy
