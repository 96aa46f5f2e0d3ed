// proxy/upstream.cc: see upstream.h.
#include "proxy/upstream.h"

#include <cstring>

#include "proxy/downstream.h"
#include "proxy/log.h"
#include "proxy/upstream_pool.h"

namespace fusebox::proxy {

const llhttp_settings_t Upstream::kSettings = HeadParser::settings(on_headers_complete, on_body, on_message_complete);

Upstream::Upstream(UpstreamPool* pool, size_t buffer_bytes)
    : pool_(pool), buf_(new char[buffer_bytes]), cap_(buffer_bytes) {
  count_written_bytes_in(&pool->stats().upstream_bytes_sent);
}

int Upstream::connect(uv_loop_t* loop, const sockaddr* address, size_t endpoint, Downstream* d,
                      uint64_t timeout_ms) noexcept {
  if (const int rc = open(loop); rc != 0) return rc;
  endpoint_ = endpoint;
  state_ = State::Connecting;
  down_ = d;
  exchanges_ = 0;
  eof_ = write_shut_ = shutting_ = false;
  len_ = pos_ = 0;
  reading_ = false;
  connect_req_.data = this;
  if (const int rc = uv_tcp_connect(&connect_req_, &tcp_, address, on_connect); rc != 0) {
    state_ = State::Closed;
    down_ = nullptr;
    close_handles();
    return rc;
  }
  ref();  // the connect request points at us until its callback
  connect_deadline_ms_ = now_ms() + timeout_ms;
  arm_timer_at(connect_deadline_ms_);
  return 0;
}

void Upstream::on_connect(uv_connect_t* req, int status) noexcept {
  auto* self = static_cast<Upstream*>(req->data);
  if (self->state_ == State::Connecting) {
    if (status != 0) {
      shm::bump(self->pool_->stats().upstream_connect_failures);
      self->fail(Failure::UpstreamConnectFailed, uv_strerror(status));
    } else {
      uv_tcp_nodelay(&self->tcp_, 1);
      self->state_ = State::Busy;
      self->start_response();
      self->update_reading();
      self->down_->on_upstream_connected();
    }
  }
  self->unref();
}

void Upstream::attach(Downstream* d) noexcept {
  state_ = State::Busy;
  down_ = d;
  start_response();
  update_reading();
}

void Upstream::start_response() noexcept {
  llhttp_init(&parser_, HTTP_RESPONSE, &kSettings);
  parser_.data = static_cast<HeadParser*>(this);
  head_.clear();
  headers_done_ = head_delivered_ = message_done_ = upgraded_ = false;
  parse_empty_ = blocked_ = dechunk_ = false;
  len_ = pos_ = 0;
}

int Upstream::send(uv_buf_t* bufs, unsigned n) noexcept { return write(bufs, n, down_); }

void Upstream::on_write_done(int status) noexcept {
  if (down_ != nullptr && (state_ == State::Busy || state_ == State::Tunnel))
    down_->on_upstream_written(status);
}

void Upstream::resume() noexcept {
  if (state_ != State::Busy && state_ != State::Tunnel) return;
  blocked_ = false;
  if (state_ == State::Tunnel) {
    if (pos_ == len_) len_ = pos_ = 0;  // what we handed over is written
    process_tunnel();
    update_reading();
    return;
  }
  process();
}

void Upstream::abandon() noexcept {
  down_ = nullptr;
  close();
}

void Upstream::close() noexcept {
  if (state_ == State::Closed) return;
  const bool was_idle = state_ == State::Idle;
  state_ = State::Closed;
  down_ = nullptr;
  close_handles();
  pool_->on_closed(this, was_idle);
}

void Upstream::make_idle() noexcept {
  state_ = State::Idle;
  down_ = nullptr;
  ++exchanges_;
  len_ = pos_ = 0;
  blocked_ = false;
  update_reading();  // an idle connection reads, to notice the upstream closing it
  idle_deadline_ms_ = now_ms() + pool_->idle_timeout_ms();
  arm_timer_at(idle_deadline_ms_);
}

// Timers are lazy (Conn::arm_timer_at): the one that fires may be for a deadline since moved.
void Upstream::on_timer() noexcept {
  const uint64_t now = now_ms();
  if (state_ == State::Connecting) {
    if (now >= connect_deadline_ms_) {
      shm::bump(pool_->stats().upstream_connect_failures);
      fail(Failure::UpstreamConnectTimeout, nullptr);
    } else {
      arm_timer_at(connect_deadline_ms_);
    }
  } else if (state_ == State::Idle) {
    if (now >= idle_deadline_ms_) {
      close();
    } else {
      arm_timer_at(idle_deadline_ms_);
    }
  }
  // Busy or in a tunnel: the Downstream's deadlines govern the exchange; nothing to do here.
}

void Upstream::recycle() noexcept { pool_->on_recycled(this); }

void Upstream::fail(Failure failure, const char* detail) noexcept {
  Downstream* d = down_;
  // A reused connection that fails before any response byte was most likely closed by the
  // upstream while idle (a race no client can avoid): the request may go again on a new one.
  const bool may_retry = exchanges_ > 0 && len_ == 0;
  close();
  if (d != nullptr) d->on_upstream_failed(failure, detail, may_retry);
}

void Upstream::update_reading() noexcept {
  const bool want = state_ == State::Idle ||
                    ((state_ == State::Busy || (state_ == State::Tunnel && !eof_)) && !blocked_ && len_ < cap_);
  if (want && !reading_) {
    uv_read_start(stream(), on_alloc, on_read);
  } else if (!want && reading_) {
    uv_read_stop(stream());
  }
  reading_ = want;
}

void Upstream::on_alloc(uv_handle_t* handle, size_t, uv_buf_t* buf) noexcept {
  auto* self = static_cast<Upstream*>(handle->data);
  buf->base = self->buf_.get() + self->len_;
  buf->len = self->cap_ - self->len_;
}

void Upstream::on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t*) noexcept {
  auto* self = static_cast<Upstream*>(stream->data);
  if (nread == 0) return;  // EAGAIN
  if (self->state_ == State::Idle) {
    // The upstream closed an idle connection, or sent bytes nobody asked for: either way it
    // cannot carry a request any more.
    self->close();
    return;
  }
  if (nread < 0) {
    self->on_eof(static_cast<int>(nread));
    return;
  }
  self->len_ += static_cast<size_t>(nread);
  shm::bump(self->pool_->stats().upstream_bytes_received, static_cast<uint64_t>(nread));
  if (self->state_ == State::Tunnel) {
    self->process_tunnel();
  } else {
    self->process();
  }
}

