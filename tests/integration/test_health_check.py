"""Active health checks (run by the master): an endpoint that fails them is routed around by every
worker, one that passes again comes back, an open breaker half-opens as soon as its endpoint is
seen back, and the checks pause while a breaker is open on a port where nothing listens."""

import json
import re
import socket
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
from harness import Connection, TestCase, http_request, main  # noqa: E402


def scrape(fb) -> dict:
    """Samples of /metrics as {'name{labels}': value}."""
    text = urllib.request.urlopen(f"http://{fb.admin_addr}/metrics", timeout=5).read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, value = line.rsplit(" ", 1)
            out[series] = float(value)
    return out


def breaker(fb, cluster="up") -> dict:
    return json.load(urllib.request.urlopen(f"http://{fb.admin_addr}/admin/breakers/{cluster}", timeout=5))


def wait_until(predicate, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"{what} not reached within {timeout}s")


def config(endpoints: list[str], check: str, breaker_yaml: str = "", workers: int = 2) -> str:
    return (f"workers: {workers}\n"
            "listeners:\n"
            "  - name: main\n"
            "    address: 127.0.0.1:0\n"
            "    routes: [ { prefix: /, cluster: up } ]\n"
            "clusters:\n"
            "  - name: up\n"
            f"    endpoints: [ {', '.join(endpoints)} ]\n"
            f"    health_check: {check}\n"
            + "".join(f"    {line}\n" for line in breaker_yaml.strip("\n").splitlines()))


class Endpoints(TestCase):
    def test_an_endpoint_failing_its_checks_gets_no_traffic_until_it_passes_again(self):
        a, b = self.start_upstream(), self.start_upstream()
        fb = self.start_fusebox(config([a.addr, b.addr],
                                       "{ path: /health, interval: 50ms, timeout: 300ms, "
                                       "healthy_threshold: 2, unhealthy_threshold: 2 }",
                                       "response_header_timeout: 1s"))
        # b hangs on everything without a query: its checks time out, and so would any request
        # sent to it (a 504 after 1 s).
        b.set_mode("hang=1")
        fb.wait_for_line(rf"endpoint {re.escape(b.addr)} of cluster up is down: 2 health checks failed in a row "
                         r"\(last: timed out\)")
        samples = scrape(fb)
        self.assertEqual(samples[f'fusebox_endpoint_up{{cluster="up",endpoint="{b.addr}"}}'], 0)
        self.assertEqual(samples[f'fusebox_endpoint_up{{cluster="up",endpoint="{a.addr}"}}'], 1)
        # New connections, so both workers choose: every request goes to a.
        for _ in range(40):
            self.assertEqual(http_request(fb.addr, "GET", "/x").status, 200)
        # b comes back: two passes and it gets traffic again.
        b.set_mode("")
        fb.wait_for_line(rf"endpoint {re.escape(b.addr)} of cluster up is up: 2 health checks passed in a row")
        b.reset_stats()
        for _ in range(40):
            self.assertEqual(http_request(fb.addr, "GET", "/x?status=200").status, 200)
        self.assertGreater(b.stats()["requests"], 10)
        samples = scrape(fb)
        passed = samples[f'fusebox_health_checks_total{{cluster="up",endpoint="{b.addr}",result="passed"}}']
        failed = samples[f'fusebox_health_checks_total{{cluster="up",endpoint="{b.addr}",result="failed"}}']
        self.assertGreaterEqual(passed, 2)
        self.assertGreaterEqual(failed, 2)
        endpoints = {e["endpoint"]: e for e in breaker(fb)["endpoints"]}
        self.assertTrue(endpoints[b.addr]["up"])
        self.assertGreaterEqual(endpoints[b.addr]["checks_failed"], failed)

    def test_every_endpoint_down_means_all_of_them_are_used(self):
        a = self.start_upstream()
        fb = self.start_fusebox(config([a.addr], "{ path: /health, interval: 50ms, unhealthy_threshold: 1 }"))
        a.set_mode("status=503")
        fb.wait_for_line(rf"endpoint {re.escape(a.addr)} of cluster up is down")
        # The only endpoint is down: requests still go to it (a checker wrong about every endpoint
        # must not take the cluster away).
        self.assertEqual(http_request(fb.addr, "GET", "/x?status=200").status, 200)


