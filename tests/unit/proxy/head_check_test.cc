// tests/unit/proxy/head_check_test.cc
#include "proxy/head_check.h"

#include <doctest/doctest.h>

#include <cstring>
#include <string>

using fusebox::proxy::check_head_lines;
using fusebox::proxy::check_request_line;

namespace {

// The request line's checks need a parser that has seen the line.
const char* request_line(const char* text) {
  static llhttp_settings_t settings;
  llhttp_settings_init(&settings);
  llhttp_t parser;
  llhttp_init(&parser, HTTP_REQUEST, &settings);
  llhttp_execute(&parser, text, std::strlen(text));
  return check_request_line(parser);
}

}  // namespace

TEST_CASE("a head whose lines all end in CRLF passes") {
  CHECK(check_head_lines("GET / HTTP/1.1\r\nHost: a\r\nX: y\r\n\r\n") == nullptr);
  CHECK(check_head_lines("\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n") == nullptr);  // a leading empty line
}

TEST_CASE("a bare LF anywhere in the head is refused") {
  CHECK(std::string(check_head_lines("GET / HTTP/1.1\nHost: a\r\n\r\n")) ==
        "bare LF in the head (lines must end in CRLF)");
  CHECK(check_head_lines("GET / HTTP/1.1\r\nHost: a\n\r\n") != nullptr);
  CHECK(check_head_lines("\nGET / HTTP/1.1\r\n\r\n") != nullptr);
}

TEST_CASE("a bare CR is refused") {
  CHECK(std::string(check_head_lines("GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n")) == "bare CR in the head");
}

TEST_CASE("obs-fold, the indented line llhttp 8.1 folds into the previous header, is refused") {
  // CVE-2024-27982: the Content-Length would be hidden inside Host's value.
  CHECK(std::string(check_head_lines("GET / HTTP/1.1\r\nHost: a\r\n Content-Length: 3\r\n\r\n")) ==
        "obsolete line folding (a header line starts with white space)");
  CHECK(check_head_lines("GET / HTTP/1.1\r\nHost: a\r\n\tX: 1\r\n\r\n") != nullptr);
  CHECK(check_head_lines(" GET / HTTP/1.1\r\n\r\n") != nullptr);
}

TEST_CASE("white space between any field name and its colon is refused") {
  CHECK(std::string(check_head_lines("GET / HTTP/1.1\r\nHost: a\r\nX-Note : hi\r\n\r\n")) ==
        "white space between a header field name and its colon");
  CHECK(check_head_lines("GET / HTTP/1.1\r\nX-Note\t: hi\r\n\r\n") != nullptr);
  // spaces in the request line and in values are fine
  CHECK(check_head_lines("GET /a:b HTTP/1.1\r\nX: a b : c\r\n\r\n") == nullptr);
  CHECK(check_head_lines("\r\nGET /a:b HTTP/1.1\r\nX: y\r\n\r\n") == nullptr);
}

TEST_CASE("only HTTP/1.0 and 1.1 request lines pass, and PRI does not") {
  CHECK(request_line("GET / HTTP/1.1\r\nHost: a\r\n\r\n") == nullptr);
  CHECK(request_line("GET / HTTP/1.0\r\n\r\n") == nullptr);
  CHECK(std::string(request_line("GET /a$b\r\nHost: a\r\n\r\n")) == "only HTTP/1.0 and HTTP/1.1 are served here");
  CHECK(request_line("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") != nullptr);
}
