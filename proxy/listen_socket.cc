// proxy/listen_socket.cc: see listen_socket.h.
#include "proxy/listen_socket.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace fusebox::proxy {

Result<ListenSocket> bind_listener(const ListenerConfig& listener, int backlog) noexcept {
  const std::string where = "listener " + listener.name + " (" + listener.address.to_string() + ")";
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  std::string host = listener.address.host;
  if (host.size() > 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  addrinfo* res = nullptr;
  const std::string port = std::to_string(listener.address.port);
  if (const int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &res); rc != 0)
    return Error{where + ": cannot resolve the address: " + gai_strerror(rc)};
  const int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    freeaddrinfo(res);
    return Error{where + ": socket: " + std::strerror(errno)};
  }
  const int on = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, backlog) != 0) {
    const int err = errno;
    freeaddrinfo(res);
    ::close(fd);
    return Error{where + ": cannot listen: " + std::strerror(err) +
                 (err == EADDRINUSE ? " (another process listens there: change the address or stop it)" : "")};
  }
  freeaddrinfo(res);
  sockaddr_storage bound{};
  socklen_t len = sizeof bound;
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  ListenSocket s;
  s.fd = fd;
  char text[INET6_ADDRSTRLEN] = {};
  if (bound.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&bound);
    inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof text);
    s.bound = {text, ntohs(a->sin6_port)};
  } else {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&bound);
    inet_ntop(AF_INET, &a->sin_addr, text, sizeof text);
    s.bound = {text, ntohs(a->sin_port)};
  }
  return s;
}

}  // namespace fusebox::proxy
