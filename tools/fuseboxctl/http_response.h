// tools/fuseboxctl/http_response.h: parses the one HTTP/1.1 response fuseboxctl reads, from the
// bytes received so far, so the client can stop reading as soon as the answer is complete even
// if the server keeps the connection open. Frames the body by RFC 9112 §6.3: no body for
// 1xx/204/304, chunked, Content-Length, else until the server closes.
//
// Not a general HTTP library: one response to one GET or POST, no HEAD, no Upgrade, no
// content codings (we send no Accept-Encoding), everything in memory, at most kMaxBody bytes.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "shm/result.h"

namespace fusebox::fuseboxctl {

inline constexpr size_t kMaxHead = 64 * 1024;          // status line, headers, and any 1xx before them
inline constexpr size_t kMaxBody = 16 * 1024 * 1024;   // the answer for 256 breakers is under 1 MiB

struct Response {
  int status = 0;
  std::string reason;
  std::vector<std::pair<std::string, std::string>> headers;  // in order, names as received
  std::string body;                                          // decoded from chunked, if it was

  // The first header of that name (case-insensitive), or nullptr.
  const std::string* header(std::string_view name) const;
};

// `data` is everything received so far; `at_eof` says the server has closed, which completes a
// body framed by the close and makes any other incomplete answer a truncated one.
// Returns the response once complete, std::nullopt while more bytes are needed, or an Error
// whose message says what is wrong with the answer ("the answer is not HTTP (it starts with ...)").
Result<std::optional<Response>> parse_response(std::string_view data, bool at_eof);

}  // namespace fusebox::fuseboxctl
