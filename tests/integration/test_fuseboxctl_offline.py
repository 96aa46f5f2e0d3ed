"""fuseboxctl, the admin CLI, where no fusebox is needed: usage errors (exit 2), an admin address
nobody answers on (exit 3), and a canned admin API served from this process (http.server on a port
the kernel picks) for what fuseboxctl prints, --json, the token, error statuses (exit 1) and the
ways an HTTP body can be framed. Against a real fusebox it is tested elsewhere.

Exit codes (tools/fuseboxctl/main.cc): 0 ok, 1 fusebox refused, 2 usage error, 3 unreachable.
"""

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
from harness import FUSEBOX_BIN, TestCase, main  # noqa: E402

# Built next to fusebox (tools/fuseboxctl/CMakeLists.txt).
FUSEBOXCTL_BIN = os.environ.get("FUSEBOXCTL_BIN", str(Path(FUSEBOX_BIN).parent / "fuseboxctl"))

USAGE_LINE = ("usage: fuseboxctl [--admin URL] [--token T] [--json] status | show NAME | open NAME | close NAME"
              " | reset NAME | disable NAME | metrics-only NAME | config")

# The answers of docs/admin-api.md, with the fields in its order.
PAYMENTS = {
    "cluster": "payments",
    "state": "open",
    "generation": 7,
    "window": {"calls": 40, "failures": 25, "slow": 0, "failure_rate": 62.5, "slow_rate": 0.0},
    "consecutive_failures": 0,
    "trips_in_a_row": 1,
    "half_open_permits_used": 0,
    "next_trial_in_ms": 28400,
    "since": "2026-11-24T14:03:11.250Z",
    "last_reason": "failure rate 62% ≥ 50% over 40 calls",
}
SEARCH = {
    "cluster": "search-v2",
    "state": "closed",
    "generation": 0,
    "window": {"calls": 1234, "failures": 3, "slow": 12, "failure_rate": 0.2, "slow_rate": 1.0},
    "consecutive_failures": 1,
    "trips_in_a_row": 0,
    "half_open_permits_used": 0,
    "next_trial_in_ms": None,
    "since": None,
    "last_reason": None,
}
BREAKERS = {"breakers": [PAYMENTS, SEARCH]}
PAYMENTS_DETAILS = {
    **PAYMENTS,
    "config": {
        "consecutive_failures": 5,
        "failure_rate": {"threshold": 50, "minimum_calls": 20, "window": "10s"},
        "slow_calls": {"threshold": 0, "duration": "2s"},
        "failure_statuses": ["500-599", "429"],
        "open": {"base": "30s", "multiplier": 2, "max": "5m", "jitter": 0.1},
        "half_open": {"permits": 3, "successes": 3},
        "mode": "normal",
    },
    "transitions": [
        {"at": "2026-11-24T13:58:02.004Z", "from": "half_open", "to": "closed", "why": "trial_successes",
         "reason": "3 of 3 trial calls succeeded", "generation": 6},
        {"at": "2026-11-24T14:03:11.250Z", "from": "closed", "to": "open", "why": "failure_rate",
         "reason": "failure rate 62% ≥ 50% over 40 calls", "generation": 7},
    ],
}
CONFIG = {
    "generation": 3,
    "source": "/etc/fusebox.yaml",
    "config": {"workers": 2, "admin": {"address": "127.0.0.1:9901"},
               "clusters": [{"name": "payments", "endpoints": ["10.0.0.7:8080"], "connect_timeout": "250ms"}]},
}
UNAUTHORIZED = {"error": "unauthorized", "message": "this call needs Authorization: Bearer <the admin token>"}


