// tools/fuseboxctl/http_response.cc: see http_response.h. Strict where a wrong guess would misread
// the body (status line, header names, Content-Length, chunk sizes), lenient where RFC 9112 lets
// a recipient be (a bare LF ends a line, obs-fold becomes a space).
#include "tools/fuseboxctl/http_response.h"

#include <algorithm>
#include <cstdio>
#include <utility>

namespace fusebox::fuseboxctl {

namespace {

constexpr std::string_view kWhitespace = " \t";
constexpr size_t kMaxChunkLine = 1024;  // "1000;name=value": size and extensions, which we ignore

struct Line {
  std::string_view text;  // without the line end
  size_t next;            // where the next line starts
};

// The line starting at `from`, if its end has arrived. RFC 9112 §2.2: a recipient may take a bare
// LF as a line end; the CR before an LF is dropped.
std::optional<Line> next_line(std::string_view data, size_t from) {
  const size_t lf = data.find('\n', from);
  if (lf == std::string_view::npos) return std::nullopt;
  std::string_view text = data.substr(from, lf - from);
  if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
  return Line{text, lf + 1};
}

std::string_view trim(std::string_view s) {
  const size_t first = s.find_first_not_of(kWhitespace);
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(kWhitespace) - first + 1);
}

// RFC 9110 §5.6.2: token characters, which is all a header name may hold.
bool is_tchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

// RFC 9110 §5.5: a field value has no control characters but HTAB (bytes over 0x7f are obs-text).
bool valid_value(std::string_view v) {
  for (const char c : v) {
    const auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t') || u == 0x7f) return false;
  }
  return true;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

// At most `max` bytes of what the server sent, printable, for an error message.
std::string excerpt(std::string_view bytes, size_t max = 40) {
  std::string out = "\"";
  for (const char c : bytes.substr(0, max)) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7f && c != '"' && c != '\\') {
      out += c;
    } else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", u);
      out += hex;
    }
  }
  return out + (bytes.size() > max ? "\"..." : "\"");
}

Error not_http(std::string_view data) {
  return Error{"the answer is not HTTP (it starts with " + excerpt(data) + ")"};
}

// What an answer that stopped short means: incomplete while the server may send more, truncated
// once it has closed.
Result<std::optional<Response>> short_of(bool at_eof, const std::string& what) {
  if (at_eof) return Error{what};
  return std::optional<Response>{};
}

struct Head {
  Response response;  // everything but the body
  size_t body_start;
};

// "HTTP/1.1 200 OK": RFC 9112 §4. The reason phrase may be empty, and some servers drop the space
// before an empty one.
Result<int> parse_status_line(std::string_view line, std::string& reason) {
  if (line.size() < 12 || line.substr(0, 7) != "HTTP/1." || line[7] < '0' || line[7] > '9' || line[8] != ' ')
    return Error{"the answer's status line " + excerpt(line) + " is not HTTP/1.x"};
  int status = 0;
  for (size_t i = 9; i < 12; ++i) {
    if (line[i] < '0' || line[i] > '9')
      return Error{"the answer's status line " + excerpt(line) + " has no status code"};
    status = status * 10 + (line[i] - '0');
  }
  if (status < 100 || status > 599) return Error{"the answer's status " + std::to_string(status) + " is not 100-599"};
  if (line.size() > 12 && line[12] != ' ') return Error{"the answer's status line " + excerpt(line) + " is malformed"};
  reason = std::string(line.size() > 13 ? line.substr(13) : std::string_view{});
  return status;
}

