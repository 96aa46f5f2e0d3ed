#!/usr/bin/env bash
# tools/bench/chaos.sh: ../shared/bench/chaos.sh with fusebox among the targets, on the breaker
# configuration in tools/bench/chaos/fusebox.yaml (read it for why). Each run gets its own
# shared-memory segment, named from chaos.sh's per-run CONFIG_DIR, so no breaker state carries
# over between runs. Environment knobs pass through (FAULTS, TARGETS, RATE, ...).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
[[ -x build/fusebox ]] || tools/build
export CONFIG_DIR=$PWD/tools/bench/chaos
export PROXY_NAME=${PROXY_NAME:-fusebox}
export PROXY_CMD='FUSEBOX_SHM_NAME="fusebox-chaos-$(basename "$CONFIG_DIR")" exec '"$PWD"'/build/fusebox --config "$CONFIG_DIR/fusebox.yaml"'
exec ../shared/bench/chaos.sh "$@"
