// proxy/conn.h: what a client connection (Downstream) and an upstream connection (Upstream) share:
// a TCP handle, a timer, one write at a time, and a reference count that decides when the object
// may be reused.
//
// Lifetimes. Bodies are never copied: a write to one socket points into the read buffer of the
// other connection. So an object stays alive while
//   - its TCP handle or its timer is not closed yet (libuv may still call back: handle.rst), and
//   - a write that points into its buffer is in flight on the other socket (a pending write
//     callback still runs after uv_close, with UV_ECANCELED, before the close callback).
// Each of these holds one reference; the last release returns the object to its pool.
#pragma once

#include <uv.h>

#include <cstddef>
#include <cstdint>

#include "shm/worker_stats.h"

namespace fusebox::proxy {

class Conn {
 public:
  Conn() = default;
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;
  virtual ~Conn() = default;

  // Writes bufs (at most 4: libuv keeps up to 4 inline and allocates for more) to this socket.
  // Tries a synchronous write first, which on loopback nearly always takes everything. Returns
  // 0 when all is written, 1 when the rest is queued (on_write_done follows; `source`, the owner
  // of the bytes, is held until then), or a negative libuv error (UV_EBUSY if a write is still
  // pending: there is one at a time).
  int write(uv_buf_t* bufs, unsigned n, Conn* source) noexcept;
  bool writing() const noexcept { return writing_; }

  void ref() noexcept { ++refs_; }
  void unref() noexcept {
    if (--refs_ == 0) recycle();
  }
  bool closing() const noexcept { return closing_; }
  uv_tcp_t* tcp() noexcept { return &tcp_; }
  uv_stream_t* stream() noexcept { return reinterpret_cast<uv_stream_t*>(&tcp_); }

 protected:
  // Initializes both handles on loop; the object then holds two references (one per handle).
  int open(uv_loop_t* loop) noexcept;
  // Closes both handles (idempotent); references drop as their close callbacks run.
  void close_handles() noexcept;
  // Makes sure the timer fires no later than `deadline_ms` (loop time). Lazy: a timer already due
  // earlier is left alone, and on_timer checks which deadline really passed and calls this again
  // for the next one. Re-arming a libuv timer costs a heap removal and insertion; doing it on every
  // state change of every request cost 18% of a worker's instructions (callgrind, 16 keep-alive
  // connections). In steady state this arms once per header_timeout, not per request.
  void arm_timer_at(uint64_t deadline_ms) noexcept;
  uint64_t now_ms() const noexcept { return uv_now(timer_.loop); }
  // Where write() counts the bytes it is given (a metrics counter of this worker's), if anywhere.
  void count_written_bytes_in(shm::Counter* counter) noexcept { bytes_written_ = counter; }

  virtual void on_write_done(int status) noexcept = 0;
  virtual void on_timer() noexcept = 0;
  // Called when the last reference goes: the object returns to its pool (or is deleted).
  virtual void recycle() noexcept = 0;

  uv_tcp_t tcp_{};
  uv_timer_t timer_{};

 private:
  static void on_write(uv_write_t* req, int status) noexcept;
  static void on_timer_cb(uv_timer_t* timer) noexcept;
  static void on_handle_closed(uv_handle_t* handle) noexcept;

  uint64_t armed_ms_ = 0;  // when the timer fires next; 0: not armed
  uv_write_t write_req_{};
  Conn* write_source_ = nullptr;
  shm::Counter* bytes_written_ = nullptr;
  int refs_ = 0;
  bool writing_ = false;
  bool closing_ = false;
};

}  // namespace fusebox::proxy
