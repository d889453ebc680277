#!/usr/bin/env bash
# The GPU checks of the speed issue, in one go, for a session lent a CUDA machine (the device
# tool runs it from the repository root; CI never does). Prints everything; takes ~5-8 minutes.
#   1. correctness on CUDA: tests/test_cuda.py (fp32 and bf16 AMP learn like the CPU run)
#   2. the reference (pytorch/examples on a JPEG folder) vs our engine at 64 px, batch 64/128
#   3. the 28/32 px nets, generation throughput, torch.compile and CUDA graphs (its compile time)
#   4. with several GPUs: the 2-GPU DDP test and DDP throughput at 1, 2 and all GPUs
# Everything it prints also goes to one summary file: $OUT/gpu_check.txt under the device tool,
# else bench/gpu_check.txt (SUMMARY=path overrides), headed by the date, GPU, torch and commit.
# Each step is timed and a failed step does not stop the others; the summary at the end lists
# them, and the exit status is 1 when any failed.
#
#   DRY_RUN=1 PYTHON=.venv/bin/python bash bench/gpu_check.sh
# runs every step on the CPU at the smallest sizes (a 300-image folder, 1 round of 1 step, the
# CUDA tests with DCGAN_TEST_DEVICE=cpu, DDP with gloo as if there were 3 GPUs), so that each
# command line, flag and code path is known to run before GPU time is spent (2-2.5 min on 2 cores;
# summary in /tmp/gpu_check_dry.txt). LIST=1 prints each step's command and runs nothing
# (tests/test_gpu_check.py parses them). PYTHON picks the interpreter (default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
# the sources as they are here: no install (the device machine has no network for pip's build)
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
PY=${PYTHON:-python3}
DRY_RUN=${DRY_RUN:-0}
LIST=${LIST:-0}
if [ "$DRY_RUN" = 1 ]; then
    MODE="dry run on the CPU"
    SUMMARY=${SUMMARY:-${OUT:-${TMPDIR:-/tmp}}/gpu_check_dry.txt}
    DEVICE=cpu DRY_FLAG=--dry-run
    DATA=${DATA:-${TMPDIR:-/tmp}/dcgan-digits-jpeg-dry} IMAGES=300
    ROUNDS=1 STEPS=1 BATCHES=8,16 COMPILE_ROUNDS=1 COMPILE_BATCHES=16
    TEST_ENV="DCGAN_TEST_DEVICE=cpu DCGAN_TEST_STEPS=10"
    DDP_STEPS=15 DDP_ROUNDS=1 DDP_BATCH=8 DDP_THREADS=1
    # one thread per process: two OpenMP threads crawl on a busy 2-core machine
    export OMP_NUM_THREADS=1
else
    MODE="on CUDA"
    SUMMARY=${SUMMARY:-${OUT:-bench}/gpu_check.txt}
    DEVICE=cuda DRY_FLAG=
    DATA=${DATA:-../shared/datasets/cifar10_test} IMAGES=10000
    if [ ! -d "$DATA" ]; then  # the device copy may lack ../shared: 10,000 JPEGs from the digits
        DATA=/tmp/dcgan-digits-jpeg
    fi
    ROUNDS=5 STEPS=50 BATCHES=64,128 COMPILE_ROUNDS=3 COMPILE_BATCHES=128
    TEST_ENV="DCGAN_TEST_DEVICE=cuda DCGAN_TEST_STEPS=600"
    DDP_STEPS=60 DDP_ROUNDS=2 DDP_BATCH=64 DDP_THREADS=2
fi

DONE=() FAILED=()
step() {  # step NAME COMMAND...: run and time COMMAND; a failure is noted, the script goes on
    local name=$1 start=$SECONDS rc=0
    shift
    if [ "$LIST" = 1 ]; then
        printf '%q ' "$@"
        echo
        return 0
    fi
    echo
    echo "=== $name: $*"
    "$@" || rc=$?
    DONE+=("$(printf '%-28s %s in %d s' "$name" "$([ $rc = 0 ] && echo ok || echo "FAILED ($rc)")" $((SECONDS - start)))")
    echo "=== ${DONE[-1]}"
    [ $rc = 0 ] || FAILED+=("$name")
}

