"""Regressions: each bug a reproduction script found, replayed as the scenario that provoked it,
asserting the correct behaviour. One test per bug, named after what must hold; each is bounded in
time, loopback only, and every process it starts is stopped by the harness.

Several bugs only showed when fusebox's write to the client could not complete at once. The tests
provoke that with a client socket that takes bytes as slowly as the kernel allows (536-byte
segments, the smallest receive buffer): after a few kilobytes, fusebox's writes to it block.
"""

import json
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
from harness import Connection, TestCase, config_for, main, split_addr  # noqa: E402
from raw_upstream import RawUpstream  # noqa: E402

OK_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n"
NO_BREAKER = "breaker: { mode: disabled }"
# What the master logs when a worker dies (and what the sanitizers print first, in a sanitizer build).
WORKER_DIED = re.compile(r"was killed by signal|exited with status|Sanitizer|runtime error")


def slow_reader(addr: str, timeout: float = 5.0) -> socket.socket:
    """A client socket fusebox's writes block on after a few KB: 536-byte segments and the smallest
    receive buffer the kernel allows (SO_RCVBUF 1 is rounded up to its minimum)."""
    s = socket.socket()
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
    s.settimeout(timeout)
    s.connect(split_addr(addr))
    return s


def read_until_closed(s: socket.socket, seconds: float, done=None) -> tuple[bytes, str]:
    """What s receives until the peer closes, done(data) holds, or `seconds` pass; and which it was:
    "eof", "reset", "done" or "timeout"."""
    data = b""
    deadline = time.monotonic() + seconds
    while True:
        if done is not None and done(data):
            return data, "done"
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return data, "timeout"
        s.settimeout(remaining)
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            return data, "timeout"
        except ConnectionResetError:
            return data, "reset"
        if not chunk:
            return data, "eof"
        data += chunk


def parse_responses(data: bytes) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """The whole responses at the start of a stream, as (status line, body), and the bytes after
    them: a cut response, or a tunnel's bytes after a 101. Bodies are delimited by Content-Length
    (what every upstream and answer here uses); 1xx, 204 and 304 have none."""
    responses = []
    while True:
        end = data.find(b"\r\n\r\n")
        if end < 0:
            return responses, data
        head = data[:end]
        status_line = head.split(b"\r\n", 1)[0]
        status = int(status_line.split(b" ")[1])
        length = re.search(rb"(?im)^content-length:[ \t]*(\d+)", head)
        n = int(length.group(1)) if length and status >= 200 and status not in (204, 304) else 0
        if len(data) < end + 4 + n:
            return responses, data
        responses.append((status_line, data[end + 4:end + 4 + n]))
        data = data[end + 4 + n:]
        if status == 101:
            return responses, data


def status_lines(data: bytes) -> list[bytes]:
    """The status lines of the whole responses at the start of a stream."""
    return [line for line, _ in parse_responses(data)[0]]


def established(local_port: int, peer_port: int) -> bool:
    """Whether a TCP connection from local_port to peer_port is ESTABLISHED, as the kernel sees it."""
    out = subprocess.run(
        ["ss", "-tnH", "state", "established", f"( sport = :{local_port} and dport = :{peer_port} )"],
        capture_output=True, text=True, timeout=5,
    ).stdout
    return bool(out.strip())


