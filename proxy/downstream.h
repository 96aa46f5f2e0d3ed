// proxy/downstream.h: one client connection, and the exchanges on it, one at a time: read and
// parse a request head, route it, lend an upstream connection from the cluster's pool, stream the
// request body up and the response down (bytes are never copied: each write points into the
// other side's read buffer), then the next request (keep-alive, pipelining) or close.
//
// The read buffer holds, in order:
//   [0, head_end_)          the request head (views of head_ point here while the exchange runs)
//   [head_end_, fwd_)       body bytes already handed to the upstream (reclaimed once written)
//   [fwd_, pos_)            body bytes parsed and not handed on yet (the upstream is connecting)
//   [pos_, len_)            bytes not parsed yet: more body, or the next pipelined request
#pragma once

#include <llhttp.h>

#include <cstddef>
#include <cstdint>
#include <memory>

#include "proxy/config.h"
#include "proxy/conn.h"
#include "proxy/failure.h"
#include "proxy/head_parser.h"
#include "proxy/http_head.h"
#include "proxy/upstream.h"
#include "shm/breaker.h"

namespace fusebox::proxy {

class Worker;
struct ListenerConfig;

class Downstream final : public Conn, private HeadParser {
 public:
  enum class Phase : uint8_t {
    Head,      // reading a request head; no upstream is attached
    Exchange,  // a request is routed: an upstream is attached (connecting or connected), or an
               // error answer is being written
    Tunnel,     // after 101 Switching Protocols: raw bytes both ways
    Lingering,  // the last response is written and FIN sent: reading and discarding until the
                // client closes too, or kLingerMs (a reset would destroy the response in flight)
    Closed,     // handles closing; waits for the last reference
  };

  Downstream(Worker* worker, size_t listener, size_t buffer_bytes, size_t out_bytes);

  // Accepts a connection from `server`; returns a libuv error if that failed (then the object
  // recycles itself once its handles are closed).
  int accept(uv_stream_t* server) noexcept;
  // Drain: the current response (or the next request, on an idle keep-alive connection) is the
  // last, answered with Connection: close; idle_timeout or the drain deadline closes the rest.
  void drain() noexcept;

  // Callbacks from the attached Upstream.
  void on_upstream_connected() noexcept;
  void on_upstream_failed(Failure failure, const char* detail, bool may_retry) noexcept;
  // The response head came (1xx included). `close_delimited`: the body ends when the upstream
  // closes. Sets *dechunk when the client cannot take chunked framing (HTTP/1.0). Returns false if
  // the exchange ended here (the upstream was abandoned).
  bool on_response_head(const HttpHead& head, int status, bool close_delimited, bool* dechunk) noexcept;
  Flow on_response_data(const char* data, size_t len) noexcept;
  // The message ended. For a 1xx, Blocked while its head is being written: the upstream waits
  // (resume()) before it hands over the next head.
  Flow on_response_complete(bool informational) noexcept;
  void on_response_aborted(const char* why) noexcept;
  void on_upstream_written(int status) noexcept;
  // Tunnel half-closes: the upstream sent FIN; a FIN we sent either way completed.
  void on_tunnel_upstream_eof() noexcept { on_tunnel_progress(); }
  void on_tunnel_progress() noexcept;
  // The upstream switched protocols: Blocked if the 101 head is still being written (the upstream
  // then waits for resume() before it hands over tunnel bytes).
  Flow on_tunnel_ready() noexcept;

  Phase phase() const noexcept { return phase_; }
  bool request_sent() const noexcept { return request_sent_; }
  size_t listener() const noexcept { return listener_; }

  // Intrusive links of the worker's connection list (drain walks it).
  Downstream* prev = nullptr;
  Downstream* next = nullptr;

 private:
  void on_write_done(int status) noexcept override;
  void on_timer() noexcept override;
  void recycle() noexcept override;

  static void on_alloc(uv_handle_t* handle, size_t suggested, uv_buf_t* buf) noexcept;
  static void on_read(uv_stream_t* stream, ssize_t nread, const uv_buf_t* buf) noexcept;

  static Downstream* of(llhttp_t* p) noexcept { return static_cast<Downstream*>(HeadParser::of(p)); }
  static int on_headers_complete(llhttp_t* p) noexcept;
  static int on_body(llhttp_t* p, const char* at, size_t len) noexcept;
  static int on_message_complete(llhttp_t* p) noexcept;
  static const llhttp_settings_t kSettings;

