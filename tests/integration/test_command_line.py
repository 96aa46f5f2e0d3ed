"""The fusebox command line: --validate, exit codes and their messages, --listen/--upstream without a
file, FUSEBOX_* environment overrides, and bare `fusebox` running the embedded default config.

Exit codes (proxy/main.cc): 0 ok, 1 the configuration is invalid or a listener cannot be bound,
2 usage error (how the command line itself is written).
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
from harness import FAULT_UPSTREAM, FUSEBOX_BIN, TestCase, http_request, main  # noqa: E402


# A breaker segment of this test run's own: the default name (from the admin address) is shared
# by every fusebox on the host that keeps its default, a developer's included.
SHM_NAME = f"fusebox-test-cli-{os.getpid()}"


def tearDownModule():
    Path("/dev/shm", SHM_NAME).unlink(missing_ok=True)


def clean_env(**overrides: str) -> dict:
    """This environment without FUSEBOX_* overrides (the runner's must not leak in), plus `overrides`;
    FUSEBOX_SHM_NAME is this run's own segment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUSEBOX_") or k in ("FUSEBOX_BIN",
                                                                                         "FUSEBOX_SOURCE_DIR")}
    env["FUSEBOX_SHM_NAME"] = SHM_NAME
    env.update(overrides)
    return env


def run_fusebox(*args: str, env: dict | None = None, timeout: float = 10.0) -> subprocess.CompletedProcess:
    """fusebox with `args`, to completion: for the invocations that must exit by themselves."""
    return subprocess.run([FUSEBOX_BIN, *args], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          env=env or clean_env(), timeout=timeout)


