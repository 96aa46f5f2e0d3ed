// proxy/failure.h: every way a request can fail in fusebox, each with the status the client gets,
// a static label (metrics, logs, the JSON body's "error") and a static sentence. Static, so that
// answering and counting a failure on the data path allocates nothing (as HAProxy's
// check_statuses and h2o's named error strings).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace fusebox::proxy {

enum class Failure : uint8_t {
  BadRequest,             // llhttp refused the request, or a check of ours did (detail says which)
  NoRoute,                // no route of the listener matches the Host and path
  MethodNotAllowed,       // CONNECT: fusebox is a reverse proxy, not a forward proxy
  HeaderTimeout,          // the request head did not arrive within header_timeout (slowloris)
  BodyTooLarge,           // the request body is over max_body_bytes
  HeaderTooLarge,         // the request head is over max_header_bytes, or has too many fields
  UpstreamUnresolved,     // the endpoint's name has no address (yet)
  UpstreamConnectFailed,  // connect() failed: refused, unreachable
  UpstreamReset,          // the upstream reset or closed the connection before a whole response
  UpstreamBadResponse,    // the upstream's response is not valid HTTP/1.1
  UpstreamOverloaded,     // this worker already holds max_connections to the cluster
  UpstreamConnectTimeout, // no connection within connect_timeout
  ResponseHeaderTimeout,  // no whole response head within response_header_timeout
  RequestTimeout,         // the exchange took longer than request_timeout
  BreakerOpen,            // the cluster's circuit breaker is open: fail fast, the upstream is spared
  Count
};

struct FailureInfo {
  int status;
  std::string_view label;
  std::string_view text;
};

constexpr FailureInfo kFailures[] = {
    {400, "bad_request", "the request is not valid HTTP/1.1"},
    {404, "no_route", "no route matches this request"},
    {405, "method_not_allowed", "CONNECT is not supported: fusebox is a reverse proxy"},
    {408, "header_timeout", "the request head did not arrive in time"},
    {413, "body_too_large", "the request body is larger than the listener allows"},
    {431, "header_too_large", "the request head is larger than the listener allows"},
    {502, "upstream_unresolved", "the upstream's name has no address"},
    {502, "upstream_connect_failed", "could not connect to the upstream"},
    {502, "upstream_reset", "the upstream closed the connection before a whole response"},
    {502, "upstream_bad_response", "the upstream's response is not valid HTTP/1.1"},
    {503, "upstream_overloaded", "too many connections to the upstream"},
    {504, "upstream_connect_timeout", "no connection to the upstream within connect_timeout"},
    {504, "response_header_timeout", "no response head from the upstream within response_header_timeout"},
    {504, "request_timeout", "the request took longer than request_timeout"},
    {503, "breaker_open", "the circuit breaker is open: calls fail fast until the next trial call"},
};
static_assert(std::size(kFailures) == static_cast<size_t>(Failure::Count));

constexpr const FailureInfo& info(Failure f) noexcept { return kFailures[static_cast<size_t>(f)]; }

// Whether the failure leaves the connection in a state where the next request can be read: the
// protocol errors and limits do not (the rest of the bytes cannot be trusted), upstream failures do.
constexpr bool keeps_connection(Failure f) noexcept {
  switch (f) {
    case Failure::NoRoute:
    case Failure::UpstreamUnresolved:
    case Failure::UpstreamConnectFailed:
    case Failure::UpstreamReset:
    case Failure::UpstreamBadResponse:
    case Failure::UpstreamOverloaded:
    case Failure::UpstreamConnectTimeout:
    case Failure::ResponseHeaderTimeout:
    case Failure::RequestTimeout:
    case Failure::BreakerOpen:
      return true;
    default:
      return false;
  }
}

// The standard reason phrase of a status ("Service Unavailable"), or "Status" for one we do not
// know by name.
const char* reason_phrase(int status) noexcept;

// Writes a whole HTTP/1.1 error response (JSON body naming the cause) into out[0, cap) and
// returns its length (0 if cap is too small, which the callers size to avoid). `detail` adds to
// the sentence (a parser's reason, an errno's name); empty for none. `extra_headers` are whole
// header lines ("Retry-After: 5\r\n"), written as they are.
size_t format_error_response(char* out, size_t cap, Failure failure, std::string_view detail,
                             std::string_view request_id, bool close,
                             std::string_view extra_headers = {}) noexcept;

}  // namespace fusebox::proxy
