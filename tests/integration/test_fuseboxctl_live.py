"""fuseboxctl, the admin CLI, against a real fusebox (2 workers, two clusters, a token from
FUSEBOX_ADMIN_TOKEN) and the fault upstream: what `status`, `show` and `config` print about the
running breakers, every action through to the data path, the refusals fusebox answers with (exit 1)
and a fusebox that has gone away (exit 3). What fuseboxctl does with canned answers and usage
errors is in test_fuseboxctl_offline.py.

Exit codes (tools/fuseboxctl/main.cc): 0 ok, 1 fusebox refused, 2 usage error, 3 unreachable.
"""

import datetime
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
from harness import FUSEBOX_BIN, Connection, TestCase, http_request, main  # noqa: E402

# Built next to fusebox (tools/fuseboxctl/CMakeLists.txt).
FUSEBOXCTL_BIN = os.environ.get("FUSEBOXCTL_BIN", str(Path(FUSEBOX_BIN).parent / "fuseboxctl"))

TOKEN = "live-admin-token"
# The header when every STATE is at most as wide as "closed" (columns widen to their widest cell).
HEADER = "CLUSTER  STATE   CALLS  FAILURES  SLOW  FAILURE%  NEXT TRIAL  REASON"
TITLES = ["CLUSTER", "STATE", "CALLS", "FAILURES", "SLOW", "FAILURE%", "NEXT TRIAL", "REASON"]
TRIP_REASON = "3 failures in a row (threshold 3)"


def live_config(upstream_addr: str) -> str:
    """Two workers; `up` trips after 3 failures and stays open 30 s (no jitter, so the next trial is
    never later than 30 s); `search` is a second cluster, after it in config order."""
    return (
        "workers: 2\n"
        "listeners:\n"
        "  - name: main\n"
        "    address: 127.0.0.1:0\n"
        "    routes: [ { prefix: /, cluster: up }, { prefix: /search, cluster: search } ]\n"
        "clusters:\n"
        "  - name: up\n"
        f"    endpoints: [ {upstream_addr} ]\n"
        "    breaker: { consecutive_failures: 3, open: { base: 30s, jitter: 0 } }\n"
        "  - name: search\n"
        f"    endpoints: [ {upstream_addr} ]\n"
    )


def clean_env(**overrides: str) -> dict:
    """This environment without the runner's FUSEBOX_ADMIN_* (they must not leak in), plus `overrides`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUSEBOX_ADMIN_")}
    env.update(overrides)
    return env


def run_ctl(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([FUSEBOXCTL_BIN, *args], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          env=env or clean_env(), timeout=30)


def pretty(value) -> str:
    """What --json prints: the server's JSON, its key order kept, indented by 2."""
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def columns(line: str) -> list[str]:
    """A status table row split into its cells (cells are 2+ spaces apart; none holds two spaces)."""
    return re.split(r" {2,}", line.strip())


def wall_ms(text: str) -> int:
    """The admin API's "2026-11-24T14:03:11.250Z" as milliseconds since the epoch."""
    dt = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
    return round(dt.timestamp() * 1000)


