"""RSA's baselines, in the same harness as RSA itself.

=============== =================================================================================
baseline        how (all act on the relative model's inverse depth y; depth = 1 / (α·y + β))
=============== =================================================================================
Median          ``evaluate --relative MODEL -a median``: depth 1/y scaled by median(gt) / median(1/y)
                on each image's valid pixels (sees the ground truth)
Linear Fit      ``-a lstsq-disparity``: per-image least squares of α·y + β ≈ 1/gt (sees the ground truth)
Global          ``-a global-disparity --global-fit TRAIN``: one α, β fitted by least squares over every
                valid pixel of the training split, then applied to every test image
Image           :class:`ImageBaseline`: a small CNN predicts α, β from the image instead of a caption,
                trained exactly like RSA (``rsa.conditioning: image``)
=============== =================================================================================

Median, Linear Fit and Global are alignments of the evaluation toolkit
(:mod:`metricdepth.alignment`); :data:`BASELINE_ALIGNMENTS` maps the paper's names to them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .head import METADATA_KEY, RSAHead

__all__ = ["BASELINE_ALIGNMENTS", "ImageBaseline", "RelativePredictor", "compare", "load_scale_model"]

BASELINE_ALIGNMENTS = {"Median": "median", "Linear Fit": "lstsq-disparity", "Global": "global-disparity"}
"""The paper's baseline names → the evaluation toolkit's alignment of the relative model's output."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ImageBaseline(nn.Module):
    """The Image baseline: images → (α, β) through a small CNN and an :class:`RSAHead`.

    Args:
        encoder: a timm model name (built without pretrained weights: none can be downloaded here);
            its pooled features (``num_classes=0``) feed the head.
        image_size: the side of the square input, pixels (images are resized, not cropped).
        layout: the head's layout (see :class:`RSAHead`).
    """

    conditioning = "image"

    def __init__(self, encoder: str = "resnet10t", image_size: int = 128, layout: str = "large") -> None:
        super().__init__()
        import timm

        self.encoder_name, self.image_size = encoder, int(image_size)
        self.encoder = timm.create_model(encoder, pretrained=False, num_classes=0)
        self.head = RSAHead(self.encoder.num_features, layout, conditioning="image")
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @property
    def text_encoder(self) -> None:
        return None

    @property
    def layout(self) -> str:
        return self.head.layout

    def prepare(self, pixels: list[Tensor] | Tensor) -> Tensor:
        """(3, H, W) uint8 (or float in [0, 1]) images → (B, 3, S, S) uint8 network input."""
        import torch.nn.functional as F

        out = []
        for item in pixels:
            x = item.float() / 255.0 if item.dtype == torch.uint8 else item.float()
            x = F.interpolate(
                x[None], size=(self.image_size,) * 2, mode="bilinear", align_corners=False, antialias=True
            )
            out.append((x.clamp(0, 1) * 255.0).round().to(torch.uint8))
        return torch.cat(out)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """(B, 3, S, S) uint8 images → α (B,), β (B,)."""
        x = (images.float() / 255.0 - self.mean) / self.std
        return self.head(self.encoder(x))

    def save_pretrained(self, path: str | os.PathLike, **extra: str) -> Path:
        from ..models.depth_pro.weights import write_safetensors

        path = Path(path)
        if path.suffix != ".safetensors":
            path = path / "rsa.safetensors"
        config = {
            **self.head.config(),
            "image_encoder": self.encoder_name,
            "image_size": self.image_size,
            **extra,
        }
        return write_safetensors(self.state_dict(), path, {METADATA_KEY: json.dumps(config, sort_keys=True)})

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ImageBaseline:
        return cls(config["image_encoder"], int(config["image_size"]), config.get("layout", "large"))


def load_scale_model(path: str | os.PathLike) -> RSAHead | ImageBaseline:
    """An RSA head or an Image baseline from a file (or a run's ``RUN/last`` / ``RUN/best``), whichever
    it holds (its metadata say)."""
    from safetensors import safe_open

    from ..models.depth_pro.weights import CheckpointError

    file = Path(path)
    if file.is_dir():
        candidates = [file / "rsa.safetensors", file / "model.safetensors"]
        file = next((c for c in candidates if c.is_file()), file)
    if file.suffix == ".safetensors" and file.is_file():
        with safe_open(str(file), framework="pt") as handle:
            metadata = handle.metadata() or {}
        config = json.loads(metadata.get(METADATA_KEY, "{}"))
        if config.get("conditioning") == "image":
            model = ImageBaseline.from_config(config)
            from safetensors.torch import load_file

            try:
                model.load_state_dict(load_file(str(file)), strict=True)
            except RuntimeError as err:
                raise CheckpointError(f"{file}: not a matching Image baseline ({err})") from None
            return model.eval()
    return RSAHead.from_pretrained(path)


