#!/usr/bin/env bash
# Everything the CUDA path needs checked, in one call of under 8 minutes on a lent GPU, every
# result written to one folder ($OUT, default benchmarks/results/gpu_check/), so that a short
# loan is enough:
#   - the tests marked cuda (and the CPU/CUDA parametrised ones) on the card;
#   - bench_spectrum on the card: ours, the explicit-Jacobian baseline (the seed code's way:
#     J built with diag_embed, QR of J^T Q) and the QR + matmul floor, H up to 512;
#   - a short built-in study trained on CUDA, its spectra checked against the CPU.
# Run from the repository root:  bash benchmarks/speed/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-benchmarks/results/gpu_check}
mkdir -p "$OUT"
export OPTUNA_LYAP_NUM_THREADS=torch
{
    date -u +%FT%TZ
    git rev-parse HEAD 2>/dev/null || echo "no git"
    nvidia-smi 2>&1 | head -20
    python -c "import torch; print(torch.__version__, torch.version.cuda, torch.cuda.is_available()); print(torch.cuda.get_device_name(0))"
} > "$OUT/machine.txt" 2>&1
status=0
timeout 150 python -m pytest -q -p no:cacheprovider -m "cuda" -rs > "$OUT/pytest_cuda.txt" 2>&1 || status=1
timeout 150 python -m pytest -q -p no:cacheprovider -k "cuda" tests/lyapunov_tests tests/test_random.py \
    > "$OUT/pytest_cuda_params.txt" 2>&1 || status=1
timeout 200 python -m benchmarks.speed.bench_spectrum --device cuda --hidden 64 128 256 512 \
    --stem spectrum_cuda > "$OUT/bench_spectrum.txt" 2>&1 || status=1
cp -r benchmarks/results/bench_spectrum "$OUT/" 2>/dev/null
timeout 120 python -m benchmarks.speed.cuda_study --out "$OUT/cuda_study.json" \
    > "$OUT/cuda_study.txt" 2>&1 || status=1
echo "exit $status" >> "$OUT/machine.txt"
exit $status