def wait_until(predicate, timeout: float = 3.0, interval: float = 0.02):
    """predicate()'s first truthy value within timeout, else None."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


class Live(TestCase):
    """A fusebox with the token, and fuseboxctl pointed at its admin address."""

    env = {"FUSEBOX_ADMIN_TOKEN": TOKEN}

    def setUp(self):
        self.up = self.start_upstream()
        self.fb = self.start_fusebox(live_config(self.up.addr), env=self.env)
        self.assertEqual(len(self.fb.worker_pids()), 2)

    def ctl(self, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
        return run_ctl("--admin", f"http://{self.fb.admin_addr}", *args, env=env)

    def ok(self, *args: str, env: dict | None = None) -> str:
        """fuseboxctl's stdout, after checking it exited 0 and said nothing on stderr."""
        r = self.ctl(*args, env=env)
        self.assertEqual((r.returncode, r.stderr), (0, ""), f"fuseboxctl {' '.join(args)}: {r.stdout}")
        return r.stdout

    def api(self, path: str) -> dict:
        r = http_request(self.fb.admin_addr, "GET", path)
        self.assertEqual(r.status, 200, r)
        return r.json()

    def breaker(self, cluster: str = "up") -> dict:
        return self.api(f"/admin/breakers/{cluster}")

    def fail_n(self, n: int) -> list[int]:
        """n upstream 500s through the proxy, each on its own connection (so both workers take some)."""
        statuses = []
        for _ in range(n):
            with Connection(self.fb.addr) as c:
                statuses.append(c.request("GET", "/x?status=500").status)
        return statuses

    def wait_for_window(self, calls: int, failures: int):
        """The shared counts settle a moment after the client has its answer."""
        got = wait_until(lambda: (lambda w: (w["calls"], w["failures"]) == (calls, failures) and w)(
            self.breaker()["window"]))
        self.assertTrue(got, f"window never reached {calls}/{failures}: {self.breaker()['window']}")

    def trip(self):
        self.assertEqual(self.fail_n(3), [500, 500, 500])
        self.assertTrue(wait_until(lambda: self.breaker()["state"] == "open"), self.breaker())
        self.wait_for_window(3, 3)

    def status_rows(self) -> dict[str, list[str]]:
        lines = self.ok("status").splitlines()
        self.assertEqual(columns(lines[0]), TITLES)
        rows = [columns(line) for line in lines[1:]]
        self.assertEqual([row[0] for row in rows], ["up", "search"], lines)  # config order
        return {row[0]: row for row in rows}


class Status(Live):
    def test_status_lists_every_cluster_in_config_order_closed(self):
        self.assertEqual(self.ok("status"), HEADER + "\n"
                         "up       closed      0         0     0       0.0           -  -\n"
                         "search   closed      0         0     0       0.0           -  -\n")

    def test_status_after_three_500s_shows_up_open_with_its_counts_next_trial_and_reason(self):
        self.trip()
        rows = self.status_rows()
        up = rows["up"]
        self.assertEqual(up[:6], ["up", "open", "3", "3", "0", "100.0"], up)
        self.assertEqual(up[7:], [TRIP_REASON], up)
        next_trial = re.fullmatch(r"(\d+\.\d)s", up[6])
        self.assertTrue(next_trial, up)
        # 30 s open, no jitter, tripped a moment ago. One decimal, rounded: 29.96 s shows as "30.0s".
        self.assertGreater(float(next_trial.group(1)), 20.0, up)
        self.assertLessEqual(float(next_trial.group(1)), 30.0, up)
        self.assertEqual(rows["search"], ["search", "closed", "0", "0", "0", "0.0", "-", "-"])
        # The row is aligned under the header: NEXT TRIAL right-aligned, REASON left-aligned.
        lines = self.ok("status").splitlines()
        self.assertEqual(lines[0], HEADER)
        self.assertEqual(lines[1].index(TRIP_REASON), lines[0].index("REASON"), lines)
        self.assertEqual(lines[1].index("s  " + TRIP_REASON) + 1, lines[0].index("NEXT TRIAL") + len("NEXT TRIAL"))

    def test_status_json_is_the_admin_apis_breaker_list(self):
        r = self.ctl("status", "--json")
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        direct = self.api("/admin/breakers")
        self.assertEqual(json.loads(r.stdout), direct)
        self.assertEqual(r.stdout, pretty(direct))
        self.assertEqual([(b["cluster"], b["state"]) for b in direct["breakers"]],
                         [("up", "closed"), ("search", "closed")])

        self.trip()
        shown = json.loads(self.ok("--json", "status"))
        direct = self.api("/admin/breakers")
        self.assertEqual([(b["cluster"], b["state"]) for b in shown["breakers"]],
                         [("up", "open"), ("search", "closed")])
        for mine, theirs in zip(shown["breakers"], direct["breakers"], strict=True):
            # The countdown moves between the two requests; `since` is compared in
            # test_a_trips_time_reads_the_same_every_time; everything else is the same.
            self.assertLessEqual(abs((mine.pop("next_trial_in_ms") or 0) - (theirs.pop("next_trial_in_ms") or 0)), 2000)
            self.assertEqual(mine.pop("since") is None, theirs.pop("since") is None)
            self.assertEqual(mine, theirs)
        self.assertEqual(shown["breakers"][0]["window"]["calls"], 3)
        self.assertEqual(shown["breakers"][0]["last_reason"], TRIP_REASON)

    def test_fusebox_admin_address_is_where_it_connects_without_admin(self):
        r = run_ctl("status", env=clean_env(FUSEBOX_ADMIN_ADDRESS=self.fb.admin_addr))
        self.assertEqual((r.returncode, r.stderr), (0, ""))
        self.assertEqual(r.stdout, self.ok("status"))


