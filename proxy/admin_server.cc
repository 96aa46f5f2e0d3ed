// proxy/admin_server.cc: see admin_server.h.
#include "proxy/admin_server.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "proxy/failure.h"
#include "proxy/head_check.h"
#include "proxy/head_parser.h"
#include "proxy/listen_socket.h"
#include "proxy/log.h"

namespace fusebox::proxy {
namespace {

constexpr uint64_t kIdleTimeoutMs = 60'000;  // a connection with nothing to say this long closes
constexpr size_t kReadBytes = 64 * 1024;
// Bounds that keep one client from taking the master (which also runs the health checks): what
// a connection may buffer (a head, a body and chunk framing), how long one request may take to
// arrive (each byte re-arms the idle timer, so a trickle would otherwise hold it forever), and
// how many connections may be open at once.
constexpr size_t kMaxBufferedBytes = 16 * 1024 + 1024 * 1024 + 64 * 1024;
constexpr uint64_t kRequestArrivalMs = 10'000;
constexpr size_t kMaxConnections = 64;

}  // namespace

AdminResponse admin_error(int status, std::string_view code, std::string_view message) {
  nlohmann::ordered_json j;
  j["error"] = code;
  j["message"] = message;
  return AdminResponse{.status = status, .body = j.dump() + "\n"};
}

class AdminServer::Connection : public HeadParser {
 public:
  explicit Connection(AdminServer* server) : server_(server) {
    uv_tcp_init(server->loop_, &tcp_);
    uv_timer_init(server->loop_, &timer_);
    tcp_.data = timer_.data = write_req_.data = this;
  }

  int accept(uv_stream_t* listener) {
    if (const int rc = uv_accept(listener, stream()); rc != 0) return rc;
    touch();
    return uv_read_start(stream(), on_alloc, on_read);
  }

