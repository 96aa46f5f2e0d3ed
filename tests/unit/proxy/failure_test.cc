// tests/unit/proxy/failure_test.cc
#include "proxy/failure.h"

#include <doctest/doctest.h>

#include <string>

using namespace fusebox::proxy;

TEST_CASE("an error answer is JSON naming the cause, with the request id") {
  char out[2048];
  const size_t n = format_error_response(out, sizeof out, Failure::UpstreamConnectFailed, "connection refused",
                                         "abc", /*close=*/false);
  const std::string r(out, n);
  const std::string body =
      "{\"error\":\"upstream_connect_failed\",\"status\":502,\"message\":\"could not connect to the upstream: "
      "connection refused\",\"request_id\":\"abc\"}\n";
  CHECK(r == "HTTP/1.1 502 Bad Gateway\r\nContent-Type: application/json\r\nContent-Length: " +
                 std::to_string(body.size()) + "\r\nx-fusebox-error: upstream_connect_failed\r\n\r\n" + body);
}

TEST_CASE("details are escaped into valid JSON and a closing answer says so") {
  char out[2048];
  const std::string r(out, format_error_response(out, sizeof out, Failure::BadRequest, "bad \"quote\" \\ \x01",
                                                 "id\"", /*close=*/true));
  CHECK(r.find("Connection: close\r\n") != std::string::npos);
  CHECK(r.find("bad \\\"quote\\\" \\\\ \\u0001") != std::string::npos);
  CHECK(r.find("\"request_id\":\"id\\\"\"") != std::string::npos);
}

TEST_CASE("every failure has a status, a label and a sentence") {
  for (size_t i = 0; i < static_cast<size_t>(Failure::Count); ++i) {
    const FailureInfo& f = info(static_cast<Failure>(i));
    CHECK(f.status >= 400);
    CHECK(f.status < 600);
    CHECK_FALSE(f.label.empty());
    CHECK_FALSE(f.text.empty());
  }
}

TEST_CASE("a buffer too small for the answer gives 0, not a cut answer") {
  char out[64];
  CHECK(format_error_response(out, sizeof out, Failure::NoRoute, "", "id", false) == 0);
}
