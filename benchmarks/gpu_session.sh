#!/usr/bin/env bash
# The GPU checks of issue 14, in order, each stage under its own time limit (about 9.5
# minutes in all, inside the device tool's 10-minute command limit):
#
#   1. env         nvidia-smi, torch / triton / liger versions                          15 s
#   2. tests       the CUDA tests: real Triton, no interpreter (TRITON_INTERPRET=0)    110 s
#   3. check       python -m emphasis.check, CUDA modes: eager (cuda, eager-cuda)       90 s
#                  then compiled (compile-cuda, 8 base cases; each compiles anew)       80 s
#   4. bench       benchmarks/bench_torch.py --device cuda: (4096, 1000),              210 s
#                  (512, 32000), (8192, 128256) bf16, (8, 150, 256, 256); ce, gr,
#                  gr-torch, liger, ce-compiled, gr-compiled
#   5. resnet      benchmarks/bench_resnet_step.py: ResNet-56, batch 128, 32x32         50 s
#
# Usage, from the repository root (on the device machine, $OUT is the folder that comes back):
#
#   bash benchmarks/gpu_session.sh "$OUT"
#
# Liger-Kernel is not on the GPU image; to compare with it, download its wheel here first
# (pure Python) into .whl/, which .git/info/exclude ignores, and carry it:
#
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: -d .whl liger-kernel==0.8.5
#   run(command='bash benchmarks/gpu_session.sh "$OUT"', carry=[".whl"], timeout_s=600)
#
# Everything lands in OUTDIR, eight files at most (what the device tool brings back):
# env.txt, tests.log, check.log, bench.log, bench.json, resnet.log, resnet.json, summary.txt.
# A stage that fails or runs out of time is recorded in summary.txt and the next one runs.

set -u
OUTDIR="${1:-${OUT:-gpu_out}}"
mkdir -p "$OUTDIR"
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=3
SUMMARY="$OUTDIR/summary.txt"
: >"$SUMMARY"

# Without CUDA (here, on the CPU machines) the same stages run as a smoke test of the
# script itself: tiny shapes, Triton's interpreter, minutes not measured.
if "$PY" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())' 2>/dev/null; then
    export TRITON_INTERPRET=0
    DEVICE=cuda TESTS="tests/test_triton.py tests/test_check_triton.py"
    CHECK_EAGER="--modes cuda,eager-cuda --cases 24"
    CHECK_COMPILE="--modes compile-cuda --cases 8 --no-edge-cases"
    BENCH="--repeats 10 --warmup 2 --inner 5" RESNET="--repeats 10 --inner 5"
else
    echo "no CUDA device: a smoke run on CPU (tiny shapes, Triton's interpreter)" | tee -a "$SUMMARY"
    DEVICE=cpu TESTS="tests/test_check_triton.py"
    CHECK_EAGER="--modes interpret --cases 1 --no-edge-cases"
    CHECK_COMPILE="--modes compile --cases 1"
    BENCH="--quick --no-compile" RESNET="--quick"
fi

if compgen -G ".whl/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi

stage() {  # stage NAME LIMIT_S LOG COMMAND...
    local name=$1 limit=$2 log=$3
    shift 3
    local start=$SECONDS
    timeout -k 10 "$limit" "$@" >>"$log" 2>&1
    local rc=$?
    local verdict=ok
    [ $rc -eq 124 ] || [ $rc -eq 137 ] && verdict="TIMED OUT after ${limit}s"
    [ $rc -ne 0 ] && [ "$verdict" = ok ] && verdict="FAILED (exit $rc)"
    printf '%-14s %4ss  %s\n' "$name" $((SECONDS - start)) "$verdict" | tee -a "$SUMMARY"
}

{
    date -u
    timeout 20 nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem \
        --format=csv 2>&1
    timeout 60 "$PY" - <<'EOF'
import importlib, torch
print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available())
if torch.cuda.is_available():
    print(torch.cuda.get_device_name(), torch.cuda.get_device_properties(0))
for name in ("triton", "liger_kernel", "numpy", "hypothesis"):
    try:
        module = importlib.import_module(name)
        print(name, getattr(module, "__version__", "?"))
    except Exception as err:
        print(name, "not importable:", err)
EOF
} >"$OUTDIR/env.txt" 2>&1
echo "env            $SECONDS s so far" >>"$SUMMARY"

# shellcheck disable=SC2086  # the option strings above are meant to split
stage tests 110 "$OUTDIR/tests.log" "$PY" -m pytest -q -p no:cacheprovider -rs $TESTS

stage check-eager 90 "$OUTDIR/check.log" "$PY" -m emphasis.check \
    --backends 'torch,torch[triton]' $CHECK_EAGER
stage check-compile 80 "$OUTDIR/check.log" "$PY" -m emphasis.check \
    --backends 'torch,torch[triton]' $CHECK_COMPILE

stage bench 210 "$OUTDIR/bench.log" "$PY" benchmarks/bench_torch.py --device $DEVICE \
    $BENCH --json "$OUTDIR/bench.json"

stage resnet 50 "$OUTDIR/resnet.log" "$PY" benchmarks/bench_resnet_step.py --device $DEVICE \
    $RESNET --json "$OUTDIR/resnet.json"

echo "total          $SECONDS s" >>"$SUMMARY"
cat "$SUMMARY"
