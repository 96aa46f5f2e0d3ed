"""The admin API and /metrics (docs/admin-api.md) against a real fusebox with 2 workers: exact
counters after a scripted sequence of requests, promtool's opinion of the scrape, the probes
(and a killed worker), the token rules, every breaker action, GET/PUT /admin/config (a PUT under
load drops nothing and reaches every worker), and the admin listener's HTTP limits.

Counters are written by the workers a moment after the client has its answer (the count is taken
when the response's write completes), so a test waits until the scrape holds as many requests as
it sent, with a deadline, and then asserts every value exactly.
"""

import os
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
from harness import (  # noqa: E402
    FUSEBOX_BIN,
    Connection,
    TestCase,
    config_for,
    http_request,
    main,
    raw_exchange,
    split_addr,
)

TOKEN = "s3cret-admin-token"
BREAKER = "breaker: { consecutive_failures: 3, open: { base: 30s } }"
STATES = ("closed", "open", "half_open", "forced_open", "disabled", "metrics_only")


def two_workers(config: str) -> str:
    return config.replace("workers: 1\n", "workers: 2\n", 1)


def wait_until(predicate, timeout: float, interval: float = 0.02):
    """predicate()'s first truthy value within timeout, else None."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


def bearer(token: str | None) -> dict:
    return {} if token is None else {"Authorization": f"Bearer {token}"}


def admin(fb, method: str, path: str, token: str | None = None, body: bytes = b"", headers: dict | None = None):
    return http_request(fb.admin_addr, method, path, {**bearer(token), **(headers or {})}, body)


def breaker(fb, cluster: str = "up") -> dict:
    r = admin(fb, "GET", f"/admin/breakers/{cluster}")
    assert r.status == 200, r
    return r.json()


# ---------------------------------------------------------------- the text format


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)')


class Scrape:
    """A /metrics answer, parsed: every sample as (name, {labels}) -> value."""

    def __init__(self, text: str):
        self.text = text
        self.samples: dict[tuple[str, tuple], float] = {}
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            m = _SAMPLE.match(line)
            assert m, f"not a sample line: {line!r}"
            name, labels, value = m.group(1), m.group(2) or "", m.group(3)
            pairs = _LABEL.findall(labels)
            assert ",".join(f'{k}="{v}"' for k, v in pairs) == labels, f"labels not parsed: {line!r}"
            key = (name, tuple(sorted(pairs)))
            assert key not in self.samples, f"a sample twice: {line!r}"
            self.samples[key] = float("inf") if value == "+Inf" else float(value)

    def series(self, name: str) -> dict[tuple, float]:
        """Every sample of `name`, keyed by its labels as sorted (label, value) pairs."""
        return {labels: v for (n, labels), v in self.samples.items() if n == name}

    def get(self, name: str, **labels) -> float | None:
        return self.samples.get((name, tuple(sorted(labels.items()))))

    def total(self, name: str) -> float:
        return sum(self.series(name).values())


def scrape(fb) -> Scrape:
    r = admin(fb, "GET", "/metrics")
    assert r.status == 200, r
    return Scrape(r.body.decode())


def settled_scrape(fb, requests: int, timeout: float = 3.0) -> Scrape:
    """The first scrape that counts `requests` requests (they are counted as their writes complete)."""
    last = None

    def counted():
        nonlocal last
        last = scrape(fb)
        return last.total("fusebox_requests_total") >= requests and last

    return wait_until(counted, timeout) or last


def key(**labels) -> tuple:
    return tuple(sorted(labels.items()))


# ---------------------------------------------------------------- which worker holds a connection


def worker_of(fb, conn: Connection) -> int | None:
    """The pid of the worker that accepted `conn`: the server side's socket inode, from
    /proc/net/tcp, among the workers' descriptors."""
    server_port = split_addr(fb.addr)[1]
    client_port = conn.sock.getsockname()[1]
    inode = None
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[1].endswith(f":{server_port:04X}") and fields[2].endswith(f":{client_port:04X}"):
                inode = fields[9]
    if inode is None:
        return None
    for pid in fb.worker_pids():
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                        return pid
                except OSError:
                    pass
        except OSError:
            pass
    return None


def one_connection_per_worker(tc: TestCase, fb, workers: int = 2) -> dict[int, Connection]:
    """A keep-alive connection on each worker, each with one request answered."""
    found: dict[int, Connection] = {}
    for _ in range(8):
        # Many connections waiting in the shared accept queue at once: every worker takes some.
        batch = [Connection(fb.addr, timeout=5) for _ in range(16)]
        for c in batch:
            tc.assertEqual(c.request("GET", "/warm").status, 200)
        for c in batch:
            pid = worker_of(fb, c)
            if pid is not None and pid not in found:
                found[pid] = c
                tc.addCleanup(c.close)
            else:
                c.close()
        if len(found) == workers:
            return found
    tc.fail(f"no connection reached every worker: {sorted(found)} of {fb.worker_pids()}")


# ---------------------------------------------------------------- load


