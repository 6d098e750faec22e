#!/usr/bin/env bash
# The ablation: every arm of grids/ablation/, cheapest and most decisive first, resumable
# (a rerun skips finished runs). Usage: grids/ablation/run.sh [PYTHON] [extra fmlib.grid.spec flags]
# e.g. grids/ablation/run.sh .venv/bin/python --workers 2 --threads 1
# A failed or stale run does not stop the later grids; the exit status says whether any grid had one.
set -uo pipefail
cd "$(dirname "$0")/../.."
PY=${1:-.venv/bin/python}; shift || true
status=0
grid() { "$PY" -m fmlib.grid "grids/ablation/$1.json" --output "runs/ablation/$1" "${@:2}" || status=1; }
core=(entropy margin bait random fm)
grid ours --strategy "${core[@]}" "$@"   # seeds 0-9
grid ours-first-authors "$@"
grid ours-first-initial "$@"
grid ours-large-budget "$@"   # 250 -> 5750 by 250
grid ours --strategy fm-scale-none fm-random-mask fm-float64 --seed 0 1 2 3 4 "$@"
grid ours --strategy fm-fraction0.002 fm-fraction0.01 --seed 0 1 2 3 4 "$@"
grid ours-whole-pool "$@"
grid authors --strategy "${core[@]}" --seed 0 1 2 "$@"   # the committed authors anchor: 3 seeds (45-50 min a FisherMask run on one CPU core)
grid authors --strategy "${core[@]}" --seed 3 4 "$@"
grid ours --strategy fm-fraction0.03 --seed 0 1 2 3 4 "$@"
grid authors-cnn "$@"
grid authors-2000 "$@"
grid ours-resnet "$@"
grid authors "$@"
grid authors-replica "$@"
grid authors-first-trained "$@"
exit $status
