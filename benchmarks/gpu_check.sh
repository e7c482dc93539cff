#!/usr/bin/env bash
# The GPU checks of issue 22: one script, at most 8 minutes on one NVIDIA H200.
#
# Here, once (copies 32 sample photos next to the code, into gpu-check-data/: .gitignore'd):
#     bash benchmarks/gpu_check.sh prepare
# On the device machine (the `run` tool; the photos travel with `carry`):
#     run(command="bash benchmarks/gpu_check.sh", carry=["gpu-check-data"], timeout_s=540)
# Everything printed goes to $OUT/gpu_check.txt; $OUT/summary.txt keeps the result lines.
#
# What it measures (torchvision ResNet-50 with seeded random weights, 224 px, sample photos):
#  1. floor.py --images 16: runner / pass-count floor, eager and with the cudagraph engine
#  2. overhead.py --images 16: runner / floor again and where the runner's time goes, by stage
#  3. protocol.py --images 16: per-method loop / runner and their largest score difference
#  4. the issue's CLI command for 8 and 32 photos (engine auto), whole command, start-up included,
#     and 32 photos with the GPU's settings (--batch-size 16 --eval-batch-size auto)
#  5. the same 2 photos on the GPU and on the CPU: the largest score difference per metric
#  6. 8 photos with --engine eager and with --precision bf16 (explicit): their score moves
#  7. (bench half) guided_ig.py: Guided IG batched vs one image per call, after protocol.py;
#     (last) protocol.py --no-deterministic: the loop vs the runner without the switches
# The machine holds torch, torchvision, timm, scikit-image, onnxruntime, tqdm, pyyaml and
# matplotlib; nothing here needs absgrad's other dependencies (efficientnet-lite0 weights).
# Each step has a time limit and the script stops starting steps after BUDGET seconds.
# GPU_CHECK_SMALL=1: every step on the CPU with tiny settings (a dry run of the script);
# GPU_CHECK_ONLY=bench or =cli: only the benchmarks (steps 1-3) or the CLI runs (4-6).
# Steps run in that order of importance; once BUDGET seconds are spent the rest is skipped.
set -u
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DATA="$ROOT/gpu-check-data"
PY="${PYTHON:-python3}"

if [ "${1:-}" = "prepare" ]; then
    SRC="${2:-$ROOT/../shared/data/imagenet-sample}"
    [ -f "$SRC/labels.csv" ] || SRC=/work/shared/data/imagenet-sample
    mkdir -p "$DATA"
    head -n 33 "$SRC/labels.csv" > "$DATA/labels.csv"
    tail -n +2 "$DATA/labels.csv" | cut -d, -f1 | while read -r f; do cp "$SRC/$f" "$DATA/"; done
    echo "copied $(($(wc -l < "$DATA/labels.csv") - 1)) photos to $DATA ($(du -sh "$DATA" | cut -f1))"
    exit 0
fi
[ -f "$DATA/labels.csv" ] || { echo "no photos in $DATA: run 'bash $0 prepare' first"; exit 2; }

OUT="${OUT:-$ROOT/gpu-check-out}"
mkdir -p "$OUT"
LOG="$OUT/gpu_check.txt"
SUMMARY="$OUT/summary.txt"
: > "$LOG"
: > "$SUMMARY"
BUDGET="${BUDGET:-470}"
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 PY
export ROOT ABSGRAD_CACHE="${TMPDIR:-/tmp}/absgrad-cache"
export WORK="${TMPDIR:-/tmp}/gpu-check" DATA
rm -rf "$WORK" && mkdir -p "$WORK"

if [ "${GPU_CHECK_SMALL:-0}" = 1 ]; then  # the dry run: CPU, ResNet-18 at 64 px, 2-3 photos
    export DEV=cpu ARCH=resnet18 SIZE=64 FAST=eager SIZE_ARGS="--size 64"
    N16=2 N8=2 N32=3 SCALE=20  # time limits x 20 on a slow shared CPU
else
    export DEV=cuda ARCH=resnet50 SIZE=224 FAST=cudagraph SIZE_ARGS=""
    N16=16 N8=8 N32=32 SCALE=1
fi
BENCH=(--arch "$ARCH" --size "$SIZE" --data "$DATA" --device "$DEV" --repeats 1)

step() {  # step LIMIT TITLE PATTERN COMMAND...: run it (time-limited), log it, keep PATTERN
    local limit=$(($1 * SCALE)) title="$2" pattern="$3"
    shift 3
    local left=$((BUDGET - SECONDS))
    if [ "$left" -lt 15 ]; then
        echo "## $title: skipped, the ${BUDGET} s budget is spent" | tee -a "$SUMMARY" >> "$LOG"
        return
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    echo "## $title" | tee -a "$SUMMARY" >> "$LOG"
    local t0=$SECONDS start
    start=$(wc -l < "$LOG")
    timeout "$limit" "$@" >> "$LOG" 2>&1
    local rc=$?
    tail -n +"$((start + 1))" "$LOG" | grep -E "$pattern" >> "$SUMMARY"
    echo "($title: exit $rc, $((SECONDS - t0)) s of at most $limit)" | tee -a "$SUMMARY" >> "$LOG"
}

