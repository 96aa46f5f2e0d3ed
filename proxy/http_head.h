// proxy/http_head.h: a parsed HTTP/1.x head as views into the connection's read buffer, with a
// fixed header array: parsing a head allocates nothing. Views are valid until the buffer is
// compacted or reused, so a head never outlives the exchange it belongs to.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace fusebox::proxy {

struct Header {
  std::string_view name;
  std::string_view value;
};

// ASCII case-insensitive equality, for header names and tokens (RFC 9110 §5.1).
constexpr bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

// Trims optional white space (SP / HTAB) from both ends.
constexpr std::string_view trim_ows(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Calls f(token) for each element of a comma-separated list ("close, Upgrade"), trimmed, skipping
// empty elements. Returns false as soon as f does.
template <typename F>
constexpr bool for_each_token(std::string_view list, F&& f) {
  while (!list.empty()) {
    const size_t comma = list.find(',');
    const std::string_view token = trim_ows(list.substr(0, comma));
    if (!token.empty() && !f(token)) return false;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return true;
}

// An absolute-form request target ("http://api:8080/p?q", RFC 9112 §3.2.2) split into its
// authority ("api:8080") and the origin-form the upstream gets ("/p?q"); `absolute` is false for
// any other target, which is then the origin-form as it is.
struct RequestTarget {
  bool absolute = false;
  std::string_view authority;
  std::string_view origin_form;
};

constexpr RequestTarget split_target(std::string_view target) noexcept {
  for (const std::string_view scheme : {std::string_view("http://"), std::string_view("https://")}) {
    if (target.size() > scheme.size() && iequals(target.substr(0, scheme.size()), scheme)) {
      std::string_view rest = target.substr(scheme.size());
      const size_t end = rest.find_first_of("/?");
      if (end == std::string_view::npos) return {true, rest, "/"};
      // "http://h?q" has an empty path: the origin-form is "/?q"; we cannot prepend the "/" in a
      // view, so the path starts at the "?" and the writer adds the "/".
      return {true, rest.substr(0, end), rest.substr(end)};
    }
  }
  return {false, {}, target};
}

class HttpHead {
 public:
  static constexpr size_t kMaxHeaders = 100;

  void clear() noexcept {
    method = target = reason = {};
    count_ = 0;
    name_open_ = value_open_ = false;
  }

  // llhttp delivers a field in several slices when it spans two reads, and says when each name
  // and value is complete; slices of one field are adjacent in our buffer, so a slice extends the
  // open view. Returns false when the head has more than kMaxHeaders fields.
  bool add_name(const char* at, size_t len) noexcept {
    if (name_open_) {
      extend(headers_[count_ - 1].name, at, len);
      return true;
    }
    if (count_ == kMaxHeaders) return false;
    headers_[count_++] = {{at, len}, {}};
    name_open_ = true;
    return true;
  }
  void end_name() noexcept { name_open_ = false; }
  void add_value(const char* at, size_t len) noexcept {
    if (count_ == 0) return;
    if (value_open_) {
      extend(headers_[count_ - 1].value, at, len);
    } else {
      headers_[count_ - 1].value = {at, len};
      value_open_ = true;
    }
  }
  void end_value() noexcept { value_open_ = false; }
  static void extend(std::string_view& view, const char* at, size_t len) noexcept {
    view = view.empty() ? std::string_view{at, len} : std::string_view{view.data(), view.size() + len};
  }

  size_t size() const noexcept { return count_; }
  const Header* begin() const noexcept { return headers_; }
  const Header* end() const noexcept { return headers_ + count_; }

  // The first field with this name, or an empty view (a field with an empty value is found too:
  // check `has` for presence).
  std::string_view find(std::string_view name) const noexcept {
    for (size_t i = 0; i < count_; ++i)
      if (iequals(headers_[i].name, name)) return headers_[i].value;
    return {};
  }
  bool has(std::string_view name) const noexcept {
    for (size_t i = 0; i < count_; ++i)
      if (iequals(headers_[i].name, name)) return true;
    return false;
  }

  std::string_view method;
  std::string_view target;
  std::string_view reason;

 private:
  Header headers_[kMaxHeaders];
  size_t count_ = 0;
  bool name_open_ = false;
  bool value_open_ = false;
};

}  // namespace fusebox::proxy
