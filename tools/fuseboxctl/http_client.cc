// tools/fuseboxctl/http_client.cc: see http_client.h. The socket is non-blocking only so that
// poll() can bound connect(), send() and recv(); the code still waits for each step in turn.
#include "tools/fuseboxctl/http_client.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <utility>

namespace fusebox::fuseboxctl {

namespace {

using Clock = std::chrono::steady_clock;

class Socket {
 public:
  explicit Socket(int fd) : fd_(fd) {}
  Socket(Socket&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Socket& operator=(Socket&&) = delete;
  ~Socket() {
    if (fd_ >= 0) close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

std::string errno_text(int err) { return std::strerror(err); }

// "2 s", "0.5 s": for messages about a timeout.
std::string seconds_text(std::chrono::milliseconds ms) {
  char text[32];
  if (ms.count() % 1000 == 0)
    std::snprintf(text, sizeof text, "%lld s", static_cast<long long>(ms.count() / 1000));
  else
    std::snprintf(text, sizeof text, "%.1f s", static_cast<double>(ms.count()) / 1000);
  return text;
}

// Waits until fd is ready for `events` or the deadline passes. Returns poll()'s revents, 0 at the
// deadline, or -errno.
int wait_for(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    pollfd p{.fd = fd, .events = events, .revents = 0};
    const int n = poll(&p, 1, static_cast<int>(std::max<int64_t>(left.count(), 0)));
    if (n > 0) return p.revents;
    if (n == 0) return 0;
    if (errno != EINTR) return -errno;
  }
}

Result<Socket> connect_one(const addrinfo& ai, Clock::time_point deadline, std::chrono::milliseconds limit) {
  Socket s(socket(ai.ai_family, ai.ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai.ai_protocol));
  if (s.get() < 0) return Error{errno_text(errno)};
  if (connect(s.get(), ai.ai_addr, ai.ai_addrlen) == 0) return s;
  // EINTR leaves a non-blocking connect going on, as EINPROGRESS does (connect(2)).
  if (errno != EINPROGRESS && errno != EINTR) return Error{errno_text(errno)};
  const int ready = wait_for(s.get(), POLLOUT, deadline);
  if (ready == 0) return Error{"no connection within " + seconds_text(limit)};
  if (ready < 0) return Error{errno_text(-ready)};
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(s.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
  if (err != 0) return Error{errno_text(err)};
  return s;
}

// Tries each address the host resolves to, in getaddrinfo()'s order, as curl does: "localhost"
// may give ::1 first where fusebox listens on 127.0.0.1 only.
Result<Socket> connect_to(const AdminAddress& to, const Timeouts& timeouts, Clock::time_point end) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* list = nullptr;
  // Known approximation: getaddrinfo() has no timeout, so a hanging resolver can hold us past
  // 10 s. The admin address is nearly always an IP literal, which never reaches a resolver.
  const int rc = getaddrinfo(to.host.c_str(), std::to_string(to.port).c_str(), &hints, &list);
  if (rc != 0)
    return Error{"cannot resolve \"" + to.host + "\": " + (rc == EAI_SYSTEM ? errno_text(errno) : gai_strerror(rc))};
  const std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> owner(list, freeaddrinfo);
  Error last{"the host has no address"};
  for (const addrinfo* ai = list; ai != nullptr && Clock::now() < end; ai = ai->ai_next) {
    auto s = connect_one(*ai, std::min(Clock::now() + timeouts.connect, end), timeouts.connect);
    if (s) return s;
    last = s.error();
  }
  return last;
}

std::string format_request(const AdminAddress& to, const Request& request) {
  assert(request.bearer_token.find_first_of("\r\n") == std::string::npos);
  std::string head = request.method + " " + request.target + " HTTP/1.1\r\n";
  head += "Host: " + to.text() + "\r\n";
  head += "User-Agent: fuseboxctl/" FUSEBOX_VERSION "\r\n";
  head += "Accept: application/json\r\n";
  if (!request.bearer_token.empty()) head += "Authorization: Bearer " + request.bearer_token + "\r\n";
  // RFC 9110 §8.6: a user agent normally sends Content-Length in a POST even when it is 0.
  if (request.method == "POST") head += "Content-Length: 0\r\n";
  head += "Connection: close\r\n\r\n";
  return head;
}

Result<void> send_all(int fd, std::string_view bytes, Clock::time_point end, std::chrono::milliseconds limit) {
  while (!bytes.empty()) {
    // MSG_NOSIGNAL: a server that closed early must cost us EPIPE, not the default SIGPIPE death.
    const ssize_t n = send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n >= 0) {
      bytes.remove_prefix(static_cast<size_t>(n));
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return Error{errno_text(errno)};
    const int ready = wait_for(fd, POLLOUT, end);
    if (ready == 0) return Error{"no complete exchange within " + seconds_text(limit)};
    if (ready < 0) return Error{errno_text(-ready)};
  }
  return {};
}

// Reads until the answer is complete, which is when the server closes unless the answer says its
// own length: a server that ignores Connection: close then costs nothing.
Result<Response> read_answer(int fd, Clock::time_point end, std::chrono::milliseconds limit) {
  std::string data;
  char buffer[64 * 1024];
  for (;;) {
    const int ready = wait_for(fd, POLLIN, end);
    if (ready == 0)
      return Error{(data.empty() ? "no answer within " : "no complete answer within ") + seconds_text(limit)};
    if (ready < 0) return Error{errno_text(-ready)};
    const ssize_t n = recv(fd, buffer, sizeof buffer, 0);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
      if (data.empty()) return Error{errno_text(errno)};
      return Error{errno_text(errno) + " after " + std::to_string(data.size()) + " bytes of the answer"};
    }
    data.append(buffer, static_cast<size_t>(n));
    if (data.size() > kMaxHead + kMaxBody + kMaxHead) return Error{"the answer is over 16 MiB"};
    auto parsed = parse_response(data, n == 0);
    if (!parsed) return parsed.error();
    if (parsed.value()) return std::move(*parsed.value());
    assert(n > 0);  // at the end of the stream the parser has decided
  }
}

}  // namespace

Result<Response> exchange(const AdminAddress& to, const Request& request, const Timeouts& timeouts) {
  const auto end = Clock::now() + timeouts.exchange;
  auto s = connect_to(to, timeouts, end);
  if (!s) return s.error();
  const auto sent = send_all(s.value().get(), format_request(to, request), end, timeouts.exchange);
  // A server may answer and close before reading all we sent (a 431, say): its answer, if it
  // arrived whole, says more than our EPIPE.
  auto answer = read_answer(s.value().get(), end, timeouts.exchange);
  if (!answer && !sent) return sent.error();
  return answer;
}

std::string encode_path_segment(std::string_view segment) {
  std::string out;
  for (const char c : segment) {
    // RFC 3986 §2.3: the unreserved characters go as they are; every other byte as %XX.
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_'
        || c == '~') {
      out += c;
    } else {
      char escaped[4];
      std::snprintf(escaped, sizeof escaped, "%%%02X", static_cast<unsigned char>(c));
      out += escaped;
    }
  }
  return out;
}

}  // namespace fusebox::fuseboxctl
