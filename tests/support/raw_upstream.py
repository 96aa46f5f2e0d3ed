"""tests/support/raw_upstream.py: a raw TCP upstream on loopback that runs a test's script on every
connection it accepts, for upstream misbehaviour tools/fault_upstream.py cannot produce (garbage for
a response, a close on the second request, a status line without a reason phrase, ...).

Not an HTTP server: a script reads request heads and sends whatever bytes it likes, or nothing.
"""

from __future__ import annotations

import socket
import threading


class RawUpstream:
    """A raw TCP server on 127.0.0.1, port chosen by the kernel, that runs script(peer) in a thread
    for every connection it accepts, peer being that connection's RawPeer (peer.index counts
    connections from 0). It counts the connections it accepted (`accepted`) and the request heads
    its scripts read (`requests`), and records each head's request line with its connection's
    index (request_lines()), in arrival order. Sockets time out after 5 s, so no thread outlives a
    test by much; stop() closes every socket."""

    def __init__(self, script):
        self.script = script
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.listener.settimeout(0.1)  # so the accept loop sees stop() within 100 ms
        self.addr = "127.0.0.1:%d" % self.listener.getsockname()[1]
        self.accepted = 0
        self._seen: list[tuple[int, bytes]] = []
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def requests(self) -> int:
        """How many request heads the scripts have read, over all connections."""
        with self._lock:
            return len(self._seen)

    def request_lines(self) -> list[tuple[int, bytes]]:
        """(connection index, request line) of every head the scripts have read, in arrival order."""
        with self._lock:
            return list(self._seen)

    def _record(self, index: int, request_line: bytes):
        with self._lock:
            self._seen.append((index, request_line))

    def _accept(self):
        while not self._stop.is_set():
            try:
                sock, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            sock.settimeout(5)
            with self._lock:
                peer = RawPeer(self, sock, self.accepted)
                self.accepted += 1
                self._socks.append(sock)
            threading.Thread(target=self._run, args=(peer,), daemon=True).start()

    def _run(self, peer: RawPeer):
        try:
            self.script(peer)
        except OSError:
            pass  # fusebox closed or reset the connection, or it timed out: the script is done
        finally:
            peer.sock.close()

    def stop(self):
        self._stop.set()
        self._thread.join(2)
        self.listener.close()
        with self._lock:
            for s in self._socks:
                try:
                    s.close()
                except OSError:
                    pass


class RawPeer:
    """One upstream-side connection of a RawUpstream: reads request heads (pipelined ones stay in
    the buffer for the next call; bodies are not read), sends whatever the script says."""

    def __init__(self, server: RawUpstream, sock: socket.socket, index: int):
        self.server, self.sock, self.index = server, sock, index
        self.buf = b""

    def read_head(self) -> bytes | None:
        """The next request head, without its blank line (counted and recorded by the server), or
        None at EOF."""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        self.server._record(self.index, head.split(b"\r\n", 1)[0])
        return head

    def send(self, data: bytes):
        self.sock.sendall(data)
