// tools/fuseboxctl/http_client.h: one HTTP/1.1 request and its answer, over a connection of its
// own. Plain POSIX sockets in straight-line code; every wait is a poll() with a deadline, so a
// dead or silent fusebox costs at most 2 s to connect (per address) and 10 s in all.
//
// Not a general client: no TLS, no redirects, no retries (an action must not be sent twice
// because an answer was slow), no keep-alive (it sends Connection: close), no request body.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "shm/result.h"
#include "tools/fuseboxctl/admin_address.h"
#include "tools/fuseboxctl/http_response.h"

namespace fusebox::fuseboxctl {

struct Request {
  std::string method;        // "GET" or "POST"
  std::string target;        // "/admin/breakers/payments/open": path segments already encoded
  std::string bearer_token;  // sent as Authorization: Bearer when not empty; no CR, LF or CTL
};

struct Timeouts {
  std::chrono::milliseconds connect{2000};    // for each address the host name resolves to
  std::chrono::milliseconds exchange{10000};  // from the first connect to the end of the answer
};

// The server's answer, whatever its status. An Error when there is none: the host does not
// resolve, no address accepts the connection in time, the answer does not come in time, or what
// comes back is not an HTTP response. Its message is the reason alone ("Connection refused"), for
// the caller's own sentence.
Result<Response> exchange(const AdminAddress& to, const Request& request, const Timeouts& timeouts = {});

// One path segment, percent-encoded (RFC 3986 §3.3): a cluster name given on the command line
// then names exactly one resource, whatever characters it holds.
std::string encode_path_segment(std::string_view segment);

}  // namespace fusebox::fuseboxctl
