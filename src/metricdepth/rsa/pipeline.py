"""RSA as a depth source: relative depth + a caption → metric depth, behind the inference seam.

:class:`RSAPipeline` joins a frozen relative depth model (any :mod:`metricdepth.models.relative`
source), a frozen text encoder and an :class:`~metricdepth.rsa.head.RSAHead`:

    y = relative(image)                    inverse relative depth, (H, W), raw and non-negative
    α, β = head(text_encoder(caption))     one global scale and shift per image
    depth = 1 / (α·y + β)                  metres, clamped to [min_depth, max_depth]

Its ``infer`` returns a :class:`~metricdepth.Prediction` like every other source, with the caption it
used in ``prediction.caption``. :class:`RSAPredictor` runs it on dataset samples for
:func:`metricdepth.evaluation.evaluate`, taking each sample's own caption.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..inference import ImageInput, coerce_images, resolve_focal, stack_predictions, user_cameras
from ..prediction import Prediction
from .head import RSAHead

__all__ = ["AUTO_CAPTION", "ORACLE_RELATIVE", "RSAPipeline", "RSAPredictor", "oracle_inverse_depth"]

AUTO_CAPTION = "auto"
"""``caption="auto"``: caption each image with the offline COCO detector (:class:`AutoCaptioner`)."""

DEFAULT_DEPTH_RANGE = (1e-3, 1e4)
"""Metres: the default clamp of RSA depth (the network range of the rest of the toolkit)."""


ORACLE_RELATIVE = "ground-truth"
"""``rsa.relative: ground-truth``: each image's own depth as min-max normalised inverse depth."""


def oracle_inverse_depth(depth: np.ndarray | Tensor, valid: np.ndarray | Tensor | None = None) -> Tensor:
    """Relative depth made from ground truth the way relative models lose scale: inverse depth on valid
    pixels, min-max normalised per image to [0, 1] (0 elsewhere). (H, W) float32.

    Both the scale and the shift of inverse depth are gone (a flat image gives 0.5 everywhere), so
    only something outside the image's pixels — a caption — can restore them.
    """
    d = torch.as_tensor(np.asarray(depth) if not isinstance(depth, Tensor) else depth).float()
    ok = torch.isfinite(d) & (d > 0)
    if valid is not None:
        ok &= torch.as_tensor(np.asarray(valid) if not isinstance(valid, Tensor) else valid).bool()
    y = torch.zeros_like(d)
    if not ok.any():
        return y
    inverse = 1.0 / d[ok]
    low, high = inverse.min(), inverse.max()
    y[ok] = (inverse - low) / (high - low) if high > low else torch.full_like(inverse, 0.5)
    return y


