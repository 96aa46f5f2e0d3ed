"""Circuit breakers through the proxy: trips, fast rejections, fallbacks, trial calls, recovery,
agreement between workers, and state that survives a killed worker and a restart."""

import signal
import socket
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
from harness import Connection, Fusebox, TestCase, config_for, http_request, main  # noqa: E402

FAST_BREAKER = """
breaker:
  consecutive_failures: 3
  failure_rate: { threshold: 0% }
  open: { base: 1s, multiplier: 2, max: 10s, jitter: 0 }
  half_open: { permits: 1, successes: 1 }
"""


def breaker_config(upstream_addr: str, extra_cluster: str = "", top: str = "") -> str:
    return config_for(upstream_addr, cluster=FAST_BREAKER + extra_cluster, top=top)


class Trips(TestCase):
    def setUp(self):
        self.up = self.start_upstream()

    def fail_n(self, fb, n, query="status=500"):
        with Connection(fb.addr) as c:
            return [c.request("GET", f"/x?{query}").status for _ in range(n)]

    def test_consecutive_failures_open_the_breaker_and_rejections_spare_the_upstream(self):
        fb = self.start_fusebox(breaker_config(self.up.addr))
        self.up.reset_stats()
        self.assertEqual(self.fail_n(fb, 3), [500, 500, 500])
        r = http_request(fb.addr, "GET", "/x?status=500", {"X-Request-Id": "rej-1"})
        self.assertEqual(r.status, 503)
        self.assertEqual(r.header("x-fusebox-breaker"), "up; state=open")
        self.assertEqual(r.header("retry-after"), "1")
        body = r.json()
        self.assertEqual(body["error"], "breaker_open")
        self.assertEqual(body["request_id"], "rej-1")
        with Connection(fb.addr) as c:
            for _ in range(50):
                self.assertEqual(c.request("GET", "/x").status, 503)  # keep-alive holds
        self.assertEqual(self.up.stats()["requests"], 3)
        fb.wait_for_line(r"breaker up: closed -> open: 3 failures in a row \(threshold 3\)")

    def test_a_trial_call_after_the_open_time_closes_it_when_the_upstream_is_back(self):
        fb = self.start_fusebox(breaker_config(self.up.addr))
        self.fail_n(fb, 3)
        self.assertEqual(http_request(fb.addr, "GET", "/x").status, 503)
        time.sleep(1.1)
        self.up.reset_stats()
        self.assertEqual(http_request(fb.addr, "GET", "/x").status, 200)  # the trial
        for _ in range(5):
            self.assertEqual(http_request(fb.addr, "GET", "/x").status, 200)
        self.assertEqual(self.up.stats()["requests"], 6)
        fb.wait_for_line(r"breaker up: open -> half_open: open for \d+ ms: trial calls allowed")
        fb.wait_for_line(r"breaker up: half_open -> closed: 1/1 trial calls succeeded")

    def test_a_failed_trial_reopens_it_for_longer(self):
        fb = self.start_fusebox(breaker_config(self.up.addr))
        self.fail_n(fb, 3)
        time.sleep(1.1)
        self.assertEqual(http_request(fb.addr, "GET", "/x?status=502").status, 502)  # the trial fails
        r = http_request(fb.addr, "GET", "/x")
        self.assertEqual(r.status, 503)
        self.assertEqual(r.header("retry-after"), "2")  # 1 s × 2
        fb.wait_for_line(r"breaker up: half_open -> open: a trial call failed")

    def test_a_trial_whose_client_leaves_before_it_was_sent_gives_its_permit_back(self):
        # An upstream whose accept queue is full: connects hang (the SYNs are dropped) until
        # connect_timeout. Three such timeouts trip the breaker; after the open time the one
        # permitted trial hangs in connect too, and its client resets. The request never went
        # out, so nothing was learned: the permit comes back, and the next request is a trial
        # (a 504 after connect_timeout), not a 503 until the round times out.
        full = socket.socket()
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        self.addCleanup(full.close)
        while True:  # fill the queue until a connect no longer completes
            filler = socket.socket()
            self.addCleanup(filler.close)
            filler.settimeout(0.2)
            try:
                filler.connect(full.getsockname())
            except (socket.timeout, TimeoutError):
                break
        addr = "127.0.0.1:%d" % full.getsockname()[1]
        fb = self.start_fusebox(breaker_config(addr, extra_cluster="connect_timeout: 300ms"))
        self.assertEqual([http_request(fb.addr, "GET", "/x").status for _ in range(3)], [504, 504, 504])
        self.assertEqual(http_request(fb.addr, "GET", "/x").status, 503)
        time.sleep(1.1)
        c = Connection(fb.addr)
        c.send(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n")
        fb.wait_for_line(r"breaker up: open -> half_open")
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()  # RST, while the trial still waits for its connection
        time.sleep(0.05)
        started = time.monotonic()
        self.assertEqual(http_request(fb.addr, "GET", "/x").status, 504)  # admitted: the trial
        self.assertGreater(time.monotonic() - started, 0.25)

    def test_4xx_answers_are_the_callers_fault_and_never_trip(self):
        fb = self.start_fusebox(breaker_config(self.up.addr))
        self.assertEqual(self.fail_n(fb, 10, "status=404"), [404] * 10)
        self.assertEqual(http_request(fb.addr, "GET", "/x").status, 200)

    def test_connect_failures_trip_it_too(self):
        import socket

        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
        s.close()
        fb = self.start_fusebox(breaker_config(dead))
        statuses = [http_request(fb.addr, "GET", "/").status for _ in range(4)]
        self.assertEqual(statuses, [502, 502, 502, 503])

    def test_failure_statuses_decide_what_counts(self):
        fb = self.start_fusebox(breaker_config(self.up.addr, "  failure_statuses: [ 503 ]"))
        self.assertEqual(self.fail_n(fb, 5, "status=500"), [500] * 5)
        self.assertEqual(self.fail_n(fb, 4, "status=503"), [503, 503, 503, 503])
        r = http_request(fb.addr, "GET", "/x")
        self.assertEqual(r.header("x-fusebox-breaker"), "up; state=open")

    def test_the_failure_rate_rule_trips_with_its_numbers_in_the_reason(self):
        fb = self.start_fusebox(
            config_for(
                self.up.addr,
                cluster="""
breaker:
  consecutive_failures: 0
  failure_rate: { threshold: 50%, minimum_calls: 10, window: 10s }
  open: { base: 5s, jitter: 0 }
""",
            )
        )
        with Connection(fb.addr) as c:
            for i in range(10):
                c.request("GET", "/x?status=500" if i % 2 else "/x")
            self.assertEqual(c.request("GET", "/x").status, 503)
        fb.wait_for_line(r"breaker up: closed -> open: failure rate 50% \u2265 50% over 10 calls")

    def test_slow_calls_trip_it_within_a_second(self):
        fb = self.start_fusebox(
            config_for(
                self.up.addr,
                cluster="""
breaker:
  consecutive_failures: 0
  failure_rate: { threshold: 0%, minimum_calls: 3, window: 10s }
  slow_calls: { threshold: 80%, duration: 100ms }
  open: { base: 5s, jitter: 0 }
""",
            )
        )
        start = time.monotonic()
        statuses = [http_request(fb.addr, "GET", "/x?delay=150").status for _ in range(4)]
        self.assertEqual(statuses, [200, 200, 200, 503])
        self.assertLess(time.monotonic() - start, 1.5)
        fb.wait_for_line(r"closed -> open: slow call rate 100% \u2265 80% over 3 calls")


class Fallback(TestCase):
    def test_an_open_breaker_answers_with_the_configured_fallback(self):
        up = self.start_upstream()
        fb = self.start_fusebox(
            breaker_config(
                up.addr,
                "fallback: { status: 200, headers: { Content-Type: application/json }, body: '{\"cached\":true}' }",
            )
        )
        with Connection(fb.addr) as c:
            for _ in range(3):
                c.request("GET", "/x?status=500")
            r = c.request("GET", "/x")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, b'{"cached":true}')
        self.assertEqual(r.header("content-type"), "application/json")
        self.assertEqual(r.header("x-fusebox-fallback"), "breaker_open")
        self.assertEqual(r.header("x-fusebox-breaker"), "up; state=open")


