"""The process model under load: SIGTERM drains, SIGHUP reloads (good and bad configs), a killed
worker is respawned (with backoff when it keeps dying), and `workers: auto` follows the usable CPUs.

Load is a few client threads doing keep-alive requests in a loop, bounded by time and count, that
record every outcome (a status, or the class of the exception: ConnectionRefusedError,
ConnectionResetError, EOFError...), so a test can say exactly which requests a signal cost.
"""

import collections
import os
import re
import signal
import socket
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
from harness import Connection, TestCase, config_for, http_request, main  # noqa: E402

CLIENT_ERRORS = (OSError, EOFError)  # ConnectionRefusedError/ResetError, BrokenPipeError, TimeoutError: OSError


class Outcome:
    """One request of the load: `result` is the status, or the exception's class name."""

    def __init__(self, t: float, result, fresh: bool):
        self.t = t                  # time.monotonic() when the outcome was known
        self.result = result
        self.fresh = fresh          # sent on a connection opened for it (not a reused keep-alive one)

    def ok(self) -> bool:
        return self.result == 200

    def __repr__(self):
        return f"<{self.result}{' fresh' if self.fresh else ''} at {self.t:.3f}>"


class Load:
    """`threads` clients, each with at most one keep-alive connection open, sending GET `path` until
    stop(), `duration` seconds or `max_requests` each. A failed request closes its connection; the
    thread's next request opens a new one. A response with `Connection: close` closes it too."""

    def __init__(self, addr: str, threads: int = 4, path: str = "/load", duration: float = 4.0,
                 max_requests: int = 20_000):
        assert duration <= 5.0, "load is bounded to 5 s"
        self.addr = addr
        self.path = path
        self.duration = duration
        self.max_requests = max_requests
        self.outcomes: list[list[Outcome]] = [[] for _ in range(threads)]
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def start(self) -> "Load":
        for t in self._threads:
            t.start()
        return self

    def _run(self, index: int):
        record = self.outcomes[index]
        deadline = time.monotonic() + self.duration
        conn = None
        while not self._stop.is_set() and time.monotonic() < deadline and len(record) < self.max_requests:
            fresh = conn is None
            try:
                if conn is None:
                    conn = Connection(self.addr, timeout=5.0)
                r = conn.request("GET", self.path)
                record.append(Outcome(time.monotonic(), r.status, fresh))
                if (r.header("connection") or "").lower() == "close":
                    conn.close()
                    conn = None
            except CLIENT_ERRORS as e:
                record.append(Outcome(time.monotonic(), type(e).__name__, fresh))
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def join(self):
        for t in self._threads:
            t.join(self.duration + 10)
            assert not t.is_alive(), "a load thread did not finish"

    def stop(self):
        self._stop.set()
        self.join()

    def all(self) -> list[Outcome]:
        return [o for record in self.outcomes for o in record]

    def counts(self) -> collections.Counter:
        return collections.Counter(o.result for o in self.all())

    def failures(self) -> list[tuple[int, int, Outcome]]:
        """(thread, index in that thread's record, outcome) of every request that did not get a 200."""
        return [(i, j, o) for i, record in enumerate(self.outcomes) for j, o in enumerate(record) if not o.ok()]


def config(upstream_addr: str, workers: str, listener: str = "", top: str = "") -> str:
    """config_for() with `workers: N` in place of its `workers: 1` (line numbers unchanged)."""
    return config_for(upstream_addr, listener=listener, top=top).replace("workers: 1\n", f"workers: {workers}\n", 1)


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