class RSAPipeline:
    """Metric depth from any relative depth model and a caption (RSA, Zeng et al. 2024).

    Args:
        relative: a :class:`~metricdepth.models.relative.RelativeDepthModel` or anything
            :func:`~metricdepth.models.relative.load_relative` takes (a path, ``hf:ID``, a callable).
        text_encoder: a :class:`~metricdepth.rsa.text.TextEncoder` or its name; default: the one the
            head was trained with (stored in its file).
        head: an :class:`RSAHead` (its input width must equal the encoder's ``dim``).
        min_depth, max_depth: metres; depth is clamped into this range (the evaluation caps of a
            dataset are a good choice, e.g. 10 m indoors, 80 m on roads).
        captioner: what ``caption="auto"`` uses (default: :class:`~metricdepth.rsa.detector.AutoCaptioner`
            with the SSD-MobileNet COCO detector, built on first use).
        device: where the head runs (the relative model and the encoder keep their own).
    """

    def __init__(
        self,
        relative: Any,
        text_encoder: Any = None,
        head: RSAHead | None = None,
        *,
        min_depth: float = DEFAULT_DEPTH_RANGE[0],
        max_depth: float = DEFAULT_DEPTH_RANGE[1],
        captioner: Any = None,
        device: str | torch.device = "auto",
    ) -> None:
        from ..device import resolve_device
        from ..models.relative import RelativeDepthModel, load_relative
        from .text import TextEncoder

        if head is None:
            raise ValueError("RSAPipeline needs a head: RSAHead.from_pretrained(PATH) or a trained one")
        if not 0 < min_depth < max_depth:
            raise ValueError(f"need 0 < min_depth < max_depth, got {min_depth:g} and {max_depth:g}")
        self.device = resolve_device(device)
        self.conditioning = getattr(head, "conditioning", "text")
        if relative == ORACLE_RELATIVE:  # y comes with each call (infer's inverse_relative)
            self.relative = None
        elif isinstance(relative, RelativeDepthModel) or hasattr(relative, "inverse_depth"):
            self.relative = relative  # any object with inverse_depth(pixels) -> (H, W)
        else:
            self.relative = load_relative(relative)
        if self.conditioning == "text":
            if text_encoder is None:
                if not head.text_encoder:
                    raise ValueError(
                        "the RSA head does not name its text encoder; pass text_encoder= (e.g. 'clip-rn50')"
                    )
                text_encoder = head.text_encoder
            if isinstance(text_encoder, str):
                text_encoder = TextEncoder.create(text_encoder, device=self.device)
            if text_encoder.dim != head.in_dim:  # type: ignore[union-attr]
                trained = head.text_encoder or "an unknown encoder"
                raise ValueError(
                    f"the text encoder {text_encoder.name!r} gives {text_encoder.dim}-d embeddings but the "
                    f"RSA head takes {head.in_dim}-d ones (trained with {trained})"  # type: ignore[union-attr]
                )
        self.text_encoder = text_encoder
        self.head = head.to(
            self.device
        ).eval()  # inference runs under no_grad; a trained head stays trainable
        self.min_depth, self.max_depth = float(min_depth), float(max_depth)
        self._captioner = captioner

    @classmethod
    def from_pretrained(
        cls,
        head: str | os.PathLike,
        relative: Any,
        *,
        text_encoder: Any = None,
        **options: Any,
    ) -> RSAPipeline:
        """A pipeline from an RSA head file (official or this project's; or an Image baseline's) and a
        relative model."""
        from .baselines import load_scale_model

        return cls(relative, text_encoder, load_scale_model(head), **options)

    # ------------------------------------------------------------------------------ pieces
    @property
    def captioner(self) -> Any:
        if self._captioner is None:
            from .detector import AutoCaptioner

            self._captioner = AutoCaptioner()
        return self._captioner

    @torch.no_grad()
    def scale_shift(self, captions: str | Sequence[str]) -> tuple[Tensor, Tensor]:
        """α, β (B,) for captions (a caption of each image)."""
        embedding = self.text_encoder.encode(captions).to(self.device)
        return self.head(embedding)

    def metric(self, inverse_relative: Tensor, alpha: Tensor | float, beta: Tensor | float) -> Tensor:
        """Inverse metric depth (1/m) = α·y + β, clamped to [1/max_depth, 1/min_depth]."""
        inverse = torch.as_tensor(alpha) * inverse_relative + torch.as_tensor(beta)
        return inverse.clamp(1.0 / self.max_depth, 1.0 / self.min_depth)

    def captions_for(self, images: Any, caption: str | Sequence[str] | None, count: int) -> list[str]:
        """One caption per image: the same string for all, one each from a list, or ``"auto"``."""
        if caption is None:
            raise ValueError("RSA needs a caption of each image: caption='An image with ...' or 'auto'")
        if isinstance(caption, str):
            if caption == AUTO_CAPTION:
                return [self.captioner.caption(_rgb(images.pixels[i])) for i in range(count)]
            return [caption] * count
        captions = list(caption)
        if len(captions) != count:
            raise ValueError(f"{len(captions)} captions for {count} images")
        auto = [i for i, c in enumerate(captions) if c == AUTO_CAPTION]
        for i in auto:
            captions[i] = self.captioner.caption(_rgb(images.pixels[i]))
        return captions

    # ------------------------------------------------------------------------------ inference
    @torch.no_grad()
    def infer(
        self,
        image: ImageInput,
        caption: str | Sequence[str] | None = None,
        *,
        f_px: Any = None,
        K: Any = None,
        fov_deg: Any = None,
        focal: str = "auto",
        use_exif: bool = True,
        inverse_relative: Tensor | Sequence[Tensor] | None = None,
    ) -> Prediction | list[Prediction]:
        """Metric depth of one image or many (same containers as ``DepthPro.infer``).

        ``caption``: a string for every image, a list with one per image, or ``"auto"`` (the offline
        detector captions each image). The caption used is in ``prediction.caption``. RSA has no
        camera model: ``f_px``, ``K``, ``fov_deg`` or an EXIF focal length only give the prediction
        intrinsics (for point clouds); without one, ``intrinsics`` is None. An Image-baseline head
        takes no caption. ``inverse_relative``: the relative depth y of each image, (H, W), given
        instead of running the relative model (a pipeline built with ``relative="ground-truth"``).
        """
        images = coerce_images(image)
        count = len(images)
        widths = [images.size(i)[1] for i in range(count)]
        users = user_cameras(count, widths, f_px=f_px, K=K, fov_deg=fov_deg)
        if self.conditioning == "image":
            captions: list[str | None] = [None] * count
            alphas, betas = self.head(self.head.prepare(images.pixels).to(self.device))  # type: ignore[operator]
        else:
            captions = self.captions_for(images, caption, count)  # type: ignore[assignment]
            alphas, betas = self.scale_shift(captions)  # type: ignore[arg-type]
        given = _per_image_maps(inverse_relative, count)
        if given is None and self.relative is None:
            raise ValueError("this pipeline has no relative model (ground-truth): pass inverse_relative=")
        results = []
        for i in range(count):
            y = (given[i] if given is not None else self.relative.inverse_depth(images.pixels[i])).to(
                self.device
            )  # type: ignore[union-attr]
            if y.shape[-2:] != images.size(i):
                raise ValueError(f"inverse_relative {tuple(y.shape)} does not match image {images.size(i)}")
            inverse = self.metric(y.float(), alphas[i], betas[i])
            camera = self._camera(images, i, users, use_exif and focal != "predicted")
            results.append(
                Prediction(
                    depth=torch.reciprocal(inverse),
                    inverse_depth=inverse,
                    focal_px=None if camera is None else camera.focal_px,
                    focal_source=None if camera is None else camera.source,
                    fov_deg=None if camera is None else _fov(camera.focal_px, widths[i]),
                    intrinsics=None if camera is None else camera.intrinsics.to(inverse.device),
                    caption=captions[i],
                )
            )
        if images.layout == "single":
            return results[0]
        if images.layout == "list":
            return results
        return stack_predictions(results)

    def _camera(self, images: Any, index: int, users: Any, use_exif: bool) -> Any:
        user = None if users is None else users[index]
        exif = images.exif_focal_px[index] if use_exif else None
        if user is None and exif is None:
            return None
        return resolve_focal(images.size(index), user=user, exif_focal_px=exif)

    def describe(self) -> dict[str, Any]:
        """What the pipeline is made of, for output records."""

        return {
            "relative": self.relative.name if self.relative is not None else ORACLE_RELATIVE,
            "text_encoder": self.text_encoder.name if self.text_encoder is not None else None,
            "rsa_head": self.head.layout,
            "depth_range_m": [self.min_depth, self.max_depth],
        }


