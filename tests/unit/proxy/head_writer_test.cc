// tests/unit/proxy/head_writer_test.cc: the heads fusebox sends, built from heads llhttp parsed.
#include "proxy/head_writer.h"

#include <doctest/doctest.h>
#include <llhttp.h>

#include <string>

using namespace fusebox::proxy;

namespace {

// Parses a head with llhttp into an HttpHead, the way the workers do.
struct Parsed {
  std::string text;
  HttpHead head;
  llhttp_t parser{};
  llhttp_settings_t settings{};

  explicit Parsed(std::string t, llhttp_type_t type = HTTP_REQUEST) : text(std::move(t)) {
    llhttp_settings_init(&settings);
    settings.on_method = [](llhttp_t* p, const char* at, size_t n) {
      HttpHead::extend(static_cast<Parsed*>(p->data)->head.method, at, n);
      return 0;
    };
    settings.on_url = [](llhttp_t* p, const char* at, size_t n) {
      HttpHead::extend(static_cast<Parsed*>(p->data)->head.target, at, n);
      return 0;
    };
    settings.on_status = [](llhttp_t* p, const char* at, size_t n) {
      HttpHead::extend(static_cast<Parsed*>(p->data)->head.reason, at, n);
      return 0;
    };
    settings.on_header_field = [](llhttp_t* p, const char* at, size_t n) {
      return static_cast<Parsed*>(p->data)->head.add_name(at, n) ? 0 : -1;
    };
    settings.on_header_field_complete = [](llhttp_t* p) {
      static_cast<Parsed*>(p->data)->head.end_name();
      return 0;
    };
    settings.on_header_value = [](llhttp_t* p, const char* at, size_t n) {
      static_cast<Parsed*>(p->data)->head.add_value(at, n);
      return 0;
    };
    settings.on_header_value_complete = [](llhttp_t* p) {
      static_cast<Parsed*>(p->data)->head.end_value();
      return 0;
    };
    llhttp_init(&parser, type, &settings);
    parser.data = this;
    // Two slices, as when a head spans two reads: the views must come out whole.
    const size_t half = text.size() / 2;
    REQUIRE(llhttp_execute(&parser, text.data(), half) == HPE_OK);
    const llhttp_errno_t rest = llhttp_execute(&parser, text.data() + half, text.size() - half);
    REQUIRE((rest == HPE_OK || rest == HPE_PAUSED_UPGRADE));
  }
};

std::string upstream_request(const HttpHead& head, UpstreamRequestShape shape) {
  char out[4096];
  const size_t n = write_upstream_request(out, sizeof out, head, shape);
  return {out, n};
}

}  // namespace

TEST_CASE("a parsed head keeps fields whole across two reads") {
  Parsed p("GET /a/long/path HTTP/1.1\r\nHost: example\r\nX-Some-Header: some value\r\n\r\n");
  CHECK(p.head.method == "GET");
  CHECK(p.head.target == "/a/long/path");
  CHECK(p.head.size() == 2);
  CHECK(p.head.find("x-some-header") == "some value");
  CHECK(p.head.find("HOST") == "example");
  CHECK_FALSE(p.head.has("missing"));
}

TEST_CASE("the upstream request drops hop-by-hop fields and adds forwarding fields") {
  Parsed p(
      "POST /x HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\nKeep-Alive: 5\r\n"
      "TE: trailers\r\nProxy-Connection: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n");
  const std::string out = upstream_request(p.head, {.client_address = "10.0.0.9", .request_id = "id1"});
  CHECK(out ==
        "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nX-Forwarded-For: 10.0.0.9\r\n"
        "Via: 1.1 fusebox\r\nx-request-id: id1\r\n\r\n");
}

TEST_CASE("X-Forwarded-For and Via are extended, and the client's request id is kept") {
  Parsed p("GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 2.2.2.2\r\n"
           "Via: 1.0 a\r\nX-Request-Id: mine\r\n\r\n");
  const std::string out = upstream_request(p.head, {.client_address = "3.3.3.3", .request_id = "mine"});
  CHECK(out ==
        "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 1.1.1.1, 2.2.2.2, 3.3.3.3\r\n"
        "Via: 1.0 a, 1.1 fusebox\r\nx-request-id: mine\r\n\r\n");
}

