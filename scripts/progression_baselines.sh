#!/usr/bin/env bash
# Issue 55, the deterministic baselines of the progression bench (the SDE without tabular data is in
# scripts/progression.sh): a per-horizon MLP and a GRU on the image and the record (concatenated), trained on the
# same trial, loss and steps as the SDE. Resumable like it; a finished run is skipped.
#   mkdir -p runs/progression && taskset -c 1 env OMP_NUM_THREADS=1 nohup bash scripts/progression_baselines.sh >> runs/progression/baselines.txt 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -f .venv/bin/activate ]; then . .venv/bin/activate; fi
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

for run in mlp:0 gru:0 gru:1 gru:2; do     # the GRU, the strongest baseline, with three seeds
    model=${run%:*} seed=${run#*:}
    out=runs/progression/$model-s$seed
    if [ -f "$out/model.safetensors" ]; then echo "== $out: done"; continue; fi
    echo "== $out: $(date -u +%FT%TZ)"
    python -m medviz.train progression --domain cxr --out "$out" --n-images 2000 --steps 1500 \
        --measurement-noise 0.02 --model $model --fusion concat --seed $seed
done
echo "== baselines done $(date -u +%FT%TZ)"
