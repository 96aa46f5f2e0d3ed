// proxy/admin_server.h: the admin listener's HTTP/1.1 transport, on the master's loop: accepts,
// parses requests with the data path's llhttp code and checks (HeadParser, check_head_lines,
// check_request_line) and its 16 KiB head limit, hands each whole request to a handler and writes
// its answer, with keep-alive. What the paths mean is admin_api.cc's business, not this file's.
//
// Not the data path: requests are rare (a scrape every few seconds, an operator's command), so
// this favours plain code over zero allocations; a request is buffered whole (bodies up to
// 1 MiB) and re-parsed from its start as bytes arrive.
#pragma once

#include <uv.h>

#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "proxy/config.h"
#include "shm/result.h"

namespace fusebox::proxy {

struct AdminRequest {
  std::string_view method;  // "GET", ...
  std::string_view path;    // the target without its query
  std::string_view query;   // after '?', or empty
  std::string_view authorization;  // the Authorization field, or empty
  std::string_view body;
};

struct AdminResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // besides Content-Type and -Length
};

// A JSON error answer: {"error": code, "message": message}.
AdminResponse admin_error(int status, std::string_view code, std::string_view message);

class AdminServer {
 public:
  using Handler = std::function<AdminResponse(const AdminRequest&)>;
  static constexpr size_t kMaxHeadBytes = 16 * 1024;  // as a listener's max_header_bytes default
  static constexpr size_t kMaxBodyBytes = 1024 * 1024;

  AdminServer(uv_loop_t* loop, Handler handler);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // Binds and listens; the bound address (port 0 resolved) is in bound().
  Result<void> listen(const HostPort& address);
  const HostPort& bound() const noexcept { return bound_; }
  // Stops accepting and closes every connection.
  void close() noexcept;
  // In a forked worker: the master's admin sockets must not stay open in the child (a worker
  // would keep the port, and clients' connections, alive). Closes the descriptors only.
  void close_descriptors_in_child() noexcept;

 private:
  class Connection;
  static void on_connection(uv_stream_t* server, int status) noexcept;

  uv_loop_t* loop_;
  Handler handler_;
  uv_tcp_t tcp_{};
  bool listening_ = false;
  HostPort bound_;
  std::vector<Connection*> connections_;
};

}  // namespace fusebox::proxy