  void on_client_eof(int status) noexcept;
  void drive() noexcept;
  void begin_request() noexcept;
  // The client sent FIN and no pipelined request waits behind the current one: the connection
  // ends with this exchange. (Requests sent before the FIN are still answered, in order.)
  bool client_finished() const noexcept { return client_eof_ && pos_ == len_; }
  void ensure_request_id() noexcept;
  void parse_head() noexcept;
  void start_exchange() noexcept;
  void parse_body() noexcept;
  void forward() noexcept;
  void reclaim() noexcept;
  void request_written() noexcept;
  void upstream_write_failed(int status) noexcept;
  void connect_upstream(bool fresh) noexcept;
  Flow send_response(const char* data, size_t len, Conn* source) noexcept;
  Flow write_to_client(uv_buf_t* bufs, unsigned n, Conn* source) noexcept;
  void write_pending() noexcept;
  void finish_exchange() noexcept;
  void next_request() noexcept;
  void reply_error(Failure failure, const char* detail) noexcept;
  void reply_rejected(shm::State state) noexcept;
  void send_own_response() noexcept;
  static bool counts_against_upstream(Failure f) noexcept;
  static bool idempotent(llhttp_method_t m) noexcept;
  void record_outcome(bool failure, bool refused = false) noexcept;
  void abandon_admission() noexcept;
  void log_transition(const shm::Breaker& breaker) noexcept;
  void close() noexcept;
  void linger() noexcept;
  static void on_shutdown(uv_shutdown_t* req, int status) noexcept;
  void linger_check() noexcept;
  void release_upstream() noexcept;
  void update_reading() noexcept;
  void arm_timer() noexcept;
  void log_access() noexcept;
  void count_request() noexcept;
  shm::RequestOutcome outcome() const noexcept;

  Worker* worker_;
  size_t listener_;
  const ListenerConfig* config_ = nullptr;
  Phase phase_ = Phase::Closed;
  Upstream* up_ = nullptr;
  size_t cluster_ = 0;
  // The breaker this request answers to: the route's own, else the cluster's.
  shm::BreakerSlot* breaker_slot_ = nullptr;
  const BreakerConfig* breaker_ = nullptr;
  const std::string* breaker_name_ = nullptr;
  shm::SeriesStats* listener_stats_;  // this worker's counters for the listener
  // This request's metrics series: the listener's until a route matches, then the route's.
  shm::SeriesStats* series_ = nullptr;
  bool routed_ = false;
  bool counted_ = false;  // the request is in fusebox_requests_total

  std::unique_ptr<char[]> buf_;
  size_t cap_;
  size_t len_ = 0;
  size_t pos_ = 0;
  size_t head_end_ = 0;
  size_t fwd_ = 0;
  // Request head for the upstream and response head for the client (or an error answer).
  std::unique_ptr<char[]> req_out_;
  std::unique_ptr<char[]> resp_out_;
  size_t out_cap_;
  size_t req_out_len_ = 0;
  size_t resp_out_len_ = 0;

  llhttp_t parser_{};
  char request_id_[128] = {};  // a client's id longer than this is replaced
  size_t request_id_len_ = 0;
  char client_address_[48] = {};
  uint64_t body_bytes_ = 0;
  uint64_t response_bytes_ = 0;
  uint64_t exchange_start_ms_ = 0;
  uint64_t header_deadline_ms_ = 0;    // 0: not armed
  uint64_t response_deadline_ms_ = 0;
  uint64_t request_deadline_ms_ = 0;
  uint64_t idle_deadline_ms_ = 0;
  uint64_t write_deadline_ms_ = 0;  // a write to the client pending: it must progress by then
  uv_shutdown_t shutdown_req_{};
  size_t lingered_bytes_ = 0;
  uint64_t linger_check_ms_ = 0;
  int status_ = 0;
  shm::Admission admission_;
  int64_t call_start_ns_ = 0;
  bool breaker_pending_ = false;  // admitted: exactly one outcome is owed to the breaker
  Failure failure_ = Failure::Count;  // Count: none
  Failure deferred_failure_ = Failure::Count;  // an answer waiting for a 1xx head to be written
  const char* deferred_detail_ = nullptr;      // static text

  bool headers_done_ = false;
  bool body_too_big_ = false;   // a chunked body went over max_body_bytes: 413
  bool request_done_ = false;   // the whole request has been parsed
  bool request_sent_ = false;   // ... and written to the upstream
  bool head_sent_ = false;      // the request head went to the upstream
  bool upstream_ready_ = false; // connected
  bool response_started_ = false;  // a response head was handed to us (resp_out_ holds it)
  bool response_head_written_ = false;
  bool response_done_ = false;
  bool keep_alive_ = false;     // the client allows another request after this one
  bool close_after_ = false;    // close once the current response is written
  bool upgrade_ = false;
  bool head_request_ = false;
  bool expect_continue_ = false;
  bool client_eof_ = false;
  bool draining_ = false;
  bool reading_ = false;
  bool retried_ = false;
  bool upstream_stopped_taking_ = false;  // a write of the request body failed: send no more
  bool resume_upstream_ = false;  // the pending write holds upstream bytes: resume it after
  bool finish_on_write_ = false;  // the pending write ends the response
  bool interim_ = false;          // resp_out_ holds a 1xx head to write
  bool drive_ = false;            // a request head may be waiting in the buffer
  bool tunnel_client_shut_ = false;  // tunnel: our FIN to the client went out (after every byte)
  bool tunnel_shutting_ = false;     // ... is on its way
  bool driving_ = false;
};

}  // namespace fusebox::proxy