  void close() noexcept {
    if (closing_) return;
    closing_ = true;
    auto& list = server_->connections_;
    list.erase(std::remove(list.begin(), list.end(), this), list.end());
    refs_ = 2;
    uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), on_closed);
    uv_close(reinterpret_cast<uv_handle_t*>(&timer_), on_closed);
  }

  int fd() const noexcept {
    uv_os_fd_t fd = -1;
    uv_fileno(reinterpret_cast<const uv_handle_t*>(&tcp_), &fd);
    return fd;
  }

 private:
  uv_stream_t* stream() noexcept { return reinterpret_cast<uv_stream_t*>(&tcp_); }

  void touch() noexcept { uv_timer_start(&timer_, on_idle, kIdleTimeoutMs, 0); }

  static void on_idle(uv_timer_t* t) noexcept { static_cast<Connection*>(t->data)->close(); }

  static void on_closed(uv_handle_t* h) noexcept {
    auto* self = static_cast<Connection*>(h->data);
    if (--self->refs_ == 0) delete self;
  }

  static void on_alloc(uv_handle_t* h, size_t, uv_buf_t* buf) noexcept {
    auto* self = static_cast<Connection*>(h->data);
    self->read_buf_.resize(kReadBytes);
    *buf = uv_buf_init(self->read_buf_.data(), static_cast<unsigned>(self->read_buf_.size()));
  }

  static void on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) noexcept {
    auto* self = static_cast<Connection*>(s->data);
    if (nread == 0 || self->closing_) return;
    if (nread < 0) {
      // The client is done: answer what is in hand, then close.
      self->eof_ = true;
      uv_read_stop(s);
      if (!self->writing_) self->close();
      return;
    }
    self->touch();
    const uint64_t now = uv_now(self->server_->loop_);
    if (self->in_.empty()) self->request_started_ms_ = now;
    self->in_.append(buf->base, static_cast<size_t>(nread));
    if (self->in_.size() > kMaxBufferedBytes) {
      self->fail(admin_error(413, "request_too_large", "the request is over 1 MiB (body) and 16 KiB (head)"));
      return;
    }
    if (now - self->request_started_ms_ > kRequestArrivalMs) {
      self->fail(admin_error(408, "request_timeout", "the request took over 10 s to arrive"));
      return;
    }
    // A request's body arrives in many reads: parse again only once it can be whole.
    if (self->in_.size() < self->need_bytes_) return;
    self->process();
  }

  // Answers every whole request buffered, one at a time (each after the previous is written).
  void process() noexcept {
    while (!writing_ && !closing_ && !in_.empty()) {
      if (!parse_one()) return;
    }
    if (!writing_ && eof_) close();
  }

  // Parses the request at the front of in_: false when it is not whole yet (or the connection
  // ends), true when it was answered.
  bool parse_one() noexcept {
    static const llhttp_settings_t settings =
        HeadParser::settings(on_headers_complete, on_body, on_message_complete);
    llhttp_init(&parser_, HTTP_REQUEST, &settings);
    parser_.data = static_cast<HeadParser*>(this);
    need_bytes_ = 0;
    body_.clear();
    headers_done_ = complete_ = body_too_large_ = false;
    const llhttp_errno_t err = llhttp_execute(&parser_, in_.data(), in_.size());
    if (headers_done_) {
      // A whole head counts against the limit too, not only one still arriving.
      const size_t head_end = in_.find("\r\n\r\n");
      if (head_end != std::string::npos && head_end + 4 > kMaxHeadBytes) {
        fail(admin_error(431, "header_too_large", "the request head is over 16 KiB"));
        return false;
      }
    }
    if (complete_) {
      const size_t consumed = static_cast<size_t>(llhttp_get_error_pos(&parser_) - in_.data());
      answer(consumed);
      return true;
    }
    if (err == HPE_OK) {
      if (!headers_done_ && in_.size() > kMaxHeadBytes) {
        fail(admin_error(431, "header_too_large", "the request head is over 16 KiB"));
        return false;
      }
      if (headers_done_ && (parser_.flags & F_CONTENT_LENGTH) != 0) {
        // Whole at head + Content-Length bytes: until then, reading is enough (re-parsing the
        // whole request on every read of a large body would be quadratic).
        const size_t head_end = in_.find("\r\n\r\n");
        if (head_end != std::string::npos) need_bytes_ = head_end + 4 + static_cast<size_t>(parser_.content_length);
      }
      return false;  // more to come
    }
    if (body_too_large_) {
      fail(admin_error(413, "body_too_large", "the request body is over 1 MiB"));
    } else if (too_many_fields_ || (!headers_done_ && in_.size() > kMaxHeadBytes)) {
      fail(admin_error(431, "header_too_large", "the request head is over 16 KiB or has over 100 fields"));
    } else {
      fail(admin_error(400, "bad_request", std::string("malformed request: ") + llhttp_get_error_reason(&parser_)));
    }
    return false;
  }

  void answer(size_t consumed) noexcept {
    const std::string_view message(in_.data(), consumed);
    const size_t head_end = message.find("\r\n\r\n");
    const char* problem = head_end == std::string_view::npos ? "the head's lines must end in CRLF"
                                                             : check_head_lines(message.substr(0, head_end + 4));
    if (problem == nullptr) problem = check_request_line(parser_);
    if (problem != nullptr) {
      fail(admin_error(400, "bad_request", std::string("malformed request: ") + problem));
      return;
    }
    AdminRequest req;
    req.method = head_.method;
    const size_t q = head_.target.find('?');
    req.path = head_.target.substr(0, q);
    if (q != std::string_view::npos) req.query = head_.target.substr(q + 1);
    req.authorization = head_.find("authorization");
    req.body = body_;
    const bool keep_alive = llhttp_should_keep_alive(&parser_) != 0;
    AdminResponse resp;
    try {
      resp = server_->handler_(req);
    } catch (const std::exception& e) {
      FB_LOG(Error, "admin %.*s %.*s: %s", static_cast<int>(req.method.size()), req.method.data(),
             static_cast<int>(req.path.size()), req.path.data(), e.what());
      resp = admin_error(500, "internal_error", e.what());
    }
    in_.erase(0, consumed);
    respond(resp, !keep_alive);
  }

  void fail(const AdminResponse& resp) noexcept {
    in_.clear();
    uv_read_stop(stream());
    respond(resp, true);
  }

  void respond(const AdminResponse& resp, bool close_after) noexcept {
    close_after_ = close_after;
    // No reading while the answer is on its way: a client that sends without reading must not
    // grow the buffer (nor keep the connection alive by sending).
    uv_read_stop(stream());
    out_ = "HTTP/1.1 " + std::to_string(resp.status) + " " + std::string(reason_phrase(resp.status)) +
           "\r\nContent-Type: " + resp.content_type + "\r\nContent-Length: " + std::to_string(resp.body.size()) +
           "\r\nCache-Control: no-store\r\n";
    for (const auto& [name, value] : resp.headers) out_ += name + ": " + value + "\r\n";
    if (close_after) out_ += "Connection: close\r\n";
    out_ += "\r\n";
    out_ += resp.body;
    uv_buf_t b = uv_buf_init(out_.data(), static_cast<unsigned>(out_.size()));
    if (uv_write(&write_req_, stream(), &b, 1, on_written) != 0) {
      close();
      return;
    }
    writing_ = true;
  }

  static void on_written(uv_write_t* req, int status) noexcept {
    auto* self = static_cast<Connection*>(req->data);
    self->writing_ = false;
    if (self->closing_) return;
    if (status < 0 || self->close_after_) {
      self->close();
      return;
    }
    if (!self->eof_ && uv_read_start(self->stream(), on_alloc, on_read) != 0) {
      self->close();
      return;
    }
    self->process();
  }

  static Connection* of(llhttp_t* p) noexcept { return static_cast<Connection*>(HeadParser::of(p)); }

  static int on_headers_complete(llhttp_t* p) noexcept {
    Connection* self = of(p);
    self->headers_done_ = true;
    if ((p->flags & F_CONTENT_LENGTH) != 0 && p->content_length > kMaxBodyBytes) {
      self->body_too_large_ = true;
      return HPE_USER;
    }
    return HPE_OK;
  }

  static int on_body(llhttp_t* p, const char* at, size_t len) noexcept {
    Connection* self = of(p);
    if (self->body_.size() + len > kMaxBodyBytes) {
      self->body_too_large_ = true;
      return HPE_USER;
    }
    self->body_.append(at, len);
    return HPE_OK;
  }

  static int on_message_complete(llhttp_t* p) noexcept {
    of(p)->complete_ = true;
    return HPE_PAUSED;
  }

  AdminServer* server_;
  uv_tcp_t tcp_{};
  uv_timer_t timer_{};
  uv_write_t write_req_{};
  llhttp_t parser_{};
  std::string read_buf_;
  std::string in_;
  std::string body_;
  std::string out_;
  int refs_ = 0;
  size_t need_bytes_ = 0;  // don't parse again before in_ holds this much
  uint64_t request_started_ms_ = 0;  // when the first byte of the request at in_'s front came
  bool headers_done_ = false;
  bool complete_ = false;
  bool body_too_large_ = false;
  bool writing_ = false;
  bool close_after_ = false;
  bool closing_ = false;
  bool eof_ = false;
};

