#!/usr/bin/env bash
# Issue 6's remaining ablation runs on one offline GPU machine, as ONE background queue that
# keeps the GPU busy across several device calls (each call is capped at 10 minutes; a process
# started with setsid runs on until the machine is given back).
#
#   ../shared/tools/device-bundle                          # here: model + data + wheels
#   bash scripts/gpu_background.sh start MINUTES           # there: launch the queue and return
#   bash scripts/gpu_background.sh wait MINUTES            # there: wait (or until the queue ends),
#                                                          #   then pack every new result into $OUT
#
# The queue: kernel, stride, delta_lambda, layers, scale_jump, and delta_k at the best λ of
# delta_lambda's finished runs (as phase 3 of gpu_experiments.sh), every grid's seed 0 first,
# then seed 1, then seed 2 (--seed-major), so that a deadline cuts seeds, not grids. Finished
# runs are skipped (the results folder starts as a copy of figures/data/). Results land in
# $RES/<sweep>/ on that machine and come back as $OUT/results.tgz (paths figures/data/...).
# Environment: WORKERS (parallel runs, default 15), SCALE (default gpu), PY (default python3).
set -uo pipefail
cd "$(dirname "$0")/.."
MODE=${1:?usage: gpu_background.sh start|wait MINUTES}
MINUTES=${2:?usage: gpu_background.sh start|wait MINUTES}
WORKERS=${WORKERS:-15}
SCALE=${SCALE:-gpu}
PY=${PY:-python3}
RES=/tmp/dcft_results
if [ -d .device-bundle ]; then
  [ -d /tmp/site/datasets ] || "$PY" -m pip install -q --no-index --no-deps --target /tmp/site .device-bundle/wheels/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD DCFT_EDU_MODEL=$PWD/.device-bundle/model DCFT_EDU_DATA=$PWD/.device-bundle/data
fi
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
FILTER="^dcft_edu: loaded\|tokenize\|resource_tracker\|warnings.warn\|m = compute_metrics\|matthews_correlation is undefined"

if [ "$MODE" = start ]; then
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  "$PY" -c "import torch, transformers, datasets; print('torch', torch.__version__, '| transformers', transformers.__version__, '| datasets', datasets.__version__, '| cuda', torch.cuda.is_available())" || exit 1
  rm -rf "$RES" /tmp/dcft_grids /tmp/dcft_finished && mkdir -p "$RES" /tmp/dcft_grids && cp -a figures/data/. "$RES"/
  touch /tmp/dcft_started
  best=$("$PY" -m dcft_edu.experiments.analysis best-lambda "$RES/delta_lambda") || exit 1
  echo "best λ from delta_lambda's finished runs: $best"
  # delta_k as a grid file (named delta_k, so its runs land in delta_k/) with λ fixed to the best
  "$PY" -c "import json, sys; from dcft_edu.experiments.sweep import GRIDS; g = dict(GRIDS['delta_k'], update_ratio=[float(sys.argv[1])]); json.dump(g, open('/tmp/dcft_grids/delta_k.json', 'w'))" "$best"
  SWEEP="'$PY' -m dcft_edu.experiments.sweep kernel stride delta_lambda layers scale_jump /tmp/dcft_grids/delta_k.json \
    --scale '$SCALE' --results '$RES' --seed-major"
  bash -c "$SWEEP --dry-run" | grep -c "^todo" | sed 's/^/runs to train: /'
  setsid nohup bash -c "$SWEEP --workers '$WORKERS' --deadline-min '$MINUTES' 2>&1 \
    | grep --line-buffered -v '$FILTER' > /tmp/dcft_sweep.log; touch /tmp/dcft_finished" </dev/null >/dev/null 2>&1 &
  sleep 20; tail -5 /tmp/dcft_sweep.log
elif [ "$MODE" = wait ]; then
  end=$(( $(date +%s) + $(awk -v m="$MINUTES" 'BEGIN { print int(m * 60) }') ))
  while [ "$(date +%s)" -lt "$end" ] && [ ! -e /tmp/dcft_finished ]; do sleep 10; done
  [ -e /tmp/dcft_finished ] && echo "queue finished"
  tail -25 /tmp/dcft_sweep.log
  echo "new result files: $(find "$RES" -type f -newer /tmp/dcft_started | wc -l)"
  if [ -n "${OUT:-}" ]; then
    mkdir -p /tmp/dcft_pack/figures && rm -rf /tmp/dcft_pack/figures/data && ln -s "$RES" /tmp/dcft_pack/figures/data
    (cd /tmp/dcft_pack && find -L figures/data -type f -newer /tmp/dcft_started | tar czf "$OUT/results.tgz" -T -)
    cp /tmp/dcft_sweep.log "$OUT/sweep.log"; ls -la "$OUT"
  fi
else
  echo "usage: gpu_background.sh start|wait MINUTES" >&2; exit 2
fi
exit 0
