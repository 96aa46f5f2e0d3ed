// proxy/head_check.cc: see head_check.h.
#include "proxy/head_check.h"

#include <cstring>

namespace fusebox::proxy {

const char* check_head_lines(std::string_view head) noexcept {
  const char* p = head.data();
  const char* const end = p + head.size();
  if (p < end && (*p == ' ' || *p == '\t')) return "a line of the head starts with white space";
  bool first_line = true;
  while (p < end) {
    const char* lf = static_cast<const char*>(std::memchr(p, '\n', static_cast<size_t>(end - p)));
    const char* line_end = lf ? lf : end;
    if (!first_line) {
      // A field name is a token: white space before the colon is refused (RFC 9112 §5.1), for
      // every field, not only the ones llhttp knows (it checks Content-Length and friends).
      const void* colon = std::memchr(p, ':', static_cast<size_t>(line_end - p));
      if (colon != nullptr && (std::memchr(p, ' ', static_cast<size_t>(static_cast<const char*>(colon) - p)) ||
                               std::memchr(p, '\t', static_cast<size_t>(static_cast<const char*>(colon) - p))))
        return "white space between a header field name and its colon";
    }
    if (line_end > p + 1 || (line_end == p + 1 && *p != '\r')) first_line = false;
    // A CR anywhere but right before the LF is a bare CR.
    if (const void* cr = std::memchr(p, '\r', static_cast<size_t>(line_end - p));
        cr && static_cast<const char*>(cr) != line_end - 1)
      return "bare CR in the head";
    if (!lf) break;
    if (lf == head.data() || lf[-1] != '\r') return "bare LF in the head (lines must end in CRLF)";
    p = lf + 1;
    if (p < end && (*p == ' ' || *p == '\t'))
      return "obsolete line folding (a header line starts with white space)";
  }
  return nullptr;
}

const char* check_request_line(const llhttp_t& parser) noexcept {
  if (parser.http_major != 1 || parser.http_minor > 1) return "only HTTP/1.0 and HTTP/1.1 are served here";
  if (parser.method == HTTP_PRI) return "PRI is the HTTP/2 connection preface: this listener speaks HTTP/1.1";
  return nullptr;
}

}  // namespace fusebox::proxy