def clean_env(**overrides: str) -> dict:
    """This environment without the runner's FUSEBOX_ADMIN_* (they must not leak in), plus `overrides`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUSEBOX_ADMIN_")}
    env.update(overrides)
    return env


def run_ctl(*args: str, env: dict | None = None, timeout: float = 30.0) -> subprocess.CompletedProcess:
    return subprocess.run([FUSEBOXCTL_BIN, *args], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          env=env or clean_env(), timeout=timeout)


def pretty(value) -> str:
    """What --json prints: the server's JSON, its key order kept, indented by 2, UTF-8 as is."""
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


class Answer:
    """framing: "length" (Content-Length), "chunked" (small chunks with extensions and a trailer,
    dribbled a few bytes per write), or "close" (neither: the body ends where the server closes).
    keep_open: after answering, keep the connection for another request despite Connection: close."""

    def __init__(self, status: int, body, framing: str = "length", keep_open: bool = False):
        self.status = status
        self.data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
        self.framing = framing
        self.keep_open = keep_open


class CannedAdmin:
    """An admin API stand-in on 127.0.0.1: answers (method, path) from `answers`, 404 not_found
    otherwise, and records every request it gets."""

    def __init__(self):
        self.answers: dict[tuple[str, str], Answer] = {}
        self.requests: list[dict] = []
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _CannedHandler)
        self.server.admin = self
        self.addr = "127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, method: str, path: str, status: int = 200, body=None, **kwargs):
        self.answers[(method, path)] = Answer(status, body, **kwargs)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class _CannedHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # so that Content-Length and chunked mean what they say

    def log_message(self, *args):
        pass

    def do_GET(self):
        self._answer()

    def do_POST(self):
        self._answer()

    def _answer(self):
        admin = self.server.admin
        length = int(self.headers.get("Content-Length") or 0)
        admin.requests.append({"method": self.command, "path": self.path,
                               "headers": {k.lower(): v for k, v in self.headers.items()},
                               "body": self.rfile.read(length)})
        a = admin.answers.get((self.command, self.path),
                              Answer(404, {"error": "not_found", "message": "no such path"}))
        self.send_response(a.status)
        self.send_header("Content-Type", "application/json")
        if a.framing == "chunked":
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            encoded = b""
            for i in range(0, len(a.data), 7):
                piece = a.data[i:i + 7]
                encoded += b"%x;piece=%d\r\n%s\r\n" % (len(piece), i, piece)
            encoded += b"0\r\nX-Checksum: none\r\n\r\n"
            for i in range(0, len(encoded), 5):  # boundaries anywhere: inside sizes, CRLFs, characters
                self.wfile.write(encoded[i:i + 5])
                self.wfile.flush()
                time.sleep(0.001)
        else:
            if a.framing == "length":
                self.send_header("Content-Length", str(len(a.data)))
            else:
                self.close_connection = True
            self.end_headers()
            self.wfile.write(a.data)
        if a.keep_open:
            self.close_connection = False


