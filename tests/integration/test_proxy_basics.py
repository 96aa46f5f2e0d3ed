"""Proxying on the happy path: forwarding, keep-alive on both sides, headers added and removed."""

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
from harness import Connection, TestCase, config_for, http_request, main  # noqa: E402


class ProxyBasics(TestCase):
    def setUp(self):
        self.up = self.start_upstream()
        self.fb = self.start_fusebox(config_for(self.up.addr))

    def test_a_get_is_forwarded_and_answered(self):
        r = http_request(self.fb.addr, "GET", "/hello")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, b"ok\n")

    def test_status_and_body_from_the_upstream_pass_through(self):
        r = http_request(self.fb.addr, "GET", "/x?status=418&body=teapot")
        self.assertEqual(r.status, 418)
        self.assertEqual(r.body, b"teapot")

    def test_keep_alive_reuses_one_upstream_connection_for_many_requests(self):
        self.up.reset_stats()
        with Connection(self.fb.addr) as c:
            for i in range(50):
                r = c.request("GET", f"/n{i}")
                self.assertEqual(r.status, 200)
        # a second client connection reuses the pooled upstream connection too
        with Connection(self.fb.addr) as c:
            for i in range(10):
                self.assertEqual(c.request("GET", "/again").status, 200)
        stats = self.up.stats()
        self.assertEqual(stats["requests"], 60)
        self.assertEqual(stats["connections"], 1)

    def test_forwarding_headers_are_added_and_hop_by_hop_ones_removed(self):
        r = http_request(
            self.fb.addr,
            "GET",
            "/e?echo=1",
            {
                "X-Forwarded-For": "10.1.1.1",
                "Via": "1.0 edge",
                "Connection": "X-Private, keep-alive",
                "X-Private": "secret",
                "Keep-Alive": "timeout=5",
                "TE": "trailers",
                "X-App": "kept",
            },
        )
        self.assertEqual(r.status, 200)
        echo = r.json()
        names = [k.lower() for k, _ in echo["headers"]]
        got = {k.lower(): v for k, v in echo["headers"]}
        for dropped in ("connection", "x-private", "keep-alive", "te"):
            self.assertNotIn(dropped, names)
        self.assertEqual(got["x-app"], "kept")
        self.assertEqual(got["x-forwarded-for"], "10.1.1.1, 127.0.0.1")
        self.assertEqual(got["via"], "1.0 edge, 1.1 fusebox")
        self.assertRegex(got["x-request-id"], r"^[0-9a-f]{32}$")

    def upstream_request_ids(self, client_id: str) -> list[str]:
        echo = http_request(self.fb.addr, "GET", "/e?echo=1", {"X-Request-Id": client_id}).json()
        return [v for k, v in echo["headers"] if k.lower() == "x-request-id"]

    def test_a_client_request_id_is_kept(self):
        self.assertEqual(self.upstream_request_ids("abc-123"), ["abc-123"])
        trace = "Root=1-67891233-abcdef012345678912345678;Parent=53995c3f42cd8ad8"  # not a plain token
        long_plain = "t" * 128
        self.assertEqual(self.upstream_request_ids(long_plain), [long_plain])
        for replaced in (trace, "u" * 129, 'has "quotes"'):
            ids = self.upstream_request_ids(replaced)
            self.assertEqual(len(ids), 1, ids)  # fusebox's alone: the upstream and the logs agree
            self.assertRegex(ids[0], r"^[0-9a-f]{32}$")

    def test_an_error_is_logged_once_with_the_request_id_its_answer_names(self):
        start = len(self.fb.lines)
        r = http_request(self.fb.addr, "GET", "/x?reset=1", {"X-Request-Id": "trace-reset-1"})
        self.assertEqual(r.status, 502, r)
        self.assertEqual(r.json()["request_id"], "trace-reset-1")
        self.fb.wait_for_line(r"request_id=trace-reset-1", start=start)
        time.sleep(0.2)  # a second line, if any, would be written by now
        lines = [line for line in self.fb.lines[start:] if "trace-reset-1" in line]
        self.assertEqual(len(lines), 1, lines)
        self.assertIn("502 upstream_reset", lines[0])

    def test_response_hop_by_hop_headers_are_removed(self):
        r = http_request(self.fb.addr, "GET", "/h?header=Keep-Alive:timeout%3D9&header=X-Up:yes")
        self.assertEqual(r.status, 200)
        self.assertIsNone(r.header("keep-alive"))
        self.assertEqual(r.header("x-up"), "yes")

    def test_head_request_gets_the_head_without_a_body(self):
        with Connection(self.fb.addr) as c:
            r = c.request("HEAD", "/x?size=1000")
            self.assertEqual(r.status, 200)
            self.assertEqual(r.header("content-length"), "1000")
            # the connection is still in step: the next response is read correctly
            self.assertEqual(c.request("GET", "/y").body, b"ok\n")

    def test_204_and_304_have_no_body_and_keep_the_connection(self):
        with Connection(self.fb.addr) as c:
            self.assertEqual(c.request("GET", "/a?status=204").status, 204)
            self.assertEqual(c.request("GET", "/a?status=304").status, 304)
            self.assertEqual(c.request("GET", "/b").body, b"ok\n")


