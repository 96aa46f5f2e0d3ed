// proxy/head_writer.h: builds the heads fusebox sends: the request head for the upstream and the
// response head for the client, from a parsed head, into a fixed buffer (no allocation).
//
// What changes on the way through (RFC 9110 §7.6.1, RFC 9112 §9.6):
// - hop-by-hop fields are dropped: Connection, Keep-Alive, Proxy-Connection, TE, Upgrade (kept for
//   an upgrade), and every field the Connection header names;
// - Transfer-Encoding passes as it came (bodies are forwarded with their framing), except when a
//   chunked response is decoded for an HTTP/1.0 client;
// - requests: X-Forwarded-For gets the client's address appended, Via gets "1.1 fusebox", an
//   x-request-id is added when the client sent none, Expect is dropped (fusebox answers
//   100-continue itself), Host is added for HTTP/1.0 clients that sent none.
#pragma once

#include <cstddef>
#include <string_view>

#include "proxy/http_head.h"

namespace fusebox::proxy {

// Appends into a fixed buffer; once full, stays full and says so.
class HeadWriter {
 public:
  HeadWriter(char* out, size_t cap) noexcept : out_(out), cap_(cap) {}
  HeadWriter& operator<<(std::string_view s) noexcept;
  HeadWriter& operator<<(unsigned long long v) noexcept;
  HeadWriter& header(std::string_view name, std::string_view value) noexcept {
    return *this << name << ": " << value << "\r\n";
  }
  bool overflowed() const noexcept { return overflow_; }
  size_t size() const noexcept { return overflow_ ? 0 : n_; }

 private:
  char* out_;
  size_t cap_;
  size_t n_ = 0;
  bool overflow_ = false;
};

struct UpstreamRequestShape {
  std::string_view client_address;  // appended to X-Forwarded-For
  std::string_view request_id;      // sent as x-request-id: the client's kept one, or fusebox's
  bool upgrade = false;             // keep Upgrade and send Connection: upgrade
  std::string_view default_host;    // Host to add when the client sent none (HTTP/1.0)
};

// Returns the head's length, 0 if it does not fit in cap.
size_t write_upstream_request(char* out, size_t cap, const HttpHead& head,
                              const UpstreamRequestShape& shape) noexcept;

struct DownstreamResponseShape {
  int status = 200;
  bool close = false;             // send Connection: close (fusebox closes after this response)
  bool http10_keep_alive = false; // an HTTP/1.0 client asked for keep-alive and gets it
  bool dechunk = false;           // the body is decoded: drop Transfer-Encoding
  bool upgrade = false;           // a 101 that switches to a tunnel: keep Upgrade
};

size_t write_downstream_response(char* out, size_t cap, const HttpHead& head,
                                 const DownstreamResponseShape& shape) noexcept;

}  // namespace fusebox::proxy