def free_port() -> int:
    """A loopback port nothing listens on (bound a moment ago, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_workers(fb, count: int, timeout: float = 5.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while len(fb.worker_pids()) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)  # and no more than that
    return fb.worker_pids()


class Validate(TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory(prefix="fusebox-cli-")
        self.addCleanup(self.dir.cleanup)

    def write(self, name: str, text: str) -> str:
        path = os.path.join(self.dir.name, name)
        Path(path).write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    def test_validate_accepts_a_valid_file_and_says_so(self):
        path = self.write("good.yaml", """
            workers: 1
            listeners:
              - name: main
                address: 127.0.0.1:0
                routes: [ { prefix: /, cluster: up } ]
            clusters:
              - name: up
                endpoints: [ 127.0.0.1:9 ]
            """)
        r = run_fusebox("--validate", "--config", path)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn(f"{path}: valid", r.stdout)

    def test_validate_prints_every_error_with_its_file_and_line_and_exits_1(self):
        path = self.write("bad.yaml", """
            workers: 1
            drain_timeout: soon
            listeners:
              - name: main
                address: 127.0.0.1:0
                routes: [ { prefix: /, cluster: nowhere } ]
            clusters:
              - name: up
                endpoints: [ 127.0.0.1:9 ]
                conect_timeout: 1s
            """)
        r = run_fusebox("--validate", "--config", path)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        output = r.stdout + r.stderr
        errors = [line for line in output.splitlines() if line.startswith(f"{path}:")]
        self.assertEqual(len(errors), 3, output)
        by_prefix = {re.match(r"(.*?:\d+:)", line).group(1): line for line in errors}
        self.assertEqual(sorted(by_prefix), sorted([f"{path}:2:", f"{path}:6:", f"{path}:10:"]), output)
        self.assertIn('drain_timeout: "soon" is not a duration', by_prefix[f"{path}:2:"])
        self.assertIn('no cluster named "nowhere"', by_prefix[f"{path}:6:"])
        self.assertIn("conect_timeout: unknown key", by_prefix[f"{path}:10:"])
        self.assertNotIn("valid (", output)

    def test_a_missing_config_file_exits_1_naming_the_file(self):
        path = os.path.join(self.dir.name, "missing.yaml")
        r = run_fusebox("--config", path)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn(path, r.stderr)
        self.assertIn("No such file", r.stderr)


class Flags(TestCase):
    def test_version_prints_the_version_and_exits_0(self):
        r = run_fusebox("--version")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"^fusebox 0\.1\.0\b")

    def test_help_lists_every_flag_and_exits_0(self):
        r = run_fusebox("--help")
        self.assertEqual(r.returncode, 0, r.stderr)
        for flag in ("--config", "--validate", "--listen", "--upstream", "--workers", "--admin", "--log-level"):
            self.assertIn(flag, r.stdout)

    def test_an_unknown_flag_is_a_usage_error_exit_2(self):
        r = run_fusebox("--no-such-flag")
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("--no-such-flag", r.stdout + r.stderr)

    def test_listen_without_upstream_is_a_usage_error_exit_2_that_names_both_flags(self):
        # Like --config together with --listen (exit 2): the command line is written wrong, no
        # configuration was even read, so it is a usage error, not an invalid configuration (1).
        r = run_fusebox("--listen", "127.0.0.1:0")
        output = r.stdout + r.stderr
        self.assertIn("--listen", output)
        self.assertIn("--upstream", output)
        self.assertEqual(r.returncode, 2, output)

    def test_a_listener_address_already_in_use_exits_1_and_says_so(self):
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            addr = "127.0.0.1:%d" % taken.getsockname()[1]
            up = self.start_upstream()
            r = run_fusebox("--listen", addr, "--upstream", up.addr, "--workers", "1")
        output = r.stdout + r.stderr
        self.assertEqual(r.returncode, 1, output)
        self.assertIn(addr, output)
        self.assertIn("already in use", output)


class CommandLineConfig(TestCase):
    def setUp(self):
        self.up = self.start_upstream()

    def test_listen_and_upstream_proxy_without_a_config_file(self):
        fb = self.start_fusebox(args=["--listen", "127.0.0.1:0", "--upstream", self.up.addr, "--workers", "1"],
                                env=clean_env())
        r = http_request(fb.addr, "GET", "/through?body=proxied")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, b"proxied")
        self.assertEqual(len(wait_for_workers(fb, 1)), 1)

    def test_fusebox_workers_in_the_environment_sets_the_worker_count(self):
        fb = self.start_fusebox(args=["--listen", "127.0.0.1:0", "--upstream", self.up.addr],
                                env=clean_env(FUSEBOX_WORKERS="2"))
        self.assertEqual(fb.wait_for_line(r"starting (\d+) workers").group(1), "2")
        self.assertEqual(len(wait_for_workers(fb, 2)), 2)
        self.assertEqual(http_request(fb.addr, "GET", "/").status, 200)

    def test_the_workers_flag_beats_fusebox_workers(self):
        fb = self.start_fusebox(args=["--listen", "127.0.0.1:0", "--upstream", self.up.addr, "--workers", "1"],
                                env=clean_env(FUSEBOX_WORKERS="2"))
        self.assertEqual(fb.wait_for_line(r"starting (\d+) workers").group(1), "1")
        self.assertEqual(len(wait_for_workers(fb, 2, timeout=0.5)), 1)

    def test_an_invalid_fusebox_shm_name_exits_1_naming_the_variable(self):
        r = run_fusebox("--listen", "127.0.0.1:0", "--upstream", self.up.addr,
                        env=clean_env(FUSEBOX_SHM_NAME="../etc"))
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn('environment FUSEBOX_SHM_NAME: "../etc" is not 1-200 of [A-Za-z0-9_.-]', r.stderr)

    def test_the_admin_flag_sets_the_admin_address_and_beats_fusebox_admin_address(self):
        port = free_port()
        fb = self.start_fusebox(args=["--listen", "127.0.0.1:0", "--upstream", self.up.addr,
                                      "--admin", f"127.0.0.1:{port}"],
                                env=clean_env(FUSEBOX_ADMIN_ADDRESS=f"127.0.0.1:{free_port()}"))
        self.assertEqual(fb.admin_addr, f"127.0.0.1:{port}")
        r = http_request(fb.admin_addr, "GET", "/metrics")
        self.assertEqual(r.status, 200, r)
        self.assertIn(b"fusebox_", r.body)

    def test_the_log_level_flag_beats_fusebox_log_level(self):
        fb = self.start_fusebox(args=["--listen", "127.0.0.1:0", "--upstream", self.up.addr, "--log-level", "debug"],
                                env=clean_env(FUSEBOX_LOG_LEVEL="info"))
        fb.wait_for_line(r" debug .*accepting on 1 listeners")

    def test_log_level_warn_leaves_out_info_lines(self):
        port = free_port()
        p = subprocess.Popen([FUSEBOX_BIN, "--listen", f"127.0.0.1:{port}", "--upstream", self.up.addr,
                              "--workers", "1", "--admin", f"127.0.0.1:{free_port()}", "--log-level", "warn"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env=clean_env())
        try:
            deadline = time.monotonic() + 10
            status = None
            while status is None and time.monotonic() < deadline:
                try:
                    status = http_request(f"127.0.0.1:{port}", "GET", "/quiet").status
                except OSError:
                    time.sleep(0.05)
            self.assertEqual(status, 200)
        finally:
            p.send_signal(signal.SIGTERM)
            output = p.communicate(timeout=10)[0]
        self.assertEqual(p.returncode, 0, output)
        self.assertNotRegex(output, r"\d{3}Z (info|debug) ", output)

    def test_an_unknown_log_level_flag_exits_1_naming_the_flag_and_the_levels(self):
        r = run_fusebox("--listen", "127.0.0.1:0", "--upstream", self.up.addr, "--log-level", "loud")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn('--log-level "loud": "loud" is not a log level (debug, info, warn or error)', r.stderr)

    def test_an_invalid_fusebox_log_level_exits_1_naming_the_variable(self):
        r = run_fusebox("--listen", "127.0.0.1:0", "--upstream", self.up.addr,
                        env=clean_env(FUSEBOX_LOG_LEVEL="bogus"))
        output = r.stdout + r.stderr
        self.assertEqual(r.returncode, 1, output)
        self.assertIn("FUSEBOX_LOG_LEVEL", output)
        self.assertIn("bogus", output)


# Runs inside a private network namespace, where the embedded default's fixed ports are free.
# Prints one "result ..." line; every process it starts is stopped by PID before it exits.
DRIVER = r'''
import os, signal, socket, subprocess, sys, time
fusebox, upstream_script = sys.argv[1], sys.argv[2]
def timed_out(*_):
    raise TimeoutError("driver: 20 s passed")
signal.signal(signal.SIGALRM, timed_out)
signal.alarm(20)  # the whole driver is bounded; the finally below still stops what it started
procs = []

def start(argv, ready, timeout=10):
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    procs.append(p)
    lines = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = p.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip())
        if ready in line:
            return p, lines
    print("result not-ready " + repr(lines), flush=True)
    sys.exit(1)

try:
    start([sys.executable, upstream_script, "--listen", "127.0.0.1:8080", "--quiet"], "ready 127.0.0.1:8080")
    fb, lines = start([fusebox], "config <embedded>")  # after its "listening ... address=" line
    print("log " + " | ".join(lines), flush=True)
    with socket.create_connection(("127.0.0.1", 15001), timeout=10) as s:
        s.sendall(b"GET /default?body=through-the-default HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    print("result " + repr(data.decode("latin-1")), flush=True)
finally:
    for p in reversed(procs):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
'''


class EmbeddedDefault(TestCase):
    def test_bare_fusebox_listens_on_15001_and_forwards_to_8080(self):
        if shutil.which("unshare") is None or shutil.which("ip") is None:
            self.skipTest("needs unshare and ip (util-linux, iproute2)")
        probe = subprocess.run(["unshare", "--net", "sh", "-c", "ip link set lo up"], capture_output=True, text=True,
                               timeout=10)
        if probe.returncode != 0:
            self.skipTest(f"cannot create a network namespace here: {probe.stderr.strip()}")
        with tempfile.TemporaryDirectory(prefix="fusebox-default-") as tmp:
            driver = os.path.join(tmp, "driver.py")
            Path(driver).write_text(DRIVER)
            # cwd: a directory with no fusebox.yaml, so nothing but the embedded config can be read.
            p = subprocess.Popen(
                ["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$0" "$@"', sys.executable, driver,
                 FUSEBOX_BIN, FAULT_UPSTREAM],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp,
                env=clean_env(), start_new_session=True)  # one process group: the driver and its children
            try:
                stdout, stderr = p.communicate(timeout=40)
            finally:
                try:
                    os.killpg(p.pid, signal.SIGKILL)  # whatever the driver left behind
                except ProcessLookupError:
                    pass
                p.wait(5)
        output = stdout + stderr
        self.assertEqual(p.returncode, 0, output)
        self.assertRegex(output, r"listening listener=default address=127\.0\.0\.1:15001\b")
        self.assertRegex(output, r"starting \d+ workers, config <embedded>")
        result = next((line for line in stdout.splitlines() if line.startswith("result ")), "")
        self.assertRegex(result, r"^result 'HTTP/1\.1 200 ", output)
        self.assertTrue(result.endswith("through-the-default'"), output)


if __name__ == "__main__":
    main()