def send_request(addr: str, path: str) -> Connection:
    """A new connection with one GET sent and its response not yet read."""
    c = Connection(addr, timeout=10.0)
    c.send(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
    return c


def cgroup_quota_cpus() -> int:
    """The lowest CPU quota (rounded up; 0 = none) over this process's cgroup and its ancestors,
    v2 and v1, read as fusebox reads it."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return 0
    quotas = []
    for line in lines:
        hierarchy, controllers, path = line.split(":", 2)
        v2 = hierarchy == "0" and controllers == ""
        if not v2 and "cpu" not in controllers.split(","):
            continue
        level = path.rstrip("/")
        while True:
            try:
                if v2:
                    quota, period = Path(f"/sys/fs/cgroup{level}/cpu.max").read_text().split()
                    quota = -1 if quota == "max" else int(quota)
                else:
                    quota = int(Path(f"/sys/fs/cgroup/cpu{level}/cpu.cfs_quota_us").read_text())
                    period = Path(f"/sys/fs/cgroup/cpu{level}/cpu.cfs_period_us").read_text()
                if quota > 0 and int(period) > 0:
                    quotas.append(-(-quota // int(period)))  # 150000/100000 (1.5 CPUs): 2
            except (OSError, ValueError):
                pass
            if not level:
                break
            level = level[:level.rindex("/")]
    return min(quotas, default=0)


def expected_auto_workers() -> int:
    """What `workers: auto` must start: the CPUs this process may run on, bounded by the cgroup
    quota, at most 32."""
    cpus = len(os.sched_getaffinity(0))
    quota = cgroup_quota_cpus()
    if quota:
        cpus = min(cpus, quota)
    return min(max(1, cpus), 32)


class CpuQuotaCgroup:
    """A new cgroup with a quota of one CPU (v2 where its cpu controller is enabled, else v1),
    and a wrapper that moves a command into it before exec'ing it; removed once empty."""

    def __init__(self):
        name = f"fusebox-test-{os.getpid()}-{time.monotonic_ns()}"
        v2_root = Path("/sys/fs/cgroup")
        if "cpu" in self._read(v2_root / "cgroup.subtree_control").split():
            self.dir = v2_root / name
            self.dir.mkdir()
            (self.dir / "cpu.max").write_text("100000 100000\n")
        elif Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").exists():
            self.dir = Path("/sys/fs/cgroup/cpu") / name
            self.dir.mkdir()
            (self.dir / "cpu.cfs_period_us").write_text("100000\n")
            (self.dir / "cpu.cfs_quota_us").write_text("100000\n")
        else:
            raise OSError("no cgroup cpu controller to write to")
        self.wrapper = ["sh", "-c", f'echo $$ > {self.dir}/cgroup.procs && exec "$0" "$@"']

    @staticmethod
    def _read(path: Path) -> str:
        try:
            return path.read_text()
        except OSError:
            return ""

    def remove(self):
        deadline = time.monotonic() + 5
        while True:
            try:
                self.dir.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:  # still busy with processes that are exiting
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


class Drain(TestCase):
    def setUp(self):
        self.up = self.start_upstream()

    def test_sigterm_lets_every_in_flight_request_finish_refuses_new_connections_and_exits_0(self):
        drain_s = 3.0
        fb = self.start_fusebox(config(self.up.addr, 2, top="drain_timeout: 3s"))
        self.up.reset_stats()
        conns = [send_request(fb.addr, f"/slow{i}?delay=1000") for i in range(20)]
        for c in conns:
            self.addCleanup(c.close)
        # In flight: the upstream holds all 20 before the signal is sent.
        self.assertTrue(wait_until(lambda: self.up.stats()["requests"] >= 20, 5), self.up.stats())

        fb.signal(signal.SIGTERM)
        sent = time.monotonic()
        time.sleep(0.5)  # the workers close their listeners as they start draining
        with self.assertRaises(ConnectionRefusedError):
            http_request(fb.addr, "GET", "/after-sigterm", timeout=2)

        for i, c in enumerate(conns):
            r = c.read_response()
            self.assertEqual(r.status, 200, f"request {i}: {r!r}\n{fb.output()}")
            self.assertEqual(r.body, b"ok\n")
            self.assertEqual((r.header("connection") or "").lower(), "close",
                             f"a draining worker says it closes the connection: {r!r}")
        rc = fb.wait(max(0.1, drain_s + 2 - (time.monotonic() - sent)))
        elapsed = time.monotonic() - sent
        self.assertEqual(rc, 0, fb.output())
        self.assertLess(elapsed, drain_s, f"nothing was left in flight after ~1 s, yet it waited:\n{fb.output()}")
        fb.wait_for_line(r"all workers drained; exiting", timeout=2)

    def test_sigterm_cuts_requests_still_in_flight_at_the_drain_timeout_and_exits_in_time(self):
        fb = self.start_fusebox(config(self.up.addr, 2, top="drain_timeout: 500ms"))
        self.up.reset_stats()
        conns = [send_request(fb.addr, f"/slower{i}?delay=3000") for i in range(4)]
        for c in conns:
            self.addCleanup(c.close)
        self.assertTrue(wait_until(lambda: self.up.stats()["requests"] >= 4, 5), self.up.stats())

        fb.signal(signal.SIGTERM)
        sent = time.monotonic()
        fb.wait(5)
        elapsed = time.monotonic() - sent
        self.assertLessEqual(elapsed, 2.5, f"exited {elapsed:.2f} s after SIGTERM:\n{fb.output()}")
        self.assertGreaterEqual(elapsed, 0.45, f"exited {elapsed:.2f} s after SIGTERM, before drain_timeout")
        for i, c in enumerate(conns):
            with self.assertRaises((EOFError, ConnectionResetError), msg=f"request {i} was not cut"):
                c.read_response()


    def test_sigterm_closes_idle_keep_alive_connections_after_a_short_grace_and_exits_early(self):
        fb = self.start_fusebox(config(self.up.addr, 1, top="drain_timeout: 10s"))
        idle = Connection(fb.addr, timeout=5)
        self.addCleanup(idle.close)
        self.assertEqual(idle.request("GET", "/before").status, 200)  # then idle, kept alive
        fb.signal(signal.SIGTERM)
        sent = time.monotonic()
        self.assertTrue(idle.closed_by_peer(timeout=5), "the idle connection was never closed")
        self.assertEqual(fb.wait(5), 0, fb.output())
        self.assertLess(time.monotonic() - sent, 4.0, "an idle client held the drain to its deadline")

    def test_a_request_on_an_idle_connection_just_after_sigterm_is_answered_with_close(self):
        fb = self.start_fusebox(config(self.up.addr, 1, top="drain_timeout: 10s"))
        with Connection(fb.addr, timeout=5) as c:
            self.assertEqual(c.request("GET", "/before").status, 200)
            fb.signal(signal.SIGTERM)
            fb.wait_for_line(r"\[worker \d+ \d+\] draining", timeout=5)
            r = c.request("GET", "/in-the-grace")
        self.assertEqual(r.status, 200, fb.output())
        self.assertEqual((r.header("connection") or "").lower(), "close")


class MasterDeath(TestCase):
    def test_workers_drain_and_exit_when_the_master_is_killed(self):
        up = self.start_upstream()
        fb = self.start_fusebox(config(up.addr, 2))
        workers = wait_until(lambda: len(fb.worker_pids()) == 2 and fb.worker_pids(), 5)
        self.assertTrue(workers)
        os.kill(fb.pid, signal.SIGKILL)

        def gone():
            return all(not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[-1][:3]
                       for pid in workers)
        self.assertTrue(wait_until(gone, 5), f"workers {workers} outlived their master")
        with self.assertRaises(ConnectionRefusedError):  # nothing holds the port any more
            http_request(fb.addr, "GET", "/", timeout=2)


class ReloadStorm(TestCase):
    def test_sighups_back_to_back_never_stop_the_master(self):
        up = self.start_upstream()
        fb = self.start_fusebox(config(up.addr, 2, top="drain_timeout: 1s"))
        for _ in range(15):
            fb.signal(signal.SIGHUP)
            fb.signal(signal.SIGHUP)  # the second reload terminates workers the first just forked
            time.sleep(0.1)
        time.sleep(1.0)
        self.assertIsNone(fb.proc.poll(), "the master exited:\n" + fb.output())
        self.assertNotIn("shutting down", fb.output().lower())
        self.assertEqual(http_request(fb.addr, "GET", "/after-the-storm").status, 200)


class Reload(TestCase):
    body = b"x" * 100  # over the max_body_bytes the reloaded config sets

    def setUp(self):
        self.up = self.start_upstream()
        self.fb = self.start_fusebox(config(self.up.addr, 2))
        self.old_pids = wait_until(lambda: len(self.fb.worker_pids()) == 2 and self.fb.worker_pids(), 5)
        self.assertTrue(self.old_pids, self.fb.output())
        self.assertEqual(http_request(self.fb.addr, "POST", "/before", body=self.body).status, 200)

    def test_sighup_with_a_good_config_under_load_drops_nothing_and_applies_the_new_config(self):
        load = Load(self.fb.addr, threads=4, duration=4.0).start()
        self.addCleanup(load.stop)
        time.sleep(1.0)
        start = len(self.fb.lines)
        self.fb.write_config(config(self.up.addr, 2, listener="max_body_bytes: 16"))
        self.fb.signal(signal.SIGHUP)
        self.fb.wait_for_line(r"reloaded .*generation", timeout=5, start=start)

        def replaced():
            pids = self.fb.worker_pids()
            return len(pids) == 2 and not set(pids) & set(self.old_pids) and pids

        new_pids = wait_until(replaced, 5)
        self.assertTrue(new_pids, f"old workers {self.old_pids}, now {self.fb.worker_pids()}\n{self.fb.output()}")
        for i in range(5):
            r = http_request(self.fb.addr, "POST", f"/after{i}", body=self.body)
            self.assertEqual(r.status, 413, f"a new connection after the reload: {r!r}")

        load.join()
        counts = load.counts()
        self.assertGreater(counts[200], 100, counts)
        self.assertEqual(load.failures(), [], f"{counts}\n{self.fb.output()}")

    def test_a_listener_renamed_on_the_same_port_keeps_its_socket_across_a_reload(self):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]

        def named(name):
            return (config(self.up.addr, 1).replace("- name: main\n", f"- name: {name}\n", 1)
                    .replace("address: 127.0.0.1:0\n", f"address: 127.0.0.1:{port}\n", 1))

        fb = self.start_fusebox(named("before"))
        self.assertEqual(http_request(fb.addr, "GET", "/before").status, 200)
        start = len(fb.lines)
        fb.write_config(named("after"))
        fb.signal(signal.SIGHUP)
        fb.wait_for_line(r"reloaded .*generation|refused", timeout=5, start=start)
        self.assertNotIn("refused", "\n".join(fb.lines[start:]), fb.output())
        self.assertEqual(http_request(fb.addr, "GET", "/after").status, 200)

    def test_each_generation_is_released_once_its_workers_are_gone(self):
        # With health checks, whose probes of a retired config may still be finishing a check.
        cfg = config_for(self.up.addr, top="drain_timeout: 1s",
                         cluster="health_check: { path: /health, interval: 50ms, timeout: 40ms }")
        fb = self.start_fusebox(cfg, args=["--log-level", "debug"])
        for n in range(5):
            start = len(fb.lines)
            fb.signal(signal.SIGHUP)
            fb.wait_for_line(r"reloaded .*generation", timeout=5, start=start)
            fb.wait_for_line(rf"generation {n} released", timeout=5, start=start)
            self.assertEqual(http_request(fb.addr, "GET", f"/after-reload-{n}").status, 200)
        self.assertEqual(http_request(fb.admin_addr, "GET", "/healthz").status, 200)
        self.assertEqual(len(fb.worker_pids()), 1)

    def test_a_keep_alive_connection_idle_during_a_reload_still_gets_its_next_request_answered(self):
        # The deterministic core of the test above: "SIGHUP reloads the config without dropping
        # connections" (design.md). A client may send on its idle keep-alive connection at any
        # moment, so a draining worker that closes it under the client loses that request; one
        # that answers the next request (with Connection: close) loses nothing.
        with Connection(self.fb.addr, timeout=5) as c:
            self.assertEqual(c.request("GET", "/first").status, 200)
            start = len(self.fb.lines)
            self.fb.write_config(config(self.up.addr, 2, listener="max_body_bytes: 16"))
            self.fb.signal(signal.SIGHUP)
            self.fb.wait_for_line(r"reloaded ", timeout=5, start=start)
            for pid in self.old_pids:
                self.fb.wait_for_line(rf"\[worker \d+ {pid}\] draining", timeout=5, start=start)
            try:
                r = c.request("GET", "/second")
            except (OSError, EOFError) as e:
                r = e
        self.assertNotIsInstance(r, Exception, f"the idle connection was dropped by the reload: {r!r}\n"
                                 + self.fb.output())
        self.assertEqual(r.status, 200)

    def test_sighup_with_a_bad_config_under_load_is_refused_with_the_error_and_the_old_config_keeps_serving(self):
        load = Load(self.fb.addr, threads=4, duration=3.0).start()
        self.addCleanup(load.stop)
        time.sleep(0.5)
        # Each bad config also changes max_body_bytes, so that a half-applied reload would show.
        # Line 5 of config() is the listener's routes, line 6 its max_body_bytes.
        good = config(self.up.addr, 2, listener="max_body_bytes: 16")
        self.assertIn("routes:", good.splitlines()[4])
        self.assertIn("max_body_bytes: 16", good.splitlines()[5])
        syntax_error = good.replace("max_body_bytes: 16", "max_body_bytes: 16: 17")
        unknown_cluster = good.replace("cluster: up }", "cluster: up }, { prefix: /v2, cluster: nowhere }")
        path = re.escape(self.fb.config_path)
        cases = [
            (syntax_error, rf"{path}:6: invalid YAML"),
            (unknown_cluster, rf'{path}:5: listeners\[0\] \(main\)\.routes\[1\]\.cluster: no cluster named "nowhere"'),
        ]
        for text, error in cases:
            start = len(self.fb.lines)
            self.fb.write_config(text)
            self.fb.signal(signal.SIGHUP)
            self.fb.wait_for_line(r"reload refused", timeout=5, start=start)
            self.fb.wait_for_line(error, timeout=2, start=start)
            time.sleep(0.3)

        self.assertNotRegex(self.fb.output(), r"reloaded ")
        self.assertEqual(self.fb.worker_pids(), self.old_pids, self.fb.output())
        self.assertEqual(http_request(self.fb.addr, "POST", "/still-old", body=self.body).status, 200)
        load.join()
        counts = load.counts()
        self.assertGreater(counts[200], 100, counts)
        self.assertEqual(load.failures(), [], f"{counts}\n{self.fb.output()}")