if [ "$LIST" != 1 ]; then
    exec > >(tee "$SUMMARY") 2>&1
    TEE_PID=$!
    trap 'exec >&- 2>&-; wait "$TEE_PID" 2>/dev/null || true' EXIT  # the file gets the last line
    echo "gpu_check $MODE $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD 2>/dev/null || echo ?)"
    if [ "$DRY_RUN" = 1 ]; then
        echo "DRY RUN: every step on the CPU at the smallest sizes; its numbers mean nothing"
    else
        nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
    fi
fi

if [ "$DRY_RUN" = 1 ]; then
    step "torch" "$PY" -c "import torch; print(torch.__version__, 'CUDA' if torch.cuda.is_available() else 'no CUDA (dry run)')"
else
    step "torch sees CUDA" "$PY" -c "import torch; assert torch.cuda.is_available(), 'torch sees no CUDA device'; print(torch.__version__, torch.cuda.get_device_name(0))"
    if [ ${#FAILED[@]} -gt 0 ]; then
        echo "no CUDA device for torch: the other steps cannot run"
        exit 1
    fi
fi

if [ ! -d "$DATA" ] || [ "$LIST" = 1 ]; then
    step "digits as JPEGs" "$PY" - "$DATA" "$IMAGES" <<'PY'
import sys
from pathlib import Path
from PIL import Image
from dcgan.datasets import load_digits
out, count = Path(sys.argv[1]), int(sys.argv[2])
digits = load_digits(32, 3)
for i, (image, label) in enumerate(zip(digits.images[:count], digits.labels)):
    (out / str(label)).mkdir(parents=True, exist_ok=True)
    Image.fromarray(image.transpose(1, 2, 0)).save(out / str(label) / f"{i:05d}.jpg", quality=95)
print(f"{min(count, len(digits.images))} JPEGs in {out}")
PY
fi

# the 2-GPU test has its own step below, where there are 2 GPUs
step "CUDA tests" env $TEST_ENV "$PY" -m pytest -q -m cuda tests/test_cuda.py -k "not two_gpus" -s
step "compare, sizes, generate" "$PY" bench/bench_train.py --device $DEVICE --data "$DATA" \
    --rounds $ROUNDS --steps $STEPS --batches $BATCHES --sizes-batches $BATCHES \
    --sections compare,sizes,generate $DRY_FLAG
step "compile, CUDA graphs" "$PY" bench/bench_train.py --device $DEVICE --data "$DATA" \
    --rounds $COMPILE_ROUNDS --steps $STEPS --batches $COMPILE_BATCHES --sections compile $DRY_FLAG

if [ "$DRY_RUN" = 1 ] || [ "$LIST" = 1 ]; then
    NGPU=${NGPU:-3}  # both branches below, with gloo on the CPU
else
    NGPU=$("$PY" -c "import torch; print(torch.cuda.device_count())")
fi
if [ "$NGPU" -gt 1 ]; then
    step "2-GPU test" env $TEST_ENV "$PY" -m pytest -q -m cuda tests/test_cuda.py -k two_gpus -s
    step "DDP, 2 GPUs" "$PY" bench/bench_ddp.py --device $DEVICE --nproc 2 --steps $DDP_STEPS \
        --rounds $DDP_ROUNDS --batch-size $DDP_BATCH --threads $DDP_THREADS
    if [ "$NGPU" -gt 2 ]; then
        # the global batch must divide by the ranks: 64 on 3 GPUs would be refused
        step "DDP, all $NGPU GPUs" "$PY" bench/bench_ddp.py --device $DEVICE --nproc "$NGPU" \
            --steps $DDP_STEPS --rounds $DDP_ROUNDS --threads $DDP_THREADS \
            --batch-size $(((DDP_BATCH + NGPU - 1) / NGPU * NGPU))
    fi
fi

if [ "$LIST" != 1 ]; then
    echo
    echo "=== gpu_check $MODE: $SECONDS s in all"
    printf '  %s\n' "${DONE[@]}"
    if [ ${#FAILED[@]} -gt 0 ]; then
        echo "FAILED: ${FAILED[*]}"
        exit 1
    fi
fi