class RegressionCase(TestCase):
    """The helpers every regression test uses; no tests of its own."""

    def raw_upstream(self, script) -> RawUpstream:
        up = RawUpstream(script)
        self.addCleanup(up.stop)
        return up

    def connect(self, fb) -> Connection:
        c = Connection(fb.addr, timeout=5)
        self.addCleanup(c.close)
        return c

    def request(self, fb, c, method, path, headers=None, body=b""):
        """c.request, failing the test with fusebox's log if no response comes."""
        try:
            return c.request(method, path, headers, body)
        except (EOFError, ConnectionError, socket.timeout) as e:
            self.fail(f"{method} {path}: no response: {e!r}\nfusebox log:\n{fb.output()}")

    def assert_error(self, r, status, label):
        self.assertEqual(r.status, status, r)
        self.assertEqual(r.json()["error"], label, r)

    def workers(self, fb) -> list[int]:
        """fusebox's worker pids, once it has forked them."""
        deadline = time.monotonic() + 5
        while not (pids := fb.worker_pids()) and time.monotonic() < deadline:
            time.sleep(0.01)
        self.assertTrue(pids, "no worker started; fusebox log:\n" + fb.output())
        return pids

    def assert_worker_never_restarted(self, fb, pids_before):
        """The worker that was there before the scenario is still the only one, and the master never
        logged a worker's death."""
        died = [line for line in fb.output().splitlines() if WORKER_DIED.search(line)]
        self.assertEqual(died, [], "a worker died; fusebox log:\n" + fb.output())
        self.assertEqual(fb.worker_pids(), pids_before, "the worker was replaced; fusebox log:\n" + fb.output())


