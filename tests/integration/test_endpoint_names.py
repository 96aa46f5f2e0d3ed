"""Endpoints given by name: resolved with uv_getaddrinfo in each worker; a name with no address
answers 502 upstream_unresolved at once; round robin passes over it to the endpoints that have an
address; a name with both ::1 and 127.0.0.1 (as localhost has on most hosts) reaches a service
that listens on IPv4 alone."""

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))
from harness import Connection, TestCase, config_for, main  # noqa: E402

# RFC 6761: names under .invalid never resolve.
NO_SUCH_NAME = "no-such-host.invalid"


class EndpointNames(TestCase):
    def setUp(self):
        self.up = self.start_upstream()

    def get(self, fb, n=1):
        with Connection(fb.addr, timeout=5) as c:
            return [c.request("GET", f"/names/{i}") for i in range(n)]

    def test_a_name_is_resolved_and_proxied_to(self):
        name = f"localhost:{self.up.port}"
        fb = self.start_fusebox(config_for(name))
        fb.wait_for_line(rf"resolved {name}")
        for r in self.get(fb, 3):
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.body, b"ok\n")
        self.assertEqual(self.up.stats()["requests"], 3)

    def test_a_name_with_no_address_answers_502_at_once(self):
        fb = self.start_fusebox(config_for(f"{NO_SUCH_NAME}:80"))
        with Connection(fb.addr, timeout=5) as c:
            for _ in range(2):  # the connection stays usable after the answer
                start = time.monotonic()
                r = c.request("GET", "/")
                self.assertLess(time.monotonic() - start, 2.0)
                self.assertEqual(r.status, 502, r)
                self.assertEqual(r.header("content-type"), "application/json")
                self.assertEqual(r.json()["error"], "upstream_unresolved")
                self.assertIn(NO_SUCH_NAME, r.json()["message"])
                self.assertNotEqual((r.header("connection") or "").lower(), "close", r)

    def test_round_robin_passes_over_a_name_with_no_address(self):
        fb = self.start_fusebox(config_for(f"{NO_SUCH_NAME}:80, {self.up.addr}"))
        responses = self.get(fb, 6)
        self.assertEqual([r.status for r in responses], [200] * 6, responses)
        self.assertEqual(self.up.stats()["requests"], 6)

    def test_a_dual_stack_name_reaches_an_ipv4_only_service(self):
        # A private mount namespace whose /etc/hosts lists ::1 before 127.0.0.1 for one name:
        # getaddrinfo returns ::1 first, where nothing listens (the upstream is on 127.0.0.1).
        if shutil.which("unshare") is None or os.geteuid() != 0:
            self.skipTest("needs unshare (util-linux) and root for a private mount namespace")
        probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True, text=True, timeout=10)
        if probe.returncode != 0:
            self.skipTest(f"cannot create a mount namespace here: {probe.stderr.strip()}")
        tmp = tempfile.TemporaryDirectory(prefix="fusebox-hosts-")
        self.addCleanup(tmp.cleanup)
        hosts = Path(tmp.name, "hosts")
        hosts.write_text("127.0.0.1 localhost\n::1 dual-stack.test\n127.0.0.1 dual-stack.test\n")
        wrapper = ["unshare", "--mount", "sh", "-c", f'mount --bind {hosts} /etc/hosts && exec "$0" "$@"']
        name = f"dual-stack.test:{self.up.port}"
        fb = self.start_fusebox(config_for(name), wrapper=wrapper)
        fb.wait_for_line(rf"resolved {name}")
        for r in self.get(fb, 3):
            self.assertEqual(r.status, 200, r)
        self.assertEqual(self.up.stats()["requests"], 3)


if __name__ == "__main__":
    main()
