"""A route with a breaker of its own: its failures open its breaker and no other, the cluster's
breaker (and every other route through it) carries on, and the admin API, fuseboxctl and the
metrics call it by the route's name."""

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
from harness import FUSEBOX_BIN, Connection, TestCase, http_request, main  # noqa: E402

FUSEBOXCTL = str(Path(FUSEBOX_BIN).with_name("fuseboxctl"))


def config(upstream: str) -> str:
    return f"""workers: 2
listeners:
  - name: main
    address: 127.0.0.1:0
    routes:
      - prefix: /reports
        cluster: up
        name: reports
        breaker: {{ consecutive_failures: 2, open: {{ base: 30s, jitter: 0 }} }}
      - {{ prefix: /, cluster: up }}
clusters:
  - name: up
    endpoints: [ {upstream} ]
    breaker: {{ consecutive_failures: 5, failure_rate: {{ threshold: 0% }} }}
"""


class RouteBreaker(TestCase):
    def test_a_routes_failures_open_its_own_breaker_and_no_other(self):
        up = self.start_upstream()
        fb = self.start_fusebox(config(up.addr), env={"FUSEBOX_ADMIN_TOKEN": "t"})
        with Connection(fb.addr) as c:
            self.assertEqual([c.request("GET", "/reports?status=500").status for _ in range(2)], [500, 500])
            r = c.request("GET", "/reports/daily")
            self.assertEqual(r.status, 503)
            self.assertEqual(r.header("x-fusebox-breaker"), "reports; state=open")
            # Every other path of the cluster still goes through, and its breaker counts them.
            self.assertEqual(c.request("GET", "/charges").status, 200)
            self.assertEqual(c.request("GET", "/charges?status=500").status, 500)
        fb.wait_for_line(r"breaker reports: closed -> open: 2 failures in a row \(threshold 2\)")

        admin = f"http://{fb.admin_addr}"
        listing = json.load(urllib.request.urlopen(f"{admin}/admin/breakers", timeout=5))["breakers"]
        self.assertEqual([(b["cluster"], b.get("route"), b["state"]) for b in listing],
                         [("up", None, "closed"), ("up", "reports", "open")])
        reports = json.load(urllib.request.urlopen(f"{admin}/admin/breakers/reports", timeout=5))
        self.assertEqual(reports["config"]["consecutive_failures"], 2)
        self.assertEqual(reports["config"]["failure_rate"]["threshold"], "0%")  # the cluster's
        self.assertEqual(reports["window"]["failures"], 2)
        up_breaker = json.load(urllib.request.urlopen(f"{admin}/admin/breakers/up", timeout=5))
        self.assertEqual((up_breaker["state"], up_breaker["window"]["calls"], up_breaker["window"]["failures"]),
                         ("closed", 2, 1))

        metrics = urllib.request.urlopen(f"{admin}/metrics", timeout=5).read().decode()
        self.assertIn('fusebox_breaker_state{cluster="up",route="reports",state="open"} 1\n', metrics)
        self.assertIn('fusebox_breaker_state{cluster="up",state="closed"} 1\n', metrics)
        self.assertIn('fusebox_breaker_transitions_total{cluster="up",route="reports",from="closed",to="open"} 1\n',
                      metrics)

        env = dict(os.environ, FUSEBOX_ADMIN_TOKEN="t")
        status = subprocess.run([FUSEBOXCTL, "--admin", fb.admin_addr, "status"], capture_output=True, text=True,
                                env=env, timeout=10)
        self.assertEqual(status.returncode, 0, status.stderr)
        rows = [line.split()[:2] for line in status.stdout.splitlines()[1:]]
        self.assertEqual(rows, [["up", "closed"], ["up/reports", "open"]])
        opened = subprocess.run([FUSEBOXCTL, "--admin", fb.admin_addr, "open", "up/reports"], capture_output=True,
                                text=True, env=env, timeout=10)  # the name as status lists it
        self.assertEqual((opened.returncode, opened.stdout), (0, "up/reports: forced_open (open)\n"))
        reset = subprocess.run([FUSEBOXCTL, "--admin", fb.admin_addr, "reset", "reports"], capture_output=True,
                               text=True, env=env, timeout=10)
        self.assertEqual((reset.returncode, reset.stdout), (0, "up/reports: closed (reset)\n"))
        self.assertEqual(http_request(fb.addr, "GET", "/reports").status, 200)


if __name__ == "__main__":
    main()