class AccessLog(TestCase):
    def test_each_request_writes_one_json_line_with_its_id_status_and_sizes(self):
        up = self.start_upstream()
        fb = self.start_fusebox(config_for(up.addr, top="access_log: stdout"))
        with Connection(fb.addr) as c:
            self.assertEqual(c.request("POST", "/a?size=10", {"X-Request-Id": "log-1"}, b"12345").status, 200)
            self.assertEqual(c.request("GET", "/b?status=503", {"X-Request-Id": "log-2"}).status, 503)
        first = json.loads(fb.wait_for_line(r'^\{"request_id":"log-1"').string)
        second = json.loads(fb.wait_for_line(r'^\{"request_id":"log-2"').string)
        self.assertEqual(first["method"], "POST")
        self.assertEqual(first["target"], "/a?size=10")
        self.assertEqual(first["status"], 200)
        self.assertEqual(first["request_body_bytes"], 5)
        self.assertEqual(first["response_body_bytes"], 10)
        self.assertEqual(first["client"], "127.0.0.1")
        self.assertEqual(first["listener"], "main")
        self.assertEqual(first["error"], "")
        self.assertEqual(second["status"], 503)
        self.assertGreaterEqual(second["duration_ms"], 0)

    def test_an_error_answered_by_fusebox_is_logged_with_its_label(self):
        up = self.start_upstream()
        fb = self.start_fusebox(config_for(up.addr, top="access_log: stdout"))
        self.assertEqual(http_request(fb.addr, "GET", "/x?reset=1", {"X-Request-Id": "log-3"}).status, 502)
        line = json.loads(fb.wait_for_line(r'^\{"request_id":"log-3"').string)
        self.assertEqual(line["status"], 502)
        self.assertEqual(line["error"], "upstream_reset")

    def test_the_access_log_is_off_by_default(self):
        up = self.start_upstream()
        fb = self.start_fusebox(config_for(up.addr))
        http_request(fb.addr, "GET", "/", {"X-Request-Id": "log-4"})
        fb.stop()
        self.assertNotIn('"request_id":"log-4"', fb.output())



def wait_until(predicate, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.02)
    return predicate()


class PoolLimits(TestCase):
    """max_connections (per worker, in flight and idle) and max_idle (idle kept per endpoint)."""

    def setUp(self):
        self.up = self.start_upstream()

    def in_flight(self, fb, path: str) -> Connection:
        c = Connection(fb.addr, timeout=5)
        self.addCleanup(c.close)
        c.send(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        return c

    def test_over_max_connections_a_request_gets_503_upstream_overloaded_at_once(self):
        fb = self.start_fusebox(config_for(self.up.addr, cluster="max_connections: 1"))
        slow = self.in_flight(fb, "/slow?delay=800")
        self.assertTrue(wait_until(lambda: self.up.stats()["requests"] == 1), "the slow request reached the upstream")
        with Connection(fb.addr, timeout=5) as c:
            start = time.monotonic()
            r = c.request("GET", "/second")
            self.assertLess(time.monotonic() - start, 0.5)
            self.assertEqual(r.status, 503, r)
            self.assertEqual(r.header("content-type"), "application/json")
            self.assertEqual(r.json()["error"], "upstream_overloaded")
            self.assertEqual(slow.read_response().status, 200)
            self.assertEqual(c.request("GET", "/third").status, 200)  # the one connection is free again
        self.assertEqual(self.up.stats()["connections"], 1)

    def test_max_idle_bounds_the_idle_connections_kept(self):
        fb = self.start_fusebox(config_for(self.up.addr, cluster="max_idle: 1"))
        clients = [self.in_flight(fb, f"/together{i}?delay=300") for i in range(3)]
        for c in clients:
            self.assertEqual(c.read_response().status, 200)
        self.assertEqual(self.up.stats()["connections"], 3)  # three at once need three
        # Two of them are closed as they come back; one waits, idle, for the next request.
        self.assertTrue(wait_until(lambda: self.up.stats()["active_connections"] == 1),
                        self.up.stats())
        for i in range(3):
            self.assertEqual(http_request(fb.addr, "GET", f"/after{i}").status, 200)
        self.assertEqual(self.up.stats()["connections"], 3)  # all three reused the idle one

if __name__ == "__main__":
    main()