class Modes(TestCase):
    def test_forced_open_rejects_everything_without_calling_the_upstream(self):
        up = self.start_upstream()
        fb = self.start_fusebox(config_for(up.addr, cluster="breaker: { mode: forced_open }"))
        up.reset_stats()
        r = http_request(fb.addr, "GET", "/")
        self.assertEqual(r.status, 503)
        self.assertEqual(r.header("x-fusebox-breaker"), "up; state=forced_open")
        self.assertIsNone(r.header("retry-after"))
        self.assertEqual(up.stats()["requests"], 0)

    def test_disabled_never_trips(self):
        up = self.start_upstream()
        fb = self.start_fusebox(config_for(up.addr, cluster="breaker: { mode: disabled, consecutive_failures: 2 }"))
        with Connection(fb.addr) as c:
            self.assertEqual([c.request("GET", "/x?status=500").status for _ in range(10)], [500] * 10)

    def test_metrics_only_counts_but_never_rejects(self):
        up = self.start_upstream()
        fb = self.start_fusebox(config_for(up.addr, cluster="breaker: { mode: metrics_only, consecutive_failures: 2 }"))
        with Connection(fb.addr) as c:
            self.assertEqual([c.request("GET", "/x?status=500").status for _ in range(10)], [500] * 10)


class SharedState(TestCase):
    def test_with_two_workers_no_worker_calls_the_failing_upstream_after_the_trip(self):
        up = self.start_upstream()
        fb = self.start_fusebox(breaker_config(up.addr).replace("workers: 1", "workers: 2"))
        self.assertEqual(len(fb.worker_pids()), 2)
        up.set_mode("status=500")
        up.reset_stats()
        # Many connections, so both workers take some: the accept queue is shared.
        statuses = []
        for _ in range(40):
            with Connection(fb.addr) as c:
                statuses.append(c.request("GET", "/").status)
        self.assertEqual(statuses[:3], [500, 500, 500])
        self.assertEqual(set(statuses[3:]), {503})
        self.assertEqual(up.stats()["requests"], 3)

    def test_a_killed_worker_leaves_the_breaker_open(self):
        up = self.start_upstream()
        fb = self.start_fusebox(
            config_for(up.addr, cluster=FAST_BREAKER.replace("base: 1s", "base: 30s").replace("max: 10s", "max: 60s"))
        )
        with Connection(fb.addr) as c:
            for _ in range(3):
                c.request("GET", "/x?status=500")
        old = fb.worker_pids()
        import os

        os.kill(old[0], signal.SIGKILL)
        for _ in range(50):
            now = fb.worker_pids()
            if now and now != old:
                break
            time.sleep(0.05)
        self.assertNotEqual(fb.worker_pids(), old)
        up.reset_stats()
        r = http_request(fb.addr, "GET", "/x")
        self.assertEqual(r.status, 503)
        self.assertEqual(up.stats()["requests"], 0)

    def test_a_restarted_fusebox_finds_the_breaker_still_open(self):
        up = self.start_upstream()
        name = f"fusebox-test-restart-{id(self)}"
        config = config_for(up.addr, cluster=FAST_BREAKER.replace("base: 1s", "base: 30s").replace("max: 10s", "max: 60s"))
        first = Fusebox(config, env={"FUSEBOX_SHM_NAME": name})
        try:
            with Connection(first.addr) as c:
                for _ in range(3):
                    c.request("GET", "/x?status=500")
        finally:
            first.stop(keep_segment=True)
        second = self.start_fusebox(config, env={"FUSEBOX_SHM_NAME": name})
        second.wait_for_line(r"attached: state kept")
        up.reset_stats()
        r = http_request(second.addr, "GET", "/x")
        self.assertEqual(r.status, 503)
        self.assertEqual(up.stats()["requests"], 0)


if __name__ == "__main__":
    main()