class Usage(TestCase):
    def assert_usage_error(self, r: subprocess.CompletedProcess, message: str):
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        lines = r.stderr.splitlines()
        self.assertEqual(lines[0], f"fuseboxctl: {message}", r.stderr)
        self.assertEqual(lines[1], USAGE_LINE)
        self.assertEqual(r.stdout, "")

    def test_no_command_exits_2_with_the_usage(self):
        self.assert_usage_error(run_ctl(), "A subcommand is required")

    def test_an_unknown_command_exits_2_naming_it(self):
        self.assert_usage_error(run_ctl("--json", "frobnicate", "payments"), '"frobnicate" is not a command')

    def test_an_unknown_option_exits_2_naming_it(self):
        self.assert_usage_error(run_ctl("--jsn"), '"--jsn" is not an option')
        self.assert_usage_error(run_ctl("status", "--jsn"), "The following argument was not expected: --jsn")

    def test_show_without_a_name_exits_2(self):
        self.assert_usage_error(run_ctl("show"), "NAME is required")
        self.assert_usage_error(run_ctl("open", "--token", "t"), "NAME is required")

    def test_a_bad_admin_url_exits_2_and_sends_nothing(self):
        admin = CannedAdmin()
        self.addCleanup(admin.stop)
        port = admin.addr.rsplit(":", 1)[1]
        cases = {
            f"https://127.0.0.1:{port}": "only http:// is supported (the admin API speaks no TLS)",
            "127.0.0.1": "has no port (write host:port or http://host:port, e.g. 127.0.0.1:9901)",
            "http://127.0.0.1:99999": 'has a bad port "99999" (a number from 1 to 65535)',
            "127.0.0.1:0": 'has a bad port "0" (a number from 1 to 65535)',
            f"http://127.0.0.1:{port}/admin": "has a path; write only the host and port"
                                              " (write host:port or http://host:port, e.g. 127.0.0.1:9901)",
            f"::1:{port}": "is ambiguous: write an IPv6 address in brackets, e.g. [::1]:9901",
            f"bad_host!:{port}": 'has a bad host "bad_host!" (a DNS name, an IPv4 address, or [IPv6])',
        }
        for url, message in cases.items():
            with self.subTest(url=url):
                self.assert_usage_error(run_ctl("--admin", url, "status"), f'--admin "{url}": {message}')
        self.assertEqual(admin.requests, [])

    def test_a_bad_fusebox_admin_address_exits_2_naming_the_variable(self):
        r = run_ctl("status", env=clean_env(FUSEBOX_ADMIN_ADDRESS="localhost"))
        self.assert_usage_error(r, 'environment FUSEBOX_ADMIN_ADDRESS "localhost": has no port'
                                   " (write host:port or http://host:port, e.g. 127.0.0.1:9901)")

    def test_a_token_with_a_newline_exits_2_instead_of_being_sent(self):
        r = run_ctl("--admin", "127.0.0.1:1", "--token", "s3cret\n", "open", "payments")
        self.assert_usage_error(r, "--token: the token holds a control character (a newline?); pass the token alone")

    def test_help_lists_every_command_and_exits_0(self):
        r = run_ctl("--help")
        self.assertEqual(r.returncode, 0, r.stderr)
        commands = r.stdout.split("Subcommands:\n", 1)[1].split("\n\n", 1)[0]
        listed = [line.split()[0] for line in commands.splitlines()]
        self.assertEqual(listed, ["status", "show", "open", "close", "reset", "disable", "metrics-only", "config"])
        for flag in ("--admin URL", "--token T", "--json", "--version"):
            self.assertIn(flag, r.stdout)

    def test_version_is_fuseboxs_version(self):
        r = run_ctl("--version")
        self.assertEqual(r.returncode, 0, r.stderr)
        fusebox = subprocess.run([FUSEBOX_BIN, "--version"], capture_output=True, text=True, timeout=10)
        self.assertRegex(r.stdout, r"^fuseboxctl \d+\.\d+\.\d+ \(\w+\)\n$")
        self.assertEqual(r.stdout.split(" ", 1)[1], fusebox.stdout.split(" ", 1)[1])