class Show(Live):
    def test_show_up_prints_its_state_its_config_and_the_trip(self):
        self.trip()
        out = self.ok("show", "up")
        breaker, config, transitions = out.split("\n\n")
        values = {k: v.strip() for k, v in (line.split(":", 1) for line in breaker.splitlines())}
        api = self.breaker()
        [transition] = api["transitions"]
        self.assertEqual(breaker.splitlines()[:2], ["cluster:                up", "state:                  open"])
        self.assertLessEqual(int(values.pop("next_trial_in_ms")), 30000)
        since = values.pop("since")
        self.assertEqual(values, {
            "cluster": "up", "state": "open", "generation": "1", "window.calls": "3", "window.failures": "3",
            "window.slow": "0", "window.failure_rate": "100.0", "window.slow_rate": "0.0",
            "consecutive_failures": "0", "trips_in_a_row": "1", "half_open_permits_used": "0",
            "last_reason": TRIP_REASON})

        config_lines = config.splitlines()
        self.assertIn("config.consecutive_failures:       3", config_lines)
        self.assertIn("config.open.base:                  30s", config_lines)
        self.assertIn("config.open.jitter:                0", config_lines)
        self.assertIn("config.mode:                       normal", config_lines)
        self.assertEqual(api["config"]["consecutive_failures"], 3)
        self.assertEqual(api["config"]["open"]["base"], "30s")

        self.assertEqual((transition["from"], transition["to"], transition["reason"]), ("closed", "open", TRIP_REASON))
        header, row = transitions.splitlines()
        self.assertEqual(header, "AT                        FROM    TO    REASON")
        at = row[:24]
        self.assertEqual(row, f"{at}  closed  open  {TRIP_REASON}")
        # The trip's time is when the state was entered, and what the API says. Within 1 ms: fusebox
        # reads the same instant as either of two milliseconds (test_a_trips_time_reads_the_same_every_time).
        for other in (since, transition["at"]):
            self.assertLessEqual(abs(wall_ms(at) - wall_ms(other)), 1, (at, other))
        self.assertLess(abs(wall_ms(at) / 1000 - time.time()), 10)

    def test_a_trips_time_reads_the_same_every_time(self):
        """The trip happened once: every read gives it the same time, and `since` (when the state was
        entered) is that transition's `at`. Fails today: proxy/admin_api.cc wall_time() converts the
        monotonic instant with a fresh CLOCK_REALTIME read per call, truncating the wall clock and the
        elapsed time to whole milliseconds separately, so the result is off by one about half the time."""
        self.trip()
        reads = []
        for _ in range(20):
            b = json.loads(self.ok("--json", "show", "up"))
            reads.append((b["since"], b["transitions"][-1]["at"]))
        self.assertEqual(len(set(reads)), 1, f"one trip read {len(reads)} times as (since, at): {sorted(set(reads))}")
        self.assertEqual(reads[0][0], reads[0][1])

    def test_show_json_is_the_admin_apis_breaker(self):
        shown = json.loads(self.ok("show", "search", "--json"))
        self.assertEqual(shown, self.breaker("search"))
        self.assertEqual((shown["state"], shown["transitions"]), ("closed", []))
        self.assertTrue(self.ok("show", "search").endswith("\n\ntransitions: none\n"))

    def test_show_of_an_unknown_cluster_exits_1_pointing_at_status(self):
        r = self.ctl("show", "nope")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertEqual(r.stderr, 'fuseboxctl: no cluster is named "nope" (HTTP 404 unknown_cluster)\n'
                                   "hint: see `fuseboxctl status` for the cluster names\n")
        self.assertEqual(r.stdout, "")


