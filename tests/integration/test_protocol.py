"""HTTP/1.1 framing through fusebox: chunked bodies both ways, large bodies streamed (and fusebox's
memory while they stream), pipelining, Expect: 100-continue, HTTP/1.0 clients, Upgrade tunnels,
absolute-form targets, targets passed through byte for byte, and many concurrent connections."""

import base64
import hashlib
import os
import random
import socket
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
from harness import Connection, TestCase, config_for, http_request, main  # noqa: E402

MiB = 1024 * 1024
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

# The bytes every body here is cut from: random (so a reordered or repeated piece changes the
# hash), built once, 8 MiB so that pieces taken at moving offsets rarely repeat.
_PATTERN = random.Random(20240601).randbytes(8 * MiB)


def pieces(total: int, sizes=(1, 15, 4096, 16384, 65536, 100_003, MiB)):
    """total bytes of the pattern, as memoryviews of the sizes given (in turn), generated on the fly."""
    view = memoryview(_PATTERN)
    offset, i = 0, 0
    while total > 0:
        n = min(sizes[i % len(sizes)], total, len(_PATTERN))
        if offset + n > len(_PATTERN):
            offset = (offset + 4093) % (len(_PATTERN) - n + 1)  # a prime step: a new alignment each lap
        yield view[offset:offset + n]
        offset += n
        total -= n
        i += 1


def chunk_frame(data) -> bytes:
    return b"%X\r\n" % len(data) + bytes(data) + b"\r\n"


def head(method: str, target: str, headers: list[tuple[str, str]], version: str = "HTTP/1.1") -> bytes:
    return (f"{method} {target} {version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n").encode(
        "latin-1")


def websocket_upgrade(key: str) -> bytes:
    return head("GET", "/ws", [("Host", "test"), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
                               ("Sec-WebSocket-Key", key), ("Sec-WebSocket-Version", "13")])


def unblock(conn: Connection):
    """Ends a connection a Sender may be blocked on: close() alone would not wake its sendall(), and
    fusebox would keep the connection (and so its drain at the end of the test) waiting."""
    try:
        conn.sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class Sender(threading.Thread):
    """Sends data (bytes, or an iterable of pieces) on a socket in the background, so that the test can
    read the echo at the same time: neither side then waits on a full socket buffer."""

    def __init__(self, sock: socket.socket, data, chunked: bool = False):
        super().__init__(daemon=True)
        self.sock, self.data, self.chunked = sock, data, chunked
        self.error = None
        self.sent = 0
        self.digest = hashlib.sha256()

    def run(self):
        try:
            items = [self.data] if isinstance(self.data, (bytes, bytearray, memoryview)) else self.data
            for piece in items:
                self.digest.update(piece)
                self.sock.sendall(chunk_frame(piece) if self.chunked else piece)
                self.sent += len(piece)
            if self.chunked:
                self.sock.sendall(b"0\r\n\r\n")
        except Exception as e:  # reported by finish()
            self.error = e

    def finish(self, test: TestCase, timeout: float = 10.0):
        self.join(timeout)
        test.assertFalse(self.is_alive(), "the sender was still blocked")
        test.assertIsNone(self.error, f"sending failed after {self.sent} bytes: {self.error!r}")


class BodyReader:
    """Reads a response body of any size from a harness Connection without keeping it: hashes it as it
    arrives (the harness's reader keeps whole bodies, which is quadratic for tens of MiB)."""

    def __init__(self, conn: Connection):
        self.sock = conn.sock
        self.buf = bytearray(conn.buf)
        self.received = len(self.buf)  # body bytes (with chunk framing) read so far
        conn.buf = b""

    def _fill(self):
        data = self.sock.recv(MiB)
        if not data:
            raise EOFError(f"connection closed in the middle of the body, after {self.received} bytes")
        self.buf += data
        self.received += len(data)

    def _line(self) -> bytes:
        while (i := self.buf.find(b"\r\n")) < 0:
            self._fill()
        line = bytes(self.buf[:i])
        del self.buf[:i + 2]
        return line

    def _hash(self, n: int, digest) -> None:
        while n > 0:
            if not self.buf:
                self._fill()
            take = min(n, len(self.buf))
            digest.update(self.buf[:take])
            del self.buf[:take]
            n -= take

    def body(self, response) -> tuple[int, str]:
        """(bytes, sha256 hex) of the body that follows response's head."""
        digest = hashlib.sha256()
        total = 0
        if "chunked" in (response.header("transfer-encoding") or "").lower():
            while True:
                size = int(self._line().split(b";")[0], 16)
                if size == 0:
                    while self._line():  # trailers, then the empty line
                        pass
                    break
                self._hash(size, digest)
                total += size
                if self._line() != b"":
                    raise ValueError("chunk data not followed by CRLF")
        else:
            total = int(response.header("content-length"))
            self._hash(total, digest)
        return total, digest.hexdigest()


def rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


def worker_pids(fb, n: int) -> list[int]:
    """fusebox's n workers, once forked: the listening line comes before the workers exist."""
    wait_until(lambda: len(fb.worker_pids()) >= n, 5.0)
    return fb.worker_pids()


def wait_until(predicate, timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(step)


class Protocol(TestCase):
    def setUp(self):
        self.up = self.start_upstream()
        # a short drain: a test that fails with a stalled exchange does not hold the stop for 10 s
        self.fb = self.start_fusebox(config_for(self.up.addr, top="drain_timeout: 1s"))

    # ------------------------------------------------------------ chunked bodies

    def test_a_chunked_request_body_reaches_the_upstream_intact(self):
        sizes = [1, 15, 4096, 0x1234, 70_000, 3]
        body = b"".join(bytes(p) for p in pieces(sum(sizes), sizes))
        with Connection(self.fb.addr) as c:
            c.send(head("POST", "/up?echo=1", [("Host", "test"), ("Transfer-Encoding", "chunked")]))
            for p in pieces(sum(sizes), sizes):
                c.send(chunk_frame(p))
            c.send(b"0\r\n\r\n")
            r = c.read_response()
            self.assertEqual(r.status, 200)
            echo = r.json()
            self.assertEqual(echo["body_bytes"], len(body))
            self.assertEqual(echo["body_sha256"], hashlib.sha256(body).hexdigest())
            names = [k.lower() for k, _ in echo["headers"]]
            self.assertIn("transfer-encoding", names)
            self.assertNotIn("content-length", names)
            # the connection is still in step after the last chunk
            self.assertEqual(c.request("GET", "/next").body, b"ok\n")

    def test_a_chunked_response_reaches_an_http11_client_intact(self):
        with Connection(self.fb.addr) as c:
            r = c.request("GET", "/down?chunked=1&size=100000")
            self.assertEqual(r.status, 200)
            self.assertEqual(r.header("transfer-encoding"), "chunked")
            self.assertIsNone(r.header("content-length"))
            self.assertEqual(r.body, b"x" * 100_000)
            self.assertEqual(c.request("GET", "/next").body, b"ok\n")

    # ------------------------------------------------------------ large bodies

    def _echo_64_mib(self, chunked: bool):
        total = 64 * MiB
        with Connection(self.fb.addr, timeout=5.0) as c:  # 64 MiB take about 1 s: 5 s idle is a stall
            framing = ("Transfer-Encoding", "chunked") if chunked else ("Content-Length", str(total))
            c.send(head("PUT", "/big?echo=body", [("Host", "test"), framing]))
            sender = Sender(c.sock, pieces(total), chunked=chunked)
            sender.start()
            r = c.read_response(head_request=True)  # the head only; the body is read below
            self.assertEqual(r.status, 200)
            if chunked:
                self.assertEqual(r.header("transfer-encoding"), "chunked")
            else:
                self.assertEqual(r.header("content-length"), str(total))
            reader = BodyReader(c)
            try:
                n, sha = reader.body(r)
            except (socket.timeout, EOFError) as e:
                n, sha = None, repr(e)
            if n is None:
                unblock(c)
                self.fail(f"the echo stopped after {reader.received} body bytes came back and {sender.sent} "
                          f"of {total} were sent: {sha}")
            sender.finish(self)
            self.assertEqual(n, total)
            self.assertEqual(sha, sender.digest.hexdigest())

    def test_a_64_mib_upload_with_content_length_is_echoed_back_byte_identical(self):
        self._echo_64_mib(chunked=False)

    def test_a_64_mib_chunked_upload_is_echoed_back_byte_identical(self):
        self._echo_64_mib(chunked=True)

    def test_fusebox_memory_stays_under_64_mib_while_1_gib_streams_through(self):
        # 1 GiB through fusebox to an upstream that only hashes it: 3 to 7 s on the 2-core test
        # machine (client, fusebox and the Python upstream share the cores), so the full size stays.
        total = 1024 * MiB
        pids = [self.fb.pid] + worker_pids(self.fb, 1)
        self.assertEqual(len(pids), 2, "not one worker process")
        baseline = sum(rss_kib(p) for p in pids)
        peak = [0]
        done = threading.Event()

        def sample():
            while not done.is_set():
                peak[0] = max(peak[0], sum(rss_kib(p) for p in pids))
                done.wait(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            with Connection(self.fb.addr) as c:
                c.send(head("POST", "/huge?echo=1", [("Host", "test"), ("Content-Length", str(total))]))
                sender = Sender(c.sock, pieces(total, sizes=(MiB,)))
                sender.run()  # in this thread: the upstream answers only after the whole body
                self.assertIsNone(sender.error, f"sending failed after {sender.sent} bytes: {sender.error!r}")
                r = c.read_response()
        finally:
            done.set()
            sampler.join(2)
        self.assertEqual(r.status, 200)
        echo = r.json()
        self.assertEqual(echo["body_bytes"], total)
        self.assertEqual(echo["body_sha256"], sender.digest.hexdigest())
        self.assertLess(peak[0], 64 * 1024, f"summed VmRSS of fusebox reached {peak[0]} KiB")
        # Flat: what 1 GiB adds is buffers of a few MiB at most (read buffers and the kernel's
        # socket buffers are not in VmRSS), not a share of the body.
        self.assertLess(peak[0] - baseline, 16 * 1024, f"VmRSS grew from {baseline} to {peak[0]} KiB")
        self.assertGreater(peak[0], 0)
        self.assertEqual([p for p in pids if rss_kib(p) == 0], [], "a fusebox process went away")

    # ------------------------------------------------------------ pipelining

    def _pipeline(self, first_query: str):
        requests = []  # (method, target, body bytes)
        for i in range(10):
            target = f"/p{i}?echo=1" + (first_query if i == 0 else "")
            if i % 3 == 1:
                requests.append(("POST", target, b"b" * (i * 1000 + 1), False))
            elif i % 3 == 2:
                requests.append(("PUT", target, bytes(range(256)) * i, True))
            else:
                requests.append(("GET", target, b"", False))
        wire = b""
        for method, target, body, chunked in requests:
            if chunked:
                wire += head(method, target, [("Host", "test"), ("Transfer-Encoding", "chunked")])
                wire += chunk_frame(body[:100]) + chunk_frame(body[100:]) + b"0\r\n\r\n"
            elif body:
                wire += head(method, target, [("Host", "test"), ("Content-Length", str(len(body)))]) + body
            else:
                wire += head(method, target, [("Host", "test")])
        with Connection(self.fb.addr) as c:
            c.send(wire)  # all ten in one sendall()
            for method, target, body, _ in requests:
                r = c.read_response()
                self.assertEqual(r.status, 200, target)
                echo = r.json()
                self.assertEqual((echo["method"], echo["path"]), (method, target))
                self.assertEqual(echo["body_bytes"], len(body), target)
                self.assertEqual(echo["body_sha256"], hashlib.sha256(body).hexdigest(), target)
            self.assertEqual(c.buf, b"", "bytes after the tenth response")
            self.assertEqual(c.request("GET", "/after").body, b"ok\n")

    def test_ten_pipelined_requests_are_answered_in_order(self):
        self._pipeline("")

    def test_pipelined_responses_stay_in_order_when_the_first_is_slow(self):
        started = time.monotonic()
        self._pipeline("&delay=200")
        self.assertGreaterEqual(time.monotonic() - started, 0.2)

    # ------------------------------------------------------------ Expect: 100-continue

    def test_expect_100_continue_is_answered_by_fusebox_before_the_body_is_sent(self):
        body = _PATTERN[:10_000]
        with Connection(self.fb.addr) as c:
            c.send(head("POST", "/ex?echo=1", [("Host", "test"), ("Expect", "100-continue"),
                                                ("Content-Length", str(len(body)))]))
            c.sock.settimeout(1.0)
            try:
                interim = c._read_until(b"\r\n\r\n")
            except socket.timeout:
                self.fail(f"no 100 Continue within 1 s; got {c.buf!r}")
            self.assertEqual(interim, b"HTTP/1.1 100 Continue")
            c.sock.settimeout(10.0)
            c.send(body)
            r = c.read_response()
            self.assertEqual(r.status, 200)
            echo = r.json()
            self.assertEqual(echo["body_bytes"], len(body))
            self.assertEqual(echo["body_sha256"], hashlib.sha256(body).hexdigest())
            self.assertNotIn("expect", [k.lower() for k, _ in echo["headers"]])

    def test_expect_100_continue_with_a_body_over_the_limit_gets_413_and_no_100(self):
        fb = self.start_fusebox(config_for(self.up.addr, listener="max_body_bytes: 1000"))
        self.up.reset_stats()
        with Connection(fb.addr) as c:
            c.send(head("POST", "/ex?echo=1", [("Host", "test"), ("Expect", "100-continue"),
                                                ("Content-Length", "5000")]))
            r = c.read_response()
            self.assertEqual(r.status, 413, r.raw_head)
            self.assertTrue(r.raw_head.startswith(b"HTTP/1.1 413 "), r.raw_head)
            # the body was never sent, so the connection cannot go on: fusebox closes it
            self.assertTrue(c.closed_by_peer(5.0))
            self.assertEqual(c.buf, b"")
        self.assertEqual(self.up.stats()["requests"], 0)

    # ------------------------------------------------------------ HTTP/1.0 clients

    def test_an_http10_request_without_connection_header_is_answered_and_closed(self):
        with Connection(self.fb.addr) as c:
            c.send(b"GET /old HTTP/1.0\r\nHost: test\r\n\r\n")
            r = c.read_response()
            self.assertEqual(r.status, 200)
            self.assertEqual(r.body, b"ok\n")
            self.assertNotEqual((r.header("connection") or "").lower(), "keep-alive")
            self.assertTrue(c.closed_by_peer(5.0))
            self.assertEqual(c.buf, b"")

    def test_an_http10_keep_alive_request_keeps_the_connection(self):
        with Connection(self.fb.addr) as c:
            for i in range(3):
                c.send(f"GET /old{i} HTTP/1.0\r\nHost: test\r\nConnection: keep-alive\r\n\r\n".encode())
                r = c.read_response()
                self.assertEqual(r.status, 200)
                self.assertEqual(r.header("connection"), "keep-alive")
                self.assertEqual(r.header("content-length"), "3")
                self.assertEqual(r.body, b"ok\n")
            self.assertFalse(c.closed_by_peer(0.3))

    def test_a_chunked_response_reaches_an_http10_client_decoded_and_then_closed(self):
        for connection in ([], [("Connection", "keep-alive")]):
            with self.subTest(connection=connection), Connection(self.fb.addr, timeout=5.0) as c:
                c.send(head("GET", "/c?chunked=1&size=50000", [("Host", "test")] + connection, "HTTP/1.0"))
                r = c.read_response()  # no Content-Length: reads until fusebox closes
                self.assertEqual(r.status, 200)
                self.assertIsNone(r.header("transfer-encoding"))
                self.assertIsNone(r.header("content-length"))
                self.assertNotEqual((r.header("connection") or "").lower(), "keep-alive")
                self.assertEqual(len(r.body), 50_000)
                self.assertEqual(r.body, b"x" * 50_000)

    def test_an_http10_request_without_host_is_forwarded_with_one(self):
        with Connection(self.fb.addr) as c:
            c.send(b"GET /nohost?echo=1 HTTP/1.0\r\n\r\n")
            r = c.read_response()
        self.assertEqual(r.status, 200)
        echo = r.json()
        self.assertEqual(echo["version"], "HTTP/1.1")
        hosts = [v for k, v in echo["headers"] if k.lower() == "host"]
        self.assertEqual(hosts, [self.up.addr])

    # ------------------------------------------------------------ Upgrade

    def test_a_websocket_upgrade_becomes_a_tunnel_that_echoes_both_ways_until_the_client_closes(self):
        self.up.reset_stats()
        key = base64.b64encode(os.urandom(16)).decode()
        c = Connection(self.fb.addr)
        try:
            c.send(websocket_upgrade(key))
            r = c.read_response()
            self.assertEqual(r.status, 101)
            self.assertEqual(r.header("upgrade"), "websocket")
            self.assertEqual((r.header("connection") or "").lower(), "upgrade")
            self.assertEqual(r.header("sec-websocket-accept"),
                             base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode())
            for size in (1, 125, 126, 4096, 65_536, 100_003, MiB, 7):
                message = os.urandom(size)
                sender = Sender(c.sock, message)
                sender.start()
                try:
                    echoed = c._read_exact(size)
                except (socket.timeout, EOFError, ConnectionError) as e:
                    echoed = e
                if isinstance(echoed, Exception):
                    unblock(c)
                    self.fail(f"the tunnel failed on the message of {size} bytes: {echoed!r}")
                self.assertEqual(echoed, message, f"message of {size} bytes")
                sender.finish(self)
            self.assertEqual(c.buf, b"")
            self.assertEqual(self.up.stats()["active_connections"], 1)
        finally:
            c.close()
        self.assertTrue(wait_until(lambda: self.up.stats()["active_connections"] == 0, 2.0),
                        f"upstream still has {self.up.stats()['active_connections']} connections")

    def test_an_upgraded_upstream_connection_is_never_reused_for_another_request(self):
        with Connection(self.fb.addr) as c:
            c.send(websocket_upgrade(base64.b64encode(os.urandom(16)).decode()))
            self.assertEqual(c.read_response().status, 101)
        # the upstream connection now speaks the new protocol (here: echoes bytes); a request sent
        # down it would get its own bytes back instead of a response
        r = http_request(self.fb.addr, "GET", "/after")
        self.assertEqual((r.status, r.body), (200, b"ok\n"))

    def test_an_upgrade_header_without_connection_upgrade_is_proxied_as_a_normal_request(self):
        with Connection(self.fb.addr) as c:
            c.send(head("GET", "/u?echo=1", [("Host", "test"), ("Upgrade", "websocket")]))
            r = c.read_response()
            self.assertEqual(r.status, 200)
            self.assertIsNone(r.header("upgrade"))
            echo = r.json()
            self.assertEqual(echo["path"], "/u?echo=1")
            self.assertNotIn("upgrade", [k.lower() for k, _ in echo["headers"]])
            # still HTTP on this connection
            self.assertEqual(c.request("GET", "/next").body, b"ok\n")

    # ------------------------------------------------------------ request targets

    def test_query_strings_and_percent_encoded_paths_pass_unchanged(self):
        targets = [
            "/q?echo=1&a=1&b=two%20words&c=%26%3D%3F&empty=&flag",
            "/a%20b/c%2Fd/c%2fd/%7Euser/%E2%9C%93?echo=1",
            "/%25%32%35/100%25?echo=1&pct=%25",
            "/path;param=1/x?echo=1&q=a+b&q=c&next=/a?b=c",
            "/?echo=1&json=%7B%22k%22%3A%5B1%2C2%5D%7D",
        ]
        with Connection(self.fb.addr) as c:
            for target in targets:
                with self.subTest(target=target):
                    r = c.request("GET", target)
                    self.assertEqual(r.status, 200)
                    self.assertEqual(r.json()["path"], target)


class AbsoluteForm(TestCase):
    def setUp(self):
        self.up = self.start_upstream()
        # the only route needs the host example.com: a request is routed only if its host is seen
        self.fb = self.start_fusebox(
            "workers: 1\n"
            "listeners:\n"
            "  - name: main\n"
            "    address: 127.0.0.1:0\n"
            "    routes: [ { host: example.com, prefix: /path, cluster: up } ]\n"
            "clusters:\n"
            "  - name: up\n"
            f"    endpoints: [ {self.up.addr} ]\n")

    def test_an_absolute_form_target_is_routed_by_its_authority_and_answered(self):
        # control: origin-form to a host without a route gets 404
        self.assertEqual(http_request(self.fb.addr, "GET", "/path/x", {"Host": "other.test"}).status, 404)
        with Connection(self.fb.addr) as c:
            c.send(b"GET http://example.com/path/x?echo=1 HTTP/1.1\r\nHost: example.com\r\n\r\n")
            r = c.read_response()
            self.assertEqual(r.status, 200)
            echo = r.json()
            self.assertEqual(echo["method"], "GET")
            self.assertIn(echo["path"], ("http://example.com/path/x?echo=1", "/path/x?echo=1"))
            self.assertEqual(c.request("GET", "http://example.com/path/y").body, b"ok\n")


class ManyConnections(TestCase):
    def test_200_concurrent_keep_alive_connections_of_20_requests_each_all_get_200(self):
        up = self.start_upstream()
        fb = self.start_fusebox(config_for(up.addr), args=["--workers", "2"])
        self.assertEqual(len(worker_pids(fb, 2)), 2)
        clients, per_client = 200, 20
        barrier = threading.Barrier(clients, timeout=20)
        results: dict[int, list] = {}

        def client(n: int):
            got = []
            try:
                with Connection(fb.addr, timeout=10.0) as c:
                    barrier.wait()  # every connection is open before any request goes
                    for i in range(per_client):
                        r = c.request("GET", f"/c{n}/{i}")
                        got.append((r.status, r.body))
            except Exception as e:
                got.append(repr(e))
            results[n] = got

        threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        self.assertEqual([n for n, t in enumerate(threads) if t.is_alive()], [], "clients still running")
        bad = {n: [x for x in got if x != (200, b"ok\n")] for n, got in results.items()}
        bad = {n: x for n, x in bad.items() if x or len(results[n]) != per_client}
        self.assertEqual(len(results), clients)
        self.assertEqual(bad, {})
        self.assertEqual(up.stats()["requests"], clients * per_client)


if __name__ == "__main__":
    main()
