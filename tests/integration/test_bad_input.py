"""Bad input from clients: every malformed, oversized, smuggling-shaped or stalled request gets a
clear JSON answer from fusebox itself (or, for a silent connection, a close), nothing is forwarded
that should not be, and nothing hangs."""

import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
from harness import Connection, TestCase, Upstream, config_for, main  # noqa: E402

HEADER_TIMEOUT_S = 0.3
LIMITS = """
max_header_bytes: 2KiB
max_body_bytes: 1000
header_timeout: 300ms
"""
MAX_HEADER_BYTES = 2048
MAX_BODY_BYTES = 1000

# Each bad request is built around `extra`: header lines (CRLF-terminated) placed right after the
# request line, so that a test can add an X-Request-Id ahead of the fault.


def malformed_request_line(extra=b""):
    return b"GET / HTTP/1.1 trailing-junk\r\n" + extra + b"Host: a\r\n\r\n"


def head_over_max_header_bytes(extra=b""):
    return b"GET / HTTP/1.1\r\n" + extra + b"Host: a\r\nX-Big: " + b"a" * 3000 + b"\r\n\r\n"


def head_of_exact_size(size):
    bare = b"GET / HTTP/1.1\r\nHost: a\r\nX-Pad: \r\n\r\n"
    return b"GET / HTTP/1.1\r\nHost: a\r\nX-Pad: " + b"p" * (size - len(bare)) + b"\r\n\r\n"


def head_with_fields(count, extra=b""):
    """A GET whose head has `count` fields (Host included) besides those in extra."""
    fields = b"".join(b"X-F%03d: v\r\n" % i for i in range(count - 1))
    return b"GET / HTTP/1.1\r\n" + extra + b"Host: a\r\n" + fields + b"\r\n"


def content_length_over_max_body(extra=b""):
    return b"POST / HTTP/1.1\r\n" + extra + b"Host: a\r\nContent-Length: 5000\r\n\r\n"  # no body: 413 comes first


