#!/usr/bin/env bash
# The GPU checks of the speed issue, in one go, for a session lent a CUDA machine (the device
# tool runs it from the repository root; CI never does). Prints everything; takes ~5-8 minutes.
#   1. correctness on CUDA: tests/test_cuda.py (fp32 and bf16 AMP learn like the CPU run)
#   2. the reference (pytorch/examples on a JPEG folder) vs our engine at 64 px, batch 64/128
#   3. the 28/32 px nets, generation throughput, torch.compile and CUDA graphs (its compile time)
#   4. with several GPUs: the 2-GPU DDP test and DDP throughput at 1, 2 and all GPUs
# Everything it prints also goes to one summary file: $OUT/gpu_check.txt under the device tool,
# else bench/gpu_check.txt (SUMMARY=path overrides), headed by the date, GPU, torch and commit.
set -euo pipefail
export PYTHONUNBUFFERED=1
SUMMARY=${SUMMARY:-${OUT:-bench}/gpu_check.txt}
exec > >(tee "$SUMMARY") 2>&1
echo "gpu_check $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD 2>/dev/null || echo ?)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
DATA=${DATA:-../shared/datasets/cifar10_test}
if [ ! -d "$DATA" ]; then  # the device copy may lack ../shared: 10,000 JPEGs from the digits
    DATA=/tmp/dcgan-digits-jpeg
    PYTHONPATH=$PWD/src python - "$DATA" <<'PY'
import sys
from pathlib import Path
from PIL import Image
from dcgan.datasets import load_digits
out = Path(sys.argv[1])
for i, (image, label) in enumerate(zip(load_digits(32, 3).images, load_digits().labels)):
    (out / str(label)).mkdir(parents=True, exist_ok=True)
    Image.fromarray(image.transpose(1, 2, 0)).save(out / str(label) / f"{i:05d}.jpg", quality=95)
PY
fi
python -c "import torch; print(torch.__version__, torch.cuda.get_device_name(0))"
python -m pip install -q --no-deps -e . 2>/dev/null || export PYTHONPATH=$PWD/src
python -m pytest -q -m cuda tests/test_cuda.py -s
python bench/bench_train.py --device cuda --data "$DATA" --rounds 5 --steps 50 \
    --sections compare,sizes,generate
python bench/bench_train.py --device cuda --data "$DATA" --rounds 3 --steps 50 \
    --sections compile --batches 128
NGPU=$(python -c "import torch; print(torch.cuda.device_count())")
if [ "$NGPU" -gt 1 ]; then
    python -m pytest -q -m cuda tests/test_cuda.py -k two_gpus -s
    python bench/bench_ddp.py --device cuda --nproc 2 --steps 60 --rounds 2
    if [ "$NGPU" -gt 2 ]; then
        python bench/bench_ddp.py --device cuda --nproc "$NGPU" --steps 60 --rounds 2
    fi
fi
