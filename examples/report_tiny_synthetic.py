"""Numbers and figures for the tiny-synthetic training demonstration (README, "Training").

Reads the runs that ``examples/train_tiny_synthetic.sh WORK`` made and

* prints, for each run, its held-out scores on test scenes that neither training (seed 0) nor
  validation (seed 1000) saw: δ1, AbsRel and boundary F1 with the ground-truth focal length, the
  relative model after a per-image least-squares fit in inverse depth, the FOV head's δ25 / δ50, and
  the whole zero-shot pipeline (depth with the predicted focal length);
* writes ``docs/training_curves.png`` (training loss and validation metrics over steps) and
  ``docs/training_stage2.png`` (held-out predictions: image, ground truth, stage 1, stage 1
  continued, stage 2).

Usage: python examples/report_tiny_synthetic.py WORK [--test-scenes 100] [--docs docs]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from metricdepth import DepthPro
from metricdepth.data.synthetic import SyntheticScenes
from metricdepth.evaluation.protocols import EvalSet
from metricdepth.evaluation.runner import evaluate
from metricdepth.train.validation import SYNTHETIC_PROTOCOL, ValidationPredictor

RUNS = ("stage1", "stage1-continued", "stage2", "stage2-equal-weights", "fov", "relative")
TEST_SEED = 2000


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def score(model: DepthPro, scenes: SyntheticScenes, focal: str, alignment: str = "none") -> dict:
    eval_set = EvalSet("test", scenes, SYNTHETIC_PROTOCOL)
    result = evaluate(ValidationPredictor(model, focal=focal), [eval_set], alignments=(alignment,))
    if result.failures:
        print(f"  {len(result.failures)} failures, e.g. {result.failures[0]}")
    return result.rows[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("work", type=Path)
    parser.add_argument("--test-scenes", type=int, default=100)
    parser.add_argument("--docs", type=Path, default=Path("docs"))
    args = parser.parse_args()
    scenes = SyntheticScenes(384, seed=TEST_SEED, length=args.test_scenes)
    runs = {name: args.work / name for name in RUNS if (args.work / name / "last").is_dir()}

    print(f"held-out test: {args.test_scenes} synthetic scenes, seed {TEST_SEED}, 384x384")
    models = {name: DepthPro.from_pretrained(run / "last", device="cpu") for name, run in runs.items()}
    if "stage1" in models:  # the weights stage 1 started from (the trainer seeds run.seed = 0 first)
        torch.manual_seed(0)
        models = {"initial": DepthPro(models["stage1"].config).eval(), **models}
    summary = {}
    for name, model in models.items():
        if name == "fov":
            row = score(model, scenes, "predicted")
            summary[name] = {k: row.get(k) for k in ("focal_delta25", "focal_delta50", "d1", "abs_rel")}
            print(
                f"{name:18s} FOV head: δ25 {row['focal_delta25']:.3f}  δ50 {row['focal_delta50']:.3f}  "
                f"median rel. focal error {row['focal_median_rel_err']:.3f}; zero-shot depth with the "
                f"predicted focal: δ1 {row['d1']:.3f}  AbsRel {row['abs_rel']:.3f}"
            )
            # Baseline: the best constant FOV (the test scenes' own median), the oracle constant.
            fovs = np.array([scenes[i]["fov_deg"] for i in range(len(scenes))])
            constant = np.median(fovs)
            err = np.abs(np.tan(np.radians(fovs) / 2) / np.tan(np.radians(constant) / 2) - 1)
            summary["fov-constant"] = {
                "focal_delta25": float(np.mean(err < 0.25)),
                "focal_delta50": float(np.mean(err < 0.5)),
            }
            print(
                f"{'constant FOV':18s} the test set's median FOV {constant:.1f}° for every image: "
                f"δ25 {np.mean(err < 0.25):.3f}  δ50 {np.mean(err < 0.5):.3f}"
            )
            continue
        alignment = "lstsq-disparity" if name == "relative" else "none"
        row = score(model, scenes, "ground-truth", alignment)
        summary[name] = {k: row.get(k) for k in ("d1", "abs_rel", "boundary_f1")}
        print(
            f"{name:18s} ({alignment}) δ1 {row['d1']:.3f}  AbsRel {row['abs_rel']:.3f}  "
            f"boundary F1 {row['boundary_f1']:.3f}"
        )
    args.docs.mkdir(parents=True, exist_ok=True)
    (args.work / "report.json").write_text(json.dumps(summary, indent=2))

    # Curves.
    fig, axes = plt.subplots(1, 4, figsize=(20, 4))
    offset = 0
    for name in ("stage1", "stage2", "stage1-continued", "relative"):
        if name not in runs:
            continue
        log = records(runs[name])
        start = offset if name in ("stage2", "stage1-continued") else 0
        if name == "stage1":
            offset = max(r["step"] for r in log)
        train = [(r["step"] + start, r["loss"]) for r in log if "loss" in r]
        steps, values = zip(*train, strict=True)
        window = 20
        smooth = (
            np.convolve(values, np.ones(window) / window, mode="valid") if len(values) > window else values
        )
        axes[0].plot(steps[len(steps) - len(smooth) :], smooth, label=name)
        val = [(r["step"] + start, r) for r in log if "val/d1" in r or "val/focal_delta25" in r]
        if name != "fov" and val:
            axes[1].plot([s for s, _ in val], [r["val/d1"] for _, r in val], "o-", label=f"{name} δ1")
            axes[2].plot([s for s, _ in val], [r["val/boundary_f1"] for _, r in val], "o-", label=name)
    axes[0].set(title="training loss (moving average of 20 steps)", xlabel="step", yscale="log")
    axes[0].text(
        0.02,
        0.02,
        "stage 2 sums other terms: its loss is on another scale",
        transform=axes[0].transAxes,
        fontsize=7,
    )
    axes[1].set(title="validation δ1 (24 held-out scenes, GT focal)", xlabel="step")
    axes[2].set(title="validation boundary F1", xlabel="step")
    if "fov" in runs:
        log = records(runs["fov"])
        val = [r for r in log if "val/focal_delta25" in r]
        for key in ("focal_delta25", "focal_delta50"):
            axes[3].plot([r["step"] for r in val], [r[f"val/{key}"] for r in val], "o-", label=key)
        axes[3].set(title="FOV head: validation δ25 / δ50 of the focal length", xlabel="FOV step")
    for axis in axes:
        axis.legend(fontsize=8)
        axis.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(args.docs / "training_curves.png", dpi=80)
    print("wrote", args.docs / "training_curves.png")

    # Held-out predictions before / after stage 2.
    shown = [name for name in ("stage1", "stage1-continued", "stage2") if name in models]
    picks = [0, 1, 2, 5]
    fig, axes = plt.subplots(len(picks), 2 + len(shown), figsize=(3 * (2 + len(shown)), 3 * len(picks)))
    for row, index in enumerate(picks):
        sample = scenes[index]
        gt = np.where(sample["valid"], 1.0 / np.maximum(sample["depth"], 1e-6), np.nan)
        limits = np.nanpercentile(gt, [2, 98])
        axes[row, 0].imshow(sample["image"])
        axes[row, 1].imshow(gt, cmap="turbo", vmin=limits[0], vmax=limits[1])
        for col, name in enumerate(shown):
            prediction = models[name].infer(sample["image"], f_px=float(sample["K"][0, 0]))
            axes[row, 2 + col].imshow(
                prediction.inverse_depth.numpy(), cmap="turbo", vmin=limits[0], vmax=limits[1]
            )
        titles = ["image", "ground truth (1/m)", *shown]
        for col, title in enumerate(titles):
            axes[row, col].set_axis_off()
            if row == 0:
                axes[row, col].set_title(title)
    fig.tight_layout()
    fig.savefig(args.docs / "training_stage2.png", dpi=70)
    print("wrote", args.docs / "training_stage2.png")


if __name__ == "__main__":
    main()