class Load:
    """`threads` clients doing keep-alive GETs in a loop for at most `duration` seconds. Before
    each request on a reused connection the client looks whether the server closed it cleanly
    (FIN while idle, between requests): then it opens a new one, and that is not a failure. A
    response with Connection: close closes it too. Any other end of a request (reset, refused,
    EOF without a response, a status other than 200) is a failure."""

    def __init__(self, addr: str, threads: int = 4, duration: float = 3.0):
        self.addr = addr
        self.duration = duration
        self.ok = [0] * threads
        self.clean_closes = [0] * threads
        self.failures: list[tuple[int, str]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def start(self) -> "Load":
        for t in self._threads:
            t.start()
        return self

    @staticmethod
    def _closed_while_idle(conn: Connection) -> bool:
        readable, _, _ = select.select([conn.sock], [], [], 0)
        if not readable:
            return False
        # Readable while idle: a FIN (clean close) or a reset; the reset raises, a failure.
        return conn.sock.recv(1, socket.MSG_PEEK) == b""

    def _run(self, index: int):
        deadline = time.monotonic() + self.duration
        conn = None
        n = 0
        while not self._stop.is_set() and time.monotonic() < deadline:
            n += 1
            try:
                if conn is not None and self._closed_while_idle(conn):
                    self.clean_closes[index] += 1
                    conn.close()
                    conn = None
                if conn is None:
                    conn = Connection(self.addr, timeout=5.0)
                r = conn.request("GET", f"/load/{index}/{n}")
                if r.status != 200:
                    raise AssertionError(f"status {r.status}")
                self.ok[index] += 1
                if (r.header("connection") or "").lower() == "close":
                    self.clean_closes[index] += 1
                    conn.close()
                    conn = None
            except (OSError, EOFError, AssertionError) as e:
                with self._lock:
                    self.failures.append((index, f"{type(e).__name__}: {e}"))
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def stop(self):
        self._stop.set()
        self.join()

    def join(self):
        for t in self._threads:
            t.join(self.duration + 10)
            assert not t.is_alive(), "a load thread did not finish"


# ---------------------------------------------------------------- 1. exact counters


class ExactCounters(TestCase):
    """5 × 200, 2 × 404 from the upstream, 3 × 500 (the third trips the breaker), 4 rejected,
    1 without a route; each request on a connection of its own, spread over 2 workers."""

    def test_a_scripted_sequence_gives_exact_counters(self):
        up = self.start_upstream()
        config = two_workers(config_for(up.addr, cluster=BREAKER)).replace(
            "routes: [ { prefix: /, cluster: up } ]", "routes: [ { prefix: /api, cluster: up } ]")
        self.assertIn("prefix: /api,", config)
        fb = self.start_fusebox(config)
        self.assertTrue(wait_until(lambda: len(fb.worker_pids()) == 2, 5), fb.output())
        up.reset_stats()

        sent_bytes = received_bytes = connections = 0
        statuses = []

        def call(path: str):
            nonlocal sent_bytes, received_bytes, connections
            request = f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode()
            with Connection(fb.addr) as c:
                connections += 1
                c.send(request)
                sent_bytes += len(request)
                r = c.read_response()
            received_bytes += len(r.raw_head) + 4 + len(r.body)
            statuses.append(r.status)
            return r

        for i in range(5):
            call(f"/api/ok{i}")
        for i in range(2):
            call(f"/api/missing{i}?status=404")
        for i in range(3):
            call(f"/api/fail{i}?status=500")
        rejected = [call(f"/api/rejected{i}") for i in range(4)]
        no_route = call("/elsewhere")

        self.assertEqual(statuses, [200] * 5 + [404] * 2 + [500] * 3 + [503] * 4 + [404])
        for r in rejected:
            self.assertEqual(r.json()["error"], "breaker_open")
            self.assertEqual(r.header("x-fusebox-breaker"), "up; state=open")
        self.assertEqual(no_route.json()["error"], "no_route")

        m = settled_scrape(fb, 15)
        detail = m.text

        self.assertEqual(m.series("fusebox_requests_total"), {
            key(listener="main", cluster="up", code_class="2xx", outcome="success"): 5,
            key(listener="main", cluster="up", code_class="4xx", outcome="success"): 2,
            key(listener="main", cluster="up", code_class="5xx", outcome="failure"): 3,
            key(listener="main", cluster="up", code_class="5xx", outcome="rejected"): 4,
            key(listener="main", cluster="", code_class="4xx", outcome="error"): 1,
        }, detail)
        self.assertEqual(m.series("fusebox_rejected_requests_total"), {
            key(cluster="up", reason="breaker"): 4,
            key(cluster="up", reason="connection_limit"): 0,
        }, detail)

        self.assertEqual(m.series("fusebox_breaker_state"),
                         {key(cluster="up", state=s): (1 if s == "open" else 0) for s in STATES}, detail)
        self.assertEqual(m.series("fusebox_breaker_transitions_total"),
                         {key(cluster="up", **{"from": "closed", "to": "open"}): 1}, detail)

        # The histogram: the 10 calls that went upstream, none of the 5 answered by fusebox.
        hist = "fusebox_upstream_request_duration_seconds"
        self.assertEqual(m.get(hist + "_count", cluster="up"), 10, detail)
        buckets = sorted(((float(dict(labels)["le"]), v) for labels, v in m.series(hist + "_bucket").items()))
        self.assertEqual(buckets[-1], (float("inf"), 10), detail)
        counts = [v for _, v in buckets]
        self.assertEqual(counts, sorted(counts), f"buckets are not cumulative\n{detail}")
        self.assertGreater(len(buckets), 5)
        total_s = m.get(hist + "_sum", cluster="up")
        self.assertGreater(total_s, 0, detail)
        self.assertLess(total_s, 5, detail)

        # Upstream connections: each one fusebox opened is one the upstream accepted, and every
        # proxied call went on a new or a reused one.
        stats = up.stats()
        self.assertEqual(stats["requests"], 10)
        connects = m.get("fusebox_upstream_connects_total", cluster="up")
        reuses = m.get("fusebox_upstream_connection_reuses_total", cluster="up")
        self.assertEqual(connects, stats["connections"], f"{stats}\n{detail}")
        self.assertIn(connects, (1, 2), detail)  # one pool per worker, calls one at a time
        self.assertEqual(connects + reuses, 10, detail)
        self.assertEqual(m.get("fusebox_upstream_connect_failures_total", cluster="up"), 0, detail)
        self.assertEqual(m.get("fusebox_upstream_connections_active", cluster="up"), stats["active_connections"],
                         detail)

        # Client side: every connection and every byte, both ways.
        self.assertEqual(m.get("fusebox_downstream_connections_total", listener="main"), connections, detail)
        self.assertEqual(connections, 15)
        self.assertEqual(m.get("fusebox_downstream_received_bytes_total", listener="main"), sent_bytes, detail)
        self.assertEqual(m.get("fusebox_downstream_sent_bytes_total", listener="main"), received_bytes, detail)
        self.assertTrue(wait_until(
            lambda: scrape(fb).get("fusebox_downstream_connections_active", listener="main") == 0, 3),
            scrape(fb).text)

        version = subprocess.run([FUSEBOX_BIN, "--version"], capture_output=True, text=True).stdout.split()[1]
        info = m.series("fusebox_build_info")
        self.assertEqual(len(info), 1, detail)
        (labels, value), = info.items()
        self.assertEqual(dict(labels)["version"], version)
        self.assertEqual(value, 1)
        self.assertEqual(m.get("fusebox_workers"), 2, detail)
        self.assertEqual(m.get("fusebox_worker_restarts_total"), 0, detail)
        self.assertEqual(m.get("fusebox_config_generation"), 0, detail)
        self.assertEqual(m.series("fusebox_config_reloads_total"),
                         {key(result="applied"): 0, key(result="refused"): 0}, detail)


# ---------------------------------------------------------------- 2. promtool


class Promtool(TestCase):
    def test_promtool_finds_nothing_to_say_about_a_scrape_after_traffic(self):
        if subprocess.run(["sh", "-c", "command -v promtool"], capture_output=True).returncode != 0:
            self.skipTest("promtool is not installed (Debian package prometheus)")
        up = self.start_upstream()
        config = two_workers(config_for(up.addr, cluster=BREAKER)).replace(
            "routes: [ { prefix: /, cluster: up } ]", "routes: [ { prefix: /api, cluster: up } ]")
        fb = self.start_fusebox(config)
        with Connection(fb.addr) as c:
            got = [c.request("GET", p).status for p in
                   ["/api", "/api?status=404", "/api?status=500", "/api?status=502", "/api?status=503", "/api",
                    "/nowhere"]]
        self.assertEqual(got, [200, 404, 500, 502, 503, 503, 404])
        m = settled_scrape(fb, 7)
        self.assertEqual(m.total("fusebox_requests_total"), 7, m.text)
        p = subprocess.run(["promtool", "check", "metrics"], input=m.text, capture_output=True, text=True,
                           timeout=30)
        self.assertEqual((p.returncode, p.stdout, p.stderr), (0, "", ""), m.text)


# ---------------------------------------------------------------- 3. probes


class Probes(TestCase):
    def test_healthz_readyz_and_a_killed_worker(self):
        up = self.start_upstream()
        fb = self.start_fusebox(two_workers(config_for(up.addr)))

        r = admin(fb, "GET", "/healthz")
        self.assertEqual((r.status, r.json()), (200, {"status": "ok"}))
        self.assertEqual(r.header("content-type"), "application/json")

        ready = wait_until(lambda: (r := admin(fb, "GET", "/readyz")).status == 200 and r, 5)
        self.assertTrue(ready, fb.output())
        self.assertEqual(ready.json(), {"status": "ready", "workers": 2, "workers_ready": 2})
        self.assertEqual(ready.header("content-type"), "application/json")

        r = admin(fb, "GET", "/metrics")
        self.assertEqual(r.header("content-type"), "text/plain; version=0.0.4; charset=utf-8")
        m = Scrape(r.body.decode())
        self.assertEqual(m.get("fusebox_worker_restarts_total"), 0)
        self.assertEqual(m.get("fusebox_workers"), 2)

        before = fb.worker_pids()
        self.assertEqual(len(before), 2)
        os.kill(before[0], signal.SIGKILL)
        restarted = wait_until(lambda: scrape(fb).get("fusebox_worker_restarts_total") == 1, 5)
        self.assertTrue(restarted, f"{scrape(fb).text}\n{fb.output()}")

        def ready_again():
            r = admin(fb, "GET", "/readyz")
            pids = fb.worker_pids()
            return r.status == 200 and len(pids) == 2 and before[0] not in pids and r

        r = wait_until(ready_again, 5)
        self.assertTrue(r, f"{admin(fb, 'GET', '/readyz')!r} {fb.worker_pids()}\n{fb.output()}")
        self.assertEqual(r.json(), {"status": "ready", "workers": 2, "workers_ready": 2})
        m = scrape(fb)
        self.assertEqual(m.get("fusebox_worker_restarts_total"), 1, m.text)
        self.assertEqual(m.get("fusebox_workers"), 2, m.text)
        self.assertEqual(http_request(fb.addr, "GET", "/after").status, 200)

    def test_a_second_fusebox_on_the_same_admin_address_leaves_the_first_alone(self):
        # Started by mistake with the same config: the same admin address, so the same segment.
        # It must fail on the admin port before it touches what the first one's workers write.
        up = self.start_upstream()
        fb = self.start_fusebox(two_workers(config_for(up.addr)))
        self.assertTrue(wait_until(lambda: admin(fb, "GET", "/readyz").status == 200, 5), fb.output())
        held = Connection(fb.addr)  # an open client connection: the gauge says 1
        self.addCleanup(held.close)
        self.assertEqual(held.request("GET", "/x").status, 200)
        self.assertTrue(wait_until(
            lambda: scrape(fb).get("fusebox_downstream_connections_active", listener="main") == 1, 3))

        env = dict(os.environ, FUSEBOX_SHM_NAME=fb.shm_name, FUSEBOX_ADMIN_ADDRESS=fb.admin_addr)
        # Its config differs where it would do harm: the breaker forced open.
        other = Path(fb.tmp.name, "other.yaml")
        other.write_text(two_workers(config_for(up.addr, cluster="breaker: { mode: forced_open }")))
        second = subprocess.run([FUSEBOX_BIN, "--config", str(other)], env=env, capture_output=True,
                                text=True, timeout=10)
        self.assertEqual(second.returncode, 1, second.stderr)
        self.assertIn("(set admin.address, --admin or FUSEBOX_ADMIN_ADDRESS to a free port)", second.stderr)
        self.assertNotIn("breakers in shared memory", second.stderr, "it opened the segment before failing")
        self.assertEqual(breaker(fb)["state"], "closed")

        r = admin(fb, "GET", "/readyz")
        self.assertEqual((r.status, r.json()), (200, {"status": "ready", "workers": 2, "workers_ready": 2}))
        self.assertEqual(scrape(fb).get("fusebox_downstream_connections_active", listener="main"), 1)
        self.assertEqual(held.request("GET", "/y").status, 200)


# ---------------------------------------------------------------- 4. auth


class Auth(TestCase):
    def setUp(self):
        self.up = self.start_upstream()

    def config(self, top: str = "") -> str:
        return two_workers(config_for(self.up.addr, cluster=BREAKER, top=top))

    top = ""  # the admin section the test started fusebox with: a PUT must keep admin.address

    def put_body(self) -> bytes:
        return self.config(self.top).replace("consecutive_failures: 3", "consecutive_failures: 4").encode()

    def assert_unchanged(self, fb, what: str):
        b = breaker(fb)
        self.assertEqual((b["state"], b["generation"]), ("closed", 0), what)
        c = admin(fb, "GET", "/admin/config").json()
        self.assertEqual(c["generation"], 0, what)
        self.assertEqual(c["config"]["clusters"][0]["breaker"]["consecutive_failures"], 3, what)

    def assert_refused(self, fb, headers: dict, status: int, error: str):
        for method, path, body in (("POST", "/admin/breakers/up/open", b""),
                                   ("PUT", "/admin/config", self.put_body())):
            r = admin(fb, method, path, body=body, headers=headers)
            what = f"{method} {path} with {headers}: {r!r}"
            self.assertEqual(r.status, status, what)
            self.assertEqual(r.header("content-type"), "application/json", what)
            self.assertEqual(r.json()["error"], error, what)
            self.assertTrue(r.json()["message"], what)
            self.assert_unchanged(fb, what)

    def assert_accepted(self, fb, token: str):
        r = admin(fb, "POST", "/admin/breakers/up/open", token)
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json()["state"], r.json()["action"]), ("forced_open", "open"))
        self.assertEqual(breaker(fb)["state"], "forced_open")
        d = http_request(fb.addr, "GET", "/x")
        self.assertEqual(d.status, 503)
        self.assertEqual(d.header("x-fusebox-breaker"), "up; state=forced_open")
        r = admin(fb, "PUT", "/admin/config", token, self.put_body())
        self.assertEqual((r.status, r.json()), (200, {"applied": True, "generation": 1}), r)
        c = admin(fb, "GET", "/admin/config").json()
        self.assertEqual(c["generation"], 1)
        self.assertEqual(c["config"]["clusters"][0]["breaker"]["consecutive_failures"], 4)

    WRONG = [
        ({}, "no Authorization"),
        ({"Authorization": "Bearer wrong"}, "a wrong token"),
        ({"Authorization": "Bearer"}, "Bearer, no token"),
        ({"Authorization": "Bearer "}, "Bearer and a space, no token"),
        ({"Authorization": TOKEN}, "the token without Bearer"),
        ({"Authorization": f"Basic {TOKEN}"}, "another scheme"),
        ({"Authorization": f"Bearer {TOKEN}x"}, "the token and more"),
        ({"Authorization": f"Bearer {TOKEN[:-1]}"}, "the token but its last character"),
    ]

    def test_with_no_token_configured_changes_are_refused_with_403(self):
        fb = self.start_fusebox(self.config(), env={"FUSEBOX_ADMIN_TOKEN": ""})
        for headers in ({}, bearer(TOKEN), bearer("")):
            self.assert_refused(fb, headers, 403, "no_admin_token")
        self.assertEqual(http_request(fb.addr, "GET", "/x").status, 200)

    def test_a_token_from_the_environment_missing_or_wrong_is_401_and_right_is_200(self):
        fb = self.start_fusebox(self.config(), env={"FUSEBOX_ADMIN_TOKEN": TOKEN})
        for headers, _ in self.WRONG:
            self.assert_refused(fb, headers, 401, "unauthorized")
        self.assert_accepted(fb, TOKEN)

    def test_a_token_from_token_file(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "token")
            Path(path).write_text("file-token \nsecond-line\n")
            self.top = f"admin: {{ address: 127.0.0.1:0, token_file: {path} }}"
            fb = self.start_fusebox(self.config(self.top),
                                    env={"FUSEBOX_ADMIN_TOKEN": ""})
            for headers in ({}, bearer("second-line"), bearer(TOKEN), bearer("file-token ")):
                self.assert_refused(fb, headers, 401, "unauthorized")
            self.assert_accepted(fb, "file-token")

    def test_the_environment_wins_over_token_file(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "token")
            Path(path).write_text("file-token\n")
            self.top = f"admin: {{ address: 127.0.0.1:0, token_file: {path} }}"
            fb = self.start_fusebox(self.config(self.top),
                                    env={"FUSEBOX_ADMIN_TOKEN": TOKEN})
            self.assert_refused(fb, bearer("file-token"), 401, "unauthorized")
            self.assert_accepted(fb, TOKEN)


    def test_a_put_refused_when_it_cannot_bind_keeps_the_old_token(self):
        with tempfile.TemporaryDirectory() as tmp:
            old, new = os.path.join(tmp, "old"), os.path.join(tmp, "new")
            Path(old).write_text("old-token\n")
            Path(new).write_text("new-token\n")
            self.top = f"admin: {{ address: 127.0.0.1:0, token_file: {old} }}"
            fb = self.start_fusebox(self.config(self.top), env={"FUSEBOX_ADMIN_TOKEN": ""})
            busy = socket.socket()
            self.addCleanup(busy.close)
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            refused = self.config(f"admin: {{ address: 127.0.0.1:0, token_file: {new} }}").replace(
                "    address: 127.0.0.1:0\n", f"    address: 127.0.0.1:{port}\n", 1)
            self.assertIn(f"127.0.0.1:{port}", refused)
            r = admin(fb, "PUT", "/admin/config", "old-token", refused.encode())
            self.assertEqual((r.status, r.json()["error"]), (400, "invalid_config"), r)
            self.assertIn("Address already in use", r.json()["errors"][0])
            self.assertEqual(admin(fb, "GET", "/admin/config").json()["generation"], 0)
            # The running config stays, and with it its token.
            statuses = {token: admin(fb, "POST", "/admin/breakers/up/close", token).status
                        for token in ("old-token", "new-token")}
            self.assertEqual(statuses, {"old-token": 200, "new-token": 401})


