#!/usr/bin/env bash
# Issue 52 scope 2, second-generation UNets on the new VAEs' latents, on one core. Each stage resumes from its latest
# checkpoint under runs/gen2/ (every 300 steps, ~14 min here); a finished stage (its unet/ written) is skipped.
# One domain per core: bash scripts/gen2_unet.sh cxr|skin (both, in turn, when no domain is given), e.g.
#   mkdir -p runs/gen2 && taskset -c 1 env OMP_NUM_THREADS=1 nohup bash scripts/gen2_unet.sh skin >> runs/gen2/unet_skin_log.txt 2>&1 &
# The 6,000-step stages cxr-unet-A, cxr-unet-B and skin-unet-L were lost with their machine's runs/ (2026-12-07)
# before any was committed: these stages are sized to finish within one session (2,100 steps, ~1.8 h on one core),
# so that each can be kept as an fp16 candidate (assets/candidates/gen2) before a machine can take it.
. "$(dirname "$0")/gen2_stage.sh"
domain=${1:-all}
case $domain in cxr|skin|all) ;; *) echo "usage: bash scripts/gen2_unet.sh [cxr|skin]" >&2; exit 2 ;; esac

kept() {   # kept RUN: RUN's UNet is written, here or as its fp16 candidate in git (a fresh machine's runs/ is empty)
    [ -f "$1/unet/diffusion_pytorch_model.safetensors" ] ||
        [ -f "assets/candidates/gen2/$(basename "$1")/unet/diffusion_pytorch_model.safetensors" ]
}

kept_pipeline() {   # kept_pipeline RUN: RUN when it holds its UNet, else its fp16 candidate
    if [ -f "$1/unet/diffusion_pytorch_model.safetensors" ]; then echo "$1"; else echo "assets/candidates/gen2/$(basename "$1")"; fi
}

pipeline_with_vae() {   # pipeline_with_vae PIPELINE VAE_FOLDER OUT: a copy of PIPELINE whose vae/ is VAE_FOLDER/vae
    local pipeline=$1 vae=$2 out=$3
    if [ -f "$out/vae/diffusion_pytorch_model.safetensors" ]; then return; fi
    vae=$(kept_vae "$vae")
    rm -rf "$out" && mkdir -p "$out" && cp -r "$pipeline"/. "$out"/ && rm -rf "$out/vae" && cp -r "$vae/vae" "$out/vae"
}

# CXR: the bundled text encoder and UNet, fine-tuned on cxr-vae-A's latents (every device kind kept through its round
# trip; a new scaling factor, so the bundled UNet must re-learn the latent statistics). No UNet structure weight:
# on skin it darkened every sample (docs/candidates/skin-phantom). Captions name each device kind present.
# Half the device phantoms carry exactly one kind (--single-device-share 0.5): cxr-unet-A, trained on the SCM's own
# device sets (a kind alone in 6-16% of them), drew the same devices whichever kind was asked at 2,100, 3,900 and
# 6,000 steps; 300 steps of this data (cxr-unet-B) took the kinds not asked from 46% to 20% (docs/results/gen2.md).
if [ "$domain" != skin ] && ! kept runs/gen2/cxr-unet-C && ! kept runs/gen2/cxr-unet-D; then
    pipeline_with_vae assets/models/cxr-phantom runs/gen2/cxr-vae-A runs/gen2/cxr-pipe-A
    stage text2image runs/gen2/cxr-unet-C --domain cxr --init-from runs/gen2/cxr-pipe-A --n-images 10000 --steps 2100 \
        --batch-size 16 --learning-rate 2e-4 --ema-decay 0.999 --caption-variants 4 --single-device-share 0.5 --seed 3
fi

# Skin: the same recipe on skin-vae-L's latents (ruler, hair, ink kept; bubbles drawn as pale discs). The candidate's
# 1,500-step fine-tunes (docs/candidates/skin-phantom) drew ruler and hair when asked.
if [ "$domain" != cxr ] && ! kept runs/gen2/skin-unet-M; then
    pipeline_with_vae assets/models/skin-phantom runs/gen2/skin-vae-L runs/gen2/skin-pipe-L
    stage text2image runs/gen2/skin-unet-M --domain skin --init-from runs/gen2/skin-pipe-L --n-images 10000 --steps 2100 \
        --batch-size 16 --learning-rate 2e-4 --ema-decay 0.999 --caption-variants 4 --seed 1
fi

# Second stages, each from the first's final model (its candidate on a fresh machine), half its learning rate.
# CXR: C left the kinds that share a path unseparated (a central line drawn with a pacemaker's box, an NG tube with a
# tracheal segment read as an ETT; kinds not asked 27%): more single-kind phantoms, 0.8 of those with devices.
# Skin: M draws ruler, hair and ink when asked, but hair as a crack net and ink as blots: longer training first.
if [ "$domain" != skin ]; then
    kept runs/gen2/cxr-unet-D || stage text2image runs/gen2/cxr-unet-D --domain cxr --init-from "$(kept_pipeline runs/gen2/cxr-unet-C)" \
        --n-images 10000 --steps 2100 --batch-size 16 --learning-rate 1e-4 --ema-decay 0.999 --caption-variants 4 \
        --single-device-share 0.8 --seed 4
fi
if [ "$domain" != cxr ]; then
    stage text2image runs/gen2/skin-unet-M2 --domain skin --init-from "$(kept_pipeline runs/gen2/skin-unet-M)" \
        --n-images 10000 --steps 2100 --batch-size 16 --learning-rate 1e-4 --ema-decay 0.999 --caption-variants 4 \
        --seed 2
fi

# Third stages. Skin: M2 moved hair and ink toward the phantoms' shapes on every figure (steps are a lever), and no
# skin model draws dark skin unasked (the schedule's last step leaks the mean tone): M2 continued with offset noise 0.1.
# CXR: D (0.8 single-kind) took the kinds not asked from 27% to 15%: D continued as it was.
if [ "$domain" != skin ]; then
    stage text2image runs/gen2/cxr-unet-E --domain cxr --init-from "$(kept_pipeline runs/gen2/cxr-unet-D)" \
        --n-images 10000 --steps 2100 --batch-size 16 --learning-rate 1e-4 --ema-decay 0.999 --caption-variants 4 \
        --single-device-share 0.8 --seed 6
fi
if [ "$domain" != cxr ]; then
    stage text2image runs/gen2/skin-unet-M3 --domain skin --init-from runs/gen2/skin-unet-M2 --n-images 10000 \
        --steps 2100 --batch-size 16 --learning-rate 1e-4 --ema-decay 0.999 --caption-variants 4 --noise-offset 0.1 \
        --seed 5
fi
echo "== UNet stages ($domain) done $(date -u +%FT%TZ)"