def chunked_over_max_body(extra=b""):
    return (b"POST / HTTP/1.1\r\n" + extra + b"Host: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"3e8\r\n" + b"a" * 1000 + b"\r\n" + b"1\r\nb\r\n" + b"0\r\n\r\n")  # 1001 bytes


def content_length_with_chunked(extra=b""):
    return (b"POST / HTTP/1.1\r\n" + extra + b"Host: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"0\r\n\r\nX")


def two_content_lengths(extra=b""):
    return b"POST / HTTP/1.1\r\n" + extra + b"Host: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"


def bad_chunk_size(extra=b""):
    return (b"POST / HTTP/1.1\r\n" + extra + b"Host: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"zz\r\nhello\r\n0\r\n\r\n")


def bare_lf_after_request_line(extra=b""):
    return b"GET / HTTP/1.1\r\n" + extra + b"Host: a\nX-Other: b\n\n"


def bare_cr(extra=b""):
    return b"GET / HTTP/1.1\r\n" + extra + b"Host: a\rX-Other: b\r\n\r\n"


def obs_fold(extra=b""):
    # Folded into Host by a lenient parser, the body "abc" would become a second request.
    return b"POST / HTTP/1.1\r\n" + extra + b"Host: a\r\n Content-Length: 3\r\n\r\nabc"


def space_before_colon(extra=b"", field=b"X-Note : hello"):
    return b"GET / HTTP/1.1\r\n" + extra + b"Host: a\r\n" + field + b"\r\n\r\n"


def no_host(extra=b""):
    return b"GET / HTTP/1.1\r\n" + extra + b"Accept: */*\r\n\r\n"


def connect(extra=b""):
    return b"CONNECT a:443 HTTP/1.1\r\n" + extra + b"Host: a:443\r\n\r\n"


def half_a_head(extra=b""):
    return b"GET / HTTP/1.1\r\n" + extra + b"Host: a\r\n"  # the empty line never comes


class BadInputTestCase(TestCase):
    """One fault upstream for the class (it is slow to start and keeps no state a test relies on
    but its counters, reset per test); a fresh fusebox per test."""

    listener = LIMITS

    @classmethod
    def setUpClass(cls):
        cls.up = Upstream()
        cls.addClassCleanup(cls.up.stop)

    def config(self):
        return config_for(self.up.addr, listener=self.listener)

    def setUp(self):
        self.up.reset_stats()
        self.fb = self.start_fusebox(self.config())

    def connect(self, fb=None) -> Connection:
        c = Connection((fb or self.fb).addr, timeout=5)
        self.addCleanup(c.close)
        return c

    def read_response(self, c: Connection, fb=None):
        """The next response on c, or a test failure (not an error) that shows fusebox's log."""
        try:
            return c.read_response()
        except (EOFError, ConnectionError, socket.timeout) as e:
            self.fail(f"no response: {e!r}\nfusebox log:\n{(fb or self.fb).output()}")

    def send_and_read(self, data: bytes, fb=None):
        c = self.connect(fb)
        c.send(data)
        return self.read_response(c, fb), c

    def assert_error(self, r, status, label, request_id=None):
        """A response written by fusebox for `label`: status, JSON type and body."""
        self.assertEqual(r.status, status, r)
        self.assertEqual(r.header("content-type"), "application/json", r)
        body = r.json()
        self.assertEqual(body["error"], label)
        self.assertEqual(body["status"], status)
        self.assertIsInstance(body["message"], str)
        self.assertTrue(body["message"])
        self.assertIn("request_id", body)
        self.assertIsInstance(body["request_id"], str)
        if request_id is not None:
            self.assertEqual(body["request_id"], request_id)
        return body

    def assert_closed(self, r, c):
        self.assertEqual((r.header("connection") or "").lower(), "close", r)
        self.assertTrue(c.closed_by_peer(2.0), "fusebox kept the connection open after a protocol error")

    def assert_upstream_saw_nothing(self):
        # What fusebox forwarded before answering would reach the upstream's event loop within
        # moments; give it those moments before reading its counter.
        time.sleep(0.1)
        self.assertEqual(self.up.stats()["requests"], 0, "the request reached the upstream")


class MalformedAndOversized(BadInputTestCase):
    def test_a_malformed_request_line_gets_400_and_the_connection_is_closed(self):
        r, c = self.send_and_read(malformed_request_line())
        self.assert_error(r, 400, "bad_request")
        self.assert_closed(r, c)
        self.assert_upstream_saw_nothing()

    def test_a_head_of_exactly_max_header_bytes_is_forwarded(self):
        r, _ = self.send_and_read(head_of_exact_size(MAX_HEADER_BYTES))
        self.assertEqual(r.status, 200, r)

    def test_a_head_over_max_header_bytes_gets_431_and_the_connection_is_closed(self):
        r, c = self.send_and_read(head_of_exact_size(MAX_HEADER_BYTES + 1))
        self.assert_error(r, 431, "header_too_large")
        self.assert_closed(r, c)
        self.assert_upstream_saw_nothing()

    def test_a_head_far_over_max_header_bytes_gets_431_without_waiting_for_its_end(self):
        c = self.connect()
        c.send(b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 3000)  # the line never ends
        r = self.read_response(c)
        self.assert_error(r, 431, "header_too_large")
        self.assert_closed(r, c)

    def test_100_header_fields_are_forwarded(self):
        r, _ = self.send_and_read(head_with_fields(100))
        self.assertEqual(r.status, 200, r)

    def test_more_than_100_header_fields_get_431_and_the_connection_is_closed(self):
        r, c = self.send_and_read(head_with_fields(101))
        self.assert_error(r, 431, "header_too_large")
        self.assert_closed(r, c)
        self.assert_upstream_saw_nothing()

    def test_a_body_of_exactly_max_body_bytes_is_forwarded(self):
        c = self.connect()
        r = c.request("POST", "/x?echo=1", body=b"a" * MAX_BODY_BYTES)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["body_bytes"], MAX_BODY_BYTES)

    def test_a_content_length_over_max_body_bytes_gets_413_before_the_body_is_sent(self):
        r, c = self.send_and_read(content_length_over_max_body())  # the head alone
        self.assert_error(r, 413, "body_too_large")
        self.assert_closed(r, c)
        self.assert_upstream_saw_nothing()

    def test_a_chunked_body_over_max_body_bytes_gets_413_and_the_connection_is_closed(self):
        # Not asserted: whether the head reached the upstream (a chunked body streams, so fusebox
        # may have started forwarding before the limit was crossed).
        r, c = self.send_and_read(chunked_over_max_body())
        self.assert_error(r, 413, "body_too_large")
        self.assert_closed(r, c)

    def test_an_http11_request_without_host_gets_400_and_the_connection_is_closed(self):
        r, c = self.send_and_read(no_host())
        self.assert_error(r, 400, "bad_request")
        self.assert_closed(r, c)
        self.assert_upstream_saw_nothing()

    def test_connect_gets_405_and_the_connection_is_closed(self):
        r, c = self.send_and_read(connect())
        self.assert_error(r, 405, "method_not_allowed")
        self.assert_closed(r, c)
        self.assert_upstream_saw_nothing()


class Smuggling(BadInputTestCase):
    """Each shape that two parsers could frame differently is refused with 400, the connection is
    closed (the bytes after it cannot be trusted), and not one byte is forwarded. The whole message
    goes in one write, so that fusebox holds all of it when it decides.

    Note: the fault upstream counts only requests it could parse, and it refuses these shapes itself;
    a forwarded one shows up as its text/plain 400 instead of fusebox's JSON."""

    def assert_refused_unforwarded(self, data):
        r, c = self.send_and_read(data)
        self.assert_error(r, 400, "bad_request")
        self.assert_closed(r, c)
        self.assert_upstream_saw_nothing()

    def test_content_length_together_with_chunked_is_refused_unforwarded(self):
        self.assert_refused_unforwarded(content_length_with_chunked())

    def test_two_differing_content_lengths_are_refused_unforwarded(self):
        self.assert_refused_unforwarded(two_content_lengths())

    def test_a_bad_chunk_size_is_refused_unforwarded(self):
        self.assert_refused_unforwarded(bad_chunk_size())

    def test_bare_lf_line_endings_after_the_request_line_are_refused_unforwarded(self):
        self.assert_refused_unforwarded(bare_lf_after_request_line())

    def test_a_bare_lf_ending_the_request_line_is_refused_unforwarded(self):
        self.assert_refused_unforwarded(b"GET / HTTP/1.1\nHost: a\r\n\r\n")

    def test_a_bare_cr_in_the_head_is_refused_unforwarded(self):
        self.assert_refused_unforwarded(bare_cr())

    def test_obs_fold_is_refused_unforwarded(self):
        self.assert_refused_unforwarded(obs_fold())

    def test_a_space_before_the_colon_of_transfer_encoding_is_refused_unforwarded(self):
        self.assert_refused_unforwarded(
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n")

    def test_a_space_before_the_colon_of_any_header_name_is_refused_unforwarded(self):
        # RFC 9112 5.1: a server MUST reject whitespace between a field name and the colon.
        self.assert_refused_unforwarded(space_before_colon())


class Timeouts(BadInputTestCase):
    def test_a_head_stalled_past_header_timeout_gets_408_and_the_connection_is_closed(self):
        c = self.connect()
        start = time.monotonic()
        c.send(half_a_head())
        r = self.read_response(c)
        elapsed = time.monotonic() - start
        self.assert_error(r, 408, "header_timeout")
        self.assertGreaterEqual(elapsed, HEADER_TIMEOUT_S - 0.05)
        self.assertLess(elapsed, HEADER_TIMEOUT_S + 1.0)
        self.assert_closed(r, c)
        self.assert_upstream_saw_nothing()

    def test_a_connection_that_sends_nothing_is_closed_after_header_timeout_without_a_response(self):
        c = self.connect()
        start = time.monotonic()
        self.assertTrue(c.closed_by_peer(HEADER_TIMEOUT_S + 2.0), "a silent connection was kept open")
        elapsed = time.monotonic() - start
        self.assertEqual(c.buf, b"")
        self.assertGreaterEqual(elapsed, HEADER_TIMEOUT_S - 0.05)
        self.assertLess(elapsed, HEADER_TIMEOUT_S + 1.0)


class AfterEarlierTraffic(BadInputTestCase):
    """A connection object is reused for later requests and later clients; a bad request must be
    answered the same way there as on a brand-new one."""

    def test_a_bad_request_after_a_good_one_on_the_same_connection_gets_400(self):
        c = self.connect()
        self.assertEqual(c.request("GET", "/first").status, 200)
        self.up.reset_stats()
        c.send(two_content_lengths())
        r = self.read_response(c)
        self.assert_error(r, 400, "bad_request")
        self.assert_closed(r, c)
        self.assert_upstream_saw_nothing()

    def test_a_head_stalled_after_a_good_request_on_the_same_connection_gets_408(self):
        c = self.connect()
        self.assertEqual(c.request("GET", "/first").status, 200)
        c.send(half_a_head())
        r = self.read_response(c)
        self.assert_error(r, 408, "header_timeout")
        self.assert_closed(r, c)

    def test_a_bad_request_on_a_new_connection_after_earlier_connections_gets_400(self):
        for i in range(3):
            with Connection(self.fb.addr, timeout=5) as earlier:
                self.assertEqual(earlier.request("GET", f"/earlier{i}").status, 200)
        time.sleep(0.1)  # fusebox sees those clients go, so the next one reuses what they had
        self.up.reset_stats()
        r, c = self.send_and_read(malformed_request_line())
        self.assert_error(r, 400, "bad_request")
        self.assert_closed(r, c)
        self.assert_upstream_saw_nothing()


class RequestIds(BadInputTestCase):
    """Every error response names a request id: the one the client sent in X-Request-Id, else a
    fresh one, never another client's."""

    CASES = [
        ("head over max_header_bytes", head_over_max_header_bytes, 431, "header_too_large"),
        ("more than 100 header fields", lambda extra=b"": head_with_fields(101, extra), 431, "header_too_large"),
        ("Content-Length over max_body_bytes", content_length_over_max_body, 413, "body_too_large"),
        ("chunked body over max_body_bytes", chunked_over_max_body, 413, "body_too_large"),
        ("Content-Length with chunked", content_length_with_chunked, 400, "bad_request"),
        ("two Content-Lengths", two_content_lengths, 400, "bad_request"),
        ("bad chunk size", bad_chunk_size, 400, "bad_request"),
        ("bare LF", bare_lf_after_request_line, 400, "bad_request"),
        ("bare CR", bare_cr, 400, "bad_request"),
        ("obs-fold", obs_fold, 400, "bad_request"),
        ("space before a colon", space_before_colon, 400, "bad_request"),
        ("no Host", no_host, 400, "bad_request"),
        ("CONNECT", connect, 405, "method_not_allowed"),
        ("stalled head", half_a_head, 408, "header_timeout"),
    ]

    def test_every_error_response_carries_the_request_id_the_client_sent(self):
        # A fresh fusebox per case: each case is the first on its connection and its worker.
        for name, build, status, label in self.CASES:
            with self.subTest(name):
                fb = self.start_fusebox(self.config())
                rid = "client-id-" + label
                r, _ = self.send_and_read(build(b"X-Request-Id: " + rid.encode() + b"\r\n"), fb)
                self.assert_error(r, status, label, request_id=rid)
                fb.stop()

    def test_every_error_response_without_a_client_id_carries_a_generated_one(self):
        cases = [("malformed request line", malformed_request_line, 400, "bad_request")] + self.CASES
        for name, build, status, label in cases:
            with self.subTest(name):
                fb = self.start_fusebox(self.config())
                r, _ = self.send_and_read(build(), fb)
                body = self.assert_error(r, status, label)
                self.assertRegex(body["request_id"], r"^[0-9a-f]{32}$")
                fb.stop()

    def test_an_error_response_never_carries_an_earlier_clients_request_id(self):
        with Connection(self.fb.addr, timeout=5) as earlier:
            self.assertEqual(earlier.request("GET", "/", {"X-Request-Id": "earlier-secret"}).status, 200)
        time.sleep(0.1)  # fusebox sees that client go, so the next one reuses what it had
        cases = [("malformed request line", malformed_request_line), ("two Content-Lengths", two_content_lengths)]
        for name, build in cases:
            with self.subTest(name):
                r, _ = self.send_and_read(build())
                body = self.assert_error(r, 400, "bad_request")
                self.assertNotEqual(body["request_id"], "earlier-secret")
                self.assertTrue(body["request_id"])


class NoRoute(BadInputTestCase):
    def config(self):
        return config_for(self.up.addr, listener=self.listener).replace("prefix: /,", "prefix: /api,")

    def test_a_request_no_route_matches_gets_404_and_the_connection_stays_usable(self):
        c = self.connect()
        r = c.request("GET", "/elsewhere", {"X-Request-Id": "nr-1"})
        self.assert_error(r, 404, "no_route", request_id="nr-1")
        self.assertNotEqual((r.header("connection") or "").lower(), "close", r)
        self.assertEqual(self.up.stats()["requests"], 0)
        try:
            again = c.request("GET", "/api/x")
        except (EOFError, ConnectionError) as e:
            self.fail(f"the connection was closed after a 404: {e!r}\nfusebox log:\n{self.fb.output()}")
        self.assertEqual(again.status, 200)
        self.assertEqual(again.body, b"ok\n")


if __name__ == "__main__":
    main()