class Actions(Live):
    def data_path(self) -> tuple[int, str | None]:
        r = http_request(self.fb.addr, "GET", "/x")
        return r.status, r.header("x-fusebox-breaker")

    def test_open_with_token_rejects_on_the_data_path_and_close_from_the_environment_lets_through(self):
        self.assertEqual(self.data_path(), (200, None))
        self.assertEqual(self.ok("--token", TOKEN, "open", "up"), "up: forced_open (open)\n")
        self.assertEqual(self.breaker()["state"], "forced_open")
        self.up.reset_stats()
        for _ in range(4):  # new connections, so both workers answer
            self.assertEqual(self.data_path(), (503, "up; state=forced_open"))
        self.assertEqual(self.up.stats()["requests"], 0)
        self.assertEqual(self.status_rows()["up"][1], "forced_open")
        self.assertEqual(self.status_rows()["search"][1], "closed")

        self.assertEqual(self.ok("close", "up", env=clean_env(FUSEBOX_ADMIN_TOKEN=TOKEN)), "up: closed (close)\n")
        self.assertEqual(self.breaker()["state"], "closed")
        for _ in range(4):
            self.assertEqual(self.data_path(), (200, None))
        self.assertEqual(self.up.stats()["requests"], 4)

    def test_open_with_the_token_from_the_environment(self):
        self.assertEqual(self.ok("open", "up", env=clean_env(FUSEBOX_ADMIN_TOKEN=TOKEN)), "up: forced_open (open)\n")
        self.assertEqual(self.data_path(), (503, "up; state=forced_open"))

    def test_reset_closes_a_tripped_breaker_and_clears_its_counts(self):
        self.trip()
        self.assertEqual(self.data_path(), (503, "up; state=open"))
        self.assertEqual(self.ok("--token", TOKEN, "reset", "up"), "up: closed (reset)\n")
        b = self.breaker()
        self.assertEqual((b["state"], b["window"]["calls"], b["window"]["failures"], b["trips_in_a_row"]),
                         ("closed", 0, 0, 0), b)
        self.assertEqual(self.status_rows()["up"][:7], ["up", "closed", "0", "0", "0", "0.0", "-"])
        self.assertEqual(self.data_path(), (200, None))

    def test_disable_keeps_it_closed_through_upstream_500s(self):
        self.assertEqual(self.ok("--token", TOKEN, "disable", "up"), "up: disabled (disable)\n")
        self.assertEqual(self.fail_n(6), [500] * 6)  # twice the threshold, and nothing rejected
        self.wait_for_window(6, 6)  # "still counts"
        self.assertEqual(self.breaker()["state"], "disabled")
        self.assertEqual(self.status_rows()["up"][:7], ["up", "disabled", "6", "6", "0", "100.0", "-"])
        self.assertEqual(self.data_path(), (200, None))

    def test_metrics_only_counts_but_never_rejects(self):
        self.assertEqual(self.ok("--token", TOKEN, "metrics-only", "up"), "up: metrics_only (metrics-only)\n")
        self.assertEqual(self.fail_n(6), [500] * 6)
        self.wait_for_window(6, 6)
        self.assertEqual(self.breaker()["state"], "metrics_only")
        self.assertEqual(self.status_rows()["up"][:7], ["up", "metrics_only", "6", "6", "0", "100.0", "-"])
        self.assertEqual(self.data_path(), (200, None))

    def test_an_action_json_prints_the_answer(self):
        shown = json.loads(self.ok("--json", "--token", TOKEN, "disable", "search"))
        self.assertEqual((shown["cluster"], shown["state"], shown["action"]), ("search", "disabled", "disable"))
        self.assertEqual(self.breaker("search")["state"], "disabled")
        self.assertEqual(self.breaker("up")["state"], "closed")


