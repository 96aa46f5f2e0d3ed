#!/usr/bin/env python3
"""ab.py: interleaved proxy benchmark, for changes smaller than the host's noise.

peers.sh runs each target once, one after the other; on a shared 2-core machine the
host's own load drifts by tens of percent between its rows, which hides a 5% change.
This runs the same targets in rounds (A B C A B C ...), so drift hits every target
alike, and reports the median of the rounds. Beside req/s and p99 it reports what each
request cost the proxy's processes in CPU time (user and system, from /proc) and how
often they slept: figures that move less with the host's noise than req/s does.

    tools/bench/ab.py [--rounds 5] [--conns 16,256] [--duration 5] [--path /]
                      [--targets haproxy,nginx,fusebox] [--fusebox build/fusebox]
                      [--fusebox-b OTHER_BINARY] [--fusebox-args "..."]

Targets: direct (the nginx upstream alone), haproxy, nginx (reverse proxy), fusebox,
fusebox-b (a second fusebox binary, for A/B of two builds). The upstream and the peer
configurations are those of ../shared/bench/peers.sh. Every process it starts runs in
its own process group on 127.0.0.1 and is stopped by that group when it exits.
"""

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HOST = "127.0.0.1"
PORTS = {"direct": 18080, "haproxy": 18081, "nginx": 18082, "fusebox": 18084, "fusebox-b": 18085}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def nginx_head(tmp, name, log_level):
    """What both nginx instances share: one worker, their own pid, log and temp paths, no access log."""
    temp = " ".join(f"{kind}_temp_path {tmp}/t/{name}-{kind};" for kind in ("client_body", "proxy", "fastcgi",
                                                                            "uwsgi", "scgi"))
    return f"""
daemon off; worker_processes 1; pid {tmp}/{name}.pid; error_log {tmp}/{name}.log {log_level};
events {{ worker_connections 4096; }}
http {{
    {temp}
    access_log off; keepalive_requests 1000000;"""


def upstream_conf(tmp):
    body_4k = "x" * 3999  # nginx refuses a config token of 4 KiB or more
    return nginx_head(tmp, "upstream", "warn") + f"""
    default_type text/plain;
    server {{
        listen {HOST}:{PORTS['direct']};
        location / {{ return 200 "ok\\n"; }}
        location = /4k {{ return 200 "{body_4k}\\n"; }}
    }}
}}
"""


def nginx_proxy_conf(tmp):
    return nginx_head(tmp, "nginx", "crit") + f"""
    upstream up {{ server {HOST}:{PORTS['direct']}; keepalive 256; keepalive_requests 1000000; }}
    server {{
        listen {HOST}:{PORTS['nginx']};
        location / {{ proxy_pass http://up; proxy_http_version 1.1;
                     proxy_set_header Connection ""; proxy_connect_timeout 2s; }}
    }}
}}
"""


def haproxy_cfg():
    return f"""
global
    nbthread 1
    maxconn 4096
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 30s
frontend peer
    bind {HOST}:{PORTS['haproxy']}
    default_backend upstream
backend upstream
    http-reuse always
    server up {HOST}:{PORTS['direct']} check inter 2s fall 3 rise 2 observe layer7 error-limit 10 on-error mark-down
"""