void Upstream::on_eof(int status) noexcept {
  if (state_ == State::Tunnel) {
    Downstream* d = down_;
    if (status == UV_EOF && d != nullptr) {
      // A half-close: the other direction may still carry bytes (RFC 9110 §7.8 makes the tunnel
      // the two peers' business). The client gets our FIN once it has every byte before it.
      eof_ = true;
      update_reading();
      d->on_tunnel_upstream_eof();
      return;
    }
    close();
    if (d != nullptr) d->on_response_aborted("upstream closed the tunnel");
    return;
  }
  if (status == UV_EOF && head_delivered_ && !message_done_ && llhttp_message_needs_eof(&parser_)) {
    // A body delimited by the connection's end (RFC 9112 §6.3, rule 8) ends here.
    llhttp_finish(&parser_);
    if (message_done_) {
      finish_message();
      return;
    }
  }
  if (!head_delivered_) {
    fail(Failure::UpstreamReset, status == UV_EOF ? "connection closed" : uv_strerror(status));
    return;
  }
  Downstream* d = down_;
  close();
  if (d != nullptr) d->on_response_aborted(status == UV_EOF ? "upstream closed mid-response" : uv_strerror(status));
}

void Upstream::shutdown_write() noexcept {
  if (state_ != State::Tunnel || shutting_ || write_shut_ || writing()) return;
  shutdown_req_.data = this;
  if (uv_shutdown(&shutdown_req_, stream(), on_shutdown) != 0) {
    Downstream* d = down_;
    close();
    if (d != nullptr) d->on_response_aborted("cannot half-close the tunnel to the upstream");
    return;
  }
  shutting_ = true;
  ref();  // the request points at us until its callback
}

void Upstream::on_shutdown(uv_shutdown_t* req, int status) noexcept {
  auto* self = static_cast<Upstream*>(req->data);
  self->shutting_ = false;
  if (self->state_ == State::Tunnel) {
    self->write_shut_ = true;
    Downstream* d = self->down_;
    if (status < 0) {
      self->close();
      if (d != nullptr) d->on_response_aborted("cannot half-close the tunnel to the upstream");
    } else if (d != nullptr) {
      d->on_tunnel_progress();
    }
  }
  self->unref();
}

void Upstream::process_tunnel() noexcept {
  if (pos_ == len_ || down_ == nullptr) return;
  const Flow flow = down_->on_response_data(buf_.get() + pos_, len_ - pos_);
  if (flow == Flow::Aborted) return;
  if (flow == Flow::Blocked) {
    pos_ = len_;  // handed over, in flight until resume()
    blocked_ = true;
  } else {
    len_ = pos_ = 0;
  }
  update_reading();
}