class Unreachable(TestCase):
    def setUp(self):
        # Bound but not listening: the kernel refuses connections to this port for as long as we
        # hold it, and nobody else can take it meanwhile.
        self.closed = socket.socket()
        self.addCleanup(self.closed.close)
        self.closed.bind(("127.0.0.1", 0))
        self.closed_addr = "127.0.0.1:%d" % self.closed.getsockname()[1]

    def test_a_port_nobody_listens_on_exits_3_with_the_message(self):
        r = run_ctl("--admin", f"http://{self.closed_addr}", "status")
        self.assertEqual(r.returncode, 3, r.stdout + r.stderr)
        self.assertEqual(r.stderr, f"fuseboxctl: cannot reach fusebox admin at {self.closed_addr}: Connection refused;"
                                   " is fusebox running, and is --admin right?\n")
        self.assertEqual(r.stdout, "")

    def test_fusebox_admin_address_is_where_it_connects_without_admin(self):
        r = run_ctl("reset", "payments", env=clean_env(FUSEBOX_ADMIN_ADDRESS=self.closed_addr))
        self.assertEqual(r.returncode, 3, r.stdout + r.stderr)
        self.assertIn(f"cannot reach fusebox admin at {self.closed_addr}: Connection refused;", r.stderr)

    def test_a_server_that_never_answers_exits_3_after_10_s(self):
        with socket.socket() as silent:
            silent.bind(("127.0.0.1", 0))
            silent.listen()  # the kernel completes the handshake; nobody ever accepts or answers
            addr = "127.0.0.1:%d" % silent.getsockname()[1]
            start = time.monotonic()
            r = run_ctl("--admin", addr, "status")
            elapsed = time.monotonic() - start
        self.assertEqual(r.returncode, 3, r.stdout + r.stderr)
        self.assertIn(f"cannot reach fusebox admin at {addr}: no answer within 10 s;", r.stderr)
        self.assertGreater(elapsed, 9.5)
        self.assertLess(elapsed, 15)

    def test_a_reply_that_is_not_http_exits_3_at_once(self):
        with socket.socket() as ssh:
            ssh.bind(("127.0.0.1", 0))
            ssh.listen()
            addr = "127.0.0.1:%d" % ssh.getsockname()[1]

            def greet():
                conn, _ = ssh.accept()
                with conn:
                    conn.sendall(b"SSH-2.0-OpenSSH_9.2p1\r\n")
                    conn.recv(65536)  # and wait for the client to go

            t = threading.Thread(target=greet, daemon=True)
            t.start()
            start = time.monotonic()
            r = run_ctl("--admin", addr, "status")
            elapsed = time.monotonic() - start
            t.join(5)
        self.assertEqual(r.returncode, 3, r.stdout + r.stderr)
        self.assertEqual(r.stderr, f"fuseboxctl: cannot reach fusebox admin at {addr}: the answer is not HTTP"
                                   ' (it starts with "SSH-2.0-OpenSSH_9.2p1\\x0d\\x0a");'
                                   " is fusebox running, and is --admin right?\n")
        self.assertLess(elapsed, 5)


