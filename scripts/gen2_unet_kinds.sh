#!/usr/bin/env bash
# Issue 52 scope 2, the data lever for the CXR device kinds: cxr-unet-A drew the pacemaker in 56-62% of samples
# whichever kind was asked, at 2,100 and at 3,900 steps alike (docs/results/gen2.md). Among its training phantoms a
# kind is alone in only 6-16% of those with devices, so a caption rarely pins one word to one shape. This stage
# continues cxr-unet-A's final model on phantoms half of whose device sets are exactly one kind, each as likely
# (phantoms.cxr.build_graph's single_device_share; the other factors and seeds are those of A's phantoms), at half
# A's learning rate. Resumes from its latest checkpoint (every 300 steps, ~14 min here); needs cxr-unet-A finished.
#   taskset -c 0 env OMP_NUM_THREADS=1 nohup bash scripts/gen2_unet_kinds.sh >> runs/gen2/unet_log.txt 2>&1 &
. "$(dirname "$0")/gen2_stage.sh"

if [ ! -f runs/gen2/cxr-unet-A/unet/diffusion_pytorch_model.safetensors ]; then
    echo "runs/gen2/cxr-unet-A has no unet/ yet: finish it first (bash scripts/gen2_unet.sh cxr)" >&2
    exit 1
fi
stage text2image runs/gen2/cxr-unet-B --domain cxr --init-from runs/gen2/cxr-unet-A --n-images 10000 --steps 1800 \
    --batch-size 16 --learning-rate 1e-4 --ema-decay 0.999 --caption-variants 4 --single-device-share 0.5 --seed 2
echo "== cxr-unet-B done $(date -u +%FT%TZ)"
