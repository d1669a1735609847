#!/usr/bin/env bash
# Issue 55, the progression models on the phantom trial, one core: HyperFusion, FiLM and concatenation with three
# seeds each, and the SDE without tabular data (a baseline). Each run resumes from OUT/checkpoints; a finished run
# (its model.safetensors written) is skipped.
#   mkdir -p runs/progression && taskset -c 0 env OMP_NUM_THREADS=1 nohup bash scripts/progression.sh >> runs/progression/log.txt 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -f .venv/bin/activate ]; then . .venv/bin/activate; fi
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

run() {   # run OUT ARGS...: train unless OUT/model.safetensors exists
    local out=$1; shift
    if [ -f "$out/model.safetensors" ]; then echo "== $out: done"; return; fi
    echo "== $out: $(date -u +%FT%TZ) $*"
    python -m medviz.train progression --domain cxr --out "$out" --n-images 2000 --steps 1500 \
        --measurement-noise 0.02 "$@"
}

for seed in 0 1 2; do
    run runs/progression/hyperfusion-s$seed --fusion hyperfusion --seed $seed
    if [ $seed = 0 ]; then run runs/progression/image_only-s0 --fusion image_only --seed 0; fi
    run runs/progression/film-s$seed --fusion film --seed $seed
    run runs/progression/concat-s$seed --fusion concat --seed $seed
done
echo "== all runs done $(date -u +%FT%TZ)"