# ---------------------------------------------------------------- 5. breaker actions


class Actions(TestCase):
    def setUp(self):
        self.up = self.start_upstream()
        self.fb = self.start_fusebox(two_workers(config_for(self.up.addr, cluster=BREAKER)),
                                     env={"FUSEBOX_ADMIN_TOKEN": TOKEN})

    def act(self, action: str) -> dict:
        r = admin(self.fb, "POST", f"/admin/breakers/up/{action}", TOKEN)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("content-type"), "application/json")
        body = r.json()
        self.assertEqual(body["action"], action)
        self.assertEqual(body["cluster"], "up")
        return body

    def requests(self, n: int, query: str = "status=500") -> list[int]:
        with Connection(self.fb.addr) as c:
            return [c.request("GET", f"/x?{query}").status for _ in range(n)]

    def data_path(self) -> tuple[int, str | None]:
        r = http_request(self.fb.addr, "GET", "/x")
        return r.status, r.header("x-fusebox-breaker")

    def test_every_action_and_the_transitions_it_leaves(self):
        fb = self.fb
        b = breaker(fb)
        self.assertEqual((b["state"], b["generation"], b["since"], b["last_reason"], b["transitions"]),
                         ("closed", 0, None, None, []))

        b = self.act("open")
        self.assertEqual((b["state"], b["generation"], b["next_trial_in_ms"]), ("forced_open", 1, None))
        self.assertEqual(self.data_path(), (503, "up; state=forced_open"))
        self.assertEqual(breaker(fb)["state"], "forced_open")

        b = self.act("close")
        self.assertEqual((b["state"], b["generation"]), ("closed", 2))
        self.assertEqual(self.data_path(), (200, None))

        # A trip, then close: closed again, but the open-time backoff (trips in a row) stays.
        self.assertEqual(self.requests(4), [500, 500, 500, 503])
        b = breaker(fb)
        self.assertEqual((b["state"], b["trips_in_a_row"]), ("open", 1))
        self.assertIsNotNone(b["next_trial_in_ms"])
        b = self.act("close")
        self.assertEqual((b["state"], b["generation"], b["trips_in_a_row"]), ("closed", 4, 1))
        self.assertEqual(self.data_path(), (200, None))

        # Another trip: the second in a row. Reset clears the trips, the window and the counts.
        self.assertEqual(self.requests(2), [500, 500])
        b = breaker(fb)
        self.assertEqual((b["consecutive_failures"], b["window"]["failures"]), (2, 2), b)
        self.assertEqual(self.requests(2), [500, 503])
        b = breaker(fb)
        self.assertEqual((b["state"], b["trips_in_a_row"]), ("open", 2))
        b = self.act("reset")
        self.assertEqual((b["state"], b["generation"], b["trips_in_a_row"], b["consecutive_failures"]),
                         ("closed", 6, 0, 0))
        self.assertEqual(b["window"], {"calls": 0, "failures": 0, "slow": 0, "failure_rate": 0.0, "slow_rate": 0.0})
        self.assertEqual(self.data_path(), (200, None))

        # Disabled: the upstream's 500s pass, nothing trips, and the calls are still counted.
        b = self.act("disable")
        self.assertEqual((b["state"], b["generation"]), ("disabled", 7))
        self.assertEqual(self.requests(6), [500] * 6)
        b = breaker(fb)
        # (7 calls: the 200 just after the reset is one.)
        self.assertEqual((b["state"], b["window"]["calls"], b["window"]["failures"]), ("disabled", 7, 6))
        self.assertEqual(self.data_path(), (200, None))

        # Metrics-only: likewise never rejects, still counts.
        b = self.act("metrics-only")
        self.assertEqual((b["state"], b["generation"]), ("metrics_only", 8))
        self.assertEqual(self.requests(6), [500] * 6)
        b = breaker(fb)
        self.assertEqual((b["state"], b["window"]["calls"], b["window"]["failures"]), ("metrics_only", 14, 12))

        b = self.act("close")
        self.assertEqual((b["state"], b["generation"]), ("closed", 9))

        b = breaker(fb)
        seen = [(t["from"], t["to"], t["why"], t["reason"], t["generation"]) for t in b["transitions"]]
        forced, trip = "forced by the operator", "3 failures in a row (threshold 3)"
        self.assertEqual(seen, [
            ("closed", "forced_open", "forced", forced, 1),
            ("forced_open", "closed", "forced", forced, 2),
            ("closed", "open", "consecutive_failures", trip, 3),
            ("open", "closed", "forced", forced, 4),
            ("closed", "open", "consecutive_failures", trip, 5),
            ("open", "closed", "reset", "reset by the operator", 6),
            ("closed", "disabled", "forced", forced, 7),
            ("disabled", "metrics_only", "forced", forced, 8),
            ("metrics_only", "closed", "forced", forced, 9),
        ], b["transitions"])
        stamp = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        for t in b["transitions"]:
            self.assertRegex(t["at"], stamp)
        self.assertEqual([t["at"] for t in b["transitions"]], sorted(t["at"] for t in b["transitions"]))
        self.assertEqual((b["last_reason"], b["generation"]), (forced, 9))
        self.assertRegex(b["since"], stamp)

        # The same nine, counted by from and to.
        m = scrape(fb)
        self.assertEqual(m.series("fusebox_breaker_transitions_total"), {
            key(cluster="up", **{"from": "closed", "to": "forced_open"}): 1,
            key(cluster="up", **{"from": "forced_open", "to": "closed"}): 1,
            key(cluster="up", **{"from": "closed", "to": "open"}): 2,
            key(cluster="up", **{"from": "open", "to": "closed"}): 2,
            key(cluster="up", **{"from": "closed", "to": "disabled"}): 1,
            key(cluster="up", **{"from": "disabled", "to": "metrics_only"}): 1,
            key(cluster="up", **{"from": "metrics_only", "to": "closed"}): 1,
        }, m.text)
        self.assertEqual(m.get("fusebox_breaker_state", cluster="up", state="closed"), 1)

        # The list in config order, without the details.
        r = admin(fb, "GET", "/admin/breakers")
        self.assertEqual(r.status, 200)
        listed = r.json()["breakers"]
        self.assertEqual([x["cluster"] for x in listed], ["up"])
        self.assertEqual((listed[0]["state"], listed[0]["generation"]), ("closed", 9))
        self.assertNotIn("transitions", listed[0])

    def test_errors_of_the_breaker_paths(self):
        fb = self.fb
        cases = [
            ("POST", "/admin/breakers/up/explode", 404, "unknown_action", None),
            ("POST", "/admin/breakers/nope/open", 404, "unknown_cluster", None),
            ("GET", "/admin/breakers/nope", 404, "unknown_cluster", None),
            ("GET", "/admin/breakers/up/open", 405, "method_not_allowed", "POST"),
            ("PUT", "/admin/breakers/up/reset", 405, "method_not_allowed", "POST"),
            ("POST", "/admin/breakers/up", 405, "method_not_allowed", "GET"),
            ("DELETE", "/admin/breakers", 405, "method_not_allowed", "GET"),
            ("DELETE", "/admin/config", 405, "method_not_allowed", "GET, PUT"),
            ("GET", "/nope", 404, "not_found", None),
            ("GET", "/admin", 404, "not_found", None),
            ("GET", "/admin/breakersx", 404, "not_found", None),
        ]
        for method, path, status, error, allow in cases:
            r = admin(fb, method, path, TOKEN)
            what = f"{method} {path}: {r!r}"
            self.assertEqual((r.status, r.json()["error"]), (status, error), what)
            self.assertEqual(r.header("content-type"), "application/json", what)
            self.assertEqual(r.header("allow"), allow, what)
            self.assertTrue(r.json()["message"], what)
        b = breaker(fb)
        self.assertEqual((b["state"], b["generation"]), ("closed", 0))