TEST_CASE("a client's request id that fusebox replaced does not reach the upstream") {
  Parsed p("GET / HTTP/1.1\r\nHost: h\r\nX-Request-Id: \"quoted\"\r\n\r\n");
  const std::string out = upstream_request(p.head, {.client_address = "c", .request_id = "0123abcd"});
  CHECK(out == "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: c\r\nVia: 1.1 fusebox\r\nx-request-id: 0123abcd\r\n\r\n");
}

TEST_CASE("an upgrade keeps Upgrade and says Connection: upgrade") {
  Parsed p("GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
  const std::string out =
      upstream_request(p.head, {.client_address = "c", .request_id = "r", .upgrade = true});
  CHECK(out ==
        "GET /ws HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: c\r\nVia: 1.1 fusebox\r\nx-request-id: r\r\n"
        "Upgrade: websocket\r\nConnection: upgrade\r\n\r\n");
}

TEST_CASE("an HTTP/1.0 request without Host gets the endpoint as Host") {
  Parsed p("GET / HTTP/1.0\r\n\r\n");
  const std::string out = upstream_request(p.head, {.client_address = "c", .request_id = "r", .default_host = "up:8080"});
  CHECK(out.find("\r\nHost: up:8080\r\n") != std::string::npos);
  CHECK(out.rfind("GET / HTTP/1.1\r\n", 0) == 0);
}

TEST_CASE("a head that does not fit is reported as size 0, never cut") {
  Parsed p("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
  char out[20];
  CHECK(write_upstream_request(out, sizeof out, p.head, {.client_address = "c"}) == 0);
}

TEST_CASE("Connection cannot name the framing or Host away, in either direction") {
  Parsed req("POST /x HTTP/1.1\r\nHost: h\r\nConnection: Content-Length, host, X-Private\r\n"
             "X-Private: s\r\nContent-Length: 3\r\n\r\n");
  const std::string up = upstream_request(req.head, {.client_address = "c", .request_id = "r"});
  CHECK(up == "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nX-Forwarded-For: c\r\nVia: 1.1 fusebox\r\n"
              "x-request-id: r\r\n\r\n");
  Parsed resp("HTTP/1.1 200 OK\r\nConnection: transfer-encoding\r\nTransfer-Encoding: chunked\r\n\r\n",
              HTTP_RESPONSE);
  char out[512];
  const std::string down(out, write_downstream_response(out, sizeof out, resp.head, {.status = 200}));
  CHECK(down == "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
}

TEST_CASE("the response drops hop-by-hop fields and says how the connection goes on") {
  Parsed p("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n"
           "Transfer-Encoding: chunked\r\n\r\n",
           HTTP_RESPONSE);
  char out[1024];
  std::string kept(out, write_downstream_response(out, sizeof out, p.head, {.status = 200}));
  CHECK(kept == "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n");
  std::string closing(out, write_downstream_response(out, sizeof out, p.head, {.status = 200, .close = true}));
  CHECK(closing ==
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
  std::string dechunked(out, write_downstream_response(out, sizeof out, p.head,
                                                       {.status = 200, .close = true, .dechunk = true}));
  CHECK(dechunked == "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n");
  std::string http10(out, write_downstream_response(out, sizeof out, p.head, {.status = 200, .http10_keep_alive = true}));
  CHECK(http10.find("Connection: keep-alive\r\n") != std::string::npos);
}

TEST_CASE("an absolute-form target goes upstream in origin-form, its authority replacing Host") {
  Parsed p("GET http://api.example:8080/v1/x?q=1 HTTP/1.1\r\nHost: other\r\n\r\n");
  const std::string out = upstream_request(p.head, {.client_address = "c", .request_id = "r"});
  CHECK(out.rfind("GET /v1/x?q=1 HTTP/1.1\r\nHost: api.example:8080\r\n", 0) == 0);
  CHECK(out.find("other") == std::string::npos);
  Parsed bare("GET http://api?q HTTP/1.1\r\n\r\n");
  CHECK(upstream_request(bare.head, {.client_address = "c"}).rfind("GET /?q HTTP/1.1\r\nHost: api\r\n", 0) == 0);
  Parsed star("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n");
  CHECK(upstream_request(star.head, {.client_address = "c"}).rfind("OPTIONS * HTTP/1.1\r\n", 0) == 0);
}