class DeadWorker(TestCase):
    def setUp(self):
        self.up = self.start_upstream()

    def test_a_worker_killed_under_load_is_respawned_and_costs_only_its_in_flight_requests(self):
        threads = 4
        fb = self.start_fusebox(config(self.up.addr, 2))
        before = wait_until(lambda: len(fb.worker_pids()) == 2 and fb.worker_pids(), 5)
        self.assertTrue(before, fb.output())
        load = Load(fb.addr, threads=threads, duration=3.0).start()
        self.addCleanup(load.stop)
        time.sleep(1.0)

        victim = before[0]
        start = len(fb.lines)
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        fb.wait_for_line(rf"worker \d+ \(pid {victim}\) was killed by signal 9", timeout=2, start=start)
        replacement = wait_until(lambda: set(fb.worker_pids()) - set(before),
                                 max(0.0, killed + 1.0 - time.monotonic()), interval=0.01)
        self.assertTrue(replacement, f"no new worker within 1 s of the kill: {fb.worker_pids()}\n{fb.output()}")
        self.assertEqual(len(fb.worker_pids()), 2)

        load.join()
        counts = load.counts()
        failures = load.failures()
        detail = f"{counts}\nfailures: {failures}\n{fb.output()}"
        self.assertGreater(counts[200], 100, counts)
        self.assertEqual(counts["ConnectionRefusedError"], 0, detail)
        self.assertTrue(all(o.result in ("ConnectionResetError", "EOFError", "BrokenPipeError")
                            for _, _, o in failures), detail)
        self.assertLessEqual(len(failures), threads, detail)
        for thread, index, o in failures:
            self.assertGreaterEqual(o.t, killed - 0.05, f"a failure before the kill: {detail}")
            record = load.outcomes[thread]
            self.assertLess(index + 1, len(record), f"thread {thread} never tried again: {detail}")
            recovery = record[index + 1]
            self.assertTrue(recovery.fresh and recovery.ok(), f"thread {thread} did not recover: {detail}")

    def test_a_worker_that_keeps_dying_is_respawned_with_growing_backoff(self):
        fb = self.start_fusebox(config(self.up.addr, 1))
        pid = wait_until(lambda: fb.worker_pids(), 5)
        self.assertTrue(pid, fb.output())
        pid = pid[0]
        delays = []
        for kill in range(4):
            start = len(fb.lines)
            os.kill(pid, signal.SIGKILL)
            m = fb.wait_for_line(rf"worker 0 \(pid {pid}\) was killed by signal 9 .*respawning in (\d+) ms",
                                 timeout=2, start=start)
            delays.append(int(m.group(1)))
            new = wait_until(lambda: [p for p in fb.worker_pids() if p != pid], delays[-1] / 1000 + 2)
            self.assertTrue(new, f"kill {kill + 1}: no new worker\n{fb.output()}")
            pid = new[0]
        self.assertEqual(delays, sorted(set(delays)), f"respawn delays {delays} do not grow\n{fb.output()}")
        self.assertEqual(http_request(fb.addr, "GET", "/after").status, 200)

    def test_a_connection_made_while_the_only_worker_is_down_waits_and_is_answered_by_its_replacement(self):
        fb = self.start_fusebox(config(self.up.addr, 1))
        pid = wait_until(lambda: fb.worker_pids(), 5)[0]
        # A first quick crash is respawned at once; the second one waits (backoff): the gap we want.
        os.kill(pid, signal.SIGKILL)
        pid = wait_until(lambda: [p for p in fb.worker_pids() if p != pid], 2)[0]
        start = len(fb.lines)
        os.kill(pid, signal.SIGKILL)
        m = fb.wait_for_line(rf"\(pid {pid}\) was killed .*respawning in (\d+) ms", timeout=2, start=start)
        self.assertGreater(int(m.group(1)), 0, "the second crash in a row is respawned after a delay")
        with Connection(fb.addr, timeout=5) as c:  # the shared accept queue holds it meanwhile
            r = c.request("GET", "/during-the-gap")
        self.assertEqual(r.status, 200, fb.output())