AdminServer::AdminServer(uv_loop_t* loop, Handler handler) : loop_(loop), handler_(std::move(handler)) {}

AdminServer::~AdminServer() = default;

Result<void> AdminServer::listen(const HostPort& address) {
  ListenerConfig l;
  l.name = "admin";
  l.address = address;
  auto bound = bind_listener(l, 128);
  if (!bound) return Error{bound.error().message + " (set admin.address, --admin or FUSEBOX_ADMIN_ADDRESS to a free port)"};
  uv_tcp_init(loop_, &tcp_);
  tcp_.data = this;
  int rc = uv_tcp_open(&tcp_, bound.value().fd);
  if (rc == 0) rc = uv_listen(reinterpret_cast<uv_stream_t*>(&tcp_), 128, on_connection);
  if (rc != 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), nullptr);
    return Error{"admin listener " + address.to_string() + ": " + uv_strerror(rc)};
  }
  listening_ = true;
  bound_ = bound.value().bound;
  return {};
}

void AdminServer::on_connection(uv_stream_t* server, int status) noexcept {
  auto* self = static_cast<AdminServer*>(server->data);
  if (status != 0) return;
  auto* c = new Connection(self);
  self->connections_.push_back(c);
  if (c->accept(server) != 0 || self->connections_.size() > kMaxConnections) c->close();
}

void AdminServer::close() noexcept {
  if (listening_) {
    listening_ = false;
    uv_close(reinterpret_cast<uv_handle_t*>(&tcp_), nullptr);
  }
  const std::vector<Connection*> open = connections_;
  for (Connection* c : open) c->close();
}

void AdminServer::close_descriptors_in_child() noexcept {
  uv_os_fd_t fd = -1;
  if (listening_ && uv_fileno(reinterpret_cast<const uv_handle_t*>(&tcp_), &fd) == 0) ::close(fd);
  for (Connection* c : connections_)
    if (const int cfd = c->fd(); cfd >= 0) ::close(cfd);
}

}  // namespace fusebox::proxy