# ---------------------------------------------------------------- 6. config


class Config(TestCase):
    CLUSTER = """
connect_timeout: 250ms
request_timeout: 7s
breaker: { consecutive_failures: 10, failure_rate: { threshold: 0% }, open: { base: 30s } }
"""

    def setUp(self):
        self.up = self.start_upstream()
        self.config = two_workers(config_for(self.up.addr, cluster=self.CLUSTER))
        self.fb = self.start_fusebox(self.config, env={"FUSEBOX_ADMIN_TOKEN": TOKEN})
        self.assertTrue(wait_until(lambda: admin(self.fb, "GET", "/readyz").status == 200, 5))

    def test_get_shows_the_running_config(self):
        r = admin(self.fb, "GET", "/admin/config")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("content-type"), "application/json")
        j = r.json()
        self.assertEqual((j["generation"], j["source"]), (0, self.fb.config_path))
        c = j["config"]
        self.assertEqual(c["workers"], 2)
        self.assertEqual(c["listeners"][0]["name"], "main")
        self.assertEqual(c["listeners"][0]["routes"], [{"prefix": "/", "cluster": "up"}])
        cluster = c["clusters"][0]
        self.assertEqual((cluster["name"], cluster["endpoints"]), ("up", [self.up.addr]))
        self.assertEqual((cluster["connect_timeout"], cluster["request_timeout"]), ("250ms", "7s"))
        self.assertEqual(cluster["breaker"]["consecutive_failures"], 10)
        self.assertEqual(cluster["breaker"]["failure_rate"]["threshold"], "0%")
        self.assertEqual(cluster["breaker"]["open"]["base"], "30s")
        self.assertEqual(breaker(self.fb)["config"], cluster["breaker"])

    def test_put_under_load_drops_nothing_and_every_worker_takes_the_new_threshold(self):
        fb = self.fb
        old_pids = fb.worker_pids()
        self.assertEqual(len(old_pids), 2)
        # Ten failures in a row are needed now: two do not trip it.
        with Connection(fb.addr) as c:
            self.assertEqual([c.request("GET", "/x?status=500").status for _ in range(3)], [500] * 3)
        self.assertEqual(breaker(fb)["state"], "closed")
        self.assertEqual(admin(fb, "POST", "/admin/breakers/up/reset", TOKEN).status, 200)

        load = Load(fb.addr, threads=4, duration=3.0).start()
        self.addCleanup(load.stop)
        time.sleep(0.8)
        new_config = self.config.replace("consecutive_failures: 10", "consecutive_failures: 2")
        self.assertNotEqual(new_config, self.config)
        r = admin(fb, "PUT", "/admin/config", TOKEN, new_config.encode())
        self.assertEqual((r.status, r.json()), (200, {"applied": True, "generation": 1}), r)

        def replaced():
            pids = fb.worker_pids()
            return len(pids) == 2 and not set(pids) & set(old_pids) and pids

        new_pids = wait_until(replaced, 5)
        self.assertTrue(new_pids, f"old workers {old_pids}, now {fb.worker_pids()}\n{fb.output()}")
        load.join()
        self.assertGreater(sum(load.ok), 100, load.ok)
        self.assertEqual(load.failures, [], f"ok {load.ok}, clean closes {load.clean_closes}\n{fb.output()}")

        j = admin(fb, "GET", "/admin/config").json()
        self.assertEqual(j["generation"], 1)
        self.assertEqual(j["config"]["clusters"][0]["breaker"]["consecutive_failures"], 2)
        self.assertEqual(j["config"]["clusters"][0]["connect_timeout"], "250ms")
        r = admin(fb, "GET", "/readyz")
        self.assertEqual((r.status, r.json()), (200, {"status": "ready", "workers": 2, "workers_ready": 2}))

        # Each worker on its own: two failures in a row on a connection it holds trip the breaker.
        conns = one_connection_per_worker(self, fb)
        self.assertEqual(sorted(conns), sorted(new_pids))
        for pid, c in conns.items():
            self.assertEqual(admin(fb, "POST", "/admin/breakers/up/reset", TOKEN).status, 200)
            statuses = [c.request("GET", "/x?status=500").status for _ in range(2)]
            r = c.request("GET", "/x")
            self.assertEqual(statuses + [r.status], [500, 500, 503], f"worker {pid}")
            self.assertEqual(r.header("x-fusebox-breaker"), "up; state=open")
            b = breaker(fb)
            self.assertEqual((b["state"], b["config"]["consecutive_failures"], b["last_reason"]),
                             ("open", 2, "2 failures in a row (threshold 2)"), f"worker {pid}")

        m = scrape(fb)
        self.assertEqual(m.get("fusebox_config_generation"), 1, m.text)
        self.assertEqual(m.series("fusebox_config_reloads_total"),
                         {key(result="applied"): 1, key(result="refused"): 0}, m.text)

    def test_an_invalid_put_is_refused_with_its_errors_and_the_old_config_keeps_running(self):
        fb = self.fb
        pids = fb.worker_pids()
        lines = self.config.splitlines()
        bad = list(lines)
        route = next(i for i, l in enumerate(lines) if "routes:" in l)
        timeout = next(i for i, l in enumerate(lines) if "connect_timeout:" in l)
        threshold = next(i for i, l in enumerate(lines) if "consecutive_failures: 10" in l)
        bad[route] = lines[route].replace("cluster: up }", "cluster: nowhere }")
        bad[timeout] = lines[timeout].replace("250ms", "fast")
        bad[threshold] = lines[threshold].replace("consecutive_failures: 10", "consecutive_failures: many")
        r = admin(fb, "PUT", "/admin/config", TOKEN, ("\n".join(bad) + "\n").encode())
        self.assertEqual(r.status, 400, r)
        self.assertEqual(r.header("content-type"), "application/json")
        j = r.json()
        self.assertEqual(j["error"], "invalid_config")
        self.assertTrue(j["message"])
        errors = j["errors"]
        expected = [
            rf'^<admin>:{route + 1}: listeners\[0\] \(main\)\.routes\[0\]\.cluster: no cluster named "nowhere"',
            rf'^<admin>:{timeout + 1}: clusters\[0\] \(up\)\.connect_timeout: "fast"',
            rf'^<admin>:{threshold + 1}: clusters\[0\] \(up\)\.breaker\.consecutive_failures: "many"',
        ]
        self.assertEqual(len(errors), len(expected), errors)
        for pattern in expected:
            self.assertTrue(any(re.search(pattern, e) for e in errors), f"{pattern} not in {errors}")

        empty = admin(fb, "PUT", "/admin/config", TOKEN)
        self.assertEqual((empty.status, empty.json()["error"]), (400, "bad_request"), empty)

        # The running config stays, generation and workers unchanged.
        j = admin(fb, "GET", "/admin/config").json()
        self.assertEqual(j["generation"], 0)
        self.assertEqual(j["config"]["clusters"][0]["breaker"]["consecutive_failures"], 10)
        self.assertEqual(j["config"]["clusters"][0]["connect_timeout"], "250ms")
        self.assertEqual(fb.worker_pids(), pids)
        m = scrape(fb)
        self.assertEqual(m.get("fusebox_config_generation"), 0, m.text)
        self.assertEqual(m.get("fusebox_config_reloads_total", result="applied"), 0, m.text)
        self.assertEqual(m.get("fusebox_config_reloads_total", result="refused"), 1, m.text)
        with Connection(fb.addr) as c:
            self.assertEqual([c.request("GET", "/x?status=500").status for _ in range(3)], [500] * 3)
        self.assertEqual(breaker(fb)["state"], "closed")


    def test_a_put_refused_when_it_cannot_bind_changes_nothing_not_even_the_breaker_mode(self):
        # Valid as a file, refused when applied: its listener's port is taken. It also sets the
        # breaker's mode; "the running one stays" means that must not happen either.
        fb = self.fb
        busy = socket.socket()
        self.addCleanup(busy.close)
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        refused = (self.config.replace("    address: 127.0.0.1:0\n", f"    address: 127.0.0.1:{port}\n", 1)
                   .replace("consecutive_failures: 10,", "consecutive_failures: 10, mode: forced_open,"))
        self.assertIn(f"127.0.0.1:{port}", refused)
        self.assertIn("mode: forced_open", refused)
        r = admin(fb, "PUT", "/admin/config", TOKEN, refused.encode())
        self.assertEqual((r.status, r.json()["error"]), (400, "invalid_config"), r)
        self.assertEqual(len(r.json()["errors"]), 1, r)
        self.assertIn("Address already in use", r.json()["errors"][0])
        self.assertEqual(admin(fb, "GET", "/admin/config").json()["generation"], 0)
        b = breaker(fb)
        data = http_request(fb.addr, "GET", "/x")
        self.assertEqual((b["state"], b["generation"], data.status), ("closed", 0, 200),
                         f"the refused config forced the breaker: {b['transitions']}")