class WorkerCount(TestCase):
    def setUp(self):
        self.up = self.start_upstream()

    def start_and_count(self, config: str, **kwargs) -> tuple[int, int]:
        """(workers the master says it starts, worker processes that exist)."""
        fb = self.start_fusebox(config, **kwargs)
        announced = int(fb.wait_for_line(r"starting (\d+) workers").group(1))
        wait_until(lambda: len(fb.worker_pids()) >= announced, 5)
        time.sleep(0.2)  # and no more than that
        return announced, len(fb.worker_pids())

    def test_workers_auto_starts_one_worker_per_usable_cpu(self):
        expected = expected_auto_workers()
        self.assertEqual(self.start_and_count(config(self.up.addr, "auto")), (expected, expected))

    def test_workers_auto_counts_only_the_cpus_in_the_affinity_mask(self):
        cpus = os.sched_getaffinity(0)
        if len(cpus) < 2:
            self.skipTest("one usable CPU: cannot restrict the affinity mask further")
        os.sched_setaffinity(0, {min(cpus)})  # this thread only; the child inherits it
        try:
            fb_counts = self.start_and_count(config(self.up.addr, "auto"))
        finally:
            os.sched_setaffinity(0, cpus)
        self.assertEqual(fb_counts, (1, 1))

    def test_workers_auto_counts_a_cpu_quota_on_its_own_cgroup(self):
        # A quota on the process's own cgroup, not on the hierarchy's root: as systemd's
        # CPUQuota= or a container without a cgroup namespace sets it.
        if len(os.sched_getaffinity(0)) < 2:
            self.skipTest("one usable CPU: a quota of one CPU would change nothing")
        if os.geteuid() != 0:
            self.skipTest("creating a cgroup needs root")
        try:
            cgroup = CpuQuotaCgroup()
        except OSError as e:
            self.skipTest(f"cannot create a cgroup with a CPU quota here: {e}")
        self.addCleanup(cgroup.remove)  # runs after fusebox is stopped (cleanups run last first)
        self.assertEqual(self.start_and_count(config(self.up.addr, "auto"), wrapper=cgroup.wrapper), (1, 1))


if __name__ == "__main__":
    main()