cli_run() {  # cli_run NAME LIMIT DEVICE [EXTRA...]: the issue's whole CLI command, timed
    local name="$1" limit="$2" device="$3"
    shift 3
    local t0 t1
    t0=$(date +%s.%N)
    # shellcheck disable=SC2086  # SIZE_ARGS: no argument, or two
    "$PY" -m absgrad.cli run --data "$DATA" --model "torchvision:$ARCH" --weights "$WORK/w.pth" \
        --device "$device" --no-select --metrics rcap,dauc,iauc --no-report --quiet \
        --limit "$limit" $SIZE_ARGS --out "$WORK/$name" "$@"
    local rc=$?
    t1=$(date +%s.%N)
    echo "CLI $name: $limit images on $device $*: exit $rc, $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}') s whole command"
    grep -h "engine\|auto:" "$WORK/$name/absgrad.log" | sed "s/^[0-9-]* [0-9:,]* INFO /  $name log: /"
}

compare() {  # compare A B: the largest |score difference| per metric between two runs
    echo "$1 vs $2:"
    "$PY" "$ROOT/benchmarks/score_diff.py" "$WORK/$1" "$WORK/$2"
}
export -f cli_run compare

{
    date -u
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1
    "$PY" -c "import torch, torchvision, timm; print('torch', torch.__version__, '| torchvision', torchvision.__version__, '| timm', timm.__version__, '| cuda', torch.cuda.is_available(), '| threads', torch.get_num_threads())"
    # seeded random weights (the issue's W), read by the CLI as a state dict
    "$PY" -c "import torch, torchvision; torch.manual_seed(0); torch.save(getattr(torchvision.models, '$ARCH')(weights=None).state_dict(), '$WORK/w.pth')"
} >> "$LOG" 2>&1
head -n 3 "$LOG" >> "$SUMMARY"

ONLY="${GPU_CHECK_ONLY:-}"  # "bench" or "cli": only that half (e.g. to rerun the rest)
cd "$ROOT/benchmarks" || exit 2
[ "$ONLY" != cli ] && step 75 "floor.py --images $N16 (eager runner, then --engine $FAST)" \
    "per-image cost|runner chunks|passes|floor =|absgrad" \
    "$PY" floor.py "${BENCH[@]}" --images "$N16" --engine "$FAST"
[ "$ONLY" != cli ] && step 60 "overhead.py --images $N16 --engine $FAST" \
    "^case|passes|floor =|runner|where the time|^stage|^[a-zA-Z/ ]+ +[0-9]+\.[0-9][0-9] +[0-9]+%|off the main" \
    "$PY" overhead.py "${BENCH[@]}" --images "$N16" --engine "$FAST"
[ "$ONLY" != cli ] && step 90 "protocol.py --images $N16 --engine $FAST (per-method loop vs runner)" \
    "absgrad |baseline |score difference|speedup" \
    "$PY" protocol.py "${BENCH[@]}" --images "$N16" --engine "$FAST"
[ "$ONLY" != cli ] && step 60 "guided_ig.py --images $N16 (Guided IG batched vs one image per call)" \
    "vs batched|speedup" "$PY" guided_ig.py "${BENCH[@]}" --images "$N16"
cd "$ROOT" || exit 2
[ "$ONLY" = bench ] && { echo "total $SECONDS s" | tee -a "$SUMMARY" >> "$LOG"; exit 0; }
step 45 "CLI, $N8 photos, engine auto" "^CLI |log: " bash -c "cli_run auto8 $N8 $DEV"
step 75 "CLI, $N32 photos, engine auto" "^CLI |log: " bash -c "cli_run auto32 $N32 $DEV"
# the CLI's defaults are 4 images per unit and 16 per forward pass; the GPU's best settings:
step 60 "CLI, $N32 photos, --batch-size 16 --eval-batch-size auto" "^CLI |log: " \
    bash -c "cli_run tuned32 $N32 $DEV --batch-size 16 --eval-batch-size auto"
step 80 "the same 2 photos on $DEV and on the CPU (eager)" \
    "^CLI | vs |^(rcap|dauc|iauc) +max |max \|score difference\|" \
    bash -c "cli_run dev2 2 $DEV --engine eager && cli_run cpu2 2 cpu --engine eager \
        && \"\$PY\" benchmarks/score_diff.py \"\$WORK/dev2\" \"\$WORK/cpu2\" --limit 1e-4"
step 40 "CLI, $N8 photos, engine eager" "^CLI " bash -c "cli_run eager8 $N8 $DEV --engine eager"
step 40 "CLI, $N8 photos, bf16 (explicit), engine $FAST" "^CLI " \
    bash -c "cli_run bf16 $N8 $DEV --precision bf16 --engine $FAST"
step 15 "scores: engine auto vs eager, bf16 vs fp32" " vs |^(rcap|dauc|iauc) +max |max \|score difference\|" \
    bash -c "compare auto8 eager8; compare bf16 eager8"
# the per-method loop vs the runner without the deterministic switches (their cost and effect)
step 90 "protocol.py --images $N16 --no-deterministic" "absgrad |baseline |score difference|speedup" \
    bash -c "cd benchmarks && \"\$PY\" protocol.py ${BENCH[*]} --images $N16 --engine $FAST --no-deterministic"
echo "total $SECONDS s" | tee -a "$SUMMARY" >> "$LOG"
