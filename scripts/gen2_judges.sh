#!/usr/bin/env bash
# Issue 52 scope 3: the independent judges (transformers ConvNeXt, phantoms of other seeds than the bundled oracle's),
# half of whose training images went through the second-generation candidate VAE's round trip, so that no figure
# depends on a reader the decoder can fool. ~25 min of training each on one core, plus the round trips; a finished
# judge (its oracle/ written) is skipped.
# One domain's judges alone: bash scripts/gen2_judges.sh cxr|skin (both when none is given).
#   mkdir -p runs/gen2 && taskset -c 1 env OMP_NUM_THREADS=1 nohup bash scripts/gen2_judges.sh >> runs/gen2/judges_log.txt 2>&1 &
. "$(dirname "$0")/gen2_stage.sh"
domain=${1:-all}
case $domain in cxr|skin|all) ;; *) echo "usage: bash scripts/gen2_judges.sh [cxr|skin]" >&2; exit 2 ;; esac

judge() {   # judge DOMAIN VAE: runs/judge/DOMAIN-decoded, trained on phantoms and on VAE's round trips of half of them
    local domain=$1 vae out=runs/judge/$1-decoded
    vae=$(kept_vae "$2")
    if [ -f "$out/oracle/medviz_train.json" ]; then echo "== $out: done"; return; fi
    echo "== $out: $(date -u +%FT%TZ) python -m medviz.train oracle --domain $domain --decoded-by $vae"
    python -m medviz.train oracle --domain "$domain" --out "$out" --family convnext --first-seed 50000000 --seed 1 \
        --batch-size 64 --steps 3000 --workers 1 --checkpoint-every 300 --decoded-by "$vae" --decoded-share 0.5
}

# The skin ResNet first: the ConvNeXt judge learns no gel bubbles (held-out AUC 0.52, on phantoms too); the bundled
# ResNet reads them on phantoms (0.9997) and on no round trip. Its recipe (20,000 images, not 30,000) with half of them
# decoded says whether a decoded bubble (a pale disc without its rim) is still a readable bubble, and whether a faded
# ink mark is still ink: runs/judge/skin-resnet-decoded, a candidate for the retrained bundled oracle (scope 3).
if [ "$domain" != cxr ] && [ ! -f runs/judge/skin-resnet-decoded/oracle/medviz_train.json ]; then
    vae=$(kept_vae runs/gen2/skin-vae-L)
    echo "== runs/judge/skin-resnet-decoded: $(date -u +%FT%TZ)"
    python -m medviz.train oracle --domain skin --out runs/judge/skin-resnet-decoded --family resnet --seed 0 \
        --n-images 20000 --steps 2000 --batch-size 128 --workers 1 --checkpoint-every 300 --decoded-by "$vae" --decoded-share 0.5
fi
if [ "$domain" != cxr ]; then judge skin runs/gen2/skin-vae-L; fi
if [ "$domain" != skin ]; then judge cxr runs/gen2/cxr-vae-A; fi
echo "== judges ($domain) done $(date -u +%FT%TZ)"
