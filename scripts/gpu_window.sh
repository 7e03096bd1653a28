#!/usr/bin/env bash
# One GPU window (≤ 9 minutes of one H200, one command ≤ 10 minutes), in priority order, resumable, with at
# most 8 files back under $OUT. docs/gpu_window.md explains every step; this header is the recipe.
#
# HERE, just before the device call (the project's Python environment active, DCFT_EDU_DATA = the offline GLUE
# folder): model (float16, xz), GLUE files and wheels into .device-bundle/ (git-ignored), and the size check:
#   bash scripts/gpu_window.sh bundle
# THE DEVICE CALL (the `run` tool; paste the commit that `git rev-parse HEAD` prints here):
#   run(command="DCFT_EDU_GIT_COMMIT=<commit> bash scripts/gpu_window.sh run", carry=[".device-bundle"],
#       timeout_s=600)
# AFTER IT, here: untar the .tgz files at the repository root (their paths are figures/data/...), then commit.
# REHEARSAL on a CPU (tiny runs, a stand-in $OUT, figures/ untouched):
#   QUICK=1 OUT=/tmp/gw_out PY=.venv/bin/python PYTHONPATH=$PWD DCFT_EDU_DATA=... bash scripts/gpu_window.sh run
#
# Steps. A step may use its budget, or all the time left but the budgets of the later steps that still have
# work, whichever is more; finished work is skipped (the results folder starts as a copy of the committed
# results), so rerunning the same call in the next window goes on where this one stopped. Expected durations
# are ESTIMATES from the committed H100 runs (figures/data/main: 14–15 runs at a time, DCFT k=8 116–184 s,
# LoRA r=1 44–66 s per run; 10.7 runs/min) and the H100 benchmark log, not measurements on an H200.
#   0 setup   wheels, model, restore                      ~30 s
#   1 bench   budget 170 s: the efficiency refresh, in    adapters ~5 s; MiniLM task files ~30 s each (5);
#             this order, each skipped when a fresh copy  DeBERTa-v3-base/RoBERTa-base 64/128/320 ~60 s each (6);
#             exists (FRESH_AFTER)                        the same compiled, 5 methods, ~240 s each (6): ~40 min
#   2 study   budget 330 s: the DCFT question, gpu        198 trainings (210 runs, 12 shared): ~20,400 run-s,
#             preset: dcft_ref, dcft_init, dcft_lr_budget ≈ 24 min at 14 workers (~45 runs a window: 4–5
#             (CoLA, MRPC, STS-B, RTE), seed-major; its   windows at today's speed); the probe (runs/min,
#             first runs are the throughput probe         DCFT ÷ LoRA r=1 per-run time) needs ~3 min of it
#   3 paper   what 1–2 leave, if ≥ PAPER_MIN_S: dcft_paper  36 runs ≈ 25 min at 15 workers; one DCFT run 12–21 min:
#             (DCFT k=8, LoRA r=1, r=8 × 4 tasks × 3 seeds) does not fit one window at today's speed
#   4 nb07    what 1–3 leave, if ≥ NB07_MIN_S: notebook 07  14 lab runs in one process: ~3–6 min
#             with DCFT_EDU_TRAIN=1, timed
# Files under $OUT (≤ 8): window.log, summary.json (steps, probe), efficiency.tgz, study.tgz, paper.tgz,
# notebook07.log, notebook07.json. Settings (environment): IMPL (DCFT's impl in the grids: fast, dense, or auto,
# the default: the study's so far, else the faster of the two in step 1's MiniLM RTE benchmark, else fast),
# WORKERS (14), WINDOW_S (540), B_BENCH (170), B_STUDY (330), PAPER_MIN_S (420), NB07_MIN_S (300),
# FRESH_AFTER (2026-12-05), RES (results folder, default /tmp/gpu_window/results), MPS (1: try NVIDIA MPS
# for the sweeps), PY (python3), QUICK (1: the CPU rehearsal).
set -uo pipefail
cd "$(dirname "$0")/.."
MODE=${1:-}
PY=${PY:-python3}

if [ "$MODE" = bundle ]; then
  exec "$PY" -m dcft_edu.experiments.gpu_window bundle .device-bundle
elif [ "$MODE" = run ]; then
  : "${OUT:?set OUT to the folder whose files come back (the device tool sets it)}"
  mkdir -p "$OUT"
  bash "$0" _run 2>&1 | tee "$OUT/window.log"
  exit "${PIPESTATUS[0]}"
