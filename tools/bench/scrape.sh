#!/usr/bin/env bash
# tools/bench/scrape.sh: how long a /metrics scrape takes with many clusters configured.
#
#   tools/bench/scrape.sh [CLUSTERS] [SCRAPES]      (defaults: 1000 clusters, 200 scrapes)
#
# Writes a config with CLUSTERS clusters (each with its own route on one listener, all pointing at
# one fault-injecting upstream), starts fusebox with 2 workers on loopback ports it picks, sends a
# request through every route (so every series has values to sum), then times SCRAPES scrapes
# with curl (connect + request + whole body) and prints the median, p99 and max, the body size
# and the number of samples. Stops what it started, by PID, and removes its segment.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
readonly CLUSTERS=${1:-1000}
readonly SCRAPES=${2:-200}
[[ -x build/fusebox ]] || tools/build

tmp=$(mktemp -d)
shm="fusebox-scrape-bench-$$"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp" "/dev/shm/$shm"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
up_port=$(free_port)
listen_port=$(free_port)
admin_port=$(free_port)

python3 tools/fault_upstream.py --listen "127.0.0.1:$up_port" --quiet &
pids+=($!)

{
  echo "workers: 2"
  echo "admin: { address: 127.0.0.1:$admin_port }"
  echo "shm: { name: $shm, max_breakers: $(( CLUSTERS + 24 )) }"
  echo "listeners:"
  echo "  - name: bench"
  echo "    address: 127.0.0.1:$listen_port"
  echo "    routes:"
  for ((i = 0; i < CLUSTERS; i++)); do echo "      - { prefix: /c$i/, cluster: c$i }"; done
  echo "clusters:"
  for ((i = 0; i < CLUSTERS; i++)); do echo "  - { name: c$i, endpoints: [ 127.0.0.1:$up_port ] }"; done
} >"$tmp/fusebox.yaml"

build/fusebox --config "$tmp/fusebox.yaml" 2>"$tmp/fusebox.log" &
pids+=($!)
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$admin_port/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fs "http://127.0.0.1:$admin_port/readyz" >/dev/null || { cat "$tmp/fusebox.log"; exit 1; }

# One request per route, over keep-alive connections (curl reuses one connection for many URLs).
urls=()
for ((i = 0; i < CLUSTERS; i++)); do urls+=("http://127.0.0.1:$listen_port/c$i/"); done
printf '%s\n' "${urls[@]}" | xargs -n 200 curl -s >/dev/null

curl -s "http://127.0.0.1:$admin_port/metrics" >"$tmp/scrape.txt"
samples=$(grep -vc '^#' "$tmp/scrape.txt")
bytes=$(wc -c <"$tmp/scrape.txt")
for ((i = 0; i < SCRAPES; i++)); do
  curl -s -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$admin_port/metrics"
done | sort -n >"$tmp/times.txt"
python3 - "$tmp/times.txt" "$CLUSTERS" "$samples" "$bytes" <<'EOF'
import sys
t = [float(x) * 1000 for x in open(sys.argv[1])]
n = len(t)
print(f"scrape with {sys.argv[2]} clusters: {sys.argv[3]} samples, {int(sys.argv[4]) / 1e6:.2f} MB; "
      f"{n} scrapes: median {t[n // 2]:.1f} ms, p99 {t[min(n - 1, int(n * 0.99))]:.1f} ms, max {t[-1]:.1f} ms")
EOF
