"""Frozen relative depth models: images in, raw non-negative inverse relative depth ``y`` out.

RSA (Zeng et al., NeurIPS 2024) turns the raw output ``y`` of any frozen relative depth network into
metric depth ``1 / (α·y + β)``. ``y`` is used as the network gives it, in inverse-depth (disparity)
space: no per-image normalisation, only resizing back to the image's own size and clamping at 0.

* :class:`RelativeDepthModel`: the interface: :meth:`~RelativeDepthModel.inverse_depth` (one image →
  (H, W) ``y``) and :meth:`~RelativeDepthModel.infer` (the :class:`~metricdepth.inference.DepthSource`
  protocol, ``kind="relative"`` predictions).
* :class:`DepthProRelative`: Depth Pro or a relative model trained by this project (e.g.
  ``examples/weights/tiny-relative.safetensors``): canonical inverse depth, FOV head not run.
* :class:`TransformersRelative`: any Hugging Face depth model through transformers (Depth Anything
  v1/v2, DPT, MiDaS, ...), with the model's own image processor. Needs ``pip install "metricdepth[rsa]"``.
* :class:`CallableRelative`: any function ``rgb (H, W, 3) uint8 numpy → (H, W) y``.

:func:`load_relative` (the CLI's ``--relative MODEL`` passes its string to it) decides, in this order:

1. a :class:`RelativeDepthModel` → itself; a :class:`~metricdepth.DepthPro` module →
   :class:`DepthProRelative` (moved only when ``device`` / ``precision`` are not ``"auto"``); any other
   callable (a ``torch.nn.Module`` included) → :class:`CallableRelative`.
2. ``"hf:ID_OR_PATH"`` → :class:`TransformersRelative`; ``"depth-pro:ID_OR_PATH"`` →
   ``DepthPro.from_pretrained(ID_OR_PATH)`` → :class:`DepthProRelative`.
3. an existing local path: a folder holding ``config.json`` (a transformers model folder) →
   :class:`TransformersRelative`; any other folder (e.g. a training run's ``RUN/last`` holding
   ``model.safetensors``) or a weights file (``.safetensors``, ``.pt``, ``.pth``, ``.bin``, ``.ckpt``)
   → :class:`DepthProRelative`.
4. something that looks like a path (a weights suffix, a leading ``.``, ``/`` or ``~``, not exactly one
   ``/``) but does not exist → ``ValueError`` naming it.
5. a bare Hub id ``owner/name``: Depth Pro ids (the name starts with ``DepthPro``, case and ``-``/``_``
   ignored: ``apple/DepthPro``, ``apple/DepthPro-hf``, ``apple/DepthPro-mixin``) →
   :class:`DepthProRelative`; any other id → :class:`TransformersRelative`.

Every failure to load (missing path, an id that is neither cached nor downloadable, a model that is
not a depth model, or one that predicts metric depth) is a ``ValueError`` naming the spec and why.
Without a connection to the Hub (or with ``HF_HUB_OFFLINE=1``) only cached files are used, at once.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..device import resolve_device, resolve_dtype
from ..inference import ImageInput, coerce_images, network_input, stack_predictions
from ..prediction import Prediction
from .depth_pro import DepthPro
from .depth_pro.weights import WEIGHT_SUFFIXES, CheckpointError, hub_reachable

__all__ = [
    "CAMERA_KEYWORDS",
    "METRIC_MODEL_TYPES",
    "CallableRelative",
    "DepthProRelative",
    "RelativeDepthModel",
    "TransformersRelative",
    "check_relative_config",
    "load_relative",
]

CAMERA_KEYWORDS = frozenset({"f_px", "K", "fov_deg", "focal", "use_exif", "batch_size"})
"""Keywords of :meth:`DepthSource.infer <metricdepth.inference.DepthSource.infer>` that a relative
model accepts and ignores (it has no camera; ``batch_size``: images are run one at a time)."""

METRIC_MODEL_TYPES: dict[str, str] = {
    "zoedepth": "ZoeDepth",
    "glpn": "GLPN",
    "chmv2": "CHMv2",
    "tipsv2_dpt": "TIPSv2 DPT",
}
"""transformers depth model types whose ``predicted_depth`` is metric depth (metres), not inverse
relative depth. Depth Anything / Prompt Depth Anything say so per checkpoint with
``config.depth_estimation_type == "metric"``; both are refused by :class:`TransformersRelative`."""

RSA_EXTRA_HINT = 'pip install "metricdepth[rsa]"'
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


# ------------------------------------------------------------------------------------ interface
class RelativeDepthModel:
    """A frozen relative depth network: RGB image → raw non-negative inverse relative depth ``y``.

    Subclasses implement :meth:`_predict`; :meth:`inverse_depth` checks its input and output and runs
    it without gradients.

    Attributes:
        name: what the model is, for records (``"depth-pro:examples/weights/tiny-relative.safetensors"``,
            ``"hf:depth-anything/Depth-Anything-V2-Small-hf"``, ``"callable"``).
        device: where the network runs and where ``y`` is returned.
    """

    name: str
    device: torch.device

    def inverse_depth(self, pixels: Tensor) -> Tensor:
        """Raw inverse relative depth of one image.

        Args:
            pixels: (3, H, W) RGB, uint8 or float in [0, 1], on any device.

        Returns:
            (H, W) float32 ``y ≥ 0`` at the image's own size, on :attr:`device`. Its scale and shift
            are the network's own (affine-invariant inverse depth; no unit).
        """
        if not isinstance(pixels, Tensor) or pixels.ndim != 3 or pixels.shape[0] != 3:
            shape = tuple(pixels.shape) if isinstance(pixels, Tensor) else type(pixels).__name__
            raise ValueError(f"{self.name}: expected a (3, H, W) RGB tensor, got {shape}")
        if pixels.dtype != torch.uint8 and not pixels.is_floating_point():
            raise ValueError(
                f"{self.name}: image tensors must be uint8 or float in [0, 1], got {pixels.dtype}"
            )
        if pixels.shape[1] == 0 or pixels.shape[2] == 0:
            raise ValueError(f"{self.name}: empty image of shape {tuple(pixels.shape)}")
        with torch.no_grad():
            y = self._predict(pixels)
        size = (int(pixels.shape[1]), int(pixels.shape[2]))
        if tuple(y.shape) != size:  # a subclass bug, not a user error
            raise RuntimeError(f"{self.name}: produced {tuple(y.shape)} for a {size[0]}×{size[1]} image")
        return y.to(device=self.device, dtype=torch.float32)

    def _predict(self, pixels: Tensor) -> Tensor:
        """(3, H, W) uint8 / float [0, 1] → (H, W) non-negative ``y``; called under ``no_grad``."""
        raise NotImplementedError

    def infer(self, image: ImageInput, **camera: Any) -> Prediction | list[Prediction]:
        """Relative predictions of one or more images (the ``DepthSource`` protocol).

        Args:
            image: any :data:`~metricdepth.inference.ImageInput` (path, PIL image, array, (3, H, W) or
                (B, 3, H, W) tensor, or a list of these, sizes may differ). Images run one at a time.
            **camera: ``f_px``, ``K``, ``fov_deg``, ``focal``, ``use_exif`` (and ``batch_size``) are
                accepted and ignored: a relative model has no camera.

        Returns:
            ``Prediction(kind="relative", depth=None, inverse_depth=y)`` with ``y`` (H, W) float32 per
            image, in the container given: a single image → ``Prediction``; a list → a list; a
            (B, 3, H, W) tensor → one batched ``Prediction`` ((B, H, W) ``inverse_depth``).

        Raises:
            TypeError: a keyword that is not a camera keyword.
        """
        unknown = sorted(set(camera) - CAMERA_KEYWORDS)
        if unknown:
            raise TypeError(f"infer() got unexpected keyword argument(s): {', '.join(unknown)}")
        images = coerce_images(image)
        results = [
            Prediction(depth=None, inverse_depth=self.inverse_depth(pixels), kind="relative")
            for pixels in images.pixels
        ]
        if images.layout == "single":
            return results[0]
        if images.layout == "list":
            return results
        return stack_predictions(results)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, device={str(self.device)!r})"


# ------------------------------------------------------------------------------------ Depth Pro
class DepthProRelative(RelativeDepthModel):
    """A :class:`~metricdepth.DepthPro` network as a relative model: its canonical inverse depth.

    The image is resized to the network input (S × S, [-1, 1], exactly as ``DepthPro.infer``), the
    (1, S, S) canonical inverse depth is resized bilinearly (``align_corners=False``) to (H, W) and
    clamped at 0. The FOV head, if any, is not run. The module is frozen and put in eval mode.

    Args:
        model: the network (on the device and in the precision it should run in).
        name: for records; default ``"depth-pro:module(<preset>)"``.
    """

    def __init__(self, model: DepthPro, name: str | None = None) -> None:
        if not isinstance(model, DepthPro):
            raise TypeError(f"DepthProRelative wraps a DepthPro module, got {type(model).__name__}")
        self.model = model.requires_grad_(False).eval()
        self.name = name or f"depth-pro:module({model.config.name})"
        self.device = model.device

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        *,
        device: str | torch.device = "auto",
        precision: str | torch.dtype = "auto",
    ) -> DepthProRelative:
        """Load Depth Pro weights (Hub id, weights file, or a folder holding one).

        Raises:
            ValueError: the weights cannot be found, downloaded or matched to an architecture.
        """
        try:
            model = DepthPro.from_pretrained(name_or_path, device=device, precision=precision)
        except CheckpointError as err:
            raise ValueError(f"{os.fspath(name_or_path)}: cannot load Depth Pro weights: {err}") from None
        return cls(model, name=f"depth-pro:{os.fspath(name_or_path)}")

    def _predict(self, pixels: Tensor) -> Tensor:
        height, width = int(pixels.shape[1]), int(pixels.shape[2])
        x = network_input(pixels, self.model.img_size, self.model.device, self.model.dtype)[None]
        canonical, _ = self.model(x, with_fov=False)
        del x
        y = F.interpolate(canonical.float(), size=(height, width), mode="bilinear", align_corners=False)
        return y[0, 0].clamp_(min=0.0)


# --------------------------------------------------------------------------------- transformers
def _import_transformers() -> Any:
    try:
        import transformers
    except ImportError:
        raise ValueError(
            f"Hugging Face depth models need the transformers package: {RSA_EXTRA_HINT}"
        ) from None
    return transformers


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0]}" if text else type(err).__name__


def check_relative_config(config: Any, name: str) -> None:
    """Refuse a transformers config that is not a depth model or that predicts metric depth.

    Raises:
        ValueError: naming ``name`` and the reason.
    """
    model_type = getattr(config, "model_type", None)
    try:
        from transformers.models.auto.modeling_auto import MODEL_FOR_DEPTH_ESTIMATION_MAPPING_NAMES
    except ImportError:  # pragma: no cover - very old or very new layouts: let the auto class decide
        depth_types = None
    else:
        depth_types = set(MODEL_FOR_DEPTH_ESTIMATION_MAPPING_NAMES)
    if depth_types is not None and model_type not in depth_types:
        raise ValueError(
            f"{name}: a {model_type!r} model is not a depth estimation model "
            f"(transformers depth models: {', '.join(sorted(depth_types))})"
        )
    if model_type in METRIC_MODEL_TYPES or getattr(config, "depth_estimation_type", None) == "metric":
        kind = METRIC_MODEL_TYPES.get(model_type or "", f"this {model_type}")
        raise ValueError(
            f"{name}: {kind} model predicts metric depth (metres), not inverse relative depth; RSA needs "
            "a relative model (e.g. hf:depth-anything/Depth-Anything-V2-Small-hf)"
        )


class TransformersRelative(RelativeDepthModel):
    """A Hugging Face depth model (via transformers) as a relative model.

    The model's own image processor does the resizing and normalisation; the raw ``predicted_depth``
    (the network's non-negative head output, e.g. Depth Anything's ReLU disparity) is resized
    bicubically (``align_corners=False``) to (H, W) over the whole processed frame (as transformers'
    own post-processing does) and clamped at 0 (bicubic overshoot). Models that predict metric depth
    (ZoeDepth, GLPN, Depth Anything "metric" checkpoints, ...) are refused.

    Args:
        model: a transformers ``...ForDepthEstimation`` module (on its device and dtype).
        processor: its image processor.
        name: for records; default ``"hf:<config name_or_path>"``.
    """

    def __init__(self, model: torch.nn.Module, processor: Any, name: str | None = None) -> None:
        config = getattr(model, "config", None)
        self.name = name or f"hf:{getattr(config, 'name_or_path', '') or type(model).__name__}"
        check_relative_config(config, self.name)
        self.model = model.requires_grad_(False).eval()
        self.processor = processor
        parameter = next(model.parameters())
        self.device, self.dtype = parameter.device, parameter.dtype

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike,
        *,
        device: str | torch.device = "auto",
        precision: str | torch.dtype = "auto",
        local_files_only: bool | None = None,
    ) -> TransformersRelative:
        """Load ``AutoImageProcessor`` + ``AutoModelForDepthEstimation`` from a Hub id or local folder.

        Args:
            name_or_path: Hub id (``depth-anything/Depth-Anything-V2-Small-hf``) or a folder written by
                ``save_pretrained`` (``config.json``, weights, ``preprocessor_config.json``).
            device, precision: as :func:`~metricdepth.device.resolve_device` /
                :func:`~metricdepth.device.resolve_dtype` (``"auto"``: fp16 on GPU, fp32 on CPU).
            local_files_only: default: only when the Hub is unreachable (then at once, no retries).

        Raises:
            ValueError: transformers is missing, the model cannot be found or loaded, is not a depth
                model, or predicts metric depth.
        """
        transformers = _import_transformers()
        source = os.fspath(name_or_path)
        name = f"hf:{source}"
        if not source:
            raise ValueError("hf: needs a Hub id or a local folder after the prefix")
        target = resolve_device(device)
        dtype = resolve_dtype(precision, target)
        is_local = Path(source).expanduser().exists()
        if is_local:
            source = str(Path(source).expanduser())
        if local_files_only is None:
            local_files_only = not is_local and not hub_reachable()
        where = "local folder" if is_local else "Hub id (not a local path)"
        try:
            config = transformers.AutoConfig.from_pretrained(source, local_files_only=local_files_only)
        except Exception as err:
            offline = (
                " (offline: only cached models can be used)" if local_files_only and not is_local else ""
            )
            raise ValueError(
                f"{name}: cannot load a transformers model config from this {where}{offline}: "
                f"{_first_line(err)}"
            ) from None
        check_relative_config(config, name)
        try:
            processor = transformers.AutoImageProcessor.from_pretrained(
                source, local_files_only=local_files_only
            )
            model = transformers.AutoModelForDepthEstimation.from_pretrained(
                source, config=config, local_files_only=local_files_only
            )
        except Exception as err:
            raise ValueError(
                f"{name}: cannot load the model or its image processor: {_first_line(err)}"
            ) from None
        return cls(model.to(device=target, dtype=dtype), processor, name=name)

    def _predict(self, pixels: Tensor) -> Tensor:
        height, width = int(pixels.shape[1]), int(pixels.shape[2])
        # The processor sees the image at its native scale (0–255) and rescales it itself.
        image = pixels.cpu() if pixels.dtype == torch.uint8 else pixels.detach().float().cpu() * 255.0
        inputs = self.processor(images=image, input_data_format="channels_first", return_tensors="pt")
        x = inputs["pixel_values"].to(device=self.device, dtype=self.dtype)
        predicted = self.model(pixel_values=x).predicted_depth
        del x
        y = predicted.float().reshape(1, 1, *predicted.shape[-2:])
        y = F.interpolate(y, size=(height, width), mode="bicubic", align_corners=False)
        return y[0, 0].clamp_(min=0.0)


# ------------------------------------------------------------------------------------- callable
class CallableRelative(RelativeDepthModel):
    """Any function ``rgb → y`` as a relative model.

    Args:
        function: called with the image as an (H, W, 3) uint8 numpy array (float inputs are rounded
            to uint8); returns an (H, W) array or tensor of finite, non-negative inverse relative depth.
        name: for records (default ``"callable"``).
        device: where ``y`` is returned (``"auto"``: CUDA, MPS, else CPU).
    """

    def __init__(
        self,
        function: Callable[[np.ndarray], Any],
        name: str = "callable",
        device: str | torch.device = "auto",
    ) -> None:
        if not callable(function):
            raise TypeError(f"CallableRelative needs a callable, got {type(function).__name__}")
        self.function = function
        self.name = name
        self.device = resolve_device(device)

    def _predict(self, pixels: Tensor) -> Tensor:
        height, width = int(pixels.shape[1]), int(pixels.shape[2])
        if pixels.dtype != torch.uint8:
            pixels = (pixels.detach().float() * 255.0).round_().clamp_(0, 255).to(torch.uint8)
        rgb = np.ascontiguousarray(pixels.permute(1, 2, 0).cpu().numpy())
        output = self.function(rgb)
        try:
            y = output.detach() if isinstance(output, Tensor) else torch.as_tensor(np.asarray(output))
        except (TypeError, ValueError, RuntimeError) as err:
            raise ValueError(
                f"{self.name}: returned {type(output).__name__}, not an array of inverse depth ({err})"
            ) from None
        if tuple(y.shape) != (height, width):
            raise ValueError(
                f"{self.name}: returned an array of shape {tuple(y.shape)} for a {height}×{width} image; "
                f"expected ({height}, {width})"
            )
        if y.dtype == torch.bool or y.is_complex():
            raise ValueError(f"{self.name}: returned {y.dtype} values; expected real numbers")
        y = y.to(torch.float32)
        if not bool(torch.isfinite(y).all()):
            count = int((~torch.isfinite(y)).sum())
            raise ValueError(f"{self.name}: returned {count} non-finite value(s) (NaN or inf)")
        if bool((y < 0).any()):
            raise ValueError(
                f"{self.name}: returned negative values (min {float(y.min()):.4g}); inverse relative depth "
                "must be ≥ 0"
            )
        return y


# ---------------------------------------------------------------------------------------- loader
def _is_depth_pro_id(repo_id: str) -> bool:
    name = repo_id.split("/", 1)[1].lower().replace("-", "").replace("_", "")
    return name.startswith("depthpro")


def _looks_like_path(text: str) -> bool:
    if Path(text).suffix.lower() in WEIGHT_SUFFIXES or text.startswith((".", "/", "~", "\\")):
        return True
    return not _HUB_ID.match(text) or Path(text.split("/")[0]).expanduser().is_dir()


def load_relative(
    spec: str | os.PathLike | Callable[..., Any] | torch.nn.Module | RelativeDepthModel,
    *,
    device: str = "auto",
    precision: str = "auto",
) -> RelativeDepthModel:
    """A :class:`RelativeDepthModel` from a model, a function, a path or an id (rules: module docstring).

    Args:
        spec: a relative model, a ``DepthPro`` module, a function ``rgb (H, W, 3) uint8 → (H, W) y``,
            ``"hf:ID_OR_PATH"``, ``"depth-pro:ID_OR_PATH"``, a local file or folder, or a Hub id.
        device: "auto" (CUDA, MPS, CPU) or a torch device.
        precision: "auto" (fp16 on GPU, fp32 on CPU), "fp32", "fp16" or "bf16"; unused for functions.

    Raises:
        ValueError: the spec cannot be loaded; the message names it and says why.
        TypeError: the spec is none of the above.
    """
    if isinstance(spec, RelativeDepthModel):
        return spec
    if isinstance(spec, DepthPro):
        if device != "auto" or precision != "auto":
            target = resolve_device(device) if device != "auto" else spec.device
            dtype = resolve_dtype(precision, target) if precision != "auto" else spec.dtype
            spec = spec.to(device=target, dtype=dtype)
        return DepthProRelative(spec)
    if isinstance(spec, (str, os.PathLike)):
        return _load_named(os.fspath(spec), device, precision)
    if callable(spec):
        return CallableRelative(spec, device=device)
    raise TypeError(
        "load_relative takes a model name or path, a DepthPro module, a RelativeDepthModel or a function, "
        f"got {type(spec).__name__}"
    )


def _load_named(spec: str, device: str, precision: str) -> RelativeDepthModel:
    if not spec.strip():
        raise ValueError("empty relative model name")
    if spec.startswith("hf:"):
        return TransformersRelative.from_pretrained(spec[3:], device=device, precision=precision)
    if spec.startswith("depth-pro:"):
        if not spec[len("depth-pro:") :]:
            raise ValueError("depth-pro: needs a Hub id or a weights path after the prefix")
        return DepthProRelative.from_pretrained(spec[len("depth-pro:") :], device=device, precision=precision)
    path = Path(spec).expanduser()
    if path.is_dir():
        if (path / "config.json").is_file():
            return TransformersRelative.from_pretrained(spec, device=device, precision=precision)
        return DepthProRelative.from_pretrained(spec, device=device, precision=precision)
    if path.is_file():
        if path.suffix.lower() not in WEIGHT_SUFFIXES:
            raise ValueError(
                f"{spec}: not a weights file ({', '.join(WEIGHT_SUFFIXES)}) nor a model folder; pass a "
                "Depth Pro weights file, a transformers model folder (with config.json) or a Hub id"
            )
        return DepthProRelative.from_pretrained(spec, device=device, precision=precision)
    if _looks_like_path(spec):
        raise ValueError(
            f"{spec}: no such file or folder "
            "(and not a Hub id like 'depth-anything/Depth-Anything-V2-Small-hf')"
        )
    if _is_depth_pro_id(spec):
        return DepthProRelative.from_pretrained(spec, device=device, precision=precision)
    try:
        return TransformersRelative.from_pretrained(spec, device=device, precision=precision)
    except ValueError as err:
        raise ValueError(f"{spec}: no such file or folder here, and as a Hub id: {err}") from None
