#!/usr/bin/env bash
# tools/bench/chaos.sh: ../shared/bench/chaos.sh with fusebox among the targets, on the breaker
# configuration in tools/bench/chaos/fusebox.yaml (read it for why). Each run gets its own
# shared-memory segment, named from chaos.sh's per-run CONFIG_DIR, so no breaker state carries
# over between runs. Its log goes through tools/bench/chaos/events.py, so that the breaker's
# transitions show in the report's events column. Environment knobs pass through (FAULTS,
# TARGETS, RATE, ...).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
[[ -x build/fusebox ]] || tools/build
export CONFIG_DIR=$PWD/tools/bench/chaos
export PROXY_NAME=${PROXY_NAME:-fusebox}
# The run's directory is unique (chaos.sh's temporary directory, then fault and target), its last
# part alone is not: both go into the segment's name, which the run removes when fusebox exits.
export PROXY_CMD='name="fusebox-chaos-$(basename "$(dirname "$CONFIG_DIR")")-$(basename "$CONFIG_DIR")"; trap "rm -f /dev/shm/$name" EXIT; trap exit TERM INT; FUSEBOX_SHM_NAME=$name '"$PWD"'/build/fusebox --config "$CONFIG_DIR/fusebox.yaml" 2>&1 | python3 -u '"$PWD"'/tools/bench/chaos/events.py'
exec ../shared/bench/chaos.sh "$@"
