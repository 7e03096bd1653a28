#!/usr/bin/env bash
# The experiments of notebooks 07–14 on one offline GPU machine, as run for the committed results.
#
#   ../shared/tools/device-bundle --with-sst2        # here: model + data + wheels into .device-bundle/
#   bash scripts/gpu_experiments.sh PHASE MINUTES     # there, from the repository root
#
# PHASE 1: the benchmarks of 09_efficiency (GPU to itself), then the sweeps.
# PHASE 2: the sweeps main, kernel, stride, delta_lambda, layers, scale_jump as one queue of parallel runs.
# PHASE 3: delta_k and scale_jump at the best λ of delta_lambda, then whatever is left.
# Every sweep resumes: rerunning a phase skips finished runs. Runs still going at the deadline
# are dropped (a rerun trains them). Results land in figures/data/ (named explicitly: the sweep
# CLI's default is the git-ignored results/) and, when $OUT is set
# (the device tool), are packed into $OUT/results.tgz.
# Environment: WORKERS (parallel runs, default 14), SCALE (default gpu), PY (default python3).
set -uo pipefail
cd "$(dirname "$0")/.."
PHASE=${1:-1}
MINUTES=${2:-8}
WORKERS=${WORKERS:-14}
SCALE=${SCALE:-gpu}
PY=${PY:-python3}
t0=$(date +%s)
if [ -d .device-bundle ]; then
  "$PY" -m pip install -q --no-index --no-deps --target /tmp/site .device-bundle/wheels/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD DCFT_EDU_MODEL=$PWD/.device-bundle/model DCFT_EDU_DATA=$PWD/.device-bundle/data
fi
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
"$PY" -c "import torch, transformers, datasets; print('torch', torch.__version__, '| transformers', transformers.__version__, '| datasets', datasets.__version__, '| cuda', torch.cuda.is_available())"
mkdir -p figures/data/efficiency
left() { awk -v m="$MINUTES" -v t0="$t0" -v now="$(date +%s)" 'BEGIN { x = m - (now - t0) / 60; print (x > 0.05 ? x : 0.05) }'; }

FILTER="^dcft_edu: loaded\|tokenize\|resource_tracker\|warnings.warn\|m = compute_metrics\|matthews_correlation is undefined"
GRIDS=${GRIDS:-main kernel stride delta_lambda layers scale_jump}
if [ "$PHASE" = 1 ]; then
  # 09_efficiency: each benchmark has the device to itself (no sweep running beside it)
  dev=$("$PY" -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")
  "$PY" -m dcft_edu.experiments.bench adapters --shapes both --device "$dev" \
    --out "figures/data/efficiency/bench_adapters_$dev.json" 2>&1 | tee "figures/data/efficiency/bench_adapters_$dev.txt"
  # the papers' backbones from their configs (random weights, random ids), DCFT's max lengths; then torch.compile on
  for bb in deberta-v3-base roberta-base; do
    for len in 64 128 320; do
      for c in "" "--compile"; do
        "$PY" -m dcft_edu.experiments.bench train --backbone $bb --task cola --max-length $len --device "$dev" \
          --batch-size 32 --steps 4 --rounds 3 $c \
          --out "figures/data/efficiency/bench_train_${dev}_${bb}_${len}${c:+_compile}.json" 2>&1 | grep -v "$FILTER" | tail -14
      done
    done
  done
  for t in ${BENCH_TASKS:-rte mrpc stsb cola sst2}; do
    "$PY" -m dcft_edu.experiments.bench train --task $t --device "$dev" --batch-size 32 --steps 8 --rounds 3 \
      --out "figures/data/efficiency/bench_train_${dev}_$t.json" 2>&1 | grep -v "$FILTER" | tail -14
  done
elif [ "$PHASE" = 3 ]; then
  # the K ablation and the scale-jump twin at the best λ of delta_lambda, before anything left over
  best=$("$PY" -m dcft_edu.experiments.analysis best-lambda figures/data/delta_lambda)
  echo "best λ from delta_lambda: $best"
  "$PY" -m dcft_edu.experiments.sweep delta_k scale_jump --set update_ratio="$best" --scale "$SCALE" --workers "$WORKERS" \
    --results figures/data --deadline-min "$(left)" 2>&1 | grep -v "$FILTER"
fi
# PHASE 2 (and what 1 and 3 have time for): the sweeps in $GRIDS as one queue of parallel runs
"$PY" -m dcft_edu.experiments.sweep $GRIDS --scale "$SCALE" --workers "$WORKERS" --results figures/data \
  --deadline-min "$(left)" ${SWEEP_FLAGS:-} 2>&1 \
  | grep -v "$FILTER"
echo "phase $PHASE done in $(( $(date +%s) - t0 )) s"
[ -n "${OUT:-}" ] && tar czf "$OUT/results.tgz" figures/data && ls -la "$OUT"
exit 0
