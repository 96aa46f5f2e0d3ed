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

const char* reason_phrase(int status) noexcept {
  switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Status";
  }
}

size_t format_error_response(char* out, size_t cap, Failure failure, std::string_view detail,
                             std::string_view request_id, bool close, std::string_view extra_headers) noexcept {
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
                              "%.*s"
                              "%s"
                              "\r\n%.*s",
                              f.status,
                              reason_phrase(f.status),
                              b, static_cast<int>(f.label.size()), f.label.data(),
                              static_cast<int>(extra_headers.size()), extra_headers.data(),
                              close ? "Connection: close\r\n" : "", static_cast<int>(b), body);
  return n < 0 || static_cast<size_t>(n) >= cap ? 0 : static_cast<size_t>(n);
}

}  // namespace fusebox::proxy