# ---------------------------------------------------------------- 7. admin HTTP


class AdminHttp(TestCase):
    def setUp(self):
        self.up = self.start_upstream()
        self.fb = self.start_fusebox(two_workers(config_for(self.up.addr)), env={"FUSEBOX_ADMIN_TOKEN": TOKEN})
        self.addr = self.fb.admin_addr

    def answer_and_close(self, data: bytes, parts: int = 1):
        """Sends data (in `parts` writes, 50 ms apart), reads one response, and says whether the
        server closed the connection after it."""
        with Connection(self.addr, timeout=5) as c:
            step = -(-len(data) // parts)
            for i in range(0, len(data), step):
                c.send(data[i:i + step])
                if parts > 1:
                    time.sleep(0.05)
            r = c.read_response()
            return r, c.closed_by_peer(2)

    def assert_error(self, r, status: int, error: str):
        self.assertEqual(r.status, status, r)
        self.assertEqual(r.header("content-type"), "application/json", r)
        self.assertEqual(r.json()["error"], error, r)
        self.assertTrue(r.json()["message"], r)

    def test_a_malformed_request_line_is_400_bad_request(self):
        for data in (b"GARBAGE\r\n\r\n", b"GET /healthz HTTP/9.9\r\nHost: t\r\n\r\n", b"GET\r\n\r\n"):
            r, closed = self.answer_and_close(data)
            self.assert_error(r, 400, "bad_request")
            self.assertEqual(r.header("connection"), "close", r)
            self.assertTrue(closed, data)

    def test_a_head_over_16_kib_still_arriving_is_431(self):
        head = b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + b"x" * 17000  # and no end yet
        r, closed = self.answer_and_close(head)
        self.assert_error(r, 431, "header_too_large")
        self.assertTrue(closed)

    def test_a_head_over_16_kib_that_arrives_whole_is_431_too(self):
        # As a client sends it: in one write, or in pieces each under 16 KiB. The data path
        # answers 431 to the same bytes.
        head = b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + b"x" * 17000 + b"\r\n\r\n"
        self.assertEqual(raw_exchange(self.fb.addr, head)[:12], b"HTTP/1.1 431")
        for parts in (1, 2):
            with self.subTest(writes=parts):
                r, closed = self.answer_and_close(head, parts=parts)
                self.assert_error(r, 431, "header_too_large")
                self.assertTrue(closed)

    def test_a_head_just_under_16_kib_is_answered(self):
        head = b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + b"x" * 15000 + b"\r\n\r\n"
        r, closed = self.answer_and_close(head)
        self.assertEqual((r.status, r.json()), (200, {"status": "ok"}))
        self.assertFalse(closed)

    def test_a_body_over_1_mib_is_413_before_it_is_sent(self):
        head = f"PUT /admin/config HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {TOKEN}\r\n" \
               f"Content-Length: {1024 * 1024 + 1}\r\n\r\n".encode()
        r, closed = self.answer_and_close(head)
        self.assert_error(r, 413, "body_too_large")
        self.assertTrue(closed)
        # Exactly 1 MiB is allowed: a YAML comment, so an invalid config, not a body too large.
        body = b"#" * (1024 * 1024)
        r = admin(self.fb, "PUT", "/admin/config", TOKEN, body)
        self.assert_error(r, 400, "invalid_config")
        self.assertEqual(admin(self.fb, "GET", "/admin/config").json()["generation"], 0)

    def test_a_chunked_request_that_never_ends_is_413_at_the_buffer_bound(self):
        # A chunk extension llhttp sets no limit on: without a bound, the master's buffer grows
        # for as long as the client sends.
        with Connection(self.addr, timeout=5) as c:
            c.send(f"PUT /admin/config HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {TOKEN}\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n1;ext=".encode())
            try:
                for _ in range(40):  # 2.5 MiB, over the 1.1 MiB bound
                    c.send(b"a" * 65536)
            except OSError:
                pass  # the master stopped reading and answered
            r = c.read_response()
        self.assert_error(r, 413, "request_too_large")
        self.assertEqual(admin(self.fb, "GET", "/healthz").status, 200)

    def test_a_request_trickled_over_10_s_is_408(self):
        with Connection(self.addr, timeout=15) as c:
            c.send(b"GET /healthz HTTP/1.1\r\nHo")
            start = time.monotonic()
            while time.monotonic() - start < 10.5:  # a byte a second: the idle timer never fires
                time.sleep(1.0)
                c.send(b"s")
            r = c.read_response()
        self.assert_error(r, 408, "request_timeout")

    def test_connections_over_64_are_closed_and_the_first_64_still_answer(self):
        held = [Connection(self.addr, timeout=5) for _ in range(64)]
        try:
            for c in held:
                c.send(b"")  # connected
            extra = Connection(self.addr, timeout=5)
            self.assertTrue(extra.closed_by_peer(2), "a 65th admin connection was kept open")
            extra.close()
            r = held[0].request("GET", "/healthz")
            self.assertEqual(r.status, 200)
        finally:
            for c in held:
                c.close()
        # Once they are gone, new connections are served again.
        def healthy():
            try:
                return admin(self.fb, "GET", "/healthz").status == 200
            except (OSError, EOFError):
                return False

        self.assertTrue(wait_until(healthy, 3))

    def test_keep_alive_answers_two_requests_on_one_connection(self):
        with Connection(self.addr, timeout=5) as c:
            r1 = c.request("GET", "/healthz")
            r2 = c.request("GET", "/admin/breakers/up")
            self.assertEqual((r1.status, r1.json()), (200, {"status": "ok"}))
            self.assertEqual((r2.status, r2.json()["cluster"]), (200, "up"))
            self.assertIsNone(r1.header("connection"))
            self.assertIsNone(r2.header("connection"))
            self.assertFalse(c.closed_by_peer(0.3))

    def test_a_pipelined_batch_is_answered_in_order(self):
        with Connection(self.addr, timeout=5) as c:
            c.send(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
                   b"GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n"
                   b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n"
                   + f"POST /admin/breakers/up/open HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {TOKEN}\r\n"
                     f"Content-Length: 0\r\n\r\n".encode()
                   + b"GET /admin/breakers/up HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            rs = [c.read_response() for _ in range(5)]
            self.assertTrue(c.closed_by_peer(2))
        self.assertEqual([r.status for r in rs], [200, 200, 404, 200, 200], rs)
        self.assertEqual(rs[0].json(), {"status": "ok"})
        self.assertEqual(rs[1].json()["status"], "ready")
        self.assertEqual(rs[2].json()["error"], "not_found")
        self.assertEqual(rs[3].json()["state"], "forced_open")
        self.assertEqual(rs[4].json()["state"], "forced_open")
        self.assertEqual(rs[4].header("connection"), "close")


if __name__ == "__main__":
    main()