// The head that starts at `from`: a status line, header lines, an empty line.
Result<std::optional<Head>> parse_head(std::string_view data, size_t from, bool at_eof) {
  // Fails fast on a server that speaks something else (SSH, Redis, TLS) instead of waiting for a
  // line end that may never come.
  const std::string_view start = data.substr(from, 5);
  if (start != std::string_view("HTTP/").substr(0, start.size())) return not_http(data.substr(from));

  const auto too_long = [&](size_t upto) { return upto - from > kMaxHead; };
  const auto incomplete = [&]() -> Result<std::optional<Head>> {
    if (too_long(data.size())) return Error{"the answer's head is over " + std::to_string(kMaxHead / 1024) + " KiB"};
    if (!at_eof) return std::optional<Head>{};
    if (from == data.size()) return Error{"the connection closed without an answer"};
    return Error{"the connection closed in the middle of the answer's head"};
  };

  auto line = next_line(data, from);
  if (!line) return incomplete();
  Head head;
  auto status = parse_status_line(line->text, head.response.reason);
  if (!status) return status.error();
  head.response.status = status.value();

  auto& headers = head.response.headers;
  for (;;) {
    line = next_line(data, line->next);
    if (!line || too_long(line->next)) return incomplete();
    const std::string_view text = line->text;
    if (text.empty()) break;
    if (!valid_value(text)) return Error{"the answer's header line " + excerpt(text) + " holds a control character"};
    if (text[0] == ' ' || text[0] == '\t') {
      // obs-fold: RFC 9112 §5.2 asks a user agent to replace it with a space.
      if (headers.empty()) return Error{"the answer's first header line " + excerpt(text) + " starts with a space"};
      headers.back().second += ' ';
      headers.back().second += trim(text);
      continue;
    }
    const size_t colon = text.find(':');
    const std::string_view name = text.substr(0, colon);
    bool token = colon != std::string_view::npos && !name.empty();
    for (size_t i = 0; token && i < name.size(); ++i) token = is_tchar(name[i]);
    if (!token) return Error{"the answer's header line " + excerpt(text) + " is not \"Name: value\""};
    headers.emplace_back(std::string(name), std::string(trim(text.substr(colon + 1))));
  }
  head.body_start = line->next;
  return std::optional<Head>(std::move(head));
}

// RFC 9110 §8.6: a list of identical values ("42, 42") is one length; anything else that is not
// digits, or lengths that disagree, leave the body's end unknown, so the answer is unusable.
Result<size_t> content_length(const Response& r) {
  std::optional<size_t> length;
  for (const auto& [name, value] : r.headers) {
    if (lower(name) != "content-length") continue;
    std::string_view rest = value;
    while (true) {
      const size_t comma = rest.find(',');
      const std::string_view item = trim(rest.substr(0, comma));
      size_t n = 0;
      bool digits = !item.empty();
      for (size_t i = 0; digits && i < item.size(); ++i) {
        digits = item[i] >= '0' && item[i] <= '9';
        n = std::min(n * 10 + static_cast<size_t>(item[i] - '0'), kMaxBody + 1);  // no overflow
      }
      if (!digits) return Error{"the answer's Content-Length " + excerpt(value) + " is not a number"};
      if (length && *length != n)
        return Error{"the answer's Content-Lengths disagree (" + std::to_string(*length) + " and "
                     + std::to_string(n) + ")"};
      length = n;
      if (comma == std::string_view::npos) break;
      rest = rest.substr(comma + 1);
    }
  }
  if (*length > kMaxBody) return Error{"the answer's body is over 16 MiB"};
  return *length;
}

// RFC 9112 §7.1: chunk-size [ chunk-ext ] CRLF chunk-data CRLF ... "0" [ chunk-ext ] CRLF
// trailer-section CRLF. Walks the chunk size lines and jumps over the data, so calling this again
// after every read costs little until the last chunk arrives; only then is the body copied.
Result<std::optional<Response>> chunked_body(std::string_view data, Head head, bool at_eof) {
  constexpr std::string_view kTruncated = "the connection closed before the chunked answer's last chunk";
  std::vector<std::string_view> pieces;
  size_t total = 0;
  size_t pos = head.body_start;
  for (;;) {
    const auto line = next_line(data, pos);
    if (!line) {
      if (data.size() - pos > kMaxChunkLine) return Error{"the answer's chunk size line is over 1 KiB"};
      return short_of(at_eof, std::string(kTruncated));
    }
    size_t size = 0;
    size_t digits = 0;
    for (; digits < line->text.size(); ++digits) {
      const char c = line->text[digits];
      const int v = (c >= '0' && c <= '9')   ? c - '0'
                    : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                    : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                             : -1;
      if (v < 0) break;
      size = size * 16 + static_cast<size_t>(v);
      if (size > kMaxBody) return Error{"the answer's chunk of " + excerpt(line->text) + " bytes is over 16 MiB"};
    }
    // chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] ): ignored, as §7.1.1 allows.
    const std::string_view after = line->text.substr(digits);
    const size_t ext = after.find_first_not_of(kWhitespace);
    if (digits == 0 || (ext != std::string_view::npos && after[ext] != ';'))
      return Error{"the answer's chunk size line " + excerpt(line->text) + " is not a hex size"};
    pos = line->next;

    if (size == 0) {
      // The trailer section: fields we do not use, then an empty line.
      for (;;) {
        const auto trailer = next_line(data, pos);
        if (!trailer) {
          if (data.size() - pos > kMaxHead) return Error{"the answer's trailer section is over 64 KiB"};
          return short_of(at_eof, std::string(kTruncated));
        }
        pos = trailer->next;
        if (trailer->text.empty()) break;
      }
      head.response.body.reserve(total);
      for (const std::string_view piece : pieces) head.response.body += piece;
      return std::optional<Response>(std::move(head.response));
    }

    total += size;
    if (total > kMaxBody) return Error{"the answer's chunked body is over 16 MiB"};
    if (data.size() - pos < size + 1) return short_of(at_eof, std::string(kTruncated));
    pieces.push_back(data.substr(pos, size));
    pos += size;
    // The CRLF after the data; a bare LF again passes (§2.2).
    if (data[pos] == '\r') {
      if (pos + 1 == data.size()) return short_of(at_eof, std::string(kTruncated));
      ++pos;
    }
    if (data[pos] != '\n')
      return Error{"the answer's chunk of " + std::to_string(size) + " bytes is not followed by CRLF"};
    ++pos;
  }
}

