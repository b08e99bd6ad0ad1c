#!/usr/bin/env bash
# The GPU check, in one short run on a lent GPU machine (which has torch but not diffusers, and
# receives the checkout only). Prepare here, in the repo root:
#
#   echo /.whl/ >> .git/info/exclude      # wheels the GPU machine lacks (see docs/gpu.md)
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux_2_28_x86_64 -d .whl diffusers importlib_metadata
#   mkdir -p .gpu-data/iot-sentinel/captures   # the captures the check trains on (git-ignored)
#   cp -r ../shared/data/iot-sentinel/captures/{D-LinkCam,D-LinkSwitch,EdnetGateway,HueBridge,\
#   Lightify,TP-LinkPlugHS110,WeMoLink,Withings} .gpu-data/iot-sentinel/captures/
#
# then run `bash benchmarks/gpu_check.sh` there with .whl and .gpu-data carried. It installs the
# package, runs the CUDA tests, trains the bundled model on CUDA (TRAIN_STEPS, default 3000) into
# $OUT/default (TRAIN_STEPS=0: skip, benchmark the committed bundled model), and benchmarks
# generation end to end. Everything it prints is a measured figure.
set -uo pipefail
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 NETDIFFUSION_SHARED_DATA="$PWD/.gpu-data"
OUT="${OUT:-/tmp/gpu-check}"
mkdir -p "$OUT"
TRAIN_STEPS="${TRAIN_STEPS:-3000}"
BENCH_FLOWS="${BENCH_FLOWS:-200000}"

source benchmarks/gpu_setup.sh || exit 1

MODEL="$OUT/default"
if [ "$TRAIN_STEPS" = 0 ]; then
  MODEL=core/model/default   # benchmark the bundled model as committed
else
echo "== bundled model: $TRAIN_STEPS steps on CUDA"
python3 scripts/build_default_model.py --data .gpu-data --steps "$TRAIN_STEPS" \
    --batch-size 256 --checkpoint-every 0 --out "$OUT/default" 2>"$OUT/train.err" | tail -4
tail -c 400 "$OUT/train.err"; echo
fi


echo "== CUDA tests"
python3 -m pytest -q -p no:cacheprovider tests/core/model/test_cuda.py 2>&1 | tail -5

echo "== generation benchmark (end to end: sample + repair + write)"
python3 benchmarks/bench_generate.py --model "$MODEL" --flows "$BENCH_FLOWS" \
    --batch "${BENCH_BATCH:-16384}" --devices cuda 2>&1 | tail -25

echo "== where one chunk's sampling time goes (torch.profiler)"
python3 benchmarks/profile_sampler.py --model "$MODEL" --top "${PROFILE_TOP:-12}" 2>&1 | grep -v USDT