elif [ "$MODE" != _run ]; then
  echo "usage: bash scripts/gpu_window.sh bundle | run   (see the header)" >&2
  exit 2
fi

# ------------------------------------------------------------------------------------------------ settings
QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then  # the CPU rehearsal: the same steps on tiny runs
  WINDOW_S=${WINDOW_S:-2400}; B_BENCH=${B_BENCH:-900}; B_STUDY=${B_STUDY:-900}
  PAPER_MIN_S=${PAPER_MIN_S:-60}; NB07_MIN_S=${NB07_MIN_S:-60}
  WORKERS=${WORKERS:-2}; SCALE_STUDY=quick; SCALE_PAPER=quick; RES=${RES:-/tmp/gpu_window_quick/results}
else
  WINDOW_S=${WINDOW_S:-540}; B_BENCH=${B_BENCH:-170}; B_STUDY=${B_STUDY:-330}
  PAPER_MIN_S=${PAPER_MIN_S:-420}; NB07_MIN_S=${NB07_MIN_S:-300}
  WORKERS=${WORKERS:-14}; SCALE_STUDY=gpu; SCALE_PAPER=paper; RES=${RES:-/tmp/gpu_window/results}
fi
IMPL=${IMPL:-auto}
FRESH_AFTER=${FRESH_AFTER:-2026-12-05}
MPS=${MPS:-0}
T0=$(date +%s)
T_END=$((T0 + WINDOW_S))
left() { echo $((T_END - $(date +%s))); }
# a step may use its budget, or all the time left but the budgets of later steps with work: max of the two
allowed() { local budget=$1 reserve=$2 l; l=$(left); local a=$((l - reserve)); [ "$budget" -lt "$l" ] || budget=$l
  [ "$a" -gt "$budget" ] && echo "$a" || echo "$budget"; }
