"""tests/support/harness.py: starts the real processes an integration test needs (fusebox, the
fault-injecting upstream), on loopback, on ports the kernel picks, and stops them by PID.

Each process prints the address it got on a ready line; nothing here hardcodes or probes ports, so
tests may run in parallel (ctest -j). Not a mock of anything: every byte goes through real sockets.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import unittest
from pathlib import Path

SOURCE_DIR = Path(os.environ.get("FUSEBOX_SOURCE_DIR", Path(__file__).resolve().parents[2]))
FUSEBOX_BIN = os.environ.get("FUSEBOX_BIN", str(SOURCE_DIR / "build" / "fusebox"))
FAULT_UPSTREAM = str(SOURCE_DIR / "tools" / "fault_upstream.py")

_LISTENING = re.compile(r"listening listener=(\S+) address=(\S+)")
_ADMIN_LISTENING = re.compile(r"admin listening address=(\S+)")
_instances = itertools.count()


def split_addr(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host.strip("[]"), int(port)


class Process:
    """A child process whose output lines are collected by a thread, so it never blocks on a pipe."""

    def __init__(self, argv: list[str], env: dict | None = None):
        self.argv = argv
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._eof = False  # the reader saw the end of the output: no line will ever come
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            text=True,
            start_new_session=True,  # its own process group: workers are stopped with it
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self):
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def wait_for_line(self, pattern: str | re.Pattern, timeout: float = 10.0, start: int = 0) -> re.Match:
        """The first output line (from index `start`) matching pattern; fails the test after timeout."""
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        index = start
        with self._cond:
            while True:
                while index < len(self.lines):
                    m = regex.search(self.lines[index])
                    if m:
                        return m
                    index += 1
                remaining = deadline - time.monotonic()
                # Not proc.poll(): a process that has exited may still have lines in the pipe
                # that the reader has not appended yet.
                if remaining <= 0 or (self._eof and index >= len(self.lines)):
                    raise AssertionError(
                        f"{self.argv[0]}: no line matching {regex.pattern!r} within {timeout}s; output:\n"
                        + "\n".join(self.lines[-40:])
                    )
                self._cond.wait(min(remaining, 0.1))

    def output(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def signal(self, signum: int):
        self.proc.send_signal(signum)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM the process group, SIGKILL what is left after timeout; returns the exit code."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # stragglers of the group (workers)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            return self.proc.wait(5)
        except subprocess.TimeoutExpired:
            return None
        finally:
            self._reader.join(2)
            if self.proc.stdout:
                self.proc.stdout.close()


class Upstream(Process):
    """tools/fault_upstream.py on 127.0.0.1, port chosen by the kernel."""

    def __init__(self):
        super().__init__([sys.executable, FAULT_UPSTREAM, "--listen", "127.0.0.1:0", "--quiet"])
        try:
            self.addr = self.wait_for_line(r"^ready (\S+)").group(1)
        except BaseException:
            self.stop()  # no test holds it yet, so no cleanup would stop it
            raise
        self.host, self.port = split_addr(self.addr)

    def stats(self) -> dict:
        return json.loads(http_request(self.addr, "GET", "/__stats").body)

    def reset_stats(self):
        http_request(self.addr, "POST", "/__reset")

    def set_mode(self, query: str = ""):
        http_request(self.addr, "POST", "/__mode" + (("?" + query) if query else ""))


class Fusebox(Process):
    """build/fusebox on a YAML config (written to a temporary file) or on command-line arguments."""

    def __init__(self, config: str | None = None, args: list[str] | None = None, env: dict | None = None,
                 listeners: int | None = None, wrapper: list[str] | None = None):
        self.tmp = tempfile.TemporaryDirectory(prefix="fusebox-test-")
        self.config_path = None
        # wrapper: a command that ends by exec'ing its arguments (so the PID stays fusebox's).
        argv = (wrapper or []) + [FUSEBOX_BIN]
        if config is not None:
            self.config_path = os.path.join(self.tmp.name, "fusebox.yaml")
            Path(self.config_path).write_text(config)
            argv += ["--config", self.config_path]
        argv += args or []
        # Each instance gets its own breaker segment unless the test names one (to restart onto it).
        env = dict(env or {})
        if "FUSEBOX_SHM_NAME" not in env and not (config and re.search(r"^shm:", config, re.M)):
            env["FUSEBOX_SHM_NAME"] = f"fusebox-test-{os.getpid()}-{next(_instances)}"
        self.shm_name = env.get("FUSEBOX_SHM_NAME")
        # And its own admin port: the default 127.0.0.1:9901 is one per host.
        if ("FUSEBOX_ADMIN_ADDRESS" not in env and "--admin" not in (args or [])
                and not (config and re.search(r"^admin:", config, re.M))):
            env["FUSEBOX_ADMIN_ADDRESS"] = "127.0.0.1:0"
        super().__init__(argv, env)
        self.addrs: dict[str, str] = {}
        expected = listeners if listeners is not None else (config.count("- name:") and _count_listeners(config) if config else 1)
        try:
            for _ in range(max(expected, 1)):
                m = self.wait_for_line(_LISTENING, start=len(self.addrs) and self._line_after_last_listening())
                self.addrs[m.group(1)] = m.group(2)
        except BaseException:
            self.stop()  # no test holds it yet, so no cleanup would stop it
            raise
        self.addr = next(iter(self.addrs.values()))
        # The master logs its admin address before its listeners.
        m = self.wait_for_line(_ADMIN_LISTENING, timeout=1)
        self.admin_addr = m.group(1)
        # The master logs its listeners before it forks: ready means a worker exists too (a
        # connection made before would wait in the accept queue, but tests look at the workers).
        deadline = time.monotonic() + 10
        while not self.worker_pids() and time.monotonic() < deadline and self.proc.poll() is None:
            time.sleep(0.01)

    def _line_after_last_listening(self) -> int:
        with self._cond:
            last = 0
            for i, line in enumerate(self.lines):
                if _LISTENING.search(line):
                    last = i + 1
            return last

    def write_config(self, config: str):
        Path(self.config_path).write_text(config)

    def worker_pids(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.pid)], capture_output=True, text=True).stdout
        return sorted(int(p) for p in out.split())

    def stop(self, timeout: float = 10.0, keep_segment: bool = False):
        rc = super().stop(timeout)
        self.tmp.cleanup()
        if self.shm_name and not keep_segment:
            Path("/dev/shm", self.shm_name).unlink(missing_ok=True)
        return rc


def _count_listeners(config: str) -> int:
    """Listeners in a YAML config written the way the tests write them: one `address:` per listener
    under `listeners:` (the admin address is written inline, `admin: { address: ... }`)."""
    section = config.split("listeners:", 1)[1].split("clusters:", 1)[0] if "listeners:" in config else ""
    return len(re.findall(r"^\s+(?:- )?address:", section, re.M))


def config_for(upstream_addr: str, listener: str = "", cluster: str = "", top: str = "") -> str:
    """A one-listener, one-cluster config on port 0; extra YAML lines for the listener, the cluster
    and the top level are indented for you."""

    def indent(text: str, n: int) -> str:
        # Nested blocks keep their shape: only the common indentation is replaced.
        lines = textwrap.dedent(text.strip("\n")).splitlines()
        return "".join(" " * n + line.rstrip() + "\n" for line in lines if line.strip())

    return (
        "workers: 1\n"
        + indent(top, 0)
        + "listeners:\n"
        + "  - name: main\n"
        + "    address: 127.0.0.1:0\n"
        + "    routes: [ { prefix: /, cluster: up } ]\n"
        + indent(listener, 4)
        + "clusters:\n"
        + "  - name: up\n"
        + f"    endpoints: [ {upstream_addr} ]\n"
        + indent(cluster, 4)
    )


# ---------------------------------------------------------------- clients


class Response:
    def __init__(self, status: int, reason: str, headers: list[tuple[str, str]], body: bytes, raw_head: bytes):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.raw_head = raw_head

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<Response {self.status} {self.headers} {self.body[:200]!r}>"


class Connection:
    """A raw client connection: send exact bytes, read exact responses. http.client hides too much
    (it fixes up what we want to send wrong on purpose, and pools connections)."""

    def __init__(self, addr: str, timeout: float = 10.0):
        host, port = split_addr(addr)
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""

    def send(self, data: bytes):
        self.sock.sendall(data)

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        if not chunk:
            return False
        self.buf += chunk
        return True

    def _read_until(self, marker: bytes) -> bytes:
        while marker not in self.buf:
            if not self._fill():
                raise EOFError(f"connection closed before {marker!r}; got {self.buf[:300]!r}")
        head, self.buf = self.buf.split(marker, 1)
        return head

    def _read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise EOFError(f"connection closed with {len(self.buf)} of {n} bytes")
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_response(self, head_request: bool = False) -> Response:
        head = self._read_until(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        version, status, *reason = lines[0].split(" ", 2)
        headers = [tuple(x.strip() for x in line.split(":", 1)) for line in lines[1:] if line]
        r = Response(int(status), reason[0] if reason else "", headers, b"", head)
        code = int(status)
        if head_request or code in (204, 304) or 100 <= code < 200:
            return r
        te = (r.header("transfer-encoding") or "").lower()
        if "chunked" in te:
            body = b""
            while True:
                size_line = self._read_until(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    self._read_until(b"\r\n")  # no trailers in our tests
                    break
                body += self._read_exact(size)
                self._read_exact(2)
            r.body = body
        elif r.header("content-length") is not None:
            r.body = self._read_exact(int(r.header("content-length")))
        else:
            while self._fill():
                pass
            r.body, self.buf = self.buf, b""
        return r

    def request(self, method: str, path: str, headers: dict | None = None, body: bytes = b"") -> Response:
        h = {"Host": "test"}
        if body:
            h["Content-Length"] = str(len(body))
        h.update(headers or {})
        self.send(_head(method, path, h) + body)
        return self.read_response(head_request=(method == "HEAD"))

    def closed_by_peer(self, timeout: float = 5.0) -> bool:
        """True if the server closes the connection (EOF or reset) within timeout, with nothing more sent."""
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
                self.buf += data
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _head(method: str, path: str, headers: dict) -> bytes:
    return (f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode(
        "latin-1"
    )


def http_request(addr: str, method: str = "GET", path: str = "/", headers: dict | None = None, body: bytes = b"",
                 timeout: float = 10.0) -> Response:
    """One request on a new connection."""
    with Connection(addr, timeout) as c:
        return c.request(method, path, headers, body)


def raw_exchange(addr: str, data: bytes, timeout: float = 5.0) -> bytes:
    """Sends bytes, returns everything received until the server closes (or timeout)."""
    host, port = split_addr(addr)
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        except (socket.timeout, ConnectionResetError):
            pass
        return out


class TestCase(unittest.TestCase):
    """Stops every process a test started, by PID, even when the test fails."""

    def start_upstream(self) -> Upstream:
        u = Upstream()
        self.addCleanup(u.stop)
        return u

    def start_fusebox(self, config: str | None = None, **kwargs) -> Fusebox:
        f = Fusebox(config, **kwargs)
        self.addCleanup(f.stop)
        return f


def main():
    unittest.main(verbosity=2)
