// proxy/failure.cc: the JSON error answer, formatted into the connection's own buffer.
#include "proxy/failure.h"

#include <cstdio>

namespace fusebox::proxy {
namespace {

// Copies s into out as the inside of a JSON string: quotes, backslashes and control bytes are
// escaped; anything else passes (details are ASCII sentences from llhttp or ours).
size_t json_escape(char* out, size_t cap, std::string_view s) noexcept {
  size_t n = 0;
  for (const char c : s) {
    if (n + 6 >= cap) break;
    if (c == '"' || c == '\\') {
      out[n++] = '\\';
      out[n++] = c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      n += static_cast<size_t>(std::snprintf(out + n, cap - n, "\\u%04x", c));
    } else {
      out[n++] = c;
    }
  }
  return n;
}

}  // namespace

size_t format_error_response(char* out, size_t cap, Failure failure, std::string_view detail,
                             std::string_view request_id, bool close) noexcept {
  const FailureInfo& f = info(failure);
  char body[768];
  size_t b = 0;
  b += static_cast<size_t>(std::snprintf(body, sizeof body, "{\"error\":\"%.*s\",\"status\":%d,\"message\":\"",
                                         static_cast<int>(f.label.size()), f.label.data(), f.status));
  b += json_escape(body + b, sizeof body - b, f.text);
  if (!detail.empty()) {
    b += json_escape(body + b, sizeof body - b, ": ");
    b += json_escape(body + b, sizeof body - b, detail);
  }
  b += static_cast<size_t>(std::snprintf(body + b, sizeof body - b, "\",\"request_id\":\""));
  b += json_escape(body + b, sizeof body - b, request_id.substr(0, 128));
  b += static_cast<size_t>(std::snprintf(body + b, sizeof body - b, "\"}\n"));
  const int n = std::snprintf(out, cap,
                              "HTTP/1.1 %d %s\r\n"
                              "Content-Type: application/json\r\n"
                              "Content-Length: %zu\r\n"
                              "x-fusebox-error: %.*s\r\n"
                              "%s"
                              "\r\n%.*s",
                              f.status,
                              f.status == 400   ? "Bad Request"
                              : f.status == 404 ? "Not Found"
                              : f.status == 405 ? "Method Not Allowed"
                              : f.status == 408 ? "Request Timeout"
                              : f.status == 413 ? "Content Too Large"
                              : f.status == 431 ? "Request Header Fields Too Large"
                              : f.status == 502 ? "Bad Gateway"
                              : f.status == 503 ? "Service Unavailable"
                                                : "Gateway Timeout",
                              b, static_cast<int>(f.label.size()), f.label.data(),
                              close ? "Connection: close\r\n" : "", static_cast<int>(b), body);
  return n < 0 || static_cast<size_t>(n) >= cap ? 0 : static_cast<size_t>(n);
}

}  // namespace fusebox::proxy
