#!/usr/bin/env bash
# The CPU demonstration of Depth Pro training (README, "Training"): the tiny preset on procedural scenes.
#   stage 1 (MAE + SSI-MAGE) -> stage 2 (MAE, MSE, MAGE, MALE, MSGE) -> FOV head, plus a control that
#   continues stage 1 for as many steps as stage 2 (so the stage-2 effect is not just "more training"),
#   and a relative model (SSI-MAE only) for RSA.
# Usage: examples/train_tiny_synthetic.sh [WORK_DIR]   (about an hour on 2 CPU cores)
set -euo pipefail
work=${1:-runs/tiny-synthetic}
mkdir -p "$work"
data="folder=$work/scenes"
common=(data.datasets.0.source="$data")

# 1000 training scenes, rendered once (validation streams 24 held-out scenes, seed 1000).
[ -d "$work/scenes" ] || metricdepth synth "$work/scenes" --count 1000 --size 384 --seed 0

metricdepth train tiny-synthetic -o "$work/stage1" "${common[@]}"
metricdepth train tiny-synthetic-stage2 -o "$work/stage2" --init "$work/stage1/last" "${common[@]}"
# Control: stage-1 losses for the same 400 steps and rates as stage 2, from the same weights.
metricdepth train tiny-synthetic-stage2 -o "$work/stage1-continued" --init "$work/stage1/last" \
    "${common[@]}" 'loss.synthetic={mae: 1.0, ssi_mage: 1.0}'
metricdepth train-fov tiny-synthetic-fov -o "$work/fov" --init "$work/stage2/last" "${common[@]}"
metricdepth train tiny-relative -o "$work/relative" "${common[@]}"