class Breakers(TestCase):
    BREAKER = """
breaker:
  consecutive_failures: 3
  failure_rate: { threshold: 0% }
  open: { base: 30s, jitter: 0 }
  half_open: { permits: 1, successes: 1 }
"""

    def test_an_open_breaker_half_opens_as_soon_as_its_endpoint_passes_again(self):
        up = self.start_upstream()
        fb = self.start_fusebox(config([up.addr], "{ path: /health, interval: 50ms, timeout: 500ms, "
                                                  "healthy_threshold: 1, unhealthy_threshold: 1 }", self.BREAKER))
        up.set_mode("status=500")
        with Connection(fb.addr) as c:
            self.assertEqual([c.request("GET", "/x").status for _ in range(3)], [500, 500, 500])
            self.assertEqual(c.request("GET", "/x").status, 503)
        fb.wait_for_line(rf"endpoint {re.escape(up.addr)} of cluster up is down")
        self.assertEqual(breaker(fb)["state"], "open")
        self.assertGreater(breaker(fb)["next_trial_in_ms"], 25_000)
        back = time.monotonic()
        up.set_mode("")
        fb.wait_for_line(r"breaker up: open -> half_open: an endpoint passed 1/1 health checks: trial calls allowed")
        self.assertEqual(http_request(fb.addr, "GET", "/x").status, 200)  # the trial
        self.assertLess(time.monotonic() - back, 5)  # not the 30 s open time
        wait_until(lambda: breaker(fb)["state"] == "closed", what="closed")
        reasons = [t["why"] for t in breaker(fb)["transitions"]]
        self.assertEqual(reasons, ["consecutive_failures", "health_check_passed", "trials_succeeded"])
        samples = scrape(fb)
        self.assertEqual(samples['fusebox_breaker_transitions_total{cluster="up",from="open",to="half_open"}'], 1)

    def test_a_breaker_open_on_passing_checks_keeps_its_open_time(self):
        # /health passes all along: the checks never saw the endpoint go down, so they have no
        # news of a return, and the breaker waits out its open time.
        up = self.start_upstream()
        fb = self.start_fusebox(config([up.addr], "{ path: /health, interval: 50ms, healthy_threshold: 1 }",
                                       self.BREAKER))
        with Connection(fb.addr) as c:
            self.assertEqual([c.request("GET", "/x?status=500").status for _ in range(3)], [500, 500, 500])
        time.sleep(0.5)  # ten checks, all passing
        self.assertEqual(breaker(fb)["state"], "open")
        self.assertEqual(http_request(fb.addr, "GET", "/x").status, 503)

    def test_checks_pause_while_the_breaker_is_open_on_a_refused_port(self):
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()  # nothing listens there now
        fb = self.start_fusebox(config([f"127.0.0.1:{port}"], "{ path: /health, interval: 50ms, "
                                                              "unhealthy_threshold: 1 }", self.BREAKER))
        with Connection(fb.addr) as c:
            self.assertEqual([c.request("GET", "/x").status for _ in range(3)], [502, 502, 502])
        self.assertEqual(breaker(fb)["state"], "open")
        key = f'fusebox_health_checks_total{{cluster="up",endpoint="127.0.0.1:{port}",result="failed"}}'
        time.sleep(0.2)  # a check in flight when it tripped finishes
        before = scrape(fb)[key]
        time.sleep(0.5)  # ten intervals
        self.assertEqual(scrape(fb)[key], before)


if __name__ == "__main__":
    main()
