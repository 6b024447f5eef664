#!/usr/bin/env bash
# Every GPU check in one command: see bench/gpu_checks.py (the steps, their time limits, the summary file).
#
#   bash bench/gpu_checks.sh                 # on a machine with CUDA: results/gpu_checks/summary.md
#   bash bench/gpu_checks.sh --quick         # small sizes (minutes)
#
# Without CUDA it writes why nothing ran and exits 0 (CI has no GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python}" bench/gpu_checks.py "$@"
