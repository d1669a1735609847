# Sourced by the second-generation stage scripts (issue 52): the README's environment, one thread, and stage().
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[1]}")/.."
if [ -f .venv/bin/activate ]; then . .venv/bin/activate; fi   # the README's environment, where it was made
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
mkdir -p runs/gen2

stage() {   # stage JOB OUT ARGS...: python -m medviz.train JOB (vae or text2image) unless OUT holds its weights
    local job=$1 out=$2; shift 2
    local part=vae; [ "$job" = text2image ] && part=unet
    if [ -f "$out/$part/diffusion_pytorch_model.safetensors" ]; then echo "== $out: done"; return; fi
    echo "== $out: $(date -u +%FT%TZ) python -m medviz.train $job --out $out $*"
    python -m medviz.train "$job" --out "$out" "$@" --checkpoint-every 300 --workers 1
}

kept_vae() {   # kept_vae FOLDER: FOLDER when it holds vae/, else its fp16 candidate in git (a fresh machine's runs/ is empty)
    if [ -d "$1/vae" ]; then echo "$1"; else echo "assets/candidates/gen2/$(basename "$1")"; fi
}
