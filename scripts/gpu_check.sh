#!/usr/bin/env bash
# The GPU checks of the speed issue, as one script: CUDA tests, the benchmark tables (MLP, CNN, RNN) on
# the GPU, and Fashion-MNIST runs at full float32 and with TF32 matmuls (accuracy check).
# Usage: scripts/gpu_check.sh OUTDIR [DATA_ROOT]   (DATA_ROOT holds FashionMNIST/raw/)
set -uo pipefail
out=${1:?usage: gpu_check.sh OUTDIR [DATA_ROOT]}
data=${2:-data}
mkdir -p "$out"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
nvidia-smi -L
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_equivalence.py tests/test_golden.py 2>&1 | tail -3
python3 scripts/bench.py --device cuda --data-root "$data" --scaling --cnn --rnn 2>&1 | tee "$out/bench_cuda.txt"
runs=$(mktemp -d)
for spec in "dll highest" "dll high" "bp highest"; do
  set -- $spec
  python3 scripts/simulate.py models/dll_mlp_fmnist.yaml --device cuda --data-root "$data" \
    --set plasticity.rule=$1 --matmul-precision $2 --out "$runs/$1-$2" 2>&1 | tail -n 1 | tee -a "$out/fmnist_cuda.jsonl"
done
