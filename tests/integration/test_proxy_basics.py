"""Proxying on the happy path: forwarding, keep-alive on both sides, headers added and removed."""

import json
import sys
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

    def test_a_client_request_id_is_kept(self):
        echo = http_request(self.fb.addr, "GET", "/e?echo=1", {"X-Request-Id": "abc-123"}).json()
        ids = [v for k, v in echo["headers"] if k.lower() == "x-request-id"]
        self.assertEqual(ids, ["abc-123"])

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


if __name__ == "__main__":
    main()
