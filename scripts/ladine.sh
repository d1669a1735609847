#!/usr/bin/env bash
# Issue 53, LaDiNE per domain on its primary task, on one core. Each run resumes from its checkpoint under runs/ladine/
# (every 250 steps, a few minutes here); a finished run (its model.safetensors written) is skipped.
#   mkdir -p runs/ladine && taskset -c 0 env OMP_NUM_THREADS=1 nohup bash scripts/ladine.sh >> runs/ladine/log.txt 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -f .venv/bin/activate ]; then . .venv/bin/activate; fi
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

run() {   # run DOMAIN TARGET OUT: train unless OUT/model.safetensors exists
    local domain=$1 target=$2 out=$3
    if [ -f "$out/model.safetensors" ]; then echo "== $out: done"; return; fi
    echo "== $out: $(date -u +%FT%TZ)"
    python -m medviz.train ladine --domain "$domain" --target "$target" --out "$out" \
        --n-images 8000 --steps 6000 --denoiser-steps 2000 --workers 1
}

# Skin first: CXR was trained and benched (assets/bench/robust_cxr.json) on a machine whose runs/ is gone.
run skin melanoma runs/ladine/skin-melanoma
run cxr pleural_effusion runs/ladine/cxr-pleural_effusion