def _rgb(pixels: Tensor) -> Any:
    """(3, H, W) uint8 or float [0, 1] → (H, W, 3) uint8 numpy (what the detector takes)."""
    if pixels.dtype != torch.uint8:
        pixels = (pixels.float().clamp(0, 1) * 255).round().to(torch.uint8)
    return pixels.permute(1, 2, 0).cpu().numpy()


def _per_image_maps(maps: Any, count: int) -> list[Tensor] | None:
    if maps is None:
        return None
    if isinstance(maps, Tensor):
        maps = [maps] if maps.ndim == 2 else list(maps)
    maps = [torch.as_tensor(m).float() for m in maps]
    if len(maps) != count:
        raise ValueError(f"{len(maps)} inverse_relative maps for {count} images")
    return maps


def _fov(focal_px: float, width: int) -> float:
    from ..camera import focal_to_fov

    return focal_to_fov(focal_px, width)


class RSAPredictor:
    """Evaluate an :class:`RSAPipeline` on dataset samples (``predict(sample) -> Prediction``).

    Each sample is captioned by ``caption``: ``"sample"`` takes the sample's own captions (chosen by
    ``kind``: all, structured, free or none, then the ``index``-th, as the reference evaluates with
    line 0), ``"auto"`` runs the detector, any other string is used for every sample.
    ``captions_dir``: read ``DIR/<sample name>.txt`` caption files instead of the sample's captions.
    """

    def __init__(
        self,
        pipeline: RSAPipeline,
        *,
        caption: str = "sample",
        kind: str = "all",
        index: int = 0,
        captions_dir: str | os.PathLike | None = None,
    ) -> None:
        self.pipeline, self.caption, self.kind, self.index = pipeline, caption, kind, index
        self.captions_dir = captions_dir

    def sample_caption(self, sample: dict[str, Any]) -> str | None:
        from .captions import read_caption_file, select_captions

        if self.pipeline.conditioning == "image":
            return None
        if self.caption != "sample":
            return self.caption
        name = sample["name"]
        if self.captions_dir is not None:
            from pathlib import Path

            captions = read_caption_file(Path(self.captions_dir) / f"{name}.txt")
        else:
            captions = list(sample.get("captions") or [])
            if not captions and self.kind != "none":
                raise ValueError(f"{name}: the sample has no captions (give a captions folder or 'auto')")
        chosen = select_captions(captions, self.kind)
        return chosen[min(self.index, len(chosen) - 1)]

    def predict(self, sample: dict[str, Any]) -> Prediction:
        from ..io.images import LoadedImage

        caption = self.sample_caption(sample)
        given = None
        if self.pipeline.relative is None:  # ground-truth relative depth: normalised from the sample
            if sample.get("depth") is None:
                raise ValueError(
                    f"{sample['name']}: relative depth from ground truth needs the sample's depth"
                )
            given = oracle_inverse_depth(sample["depth"], sample.get("valid"))
        return self.pipeline.infer(  # type: ignore[return-value]
            LoadedImage(rgb=sample["image"]), caption=caption, inverse_relative=given
        )
