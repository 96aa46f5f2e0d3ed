"""Upgrade tunnels close the way TCP does: a FIN from either side is passed on once every byte
before it has been written, the other direction keeps flowing, and the tunnel ends when both have
closed; and an upgrade request's own body reaches the upstream before the tunnel's bytes."""

import socket
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
from harness import TestCase, config_for, main, split_addr  # noqa: E402
from raw_upstream import RawUpstream  # noqa: E402

SWITCH = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\n"
UPGRADE = b"GET /t HTTP/1.1\r\nHost: test\r\nUpgrade: test\r\nConnection: Upgrade\r\n"


def recv_until_eof(sock: socket.socket) -> bytes:
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


class HalfClose(TestCase):
    def start(self, script):
        up = RawUpstream(script)
        self.addCleanup(up.stop)
        fb = self.start_fusebox(config_for(up.addr))
        sock = socket.create_connection(split_addr(fb.addr), timeout=5)
        self.addCleanup(sock.close)
        return sock

    def read_101(self, sock: socket.socket) -> bytes:
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            self.assertTrue(chunk, "closed before the 101")
            buf += chunk
        head, rest = buf.split(b"\r\n\r\n", 1)
        self.assertTrue(head.startswith(b"HTTP/1.1 101"), head)
        return rest

    def test_the_upstreams_fin_reaches_the_client_after_all_its_bytes_and_the_client_may_still_send(self):
        seen = {}
        big = bytes(range(256)) * 4096  # 1 MiB: more than one write's worth in flight

        def script(peer):
            peer.read_head()
            peer.send(SWITCH + big)
            peer.sock.shutdown(socket.SHUT_WR)  # the upstream is done talking
            seen["after_fin"] = recv_until_eof(peer.sock)  # ... but still listens, until the client's FIN

        sock = self.start(script)
        sock.sendall(UPGRADE + b"\r\n")
        got = self.read_101(sock) + recv_until_eof(sock)  # EOF: the upstream's FIN, passed on
        self.assertEqual(len(got), len(big))
        self.assertEqual(got, big)
        sock.sendall(b"still here")  # the client -> upstream direction is open
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(5)
        self.assertEqual(sock.recv(1), b"")  # and then the tunnel ends
        deadline = threading.Event()
        for _ in range(100):
            if "after_fin" in seen:
                break
            deadline.wait(0.05)
        self.assertEqual(seen.get("after_fin"), b"still here")

    def test_the_clients_fin_reaches_the_upstream_which_may_still_answer(self):
        def script(peer):
            peer.read_head()
            peer.send(SWITCH)
            request = peer.buf + recv_until_eof(peer.sock)  # the client's bytes, then its FIN
            peer.send(b"answer to " + request)  # the upstream -> client direction is still open
            peer.sock.shutdown(socket.SHUT_WR)

        sock = self.start(script)
        sock.sendall(UPGRADE + b"\r\n" + b"question")
        rest = self.read_101(sock)
        sock.shutdown(socket.SHUT_WR)
        self.assertEqual(rest + recv_until_eof(sock), b"answer to question")

    def test_an_upgrade_requests_body_reaches_the_upstream_before_the_tunnels_bytes(self):
        got = {}

        def script(peer):
            peer.read_head()
            # Answer 101 before reading the body: fusebox may not have written all of it yet.
            peer.send(SWITCH)
            got["bytes"] = peer.buf + recv_until_eof(peer.sock)
            peer.sock.shutdown(socket.SHUT_WR)

        sock = self.start(script)
        body = b"B" * 200_000
        sock.sendall(UPGRADE + b"Content-Length: %d\r\n\r\n" % len(body))
        sender = threading.Thread(target=lambda: (sock.sendall(body + b"tunnel bytes"), sock.shutdown(socket.SHUT_WR)))
        sender.start()
        self.read_101(sock)
        recv_until_eof(sock)
        sender.join(5)
        self.assertEqual(got.get("bytes"), body + b"tunnel bytes")


if __name__ == "__main__":
    main()
