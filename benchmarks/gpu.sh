#!/usr/bin/env bash
# Every GPU check and benchmark of stylefw, in one go, for a session lent a GPU (see BENCHMARKS.md):
#   bash benchmarks/gpu.sh            # writes its log to $OUT/gpu.log when OUT is set, else ./gpu.log
# It installs this checkout without dependencies (the machine's torch, torchvision, pluggy, pyyaml, pillow
# and rich are used as they are), runs the GPU tests, then the benchmarks. About 10 minutes on an H100.
set -uo pipefail
cd "$(dirname "$0")/.."
log="${OUT:-.}/gpu.log"
export PYTHONUNBUFFERED=1
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -m pip install -q --no-deps --no-build-isolation --no-index -e . || exit 1
  python3 -c "import torch, stylefw; print('torch', torch.__version__, 'stylefw', stylefw.__version__)"
  echo "== GPU tests"
  timeout 240 python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py
  echo "== speed at 512 px: fp32, TF32, bf16, compiled bf16; cudnn.benchmark; channels_last (hand loop)"
  (cd benchmarks && timeout 240 python3 bench_gpu.py --size 512)
  echo "== stylefw against the hand loop at 512 px, fp32 and bf16"
  (cd benchmarks && timeout 60 python3 bench_overhead.py --device cuda --size 512 --steps 50 --rounds 3)
  (cd benchmarks && timeout 60 python3 bench_overhead.py --device cuda --size 512 --steps 50 --rounds 3 --precision bf16)
  echo "== stylefw batch --batch-size: 8 jobs at 256 px as one batch against one after the other"
  (cd benchmarks && timeout 90 python3 bench_lanes.py --device cuda --size 256 --jobs 8 --steps 50 --rounds 3)
} 2>&1 | tee "$log"
