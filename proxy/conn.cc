// proxy/conn.cc: see conn.h.
#include "proxy/conn.h"

#include <cassert>

namespace fusebox::proxy {

int Conn::open(uv_loop_t* loop) noexcept {
  closing_ = false;
  writing_ = false;
  armed_ms_ = 0;
  write_source_ = nullptr;
  if (const int rc = uv_tcp_init(loop, &tcp_); rc != 0) return rc;
  tcp_.data = this;
  if (const int rc = uv_timer_init(loop, &timer_); rc != 0) {
    // The TCP handle is initialized and must be closed; the timer is not.
    refs_ = 1;
    closing_ = true;
    uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), on_handle_closed);
    return rc;
  }
  timer_.data = this;
  refs_ = 2;
  return 0;
}

void Conn::close_handles() noexcept {
  if (closing_) return;
  closing_ = true;
  uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), on_handle_closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), on_handle_closed);
}

void Conn::on_handle_closed(uv_handle_t* handle) noexcept { static_cast<Conn*>(handle->data)->unref(); }

void Conn::arm_timer_at(uint64_t deadline_ms) noexcept {
  if (closing_ || deadline_ms == 0 || (armed_ms_ != 0 && armed_ms_ <= deadline_ms)) return;
  const uint64_t now = uv_now(timer_.loop);
  armed_ms_ = deadline_ms;
  uv_timer_start(&timer_, on_timer_cb, deadline_ms > now ? deadline_ms - now : 0, 0);
}

void Conn::on_timer_cb(uv_timer_t* timer) noexcept {
  auto* self = static_cast<Conn*>(timer->data);
  self->armed_ms_ = 0;
  self->on_timer();
}

int Conn::write(uv_buf_t* bufs, unsigned n, Conn* source) noexcept {
  assert(n <= 4);
  if (closing_) return UV_ECANCELED;
  // One write at a time: write_req_ is in libuv's queue until its callback. A caller that gets
  // here with one pending has a sequencing bug; refusing keeps the queue intact (the callers
  // close the connection on an error).
  if (writing_) return UV_EBUSY;
  size_t total = 0;
  for (unsigned i = 0; i < n; ++i) total += bufs[i].len;
  if (bytes_written_ != nullptr) shm::bump(*bytes_written_, total);
  const int written = uv_try_write(stream(), bufs, n);
  if (written < 0 && written != UV_EAGAIN) return written;
  size_t done = written < 0 ? 0 : static_cast<size_t>(written);
  if (done == total) return 0;
  // Skip what went out; queue the rest.
  unsigned first = 0;
  while (done >= bufs[first].len) done -= bufs[first++].len;
  bufs[first].base += done;
  bufs[first].len -= done;
  write_req_.data = this;
  if (const int rc = uv_write(&write_req_, stream(), bufs + first, n - first, on_write); rc != 0) return rc;
  writing_ = true;
  write_source_ = source;
  if (source != nullptr) source->ref();
  ref();  // the request itself points at us
  return 1;
}

void Conn::on_write(uv_write_t* req, int status) noexcept {
  Conn* self = static_cast<Conn*>(req->data);
  Conn* source = self->write_source_;
  self->writing_ = false;
  self->write_source_ = nullptr;
  self->on_write_done(status);
  if (source != nullptr) source->unref();
  self->unref();
}

}  // namespace fusebox::proxy
