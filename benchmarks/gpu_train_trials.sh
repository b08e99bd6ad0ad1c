#!/usr/bin/env bash
# Candidate bundled models, trained side by side on one lent GPU within a time limit each, for
# evaluation back here (the model is small: one training leaves most of an H100 idle, so several
# share it). Prepare as for benchmarks/gpu_check.sh (.whl and .gpu-data carried), then run there:
#
#   TRIAL_SECONDS=330 bash benchmarks/gpu_train_trials.sh
#
# TRIALS lists "name:width:layers:batch:lr:iat_bits[:weights]" items (default below: the bundled
# recipe, a wider and a deeper denoiser). Each trial runs scripts/build_default_model.py (its
# default loss weights, plus iat_bits=4 when the trial has bits, then the item's own "k=v,..."
# weights over those, e.g. "timing:128:4:2048:0.003:14:iat=16,iat_bits=8") with
# --time-limit TRIAL_SECONDS and
# lands in $OUT/<name>.tar (the model directory, no checkpoint); $OUT/trials.log has each run's
# last lines. BENCH lists trials whose generation is then benchmarked on the GPU (end to end);
# "default" there is the bundled model. TRIALS= (empty) trains nothing: only the benchmarks run,
#   BENCH=default BENCH_FLOWS=300000 TRIALS= bash benchmarks/gpu_train_trials.sh
set -uo pipefail
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
OUT="${OUT:-/tmp/gpu-trials}"
mkdir -p "$OUT"
SECONDS_EACH="${TRIAL_SECONDS:-330}"
TRIALS="${TRIALS-bundled:128:4:2048:0.003:14 wide:192:4:2048:0.003:14 deep:128:6:2048:0.003:14}"
BENCH="${BENCH:-bundled}"
WEIGHTS="direction=16,iat=8,ip_length=6,tcp_offset=3,tcp_flags=6,l4_kind=2"

source benchmarks/gpu_setup.sh || exit 1

WORK=/tmp/trials
mkdir -p "$WORK"
pids=()
for spec in $TRIALS; do
  IFS=: read -r name width layers batch lr bits extra <<<"$spec"
  bits="${bits:-0}"
  weights="$WEIGHTS"
  [ "$bits" != 0 ] && weights="$WEIGHTS,iat_bits=4"
  [ -n "${extra:-}" ] && weights="$weights,$extra"
  python3 scripts/build_default_model.py --data .gpu-data --out "$WORK/$name" \
      --width "$width" --layers "$layers" --batch-size "$batch" --lr "$lr" \
      --iat-bits "$bits" --feature-weights "$weights" \
      --steps 200000 --time-limit "$SECONDS_EACH" --checkpoint-every 0 \
      >"$WORK/$name.log" 2>"$WORK/$name.err" &
  pids+=($!)
done
[ "${#pids[@]}" -gt 0 ] && wait "${pids[@]}"

for spec in $TRIALS; do
  name=${spec%%:*}
  { echo "== $name ($spec)"; tail -n 2 "$WORK/$name.log"; tail -c 300 "$WORK/$name.err"; echo; } \
      | tee -a "$OUT/trials.log"
  [ -f "$WORK/$name/netdiffusion.json" ] && tar -C "$WORK" -cf "$OUT/$name.tar" \
      --exclude checkpoint "$name"
done

for name in $BENCH; do
  model="$WORK/$name"
  [ "$name" = default ] && model=core/model/default
  [ -f "$model/netdiffusion.json" ] || continue
  echo "== generation benchmark, $name (end to end: sample + repair + write)" | tee -a "$OUT/trials.log"
  python3 benchmarks/bench_generate.py --model "$model" --flows "${BENCH_FLOWS:-200000}" \
      --batch 16384 --devices cuda 2>&1 | grep -v -i warn | tail -12 | tee -a "$OUT/trials.log"
done