class Regressions(RegressionCase):

    # ---------------------------------------------------------------- retry_post.py

    def test_a_post_that_fails_on_a_reused_connection_is_not_sent_again_but_a_get_is_retried_once(self):
        # Each upstream connection answers its first request, then reads its second and dies
        # without a byte: the request may well have been executed, so only an idempotent one may
        # go again (RFC 9110 §9.2.2). The POSTs have no body, so nothing else forbids a retry.
        def answer_one_then_die(peer):
            if peer.read_head() is None:
                return
            peer.send(OK_RESPONSE)
            peer.read_head()

        up = self.raw_upstream(answer_one_then_die)
        fb = self.start_fusebox(config_for(up.addr))
        c = self.connect(fb)
        no_body = {"Content-Length": "0"}
        self.assertEqual(self.request(fb, c, "POST", "/charge?n=1", no_body).status, 200)
        r = self.request(fb, c, "POST", "/charge?n=2", no_body)  # on the pooled connection
        self.assert_error(r, 502, "upstream_reset")
        self.assertEqual(up.request_lines(), [(0, b"POST /charge?n=1 HTTP/1.1"), (0, b"POST /charge?n=2 HTTP/1.1")],
                         "the POST went to the upstream again")

        self.assertEqual(self.request(fb, c, "GET", "/read?n=3").status, 200)  # a new connection
        r = self.request(fb, c, "GET", "/read?n=4")  # on the pooled connection, which dies
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, b"ok\n")
        self.assertEqual(up.request_lines()[2:], [(1, b"GET /read?n=3 HTTP/1.1"), (1, b"GET /read?n=4 HTTP/1.1"),
                                                  (2, b"GET /read?n=4 HTTP/1.1")])  # retried once, on a new one

    # ---------------------------------------------------------------- maxconn.py

    def test_max_connections_1_over_two_endpoints_closes_the_idle_connection_to_make_room(self):
        up1, up2 = self.start_upstream(), self.start_upstream()
        fb = self.start_fusebox(
            "workers: 1\n"
            "listeners:\n"
            "  - name: main\n"
            "    address: 127.0.0.1:0\n"
            "    routes: [ { prefix: /, cluster: up } ]\n"
            "clusters:\n"
            "  - name: up\n"
            f"    endpoints: [ {up1.addr}, {up2.addr} ]\n"
            "    max_connections: 1\n"
        )
        statuses = []
        for i in range(6):  # sequential: never more than one in flight
            with Connection(fb.addr, timeout=5) as c:
                statuses.append(self.request(fb, c, "GET", f"/r{i}").status)
        self.assertEqual(statuses, [200] * 6, fb.output())
        # Round robin: every request finds the other endpoint's connection idle and closes it.
        self.assertEqual((up1.stats()["connections"], up2.stats()["connections"]), (3, 3))

    # ---------------------------------------------------------------- tunnel_idle.py

    def test_a_tunnel_where_only_the_upstream_talks_is_not_cut_by_the_idle_timeout(self):
        ticks = [b"tick%02d" % i for i in range(15)]

        def push_ticks(peer):
            # A WebSocket server that pushes a message every 200 ms for 3 s, then closes.
            if peer.read_head() is None:
                return
            peer.send(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
            for tick in ticks:
                time.sleep(0.2)
                peer.send(tick)

        up = self.raw_upstream(push_ticks)
        fb = self.start_fusebox(config_for(up.addr, listener="idle_timeout: 1s"))
        c = self.connect(fb)
        start = time.monotonic()
        c.send(b"GET /ws HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
        r = c.read_response()
        self.assertEqual(r.status, 101, r)
        data, end = read_until_closed(c.sock, 6.0)
        data = c.buf + data
        elapsed = time.monotonic() - start
        self.assertEqual(data, b"".join(ticks), f"the tunnel ended ({end}) after {elapsed:.1f}s")
        self.assertEqual(end, "eof", "the tunnel outlived the upstream's close")
        self.assertGreaterEqual(elapsed, 2.9)

    # ---------------------------------------------------------------- logj.py

    def test_a_client_request_id_with_a_quote_is_replaced_so_the_json_access_log_stays_valid(self):
        up = self.start_upstream()
        fb = self.start_fusebox(config_for(up.addr, top="access_log: stdout"))
        plain_id = "0f8e6b2a-3c1d-4e5f-9a7b-8c6d5e4f3a2b"
        quoted_id = 'x","status":999,"admin":"yes'  # would add keys to the line if written as is
        with Connection(fb.addr, timeout=5) as c:
            self.assertEqual(self.request(fb, c, "GET", "/quoted", {"X-Request-Id": quoted_id}).status, 200)
            self.assertEqual(self.request(fb, c, "GET", "/plain", {"X-Request-Id": plain_id}).status, 200)
        keys = {"request_id", "client", "listener", "method", "target", "status", "error",
                "request_body_bytes", "response_body_bytes", "duration_ms"}
        entries = {}
        for target in ("/quoted", "/plain"):
            line = fb.wait_for_line(rf'^\{{.*"target":"{target}"', timeout=5).string
            try:
                entries[target] = json.loads(line)
            except ValueError as e:
                self.fail(f"access log line is not JSON ({e}): {line}")
            self.assertEqual(set(entries[target]), keys, line)
            self.assertEqual(entries[target]["status"], 200, line)
        self.assertRegex(entries["/quoted"]["request_id"], r"^[0-9a-f]{32}$")
        self.assertEqual(entries["/plain"]["request_id"], plain_id)

    # ---------------------------------------------------------------- noreason.py

    def test_a_status_line_without_a_reason_phrase_is_passed_through_and_the_worker_survives(self):
        # RFC 9112 §4: the reason phrase may be empty ("HTTP/1.1 200 "); some servers also drop
        # the space before it ("HTTP/1.1 200"). Writing the empty reason was undefined behaviour
        # (memcpy from a null pointer), which killed the worker in a sanitizer build
        # (FUSEBOX_SANITIZE=ON); a Release build happened to survive it.
        def no_reason(peer):
            while (head := peer.read_head()) is not None:
                space = b" " if head.startswith(b"GET /space ") else b""
                peer.send(b"HTTP/1.1 200" + space + b"\r\nContent-Length: 2\r\n\r\nok")

        up = self.raw_upstream(no_reason)
        fb = self.start_fusebox(config_for(up.addr))
        workers = self.workers(fb)
        c = self.connect(fb)
        for path in ("/space", "/nospace", "/space"):
            with self.subTest(path=path):
                r = self.request(fb, c, "GET", path)
                self.assertEqual(r.raw_head.split(b"\r\n", 1)[0], b"HTTP/1.1 200 ", r)
                self.assertEqual(r.body, b"ok")
        time.sleep(0.3)  # a worker that died would be reaped and logged by now
        self.assert_worker_never_restarted(fb, workers)

    # ---------------------------------------------------------------- hang2.py

    def test_a_client_that_pipelines_and_never_reads_is_closed_once_writes_stop_progressing(self):
        # Every answer kind: fusebox's own (404, no route), an upstream's bodiless 204, a small 200.
        up = self.start_upstream()
        fb = self.start_fusebox(
            "workers: 1\n"
            "listeners:\n"
            "  - name: main\n"
            "    address: 127.0.0.1:0\n"
            "    routes: [ { prefix: /api, cluster: up } ]\n"
            "    header_timeout: 1s\n"
            "    idle_timeout: 1s\n"
            "clusters:\n"
            "  - name: up\n"
            f"    endpoints: [ {up.addr} ]\n"
            "    response_header_timeout: 1s\n"
            "    request_timeout: 1s\n"
        )
        workers = self.workers(fb)
        fb_port = split_addr(fb.addr)[1]
        clients = {}
        for kind, path in (("404", "/nope"), ("204", "/api?status=204"), ("small 200", "/api?size=10")):
            s = slow_reader(fb.addr)
            self.addCleanup(s.close)
            # 2000 pipelined requests, as much as the kernel takes in 1 s; never a byte read.
            data = b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % path.encode() * 2000
            s.setblocking(False)
            deadline = time.monotonic() + 1.0
            while data and time.monotonic() < deadline:
                try:
                    data = data[s.send(data):]
                except BlockingIOError:
                    time.sleep(0.02)
            clients[kind] = s
        sent_at = time.monotonic()
        open_ = {kind: s.getsockname()[1] for kind, s in clients.items()}
        while open_ and time.monotonic() < sent_at + 5.0:
            open_ = {kind: port for kind, port in open_.items() if established(fb_port, port)}
            time.sleep(0.1)
        self.assertEqual(list(open_), [], "fusebox kept these connections 5 s after their client stopped reading")
        for kind, s in clients.items():
            with self.subTest(kind=kind):
                s.setblocking(True)
                _, end = read_until_closed(s, 3.0)
                self.assertIn(end, ("eof", "reset"))
        self.assert_worker_never_restarted(fb, workers)

    # ---------------------------------------------------------------- rejected_forwarded.py

    def test_a_request_answered_400_for_a_bad_chunk_size_never_reaches_the_upstream(self):
        # A GET whose response blocks on a slow reader, then a POST with a bad chunk size
        # pipelined behind it: fusebox's 400 cannot be written at once, and the POST must not be
        # routed and forwarded meanwhile. The sizes are those of the script that reproduced it
        # (12 of these 72 trials went wrong).
        def serve(peer):
            while (head := peer.read_head()) is not None:
                line = head.split(b"\r\n", 1)[0]
                if line.startswith(b"GET "):
                    n = int(re.search(rb"size=(\d+)", line).group(1))
                    peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % n + b"x" * n)
                # anything else: no answer (fusebox's response_header_timeout answers it)

        up = self.raw_upstream(serve)
        fb = self.start_fusebox(config_for(up.addr, cluster=f"response_header_timeout: 200ms\n{NO_BREAKER}"))
        results: dict[int, tuple[bytes, str]] = {}

        def trial(size):
            try:
                s = slow_reader(fb.addr, timeout=3)
            except OSError as e:
                results[size] = (b"", repr(e))
                return
            with s:
                s.sendall(b"GET /?size=%d HTTP/1.1\r\nHost: t\r\n\r\n" % size
                          + b"POST /rejected-%d HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" % size
                          + b"ZZZZ\r\n")  # not a chunk size
                time.sleep(0.5)
                results[size] = read_until_closed(s, 3.0)

        sizes = [base + 23 * i for base in range(28000, 29600, 138) for i in range(6)]
        for i in range(0, len(sizes), 6):
            threads = [threading.Thread(target=trial, args=(size,)) for size in sizes[i:i + 6]]
            for t in threads:
                t.start()
            for t in threads:
                t.join(5)
        time.sleep(0.3)  # a forwarded request would have reached the upstream by now
        forwarded = [line for _, line in up.request_lines() if not line.startswith(b"GET ")]
        self.assertEqual(forwarded, [], f"{len(forwarded)} of {len(sizes)} rejected requests reached the upstream")
        for size in sizes:
            with self.subTest(size=size):
                data, end = results.get(size, (b"", "no result"))
                self.assertEqual(status_lines(data), [b"HTTP/1.1 200 OK", b"HTTP/1.1 400 Bad Request"],
                                 f"{end}: {data[:120]!r}...{data[-300:]!r}")

    # ---------------------------------------------------------------- scan.py

    def test_a_second_head_pipelined_behind_a_response_on_a_full_socket_is_not_written_twice(self):
        # scan.py: GET /?size=S with a second request pipelined behind it, on a slow reader. For
        # some S the body just fills the socket, so the second request's first head (a 101, or a
        # 103 interim) is left pending; fusebox then started another write over the pending one
        # (the tunnel's first bytes, or its own 504 when no final head came within
        # response_header_timeout), and the worker crashed (SIGSEGV). With the kernel's default
        # buffers (tcp_wmem 16 KiB, loopback) that happened for S in about 28 630..28 750; the
        # sweep covers 28 450..28 940, a margin either side.
        ping = b"PING" * 50
        modes = {
            # An upgrade; the fault upstream answers 101 and echoes the bytes sent after the head.
            "tunnel": (b"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n" + ping,
                       lambda data: parse_responses(data)[1] == ping),
            # A 103 and no final head: fusebox answers 504 after response_header_timeout.
            "103": (b"GET /?status=103 HTTP/1.1\r\nHost: t\r\n\r\n",
                    lambda data: len(parse_responses(data)[0]) == 3),
        }
        sizes = range(28450, 28950, 10)
        for mode, (second, done) in modes.items():
            with self.subTest(mode=mode):
                up = self.start_upstream()
                fb = self.start_fusebox(config_for(up.addr, cluster=f"response_header_timeout: 200ms\n{NO_BREAKER}"))
                workers = self.workers(fb)
                results: dict[int, tuple[bytes, str]] = {}

                def trial(size):
                    try:
                        with slow_reader(fb.addr, timeout=3) as s:
                            s.sendall(b"GET /?size=%d HTTP/1.1\r\nHost: t\r\n\r\n" % size + second)
                            time.sleep(0.5)  # not reading: fusebox's writes block
                            results[size] = read_until_closed(s, 1.5, done)
                    except OSError as e:
                        results[size] = (b"", repr(e))

                for i in range(0, len(sizes), 10):
                    threads = [threading.Thread(target=trial, args=(size,)) for size in sizes[i:i + 10]]
                    for t in threads:
                        t.start()
                    for t in threads:
                        t.join(5)
                self.assert_worker_never_restarted(fb, workers)
                for size in sizes:
                    data, end = results.get(size, (b"", "no result"))
                    responses, rest = parse_responses(data)
                    got = f"{end}: {[line for line, _ in responses]} then {rest[:60]!r}"
                    self.assertTrue(responses and responses[0] == (b"HTTP/1.1 200 OK", b"x" * size),
                                    f"size {size}: {got}")
                    if mode == "tunnel":
                        self.assertEqual((responses[1:], rest, end),
                                         ([(b"HTTP/1.1 101 Switching Protocols", b"")], ping, "done"), f"size {size}")
                    else:  # the 504 follows the 103, even when the 103 was still being written
                        self.assertEqual(([line for line, _ in responses[1:]], rest, end),
                                         ([b"HTTP/1.1 103 Early Hints", b"HTTP/1.1 504 Gateway Timeout"], b"", "done"),
                                         f"size {size}: {got}")


class InterimResponses(RegressionCase):
    def interim_flood(self, count: int, then) -> RawUpstream:
        """An upstream that answers each request with `count` 103 heads (62 bytes each), then
        calls then(peer)."""
        def script(peer):
            if peer.read_head() is None:
                return
            for _ in range(count):
                peer.send(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
            then(peer)

        return self.raw_upstream(script)

    def test_more_interim_responses_than_the_buffer_holds_all_pass_before_the_final_one(self):
        # 600 × 62 bytes of 103 heads: more than the upstream connection's 32 KiB buffer, which
        # once filled up with 1xx heads it never reclaimed ("response head larger than the buffer").
        up = self.interim_flood(600, lambda peer: peer.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
        fb = self.start_fusebox(config_for(up.addr))
        with Connection(fb.addr) as c:
            c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            statuses = []
            while not statuses or statuses[-1] < 200:
                r = c.read_response()
                statuses.append(r.status)
        self.assertEqual(statuses, [103] * 600 + [200])
        self.assertEqual(r.body, b"ok")

    def test_a_timeout_while_interim_heads_wait_for_a_client_that_reads_nothing_still_ends_it(self):
        # The 103s fill the client's socket; the final head never comes; response_header_timeout
        # defers its 504 behind the pending 103s. The write deadline (idle_timeout) must still
        # end the connection: the timer that fired had disarmed it and nothing armed it again.
        up = self.interim_flood(2000, lambda peer: time.sleep(5))  # and no final head
        fb = self.start_fusebox(config_for(up.addr, listener="idle_timeout: 1s",
                                           cluster=f"response_header_timeout: 300ms\n{NO_BREAKER}"))
        with slow_reader(fb.addr) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            time.sleep(2.5)  # reads nothing: past response_header_timeout and then idle_timeout
            data, how = read_until_closed(s, 1.0)
        self.assertIn(how, ("eof", "reset"), f"still open after the write deadline; got {len(data)} bytes")
        self.assertNotIn(b"HTTP/1.1 504", data)



class FramingAndHead(RegressionCase):
    """Found by reading the code (2026-12-06): framing named in Connection, bodiless statuses
    that declare a length, fusebox's own answers to HEAD, an upgrade that did not happen."""

    def test_connection_naming_content_length_does_not_strip_the_framing(self):
        up = self.start_upstream()
        fb = self.start_fusebox(config_for(up.addr))
        inner = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
        c = self.connect(fb)
        r = self.request(fb, c, "POST", "/outer?echo=1",
                         {"Connection": "content-length, transfer-encoding, host", "Content-Length": str(len(inner))},
                         inner)
        self.assertEqual(r.status, 200, r)
        echo = r.json()
        got = {k.lower(): v for k, v in echo["headers"]}
        self.assertEqual(got.get("content-length"), str(len(inner)), echo["headers"])
        self.assertEqual(got.get("host"), "test")
        self.assertEqual(echo["body_bytes"], len(inner))
        self.assertEqual(self.request(fb, c, "GET", "/next").status, 200)
        self.assertEqual(up.stats()["requests"], 2, "the body reached the upstream as a request of its own")

    def test_an_upstream_response_naming_content_length_in_connection_keeps_it(self):
        def answer(peer):
            while peer.read_head() is not None:
                peer.send(b"HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 3\r\n\r\nok\n")

        fb = self.start_fusebox(config_for(self.raw_upstream(answer).addr, cluster=NO_BREAKER))
        c = self.connect(fb)
        for path in ("/a", "/b"):
            r = self.request(fb, c, "GET", path)
            self.assertEqual((r.status, r.header("content-length"), r.body), (200, "3", b"ok\n"), r)

    def test_a_304_or_204_with_a_content_length_completes_at_once(self):
        def answer(peer):
            while (head := peer.read_head()) is not None:
                status = b"304 Not Modified" if b" /304" in head.split(b"\r\n", 1)[0] else b"204 No Content"
                peer.send(b"HTTP/1.1 " + status + b"\r\nContent-Length: 1234\r\nETag: \"v1\"\r\n\r\n")

        up = self.raw_upstream(answer)
        fb = self.start_fusebox(config_for(up.addr, cluster=NO_BREAKER + "\nrequest_timeout: 10s"))
        c = self.connect(fb)
        for path, status in (("/304", 304), ("/204", 204), ("/304", 304)):
            start = time.monotonic()
            r = self.request(fb, c, "GET", path)
            self.assertLess(time.monotonic() - start, 2.0, f"{path} waited for a body that never comes")
            self.assertEqual(r.status, status, r)
        self.assertEqual(up.accepted, 1, "the upstream connection was not kept for the next request")

    def test_fusebox_answers_head_with_a_head_alone(self):
        with socket.socket() as s:  # a port nothing listens on: every request gets 502
            s.bind(("127.0.0.1", 0))
            closed = f"127.0.0.1:{s.getsockname()[1]}"
        fb = self.start_fusebox(config_for(closed, cluster=NO_BREAKER))
        c = self.connect(fb)
        head = self.request(fb, c, "HEAD", "/down")
        self.assertEqual(head.status, 502, head)
        self.assertGreater(int(head.header("content-length")), 0)
        # The next response on the connection parses as one: no JSON body was left in between.
        r = self.request(fb, c, "GET", "/down")
        self.assertEqual(r.status, 502, r)
        self.assertEqual(r.json()["error"], "upstream_connect_failed")
        self.assertEqual(len(r.body), int(head.header("content-length")), "HEAD's length is the GET body's")

    def test_an_upgrade_answered_without_101_says_connection_close(self):
        def answer(peer):
            while peer.read_head() is not None:
                peer.send(OK_RESPONSE)

        fb = self.start_fusebox(config_for(self.raw_upstream(answer).addr, cluster=NO_BREAKER))
        c = self.connect(fb)
        r = self.request(fb, c, "GET", "/h2c", {"Connection": "Upgrade, HTTP2-Settings", "Upgrade": "h2c",
                                                 "HTTP2-Settings": "AAMAAABkAAQAAP__"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.header("connection") or "").lower(), "close", r)
        self.assertTrue(c.closed_by_peer(), "fusebox said close and must then close")


class ConnectionEnds(RegressionCase):
    """How a connection ends: a FIN behind pipelined requests, a tunnel whose upstream is gone."""

    def send_then_fin(self, fb, requests: bytes) -> tuple[bytes, str, float]:
        """Sends `requests` and a FIN at once (printf '...' | nc -N); what comes back until fusebox
        closes (or 5 s pass), how it ended, and the seconds that took."""
        s = socket.create_connection(split_addr(fb.addr), timeout=5)
        self.addCleanup(s.close)
        s.sendall(requests)
        s.shutdown(socket.SHUT_WR)
        start = time.monotonic()
        data, how = read_until_closed(s, 5)
        return data, how, time.monotonic() - start

    def test_requests_pipelined_before_the_clients_fin_are_all_answered(self):
        up = self.start_upstream()
        fb = self.start_fusebox(config_for(up.addr))
        data, how, _ = self.send_then_fin(
            fb, b"".join(b"GET /p%d?body=r%d HTTP/1.1\r\nHost: t\r\n\r\n" % (i, i) for i in range(3)))
        self.assertEqual(how, "eof", data)
        self.assertEqual(re.findall(rb"HTTP/1.1 (\d+)", data), [b"200"] * 3, data)
        self.assertEqual(re.findall(rb"\r\n\r\n(r\d)", data), [b"r0", b"r1", b"r2"], data)
        self.assertEqual(up.stats()["requests"], 3)

    def test_a_head_cut_short_by_the_clients_fin_ends_the_connection_at_once(self):
        up = self.start_upstream()
        fb = self.start_fusebox(config_for(up.addr, listener="header_timeout: 5s"))
        data, how, seconds = self.send_then_fin(fb, b"GET /whole HTTP/1.1\r\nHost: t\r\n\r\nGET /cut HTTP/1.1\r\nHo")
        self.assertIn(how, ("eof", "reset"), data)
        self.assertLess(seconds, 2.0, "waited for the rest of a head after the FIN")
        self.assertEqual(re.findall(rb"HTTP/1.1 (\d+)", data), [b"200"], data)

    def test_a_pipelined_body_cut_short_by_the_clients_fin_is_not_held_to_a_timeout(self):
        up = self.start_upstream()
        fb = self.start_fusebox(config_for(up.addr))
        data, how, seconds = self.send_then_fin(fb, b"GET /first HTTP/1.1\r\nHost: t\r\n\r\n"
                                                    b"POST /cut HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nabc")
        self.assertIn(how, ("eof", "reset"), data)
        self.assertLess(seconds, 2.0, "held until a timeout")
        self.assertEqual(re.findall(rb"HTTP/1.1 (\d+)", data), [b"200"], data)
        # (Whether its first bytes went upstream depends on when the FIN is read: if before the
        # request starts, they never do; if after, the exchange is cut as any abandoned upload.)

    def test_a_tunnel_whose_upstream_went_away_is_closed_while_the_client_keeps_sending(self):
        def switch_then_vanish(peer):
            if peer.read_head() is None:
                return
            peer.send(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\nConnection: Upgrade\r\n\r\n")
            peer.sock.shutdown(socket.SHUT_WR)  # its FIN, passed on to the client
            time.sleep(0.2)
            peer.sock.close()  # and gone: what fusebox writes next is answered with a reset

        fb = self.start_fusebox(config_for(self.raw_upstream(switch_then_vanish).addr, cluster=NO_BREAKER,
                                           listener="idle_timeout: 30s"))
        s = socket.create_connection(split_addr(fb.addr), timeout=5)
        self.addCleanup(s.close)
        s.sendall(b"GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n")
        data, how = read_until_closed(s, 3)  # the 101, then the upstream's FIN passed on
        self.assertTrue(data.startswith(b"HTTP/1.1 101"), data)
        self.assertEqual(how, "eof")
        time.sleep(0.4)  # the upstream is gone now
        deadline = time.monotonic() + 3
        ended = False
        while time.monotonic() < deadline and not ended:
            try:
                s.sendall(b"ping")  # a client that keeps talking into the tunnel
            except (BrokenPipeError, ConnectionResetError):
                ended = True
            time.sleep(0.1)
        self.assertTrue(ended, "fusebox kept the client's side of a dead tunnel open")


class EarlyAnswers(RegressionCase):
    def test_an_upstream_that_answers_an_upload_early_and_closes_is_heard_not_502(self):
        def refuse_upload(peer):
            if peer.read_head() is None:
                return
            # Read some of the body, as a server does before it decides (so fusebox has no write
            # pending when the answer comes), then answer and close with the rest unread: the
            # kernel answers what fusebox sends next with a reset.
            deadline = time.monotonic() + 0.1
            while time.monotonic() < deadline:
                peer.sock.recv(65536)
            peer.send(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 9\r\nConnection: close\r\n\r\ntoo large")
            peer.sock.close()

        for attempt in range(10):  # the write's failure and the answer race: each order, more than once
            up = self.raw_upstream(refuse_upload)
            fb = self.start_fusebox(config_for(up.addr, cluster=NO_BREAKER))
            s = socket.create_connection(split_addr(fb.addr), timeout=5)
            self.addCleanup(s.close)
            total = 64 * 1024 * 1024
            s.sendall(b"PUT /upload HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % total)
            time.sleep(0.2)  # the head reaches the upstream before the body floods this process's threads
            received = bytearray()

            def read_answer():
                try:
                    while chunk := s.recv(65536):
                        received.extend(chunk)
                except OSError:
                    pass

            reader = threading.Thread(target=read_answer, daemon=True)
            reader.start()
            piece = b"x" * 65536
            try:
                for _ in range(total // len(piece)):
                    if b"\r\n\r\n" in received:
                        break
                    s.sendall(piece)
            except OSError:
                pass  # fusebox stopped reading and closed: the answer is already in
            reader.join(5)
            self.assertTrue(bytes(received).startswith(b"HTTP/1.1 413"), (attempt, bytes(received[:200]), fb.output()))
            self.assertIn(b"too large", bytes(received), attempt)

if __name__ == "__main__":
    main()
