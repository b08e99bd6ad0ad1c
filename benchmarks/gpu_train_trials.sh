#!/usr/bin/env bash
# Candidate bundled models, trained side by side on one lent GPU within a time limit each, for
# evaluation back here (the model is small: one training leaves most of an H100 idle, so several
# share it). Prepare as for benchmarks/gpu_check.sh (.whl and .gpu-data carried), then run there:
#
#   TRIAL_SECONDS=330 bash benchmarks/gpu_train_trials.sh
#
# TRIALS lists "name:width:layers:batch:lr" items (default below). Each trial runs
# scripts/build_default_model.py (its default loss weights) with --time-limit TRIAL_SECONDS and
# lands in $OUT/<name>.tar (the model directory, no checkpoint); $OUT/trials.log has each run's
# last lines. BENCH lists trials whose generation is then benchmarked on the GPU (end to end).
set -uo pipefail
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
OUT="${OUT:-/tmp/gpu-trials}"
mkdir -p "$OUT"
SECONDS_EACH="${TRIAL_SECONDS:-330}"
TRIALS="${TRIALS:-b512:128:3:512:0.001 b1024:128:3:1024:0.002 b256:128:3:256:0.001 l4b512:128:4:512:0.001}"
BENCH="${BENCH:-b512 l4b512}"

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site
ln -sfn "$PWD/core" /tmp/site/netdiffusion
python3 -c "import torch, diffusers, netdiffusion; print('torch', torch.__version__, \
'diffusers', diffusers.__version__, 'cuda', torch.cuda.is_available())" || exit 1

WORK=/tmp/trials
mkdir -p "$WORK"
pids=()
for spec in $TRIALS; do
  IFS=: read -r name width layers batch lr <<<"$spec"
  python3 scripts/build_default_model.py --data .gpu-data --out "$WORK/$name" \
      --width "$width" --layers "$layers" --batch-size "$batch" --lr "$lr" \
      --steps 200000 --time-limit "$SECONDS_EACH" --checkpoint-every 0 \
      >"$WORK/$name.log" 2>"$WORK/$name.err" &
  pids+=($!)
done
wait "${pids[@]}"

for spec in $TRIALS; do
  name=${spec%%:*}
  { echo "== $name ($spec)"; tail -n 2 "$WORK/$name.log"; tail -c 300 "$WORK/$name.err"; echo; } \
      | tee -a "$OUT/trials.log"
  [ -f "$WORK/$name/netdiffusion.json" ] && tar -C "$WORK" -cf "$OUT/$name.tar" \
      --exclude checkpoint "$name"
done

for name in $BENCH; do
  [ -f "$WORK/$name/netdiffusion.json" ] || continue
  echo "== generation benchmark, $name (end to end: sample + repair + write)" | tee -a "$OUT/trials.log"
  python3 benchmarks/bench_generate.py --model "$WORK/$name" --flows "${BENCH_FLOWS:-200000}" \
      --batch 16384 --devices cuda 2>&1 | grep -v -i warn | tail -12 | tee -a "$OUT/trials.log"
done