class CannedAnswers(TestCase):
    def setUp(self):
        self.admin = CannedAdmin()
        self.addCleanup(self.admin.stop)

    def ctl(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return run_ctl("--admin", self.admin.addr, *args, **kwargs)

    def test_status_prints_a_table_with_a_header_and_a_row_per_breaker(self):
        self.admin.answer("GET", "/admin/breakers", body=BREAKERS)
        r = self.ctl("status")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.splitlines(), [
            "CLUSTER    STATE   CALLS  FAILURES  SLOW  FAILURE%  NEXT TRIAL  REASON",
            "payments   open       40        25     0      62.5       28.4s  failure rate 62% ≥ 50% over 40 calls",
            "search-v2  closed   1234         3    12       0.2           -  -",
        ])
        self.assertTrue(r.stdout.endswith("-\n"))
        self.assertEqual([(q["method"], q["path"]) for q in self.admin.requests], [("GET", "/admin/breakers")])
        self.assertEqual(self.admin.requests[0]["headers"]["connection"], "close")
        self.assertEqual(self.admin.requests[0]["headers"]["host"], self.admin.addr)

    def test_status_json_prints_the_servers_json_pretty_in_its_order(self):
        self.admin.answer("GET", "/admin/breakers", body=BREAKERS)
        r = self.ctl("status", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout), BREAKERS)
        self.assertEqual(r.stdout, pretty(BREAKERS))

    def test_show_prints_the_breaker_its_config_and_its_transitions(self):
        self.admin.answer("GET", "/admin/breakers/payments", body=PAYMENTS_DETAILS)
        r = self.ctl("show", "payments")
        self.assertEqual(r.returncode, 0, r.stderr)
        breaker, config, transitions = r.stdout.split("\n\n")
        values = dict(line.split(":", 1) for line in breaker.splitlines())
        self.assertEqual({k: v.strip() for k, v in values.items()}, {
            "cluster": "payments", "state": "open", "generation": "7", "window.calls": "40",
            "window.failures": "25", "window.slow": "0", "window.failure_rate": "62.5", "window.slow_rate": "0.0",
            "consecutive_failures": "0", "trips_in_a_row": "1", "half_open_permits_used": "0",
            "next_trial_in_ms": "28400", "since": "2026-11-24T14:03:11.250Z",
            "last_reason": "failure rate 62% ≥ 50% over 40 calls"})
        self.assertEqual(breaker.splitlines()[0], "cluster:                payments")  # values aligned
        self.assertEqual(config,
                         "config.consecutive_failures:       5\n"
                         "config.failure_rate.threshold:     50\n"
                         "config.failure_rate.minimum_calls: 20\n"
                         "config.failure_rate.window:        10s\n"
                         "config.slow_calls.threshold:       0\n"
                         "config.slow_calls.duration:        2s\n"
                         "config.failure_statuses:           500-599, 429\n"
                         "config.open.base:                  30s\n"
                         "config.open.multiplier:            2\n"
                         "config.open.max:                   5m\n"
                         "config.open.jitter:                0.1\n"
                         "config.half_open.permits:          3\n"
                         "config.half_open.successes:        3\n"
                         "config.mode:                       normal")
        self.assertEqual(transitions,
                         "AT                        FROM       TO      REASON\n"
                         "2026-11-24T13:58:02.004Z  half_open  closed  3 of 3 trial calls succeeded\n"
                         "2026-11-24T14:03:11.250Z  closed     open    failure rate 62% ≥ 50% over 40 calls\n")

    def test_an_action_posts_with_the_token_from_the_flag_and_prints_the_new_state(self):
        self.admin.answer("POST", "/admin/breakers/payments/open", body={**PAYMENTS, "state": "forced_open",
                                                                         "action": "open"})
        r = self.ctl("--token", "s3cret", "open", "payments")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "payments: forced_open (open)\n")
        [request] = self.admin.requests
        self.assertEqual((request["method"], request["path"]), ("POST", "/admin/breakers/payments/open"))
        self.assertEqual(request["headers"]["authorization"], "Bearer s3cret")
        self.assertEqual(request["headers"]["content-length"], "0")
        self.assertEqual(request["body"], b"")

    def test_the_token_comes_from_fusebox_admin_token_and_the_flag_beats_it(self):
        self.admin.answer("POST", "/admin/breakers/payments/metrics-only",
                          body={**PAYMENTS, "state": "metrics_only", "action": "metrics-only"})
        r = self.ctl("metrics-only", "payments", env=clean_env(FUSEBOX_ADMIN_TOKEN="from-env"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "payments: metrics_only (metrics-only)\n")
        r = self.ctl("--token", "from-flag", "metrics-only", "payments", env=clean_env(FUSEBOX_ADMIN_TOKEN="from-env"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([q["headers"].get("authorization") for q in self.admin.requests],
                         ["Bearer from-env", "Bearer from-flag"])

    def test_reads_do_not_send_the_token(self):
        self.admin.answer("GET", "/admin/breakers", body=BREAKERS)
        r = self.ctl("--token", "s3cret", "status", env=clean_env(FUSEBOX_ADMIN_TOKEN="from-env"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("authorization", self.admin.requests[0]["headers"])

    def test_an_action_json_prints_the_answer(self):
        answer = {**SEARCH, "action": "reset"}
        self.admin.answer("POST", "/admin/breakers/search-v2/reset", body=answer)
        r = self.ctl("--json", "--token", "t", "reset", "search-v2")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout), answer)

    def test_401_exits_1_with_the_servers_message_and_the_hint(self):
        self.admin.answer("POST", "/admin/breakers/payments/close", status=401, body=UNAUTHORIZED)
        r = self.ctl("close", "payments")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertEqual(r.stderr, "fuseboxctl: this call needs Authorization: Bearer <the admin token>"
                                   " (HTTP 401 unauthorized)\n"
                                   "hint: pass --token or set FUSEBOX_ADMIN_TOKEN\n")
        self.assertEqual(r.stdout, "")
        self.assertNotIn("authorization", self.admin.requests[0]["headers"])

    def test_403_exits_1_with_the_hint_to_configure_a_token(self):
        self.admin.answer("POST", "/admin/breakers/payments/disable", status=403,
                          body={"error": "no_admin_token", "message": "no admin token is configured"})
        r = self.ctl("--token", "t", "disable", "payments")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertEqual(r.stderr, "fuseboxctl: no admin token is configured (HTTP 403 no_admin_token)\n"
                                   "hint: configure a token: set FUSEBOX_ADMIN_TOKEN or admin.token_file"
                                   " where fusebox runs\n")

    def test_an_unknown_cluster_exits_1_pointing_at_status_and_the_name_is_encoded(self):
        # "cluster/route" (as status lists a route's own breaker) asks for the route's name.
        self.admin.answer("GET", "/admin/breakers/no%20such", status=404,
                          body={"error": "unknown_cluster", "message": 'no cluster named "no such"'})
        r = self.ctl("show", "payments/no such")
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertEqual(r.stderr, 'fuseboxctl: no cluster named "no such" (HTTP 404 unknown_cluster)\n'
                                   "hint: see `fuseboxctl status` for the cluster names\n")

    def test_config_prints_the_config_object_and_with_json_the_whole_answer(self):
        self.admin.answer("GET", "/admin/config", body=CONFIG)
        r = self.ctl("config")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, pretty(CONFIG["config"]))
        r = self.ctl("config", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, pretty(CONFIG))

    def test_a_chunked_answer_is_read_whole(self):
        self.admin.answer("GET", "/admin/breakers", body=BREAKERS, framing="chunked")
        r = self.ctl("status", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout), BREAKERS)
        self.admin.answer("GET", "/admin/breakers/payments", body=PAYMENTS_DETAILS, framing="chunked")
        r = self.ctl("show", "payments")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("last_reason:            failure rate 62% ≥ 50% over 40 calls\n", r.stdout)

    def test_an_answer_without_a_length_ends_where_the_server_closes(self):
        self.admin.answer("GET", "/admin/breakers", body=BREAKERS, framing="close")
        r = self.ctl("status", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout), BREAKERS)

    def test_an_answer_is_complete_at_its_length_even_if_the_server_keeps_the_connection(self):
        for framing in ("length", "chunked"):
            with self.subTest(framing=framing):
                self.admin.answer("GET", "/admin/breakers", body=BREAKERS, framing=framing, keep_open=True)
                start = time.monotonic()
                r = self.ctl("status", "--json")
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(json.loads(r.stdout), BREAKERS)
                self.assertLess(time.monotonic() - start, 5)  # not the 10 s exchange timeout

    def test_an_answer_that_is_not_json_exits_3(self):
        self.admin.answer("GET", "/admin/breakers", body=b"<html>It works!</html>")
        r = self.ctl("status")
        self.assertEqual(r.returncode, 3, r.stdout + r.stderr)
        self.assertEqual(r.stderr, f"fuseboxctl: cannot reach fusebox admin at {self.admin.addr}: the answer to GET"
                                   ' /admin/breakers is not JSON ("<html>It works!</html>");'
                                   " is fusebox running, and is --admin right?\n")


def setUpModule():
    if not os.access(FUSEBOXCTL_BIN, os.X_OK):
        raise AssertionError(f"{FUSEBOXCTL_BIN}: not built (tools/fuseboxctl; build with tools/build)")


if __name__ == "__main__":
    main()
