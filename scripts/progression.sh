#!/usr/bin/env bash
# Issue 55, the progression models on the phantom trial, one core each: HyperFusion, FiLM and concatenation with
# three seeds each, and the SDE without tabular data (a baseline), all with the mean term (--mean-weight 1: it took
# the day-21 error from 0.123 to 0.103 and PEHE from 0.160 to 0.124, coverage kept). Each run resumes from
# OUT/checkpoints; a finished run (its model.safetensors written) is skipped. Two cores: half 0 and half 1 take
# alternate runs.
#   mkdir -p runs/progression && taskset -c 0 env OMP_NUM_THREADS=1 nohup bash scripts/progression.sh 0 >> runs/progression/log0.txt 2>&1 &
#   taskset -c 1 env OMP_NUM_THREADS=1 nohup bash scripts/progression.sh 1 >> runs/progression/log1.txt 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -f .venv/bin/activate ]; then . .venv/bin/activate; fi
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
half=${1:-all}

index=0
run() {   # run NAME FUSION SEED: train unless runs/progression/mean1/NAME/model.safetensors exists
    local out=runs/progression/mean1/$1
    index=$((index + 1))
    if [ "$half" != all ] && [ $((index % 2)) != "$half" ]; then return; fi
    if [ -f "$out/model.safetensors" ]; then echo "== $out: done"; return; fi
    echo "== $out: $(date -u +%FT%TZ)"
    python -m medviz.train progression --domain cxr --out "$out" --n-images 2000 --steps 1500 \
        --measurement-noise 0.02 --mean-weight 1 --fusion "$2" --seed "$3"
}

for seed in 0 1 2; do
    run hyperfusion-s$seed hyperfusion $seed
    run film-s$seed film $seed
    run concat-s$seed concat $seed
done
run image_only-s0 image_only 0
echo "== all runs done $(date -u +%FT%TZ)"
