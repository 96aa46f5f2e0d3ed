// proxy/head_check.h: checks of a raw request head that Debian's llhttp 8.1 does not make.
// It folds an indented line into the previous header (obs-fold, CVE-2024-27982: "Host: a\r\n
// Content-Length: 3" hides the body, which is then parsed as a second request) and accepts a bare
// LF after the request line even in strict mode. Both are smuggling shapes (RFC 9112 §2.2, §5.2),
// so the whole head is scanned before anything is forwarded.
#pragma once

#include <llhttp.h>

#include <string_view>

namespace fusebox::proxy {

// Returns nullptr if every line ends in CRLF, none starts with SP or HTAB and no field name is
// followed by white space before its colon, else a static sentence saying what is wrong. `head` runs from the first byte of the message to the end of
// the empty line that closes the head.
const char* check_head_lines(std::string_view head) noexcept;

// Checks of a parsed request line: only HTTP/1.0 and HTTP/1.1 (llhttp also takes a line with no
// version, HTTP/0.9 style, and 2.0), and not the HTTP/2 preface's PRI method. Returns nullptr or
// a static sentence.
const char* check_request_line(const llhttp_t& parser) noexcept;

}  // namespace fusebox::proxy