# ------------------------------------------------------------------------------ the comparison
class RelativePredictor:
    """``predict(sample)``: a relative model's inverse depth of the sample's image (``kind="relative"``),
    or, for ``relative="ground-truth"``, the sample's own depth as min-max normalised inverse depth."""

    def __init__(self, relative: Any) -> None:
        from .pipeline import ORACLE_RELATIVE

        self.relative = None if relative == ORACLE_RELATIVE else relative

    def predict(self, sample: dict[str, Any]) -> Any:
        from ..io.images import LoadedImage
        from ..prediction import Prediction
        from .pipeline import oracle_inverse_depth

        if self.relative is None:
            if sample.get("depth") is None:
                raise ValueError(
                    f"{sample['name']}: relative depth from ground truth needs the sample's depth"
                )
            y = oracle_inverse_depth(sample["depth"], sample.get("valid"))
            return Prediction(depth=None, inverse_depth=y, kind="relative")
        return self.relative.infer(LoadedImage(rgb=sample["image"]))


def compare(
    relative: Any,
    eval_sets: list[Any],
    *,
    models: dict[str, Any] | None = None,
    text_encoder: Any = None,
    global_fit: dict[str, Any] | None = None,
    caption: str = "sample",
    caption_kind: str = "all",
    caption_index: int = 0,
    captions_dir: str | os.PathLike | None = None,
    depth_range: tuple[float, float] = (1e-3, 1e4),
    on_image: Any = None,
    baselines: bool = True,
    device: str = "auto",
    captioner: Any = None,
) -> Any:
    """RSA's comparison table on any data: one :class:`~metricdepth.evaluation.runner.EvalResult` whose
    ``alignment`` column names the method — Median, Linear Fit, Global (when ``global_fit`` gives each
    dataset a split to fit on, e.g. its training split) and one row per model in ``models`` (label →
    an :class:`RSAHead` or :class:`ImageBaseline`, e.g. ``{"RSA": head, "Image": image_baseline}``).
    ``baselines=False`` scores only the models.

    ``relative``: a :class:`~metricdepth.models.relative.RelativeDepthModel` (or anything
    ``load_relative`` takes, or ``"ground-truth"``). Captions: see :class:`RSAPredictor` (``captioner``:
    what ``caption="auto"`` uses). ``device``: where heads and text encoders run.
    """
    from ..evaluation.runner import EvalResult, evaluate
    from ..models.relative import RelativeDepthModel, load_relative
    from .pipeline import ORACLE_RELATIVE, RSAPipeline, RSAPredictor
    from .text import TextEncoder

    if relative != ORACLE_RELATIVE and not (
        isinstance(relative, RelativeDepthModel) or hasattr(relative, "inverse_depth")
    ):
        relative = load_relative(relative)
    names = {mode: name for name, mode in BASELINE_ALIGNMENTS.items()}
    alignments = ["median", "lstsq-disparity"] + (["global-disparity"] if global_fit else [])
    results = []
    if baselines:
        predictor = RelativePredictor(relative)
        results.append(
            (None, evaluate(predictor, eval_sets, alignments, global_fit=global_fit, on_image=on_image))
        )
    encoders: dict[str, Any] = {}
    for label, model in (models or {}).items():
        encoder = text_encoder
        if getattr(model, "conditioning", "text") == "text" and encoder is None:
            name = model.text_encoder
            if not name:
                raise ValueError(f"{label}: the head does not name its text encoder; pass text_encoder=")
            if name not in encoders:
                encoders[name] = TextEncoder.create(name, device=device)
            encoder = encoders[name]
        pipeline = RSAPipeline(
            relative,
            encoder,
            model,
            min_depth=depth_range[0],
            max_depth=depth_range[1],
            device=device,
            captioner=captioner,
        )
        predictor = RSAPredictor(
            pipeline, caption=caption, kind=caption_kind, index=caption_index, captions_dir=captions_dir
        )
        results.append((label, evaluate(predictor, eval_sets, ("none",), on_image=on_image)))
    merged = EvalResult()
    for label, result in results:
        for row in result.rows:
            merged.rows.append({**row, "alignment": label or names.get(row["alignment"], row["alignment"])})
        for row in result.per_image:
            merged.per_image.append(
                {**row, "alignment": label or names.get(row["alignment"], row["alignment"])}
            )
        merged.protocols.update(result.protocols)
        merged.failures += [(d, n, f"{label or 'baselines'}: {r}") for d, n, r in result.failures]
    order = {s.label: i for i, s in enumerate(eval_sets)}
    merged.rows.sort(key=lambda r: order.get(r["dataset"], len(order)))
    return merged