// RFC 9112 §6.3, for a response to a GET or POST: the body's length, in the order of precedence.
Result<std::optional<Response>> body(std::string_view data, Head head, bool at_eof) {
  Response& r = head.response;
  if (r.status == 204 || r.status == 304) return std::optional<Response>(std::move(r));

  std::string codings;  // appended, not "," + ...: GCC 12's false -Wrestrict (PR105651)
  for (const auto& [name, value] : r.headers)
    if (lower(name) == "transfer-encoding") codings.append(codings.empty() ? "" : ",").append(lower(value));
  if (!codings.empty()) {
    // Transfer-Encoding wins over Content-Length (§6.3 item 3). We asked for no content coding, so
    // anything but plain chunked would leave bytes we cannot decode.
    std::string only;
    size_t start = 0;
    while (start <= codings.size()) {
      const size_t comma = std::min(codings.find(',', start), codings.size());
      const std::string_view coding = trim(std::string_view(codings).substr(start, comma - start));
      if (!coding.empty()) only += (only.empty() ? "" : ", ") + std::string(coding);
      start = comma + 1;
    }
    if (only != "chunked") return Error{"the answer's Transfer-Encoding \"" + only + "\" is not just chunked"};
    return chunked_body(data, std::move(head), at_eof);
  }

  if (r.header("Content-Length") != nullptr) {
    auto length = content_length(r);
    if (!length) return length.error();
    const size_t have = data.size() - head.body_start;
    if (have < length.value())
      return short_of(at_eof, "the connection closed after " + std::to_string(have) + " of the answer's "
                                  + std::to_string(length.value()) + " body bytes");
    r.body = std::string(data.substr(head.body_start, length.value()));
    return std::optional<Response>(std::move(r));
  }

  // Neither: the body ends where the server closes (§6.3 item 8).
  if (!at_eof) return std::optional<Response>{};
  if (data.size() - head.body_start > kMaxBody) return Error{"the answer's body is over 16 MiB"};
  r.body = std::string(data.substr(head.body_start));
  return std::optional<Response>(std::move(r));
}

}  // namespace

const std::string* Response::header(std::string_view name) const {
  const std::string wanted = lower(name);
  for (const auto& [k, v] : headers)
    if (lower(k) == wanted) return &v;
  return nullptr;
}

Result<std::optional<Response>> parse_response(std::string_view data, bool at_eof) {
  size_t from = 0;
  for (;;) {
    auto head = parse_head(data, from, at_eof);
    if (!head) return head.error();
    if (!head.value()) return std::optional<Response>{};
    const int status = head.value()->response.status;
    if (status == 101) return Error{"the answer is 101 Switching Protocols, but fuseboxctl asked for no upgrade"};
    // RFC 9110 §15.2: a client must accept interim 1xx answers before the final one, and may
    // ignore them.
    if (status < 200) {
      from = head.value()->body_start;
      continue;
    }
    return body(data, std::move(*head.value()), at_eof);
  }
}

}  // namespace fusebox::fuseboxctl
