// proxy/listen_socket.h: binds a listener's socket in the master, once. Workers inherit the
// descriptor across fork and share its accept queue (design.md, "Process model").
#pragma once

#include "proxy/config.h"
#include "shm/result.h"

namespace fusebox::proxy {

// The accept queue's length: the master's listen() and each worker's uv_listen() ask the same.
constexpr int kListenBacklog = 4096;

struct ListenSocket {
  int fd = -1;
  HostPort bound;  // the address as bound (port 0 replaced by the port the kernel chose)
};

// Resolves the host (a literal, or a name through getaddrinfo), binds with SO_REUSEADDR and
// listens. The error names the listener and the address.
Result<ListenSocket> bind_listener(const ListenerConfig& listener, int backlog) noexcept;

}  // namespace fusebox::proxy
