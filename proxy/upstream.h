// proxy/upstream.h: one connection from a worker to an endpoint of a cluster. It connects, is
// lent to one Downstream at a time for one exchange, parses the response with llhttp and hands
// the Downstream the head and then slices of its own read buffer (never copies), and goes back
// to its pool when the response ended cleanly and the upstream keeps the connection alive.
#pragma once

#include <llhttp.h>

#include <cstddef>
#include <cstdint>
#include <memory>

#include "proxy/conn.h"
#include "proxy/failure.h"
#include "proxy/head_parser.h"
#include "proxy/http_head.h"

namespace fusebox::proxy {

class Downstream;
class UpstreamPool;

// What a Downstream answers when handed bytes to forward.
enum class Flow : uint8_t {
  Sent,     // all written: go on
  Blocked,  // queued: stop until resume() (the bytes stay where they are until then)
  Aborted,  // the downstream gave up and closed this upstream: touch nothing more
};

class Upstream final : public Conn, private HeadParser {
 public:
  enum class State : uint8_t {
    Connecting,  // connect() in flight, on behalf of an attached Downstream
    Busy,        // attached: the request goes out, the response comes in
    Idle,        // in its pool; reads only to notice the upstream closing the connection
    Tunnel,      // after 101 Switching Protocols: bytes both ways, attached
    Closed,      // handles closing; waits for the last reference
  };

  Upstream(UpstreamPool* pool, size_t buffer_bytes);

  // Starts connecting to the pool's endpoint `endpoint` on behalf of d. Returns a libuv error if
  // connect() failed synchronously (the object then recycles itself once its handles closed).
  int connect(uv_loop_t* loop, const sockaddr* address, size_t endpoint, Downstream* d,
              uint64_t timeout_ms) noexcept;
  // Lends an idle (connected) upstream to d for one exchange.
  void attach(Downstream* d) noexcept;
  // The exchange's request: a response to HEAD has no body whatever its head says.
  void expect_response(bool head_request) noexcept { head_request_ = head_request; }

  // Writes request bytes (head and body slices from d's buffer) to the upstream; see Conn::write.
  int send(uv_buf_t* bufs, unsigned n) noexcept;
  // The Downstream finished writing what we handed it: parse on.
  void resume() noexcept;
  // The Downstream gives up on the exchange (error, timeout, client gone): close, no callbacks.
  void abandon() noexcept;
  // Back to the pool's idle list (from the pool only).
  void make_idle() noexcept;
  // Closes the connection (from the pool: idle timeout, drain, too many idle).
  void close() noexcept;
  // In a tunnel: the client sent FIN and every byte of it was written here; pass the FIN on
  // (the upstream may still answer: a half-closed tunnel carries the other direction on).
  void shutdown_write() noexcept;
  bool eof() const noexcept { return eof_; }  // the upstream sent FIN (in a tunnel)
  bool write_shut() const noexcept { return write_shut_; }
  bool shutting() const noexcept { return shutting_ || write_shut_; }

  State state() const noexcept { return state_; }
  bool reused() const noexcept { return exchanges_ > 0; }
  size_t endpoint() const noexcept { return endpoint_; }

  // Intrusive links of the pool's idle list.
  Upstream* idle_prev = nullptr;
  Upstream* idle_next = nullptr;

 private:
  void on_write_done(int status) noexcept override;
  void on_timer() noexcept override;
  void recycle() noexcept override;

  static void on_connect(uv_connect_t* req, int status) noexcept;
  static void on_alloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf) noexcept;
  static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) noexcept;

  static Upstream* of(llhttp_t* p) noexcept { return static_cast<Upstream*>(HeadParser::of(p)); }
  static int on_headers_complete(llhttp_t* p) noexcept;
  static int on_body(llhttp_t* p, const char* at, size_t len) noexcept;
  static int on_message_complete(llhttp_t* p) noexcept;
  static const llhttp_settings_t kSettings;

  void process() noexcept;
  void process_tunnel() noexcept;
  bool finish_message() noexcept;
  void fail(Failure failure, const char* detail) noexcept;
  void on_eof(int status) noexcept;
  static void on_shutdown(uv_shutdown_t* req, int status) noexcept;
  void update_reading() noexcept;
  void start_response() noexcept;

  UpstreamPool* pool_;
  size_t endpoint_ = 0;
  Downstream* down_ = nullptr;
  State state_ = State::Closed;
  uv_connect_t connect_req_{};

  std::unique_ptr<char[]> buf_;
  size_t cap_;
  size_t len_ = 0;  // bytes in buf_
  size_t pos_ = 0;  // bytes parsed (or, in a tunnel, forwarded)

  llhttp_t parser_{};
  char* dechunk_end_ = nullptr;  // decoded bytes are moved down to here, in place
  uint64_t exchanges_ = 0;
  uint64_t connect_deadline_ms_ = 0;
  uint64_t idle_deadline_ms_ = 0;
  bool head_request_ = false;
  bool dechunk_ = false;
  bool headers_done_ = false;
  bool head_delivered_ = false;
  bool message_done_ = false;
  bool upgraded_ = false;
  bool parse_empty_ = false;  // a bodiless message completes on an execute of zero bytes
  bool blocked_ = false;
  bool eof_ = false;         // tunnel: FIN from the upstream
  bool write_shut_ = false;  // tunnel: our FIN to the upstream went out
  bool shutting_ = false;    // ... is on its way (a second uv_shutdown would fail)
  uv_shutdown_t shutdown_req_{};
  bool reading_ = false;
};

}  // namespace fusebox::proxy