class Refused(Live):
    def assert_unchanged(self):
        b = self.breaker()
        self.assertEqual((b["state"], b["generation"]), ("closed", 0), b)
        self.assertEqual(http_request(self.fb.addr, "GET", "/x").status, 200)

    def test_a_wrong_token_exits_1_with_401_and_the_hint(self):
        for args, env in ((("--token", "not-" + TOKEN), None), ((), clean_env(FUSEBOX_ADMIN_TOKEN="not-" + TOKEN))):
            with self.subTest(args=args, env=env is not None):
                r = self.ctl(*args, "open", "up", env=env)
                self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
                self.assertEqual(r.stderr, "fuseboxctl: the bearer token is wrong (HTTP 401 unauthorized)\n"
                                           "hint: the token sent is not fusebox's; pass --token or set"
                                           " FUSEBOX_ADMIN_TOKEN\n")
                self.assertEqual(r.stdout, "")
                self.assert_unchanged()

    def test_no_token_exits_1_with_401_and_the_hint(self):
        for action in ("open", "close", "reset", "disable", "metrics-only"):
            with self.subTest(action=action):
                r = self.ctl(action, "up")
                self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
                self.assertEqual(r.stderr, "fuseboxctl: this call needs Authorization: Bearer <token>"
                                           " (HTTP 401 unauthorized)\n"
                                           "hint: pass --token or set FUSEBOX_ADMIN_TOKEN\n")
                self.assertEqual(r.stdout, "")
        self.assert_unchanged()


class NoTokenConfigured(Live):
    env = {"FUSEBOX_ADMIN_TOKEN": ""}

    def test_changes_exit_1_with_403_no_admin_token_and_the_hint(self):
        for args in (("--token", TOKEN), ()):
            with self.subTest(args=args):
                r = self.ctl(*args, "open", "up")
                self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
                self.assertEqual(r.stderr, "fuseboxctl: changes are refused: no admin token is configured; set"
                                           " FUSEBOX_ADMIN_TOKEN or admin.token_file where fusebox runs"
                                           " (HTTP 403 no_admin_token)\n"
                                           "hint: configure a token: set FUSEBOX_ADMIN_TOKEN or admin.token_file"
                                           " where fusebox runs\n")
                self.assertEqual(r.stdout, "")
        self.assertEqual(self.breaker()["state"], "closed")
        self.assertEqual(http_request(self.fb.addr, "GET", "/x").status, 200)
        # Reads need no token.
        self.assertEqual(self.status_rows()["up"][1], "closed")


class Config(Live):
    def test_config_prints_the_running_config_with_up_and_its_endpoint(self):
        out = self.ok("config")
        direct = self.api("/admin/config")
        self.assertEqual(out, pretty(direct["config"]))
        config = json.loads(out)
        self.assertEqual([c["name"] for c in config["clusters"]], ["up", "search"])
        up = config["clusters"][0]
        self.assertEqual(up["endpoints"], [self.up.addr])
        self.assertEqual(up["breaker"]["consecutive_failures"], 3)
        self.assertEqual(up["breaker"]["open"]["base"], "30s")
        self.assertEqual(config["workers"], 2)

    def test_config_json_prints_the_whole_answer(self):
        out = self.ok("config", "--json")
        direct = self.api("/admin/config")
        self.assertEqual(out, pretty(direct))
        self.assertEqual((direct["generation"], direct["source"]), (0, self.fb.config_path))


class Gone(Live):
    def test_a_stopped_fusebox_exits_3_with_cannot_reach(self):
        addr = self.fb.admin_addr
        self.assertEqual(self.status_rows()["up"][1], "closed")
        self.fb.stop()
        r = run_ctl("--admin", f"http://{addr}", "status")
        self.assertEqual(r.returncode, 3, r.stdout + r.stderr)
        self.assertEqual(r.stderr, f"fuseboxctl: cannot reach fusebox admin at {addr}: Connection refused;"
                                   " is fusebox running, and is --admin right?\n")
        self.assertEqual(r.stdout, "")


def setUpModule():
    if not os.access(FUSEBOXCTL_BIN, os.X_OK):
        raise AssertionError(f"{FUSEBOXCTL_BIN}: not built (tools/fuseboxctl; build with tools/build)")


if __name__ == "__main__":
    main()