minutes() { awk -v s="$1" 'BEGIN { printf "%.2f", (s > 6 ? s : 6) / 60 }'; }
FILTER="^dcft_edu: loaded\|tokenize\|resource_tracker\|warnings.warn\|m = compute_metrics\|matthews_correlation is undefined"
SUM="$OUT/summary.json"
note() {  # note KEY JSON: set KEY (dots nest) of summary.json, atomically (standard library only: fast)
  "$PY" -c 'import json, os, sys
p, key, value = sys.argv[1:4]
rec = json.load(open(p)) if os.path.exists(p) else {}
node = rec
*parents, last = key.split(".")
for k in parents:
    node = node.setdefault(k, {})
node[last] = json.loads(value)
json.dump(rec, open(p + ".tmp", "w"), indent=1, sort_keys=True)
os.replace(p + ".tmp", p)' "$SUM" "$1" "$2"; }
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false MPLBACKEND=Agg

# ---------------------------------------------------------------------------------------------- 0 setup
echo "== 0 setup ($(date -u +%FT%TZ)), window ${WINDOW_S} s, quick=$QUICK"
if [ ! -d .device-bundle ] && [ "$QUICK" != 1 ]; then
  echo "no .device-bundle here: run 'bash scripts/gpu_window.sh bundle' before the call and carry .device-bundle" >&2
  exit 2
fi
if [ -d .device-bundle ]; then
  if [ "$QUICK" != 1 ]; then  # the rehearsal's Python has these packages (and the wheels are for Python 3.12)
    [ -d /tmp/site/datasets ] || "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .device-bundle/wheels/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PWD
  fi
  "$PY" -m dcft_edu.experiments.gpu_window unbundle .device-bundle /tmp/gw_model /tmp/gw_data || exit 1
  export DCFT_EDU_MODEL=/tmp/gw_model DCFT_EDU_DATA=/tmp/gw_data
  # the commit the results record: the one named in the call, else git's (a checkout), else the bundle's
  [ -n "${DCFT_EDU_GIT_COMMIT:-}" ] || git rev-parse HEAD >/dev/null 2>&1 \
    || export DCFT_EDU_GIT_COMMIT="$(cat .device-bundle/git_commit)"
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
"$PY" -c "import torch, transformers, datasets, peft; print('torch', torch.__version__, '| transformers', transformers.__version__, '| datasets', datasets.__version__, '| peft', peft.__version__, '| cuda', torch.cuda.is_available())" || exit 1
DEV=$("$PY" -c "import torch; print('cuda' if torch.cuda.is_available() else 'cpu')")
E="$RES/efficiency"
G="$RES/../grids"
mkdir -p "$E" "$G" "$RES/gpu_window"
# the results folder starts as a copy of the committed results (never written back: figures/ stays as it is)
[ -d figures/data/study ] && cp -an figures/data/study/. "$RES"/
cp -an figures/data/efficiency/. "$E"/
[ -d figures/data/gpu_window ] && cp -an figures/data/gpu_window/. "$RES/gpu_window"/
touch "$RES/.window_start"
QFLAG=""; [ "$QUICK" = 1 ] && QFLAG=--quick
# DCFT's impl in the grids: IMPL, or with IMPL=auto the study's so far, else the faster form in the MiniLM RTE
# benchmark (chosen again after step 1 has measured it; the counts below do not depend on it yet)
choose() { "$PY" -m dcft_edu.experiments.gpu_window choose-impl "$RES" "$E/bench_train_${DEV}_rte.json"; }
if [ "$IMPL" = auto ]; then read -r GRID_IMPL WHY < <(choose) || exit 1; else GRID_IMPL=$IMPL WHY="set by IMPL"; fi
"$PY" -m dcft_edu.experiments.gpu_window grids "$G" --impl "$GRID_IMPL" $QFLAG >/dev/null || exit 1
STUDY_GRIDS="$G/dcft_ref.json $G/dcft_init.json $G/dcft_lr_budget.json"
# todo SCALE:FILE,FILE… …: unfinished runs per group (an error counts as work to do)
todo() { "$PY" -m dcft_edu.experiments.gpu_window todo "$RES" "$@" || echo 1 1; }
note start "\"$(date -u +%FT%TZ)\""
note settings "{\"quick\": $QUICK, \"impl_setting\": \"$IMPL\", \"workers\": $WORKERS, \"window_s\": $WINDOW_S, \"budgets_s\": {\"bench\": $B_BENCH, \"study\": $B_STUDY, \"paper_min\": $PAPER_MIN_S, \"nb07_min\": $NB07_MIN_S}, \"device\": \"$DEV\", \"git_commit\": \"${DCFT_EDU_GIT_COMMIT:-$(git rev-parse HEAD 2>/dev/null)}\", \"mps\": $MPS}"
pack() {  # pack NAME PREFIX DIR…: the results in DIRs (under $RES) written in this window, as PREFIX/DIR/…
  local name=$1 prefix=$2; shift 2
  local files; files=$(cd "$RES" && find "$@" -type f \( -name '*.json' -o -name '*.txt' \) -newer .window_start \
    2>/dev/null | sort)
  [ -n "$files" ] && (cd "$RES" && echo "$files" | tar czf "$OUT/$name" --transform "s,^,$prefix," -T -) \
    && echo "packed $(echo "$files" | wc -l) files into $name"
}
echo "setup: $(( $(date +%s) - T0 )) s"

# --------------------------------------------------------------------------- 1 bench (efficiency refresh)
# items: "name est_s command..."; a fresh file (measured on or after FRESH_AFTER) is not measured again
ITEMS=()
if [ "$QUICK" = 1 ]; then
  ITEMS+=("bench_adapters_$DEV 30 adapters --shapes minilm --tokens 64 --repeats 1 --device $DEV")
  ITEMS+=("bench_train_${DEV}_rte 120 train --task rte --device $DEV --batch-size 4 --max-length 32 --steps 1 --rounds 1 --no-memory")
  for bb in deberta-v3-base roberta-base; do
    ITEMS+=("bench_train_${DEV}_${bb}_64 120 train --backbone $bb --task cola --max-length 16 --device $DEV --batch-size 2 --steps 1 --rounds 1 --no-memory --methods dcft_dense")
  done
  ITEMS+=("bench_train_${DEV}_roberta-base_64_compile 300 train --backbone roberta-base --task cola --max-length 16 --device $DEV --batch-size 2 --steps 1 --rounds 1 --no-memory --methods lora --compile")
else
  ITEMS+=("bench_adapters_$DEV 10 adapters --shapes both --device $DEV")
  for t in rte mrpc stsb cola sst2; do
    ITEMS+=("bench_train_${DEV}_$t 35 train --task $t --device $DEV --batch-size 32 --steps 8 --rounds 3")
  done
  for c in "" --compile; do for bb in deberta-v3-base roberta-base; do for len in 64 128 320; do
    if [ -z "$c" ]; then est=60; m=""; else est=240; m="--methods lora_r1 dcft_fast dcft_dense delta_lora"; fi
    ITEMS+=("bench_train_${DEV}_${bb}_${len}${c:+_compile} $est train --backbone $bb --task cola --max-length $len --device $DEV --batch-size 32 --steps 4 --rounds 3 $m $c")
  done; done; done
fi
# the bench files not measured since FRESH_AFTER (a file of this window is fresh)
STALE=$("$PY" -m dcft_edu.experiments.gpu_window stale --after "$FRESH_AFTER" $(for it in "${ITEMS[@]}"; do
  echo "$E/${it%% *}.json"; done) | tr '\n' ' ') || exit 1
read -r STUDY_TODO PAPER_TODO < <(todo "$SCALE_STUDY:${STUDY_GRIDS// /,}" "$SCALE_PAPER:$G/dcft_paper.json")
echo "to do: bench $(echo $STALE | wc -w) files, study $STUDY_TODO runs, paper $PAPER_TODO runs"
t=$(date +%s); A=$(allowed "$B_BENCH" $([ "$STUDY_TODO" -gt 0 ] && echo "$B_STUDY" || echo 0)); T_STEP=$((t + A))
echo "== 1 bench: allowed ${A} s"
done_n=0; skipped=""
for it in "${ITEMS[@]}"; do
  name=${it%% *}; rest=${it#* }; est=${rest%% *}; cmd=${rest#* }
  [[ " $STALE " == *" $name "* ]] || continue
  l=$((T_STEP - $(date +%s)))
  if [ "$l" -lt "$est" ]; then skipped="$skipped $name"; continue; fi
  echo "-- $name (estimate ${est} s, ${l} s left)"
  if [[ $name == bench_adapters_* ]]; then
    timeout "$l" "$PY" -m dcft_edu.experiments.bench $cmd --out "$E/$name.json" > "$E/$name.txt.tmp" 2>&1 \
      && mv "$E/$name.txt.tmp" "$E/$name.txt"; rm -f "$E/$name.txt.tmp"
    tail -8 "$E/$name.txt" 2>/dev/null
  else
    timeout "$l" "$PY" -m dcft_edu.experiments.bench $cmd --out "$E/$name.json" 2>&1 | grep -v "$FILTER" | tail -16
  fi
  [ "$E/$name.json" -nt "$RES/.window_start" ] && done_n=$((done_n + 1))
done
used=$(( $(date +%s) - t ))
left_n=$(( $(echo $STALE | wc -w) - done_n ))
note steps.bench "{\"allowed_s\": $A, \"used_s\": $used, \"measured\": $done_n, \"still_to_do\": $left_n, \"not_started_for_time\": \"${skipped# }\"}"
pack efficiency.tgz figures/data/ efficiency
echo "bench: $done_n files measured in $used s; $left_n still to do"

# ------------------------------------------------------------------- 2 study (DCFT question, and the probe)
if [ "$IMPL" = auto ]; then
  read -r GRID_IMPL WHY < <(choose) || exit 1
  "$PY" -m dcft_edu.experiments.gpu_window grids "$G" --impl "$GRID_IMPL" $QFLAG >/dev/null || exit 1
fi
note impl "{\"dcft\": \"$GRID_IMPL\", \"why\": \"$WHY\"}"
echo "DCFT impl in the grids: $GRID_IMPL ($WHY)"
t=$(date +%s); A=$(allowed "$B_STUDY" 0)
if [ "$STUDY_TODO" -gt 0 ] && [ "$A" -gt 30 ]; then
  echo "== 2 study: $STUDY_TODO runs to do, allowed ${A} s, $WORKERS workers, DCFT impl=$GRID_IMPL"
  mps=off
  if [ "$MPS" = 1 ] && command -v nvidia-cuda-mps-control >/dev/null; then
    export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps_pipe CUDA_MPS_LOG_DIRECTORY=/tmp/mps_log
    mkdir -p /tmp/mps_pipe /tmp/mps_log && nvidia-cuda-mps-control -d && mps=on || mps=failed
  fi
  "$PY" -m dcft_edu.experiments.sweep $STUDY_GRIDS --scale "$SCALE_STUDY" --results "$RES" --workers "$WORKERS" \
    --seed-major --deadline-min "$(minutes $((A - 15)))" 2>&1 | grep -v "$FILTER"
  [ "$mps" = on ] && echo quit | nvidia-cuda-mps-control
  used=$(( $(date +%s) - t ))
  "$PY" -m dcft_edu.experiments.gpu_window probe "$RES" --since "$t" --elapsed "$used" --workers "$WORKERS" \
    --bench "$E" --bench-since "$T0" > "$RES/gpu_window/probe.json" && note probe "$(cat "$RES/gpu_window/probe.json")"
  cat "$RES/gpu_window/probe.json"
  STUDY_LEFT=$(todo "$SCALE_STUDY:${STUDY_GRIDS// /,}")
  note steps.study "{\"allowed_s\": $A, \"used_s\": $used, \"runs_to_do_before\": $STUDY_TODO, \"runs_to_do_after\": $STUDY_LEFT, \"mps\": \"$mps\"}"
  pack study.tgz figures/data/study/ dcft_ref dcft_init dcft_lr_budget
else
  note steps.study "{\"status\": \"skipped\", \"runs_to_do\": $STUDY_TODO, \"allowed_s\": $A}"
  echo "== 2 study: skipped ($STUDY_TODO runs to do, ${A} s allowed)"
fi

# --------------------------------------------------------------------------------- 3 paper preset
t=$(date +%s); A=$(allowed 0 0)
if [ "$PAPER_TODO" -gt 0 ] && [ "$A" -ge "$PAPER_MIN_S" ]; then
  echo "== 3 paper: $PAPER_TODO runs to do, allowed ${A} s"
  "$PY" -m dcft_edu.experiments.sweep "$G/dcft_paper.json" --scale "$SCALE_PAPER" --results "$RES" \
    --workers "$WORKERS" --seed-major --deadline-min "$(minutes $((A - 15)))" 2>&1 | grep -v "$FILTER"
  used=$(( $(date +%s) - t ))
  PAPER_LEFT=$(todo "$SCALE_PAPER:$G/dcft_paper.json")
  note steps.paper "{\"allowed_s\": $A, \"used_s\": $used, \"runs_to_do_before\": $PAPER_TODO, \"runs_to_do_after\": $PAPER_LEFT}"
  pack paper.tgz figures/data/study/ dcft_paper
else
  note steps.paper "{\"status\": \"skipped\", \"runs_to_do\": $PAPER_TODO, \"allowed_s\": $A, \"needs_s\": $PAPER_MIN_S}"
  echo "== 3 paper: skipped ($PAPER_TODO runs to do, ${A} s allowed, needs ${PAPER_MIN_S} s)"
fi

# ------------------------------------------------------------------ 4 notebook 07, training on, timed
t=$(date +%s); A=$(allowed 0 0)
NB="$RES/gpu_window/notebook07.json"
if [ ! -f "$NB" ] && [ "$A" -ge "$NB07_MIN_S" ]; then
  echo "== 4 notebook 07 with DCFT_EDU_TRAIN=1: allowed ${A} s"
  rm -rf /tmp/gw_nb07 && mkdir -p /tmp/gw_nb07
  (cd notebooks && DCFT_EDU_TRAIN=1 DCFT_EDU_RESULTS=/tmp/gw_nb07 DCFT_EDU_QUICK=$QUICK \
    timeout "$((A - 5))" "$PY" 07_glue_main_results.py) > "$OUT/notebook07.log" 2>&1
  rc=$?; used=$(( $(date +%s) - t ))
  runs=$(find /tmp/gw_nb07 -name '*.json' | wc -l)
  rec="{\"notebook\": \"07_glue_main_results\", \"train\": true, \"quick\": $QUICK, \"exit_status\": $rc, \"timed_out\": $([ $rc = 124 ] && echo true || echo false), \"wall_time_s\": $used, \"lab_runs_finished\": $runs, \"device\": \"$DEV\", \"git_commit\": \"${DCFT_EDU_GIT_COMMIT:-$(git rev-parse HEAD 2>/dev/null)}\", \"timestamp\": \"$(date -u +%FT%TZ)\"}"
  [ $rc = 0 ] && echo "$rec" > "$NB" && cp "$NB" "$OUT/notebook07.json"
  note steps.nb07 "$rec"
  tail -5 "$OUT/notebook07.log"; echo "notebook 07: exit $rc after $used s, $runs lab runs"
else
  note steps.nb07 "{\"status\": \"skipped\", \"done_before\": $([ -f "$NB" ] && echo true || echo false), \"allowed_s\": $A, \"needs_s\": $NB07_MIN_S}"
  echo "== 4 notebook 07: skipped (done before: $([ -f "$NB" ] && echo yes || echo no); ${A} s allowed, needs ${NB07_MIN_S} s)"
fi

note wall_time_s "$(( $(date +%s) - T0 ))"
echo "== window done in $(( $(date +%s) - T0 )) s"; ls -la "$OUT"
exit 0
