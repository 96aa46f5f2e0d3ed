// proxy/head_writer.cc: see head_writer.h.
#include "proxy/head_writer.h"

#include <cstring>

namespace fusebox::proxy {

HeadWriter& HeadWriter::operator<<(std::string_view s) noexcept {
  if (s.empty()) return *this;  // memcpy from an empty view's null data is undefined
  if (overflow_ || s.size() > cap_ - n_) {
    overflow_ = true;
    return *this;
  }
  std::memcpy(out_ + n_, s.data(), s.size());
  n_ += s.size();
  return *this;
}

HeadWriter& HeadWriter::operator<<(unsigned long long v) noexcept {
  char digits[24];
  size_t i = sizeof digits;
  do {
    digits[--i] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  return *this << std::string_view(digits + i, sizeof digits - i);
}

namespace {

// The field names the Connection header lists, which are hop-by-hop too (RFC 9110 §7.6.1).
class ConnectionOptions {
 public:
  explicit ConnectionOptions(const HttpHead& head) noexcept {
    for (const Header& h : head) {
      if (!iequals(h.name, "connection")) continue;
      for_each_token(h.value, [&](std::string_view token) {
        // Never the framing or Host: "Connection: content-length" would otherwise strip the
        // length from a head whose body still follows, and the body would reach the upstream
        // as a request of its own (smuggling). HAProxy and nginx ignore these names too.
        if (iequals(token, "content-length") || iequals(token, "transfer-encoding") || iequals(token, "host"))
          return true;
        if (n_ < kMax) names_[n_++] = token;
        return true;
      });
    }
  }
  bool names(std::string_view field) const noexcept {
    for (size_t i = 0; i < n_; ++i)
      if (iequals(names_[i], field)) return true;
    return false;
  }

 private:
  static constexpr size_t kMax = 16;
  std::string_view names_[kMax];
  size_t n_ = 0;
};

// Switches on the length first: most fields are none of these, and say so in one comparison.
bool is_hop_by_hop(std::string_view name) noexcept {
  switch (name.size()) {
    case 2: return iequals(name, "te");
    case 7: return iequals(name, "upgrade");
    case 10: return iequals(name, "connection") || iequals(name, "keep-alive");
    case 16: return iequals(name, "proxy-connection");
    default: return false;
  }
}

}  // namespace

size_t write_upstream_request(char* out, size_t cap, const HttpHead& head,
                              const UpstreamRequestShape& shape) noexcept {
  HeadWriter w(out, cap);
  const ConnectionOptions options(head);
  // An absolute-form target goes on in origin-form, with its authority as Host in place of the
  // client's (RFC 9112 §3.2.2, §3.2.1).
  const RequestTarget target = split_target(head.target);
  w << head.method << " " << (target.absolute && target.origin_form.front() == '?' ? "/" : "") << target.origin_form << " HTTP/1.1\r\n";
  bool has_host = target.absolute;
  if (target.absolute) w.header("Host", target.authority);
  // X-Forwarded-For and Via are each folded into one field with our addition at the end.
  std::string_view forwarded_for[8];
  size_t n_forwarded_for = 0;
  std::string_view via[8];
  size_t n_via = 0;
  for (const Header& h : head) {
    if (is_hop_by_hop(h.name) || options.names(h.name)) continue;
    if (iequals(h.name, "expect")) continue;
    if (iequals(h.name, "x-forwarded-for")) {
      if (n_forwarded_for < std::size(forwarded_for)) forwarded_for[n_forwarded_for++] = h.value;
      continue;
    }
    if (iequals(h.name, "via")) {
      if (n_via < std::size(via)) via[n_via++] = h.value;
      continue;
    }
    if (iequals(h.name, "host")) {
      if (target.absolute) continue;
      has_host = true;
    }
    // The client's id goes on below as shape.request_id when fusebox kept it; one it replaced
    // (not a plain token, or too long) must not reach the upstream beside the id fusebox logs.
    if (iequals(h.name, "x-request-id")) continue;
    w.header(h.name, h.value);
  }
  if (!has_host && !shape.default_host.empty()) w.header("Host", shape.default_host);
  w << "X-Forwarded-For: ";
  for (size_t i = 0; i < n_forwarded_for; ++i) w << forwarded_for[i] << ", ";
  w << shape.client_address << "\r\nVia: ";
  for (size_t i = 0; i < n_via; ++i) w << via[i] << ", ";
  w << "1.1 fusebox\r\n";
  w.header("x-request-id", shape.request_id);
  if (shape.upgrade) {
    w.header("Upgrade", head.find("upgrade"));
    w << "Connection: upgrade\r\n";
  }
  w << "\r\n";
  return w.size();
}

size_t write_downstream_response(char* out, size_t cap, const HttpHead& head,
                                 const DownstreamResponseShape& shape) noexcept {
  HeadWriter w(out, cap);
  const ConnectionOptions options(head);
  w << "HTTP/1.1 " << static_cast<unsigned long long>(shape.status) << " " << head.reason << "\r\n";
  for (const Header& h : head) {
    if (is_hop_by_hop(h.name) || options.names(h.name)) continue;
    if (shape.dechunk && iequals(h.name, "transfer-encoding")) continue;
    w.header(h.name, h.value);
  }
  if (shape.upgrade) {
    w.header("Upgrade", head.find("upgrade"));
    w << "Connection: upgrade\r\n";
  } else if (shape.close) {
    w << "Connection: close\r\n";
  } else if (shape.http10_keep_alive) {
    w << "Connection: keep-alive\r\n";
  }
  w << "\r\n";
  return w.size();
}

}  // namespace fusebox::proxy