class Processes:
    """Every process started here, each the leader of its own process group."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.started = {}

    def start(self, name, argv, env=None):
        log = open(os.path.join(self.tmp, name + ".out"), "wb")
        self.started[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                              stdin=subprocess.DEVNULL, start_new_session=True,
                                              env=env)
        wait_listening(name, PORTS[name], self.started[name], self.tmp)

    def pgid(self, name):
        return self.started[name].pid

    def stop_all(self):
        for name, proc in reversed(list(self.started.items())):
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=5)
            except ProcessLookupError:
                pass
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def wait_listening(name, port, proc, tmp):
    for _ in range(150):
        try:
            socket.create_connection((HOST, port), timeout=0.2).close()
            return
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.1)
    with open(os.path.join(tmp, name + ".out"), errors="replace") as out:
        sys.exit(f"ab: {name} is not listening on :{port}:\n{out.read()[-2000:]}")


def group_members(pgid):
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
                if int(fields[2]) == pgid:
                    members.append(int(entry))
            except (OSError, IndexError):
                pass
    return members


def group_usage(pgid):
    """(user seconds, system seconds, voluntary context switches) summed over a group."""
    user = system = sleeps = 0
    for pid in group_members(pgid):
        try:
            with open(f"/proc/{pid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            user += int(fields[11]) / CLOCK_TICKS
            system += int(fields[12]) / CLOCK_TICKS
            with open(f"/proc/{pid}/status") as status:
                sleeps += int(re.search(r"^voluntary_ctxt_switches:\s+(\d+)", status.read(), re.M)[1])
        except (OSError, TypeError):
            pass
    return user, system, sleeps


def rss_mib(pgid):
    total = 0
    for pid in group_members(pgid):
        try:
            with open(f"/proc/{pid}/status") as status:
                total += int(re.search(r"^VmRSS:\s+(\d+)", status.read(), re.M)[1])
        except (OSError, TypeError):
            pass
    return total / 1024


def parse_wrk(text):
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", text)[1])
    value, unit = re.search(r"\s99%\s+([\d.]+)(us|ms|s)", text).groups()
    p99_ms = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    errors = re.search(r"Socket errors:.*|Non-2xx.*", text)
    return rate, p99_ms, errors[0] if errors else ""


def run_wrk(port, conns, duration, path):
    argv = ["wrk", "-t1", f"-c{conns}", f"-d{duration}s", "--latency", f"http://{HOST}:{port}{path}"]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def measure(procs, target, conns, args):
    pgid = procs.pgid(target) if target != "direct" else None
    before = group_usage(pgid) if pgid else (0, 0, 0)
    out = run_wrk(PORTS[target], conns, args.duration, args.path)
    after = group_usage(pgid) if pgid else (0, 0, 0)
    rate, p99, errors = parse_wrk(out)
    requests = rate * args.duration
    per = [(a - b) / requests for a, b in zip(after, before)]
    return {"rate": rate, "p99": p99, "usr_us": per[0] * 1e6, "sys_us": per[1] * 1e6,
            "sleeps": per[2], "errors": errors}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--conns", default="16,256")
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--path", default="/")
    parser.add_argument("--targets", default="haproxy,nginx,fusebox")
    parser.add_argument("--fusebox", default="build/fusebox")
    parser.add_argument("--fusebox-b", default="")
    parser.add_argument("--fusebox-args", default="")
    args = parser.parse_args()
    targets = args.targets.split(",")
    if args.fusebox_b and "fusebox-b" not in targets:
        targets.append("fusebox-b")
    for tool in ("nginx", "haproxy", "wrk"):
        if not shutil.which(tool):
            sys.exit(f"ab: {tool} is not installed (apt-get install {tool})")

    tmp = tempfile.mkdtemp(prefix="fusebox-ab-")
    os.makedirs(os.path.join(tmp, "t"))
    procs = Processes(tmp)
    try:
        for name, text in (("upstream.conf", upstream_conf(tmp)), ("nginx.conf", nginx_proxy_conf(tmp)),
                           ("haproxy.cfg", haproxy_cfg())):
            with open(os.path.join(tmp, name), "w") as f:
                f.write(text)
        procs.start("direct", ["nginx", "-e", f"{tmp}/upstream.log", "-c", f"{tmp}/upstream.conf"])
        if "haproxy" in targets:
            procs.start("haproxy", ["haproxy", "-f", f"{tmp}/haproxy.cfg"])
        if "nginx" in targets:
            procs.start("nginx", ["nginx", "-e", f"{tmp}/nginx.log", "-c", f"{tmp}/nginx.conf"])
        for name, binary in (("fusebox", args.fusebox), ("fusebox-b", args.fusebox_b)):
            if name in targets:
                admin = f"{HOST}:{PORTS[name] + 1800}"
                procs.start(name, [binary, "--listen", f"{HOST}:{PORTS[name]}", "--upstream",
                                   f"{HOST}:{PORTS['direct']}", "--workers", "1", "--admin", admin]
                            + args.fusebox_args.split())

        for conns in [int(c) for c in args.conns.split(",")]:
            results = {t: [] for t in targets}
            for target in targets:  # warm every pool once, unmeasured
                run_wrk(PORTS[target], conns, 1, args.path)
            print(f"\n== {conns} connections, {args.path}, {args.rounds} rounds of {args.duration} s")
            print(f"{'round':>5} {'target':<10} {'req/s':>9} {'p99 ms':>7} {'usr us':>7} "
                  f"{'sys us':>7} {'sleeps':>7}  errors")
            for round_number in range(1, args.rounds + 1):
                for target in targets:
                    r = measure(procs, target, conns, args)
                    results[target].append(r)
                    print(f"{round_number:>5} {target:<10} {r['rate']:>9.0f} {r['p99']:>7.2f} "
                          f"{r['usr_us']:>7.2f} {r['sys_us']:>7.2f} {r['sleeps']:>7.3f}  {r['errors']}",
                          flush=True)
            print(f"{'median':>5} {'target':<10} {'req/s':>9} {'p99 ms':>7} {'usr us':>7} "
                  f"{'sys us':>7} {'sleeps':>7}  {'/haproxy':>8} {'/nginx':>7} {'RSS MiB':>7}")
            med = {t: {k: statistics.median(r[k] for r in results[t])
                       for k in ("rate", "p99", "usr_us", "sys_us", "sleeps")} for t in targets}
            for target in targets:
                m = med[target]
                ratio = {p: (f"{m['rate'] / med[p]['rate']:.3f}" if p in med else "-")
                         for p in ("haproxy", "nginx")}
                rss = f"{rss_mib(procs.pgid(target)):.1f}" if target != "direct" else "-"
                print(f"{'':>5} {target:<10} {m['rate']:>9.0f} {m['p99']:>7.2f} {m['usr_us']:>7.2f} "
                      f"{m['sys_us']:>7.2f} {m['sleeps']:>7.3f}  {ratio['haproxy']:>8} "
                      f"{ratio['nginx']:>7} {rss:>7}")
    finally:
        procs.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