// Parses what the buffer holds and hands it on, until the buffer is empty, the Downstream is
// blocked on a write (we resume() later, with the bytes where they were), or the message ends.
void Upstream::process() noexcept {
  while (state_ == State::Busy && !blocked_) {
    if (message_done_) {
      if (!finish_message()) return;
      continue;
    }
    if (pos_ == len_ && !parse_empty_) break;
    parse_empty_ = false;
    char* const start = buf_.get() + pos_;
    dechunk_end_ = start;
    const llhttp_errno_t err = llhttp_execute(&parser_, start, len_ - pos_);
    if (err == HPE_OK) {
      pos_ = len_;
    } else if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
      pos_ = static_cast<size_t>(llhttp_get_error_pos(&parser_) - buf_.get());
      if (err == HPE_PAUSED) llhttp_resume(&parser_);
      if (err == HPE_PAUSED_UPGRADE) upgraded_ = true;
    } else {
      if (!head_delivered_) {
        fail(Failure::UpstreamBadResponse, llhttp_get_error_reason(&parser_));
      } else {
        Downstream* d = down_;
        close();
        if (d != nullptr) d->on_response_aborted(llhttp_get_error_reason(&parser_));
      }
      return;
    }
    if (!head_delivered_) {
      if (!headers_done_) {
        if (len_ == cap_) fail(Failure::UpstreamBadResponse, "response head larger than the buffer");
        break;
      }
      head_delivered_ = true;
      bool dechunk = false;
      const bool close_delimited = llhttp_message_needs_eof(&parser_) != 0;
      if (!down_->on_response_head(head_, llhttp_get_status_code(&parser_), close_delimited, &dechunk)) return;
      dechunk_ = dechunk && (parser_.flags & F_CHUNKED) != 0;
      parse_empty_ = true;
      continue;  // the head's bytes are not body: parse on from its end
    }
    const char* data = start;
    const size_t n = dechunk_ ? static_cast<size_t>(dechunk_end_ - start)
                              : static_cast<size_t>(buf_.get() + pos_ - start);
    if (n > 0) {
      const Flow flow = down_->on_response_data(data, n);
      if (flow == Flow::Aborted) return;
      if (flow == Flow::Blocked) blocked_ = true;
    }
  }
  if (state_ == State::Busy && !blocked_ && pos_ == len_ && head_delivered_) {
    // Everything parsed was handed on and written: the buffer can start over. (The head's views
    // are no longer needed once it was delivered.)
    len_ = pos_ = 0;
  }
  if (state_ == State::Busy) update_reading();
}

// The message ended. Returns true to parse on (an informational response came before the final
// one), false when the exchange is over or the connection went to a tunnel.
bool Upstream::finish_message() noexcept {
  const int status = llhttp_get_status_code(&parser_);
  Downstream* d = down_;
  // llhttp flags an upgrade on the message (we pause at its end, before HPE_PAUSED_UPGRADE).
  if (status == 101 && llhttp_get_upgrade(&parser_) != 0) {
    state_ = State::Tunnel;
    const Flow head = d->on_tunnel_ready();
    if (head == Flow::Blocked) {
      blocked_ = true;
      update_reading();
    } else if (head == Flow::Sent && state_ == State::Tunnel) {
      process_tunnel();
    }
    return false;
  }
  if (status >= 100 && status < 200 && status != 101) {
    // 1xx: the final response follows on the same connection.
    const Flow flow = d->on_response_complete(true);
    headers_done_ = head_delivered_ = message_done_ = false;
    head_.clear();
    // The 1xx head was copied into the Downstream's buffer: its bytes here are free, and many
    // interim responses must not fill the buffer (llhttp is between messages: no span is open).
    std::memmove(buf_.get(), buf_.get() + pos_, len_ - pos_);
    len_ -= pos_;
    pos_ = 0;
    if (flow == Flow::Blocked) blocked_ = true;  // the next head waits for the 1xx to be written
    return state_ == State::Busy && !blocked_;
  }
  // Reusable only if the response ended cleanly with nothing after it, the upstream keeps the
  // connection, and our request went out whole (an early response leaves the rest unsent).
  const bool reusable = !upgraded_ && status != 101 && llhttp_should_keep_alive(&parser_) && pos_ == len_ &&
                        d->request_sent() && !writing();
  // Back to the pool before the Downstream hears of it, so that a pipelined request that follows
  // at once can take this same warm connection.
  down_ = nullptr;
  pool_->release(this, reusable);
  d->on_response_complete(false);
  return false;
}

// ---- llhttp callbacks (HeadParser fills head_): pause at the end of the head and of the message.

int Upstream::on_headers_complete(llhttp_t* p) noexcept {
  auto* self = of(p);
  self->headers_done_ = true;
  // A response to HEAD has no body whatever its Content-Length says (RFC 9110 §9.3.2), nor has a
  // 204 or a 304 (RFC 9112 §6.3), which may carry the Content-Length of what a 200 would have
  // sent: skip it, the message then completes at once (and we learn the head there). llhttp
  // would wait for those bytes, which never come.
  const int status = llhttp_get_status_code(p);
  if ((self->head_request_ && status >= 200) || status == 204 || status == 304) return 1;
  return HPE_PAUSED;
}

int Upstream::on_body(llhttp_t* p, const char* at, size_t len) noexcept {
  auto* self = of(p);
  if (self->dechunk_) {
    // Decoded bytes never run ahead of the raw bytes they came from, so moving them down in the
    // same buffer is safe, and llhttp never looks back at what it parsed.
    std::memmove(self->dechunk_end_, at, len);
    self->dechunk_end_ += len;
  }
  return HPE_OK;
}

int Upstream::on_message_complete(llhttp_t* p) noexcept {
  of(p)->message_done_ = true;
  return HPE_PAUSED;
}

}  // namespace fusebox::proxy
