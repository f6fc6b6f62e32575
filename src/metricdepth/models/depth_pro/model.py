"""Depth Pro: ``forward`` (export-friendly tensors in, tensors out) and ``infer`` (images in, metres out)."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from ...camera import focal_to_fov, fov_to_focal, intrinsics_matrix
from ...device import resolve_device, resolve_dtype
from ...io.images import LoadedImage, image_from_pil, load_image
from ...prediction import FocalSource, Prediction
from .config import DepthProConfig
from .decoder import MultiresConvDecoder
from .encoder import DepthProEncoder, resize
from .fov import FOVNetwork

__all__ = ["DepthPro", "ImageInput"]

ImageInput = str | os.PathLike | Image.Image | np.ndarray | Tensor | Sequence[Any]
"""A path, PIL image, (H, W, 3) array, (3, H, W) / (B, 3, H, W) tensor, or a list of same-size images."""

MIN_INVERSE_DEPTH = 1e-4  # 1 / 10 km: the reference's depth ceiling
MAX_INVERSE_DEPTH = 1e4
MIN_FOV_DEG, MAX_FOV_DEG = (
    1e-3,
    179.0,
)  # a predicted FOV is clamped into this range before f_px = 0.5·W / tan(FOV / 2)


class DepthPro(nn.Module):
    """Zero-shot metric monocular depth (Bochkovskii et al., 2024).

    Example:
        >>> model = DepthPro.from_pretrained("apple/DepthPro")      # doctest: +SKIP
        >>> pred = model.infer("photo.jpg")                          # doctest: +SKIP
        >>> pred.depth.shape, pred.focal_px, pred.focal_source       # doctest: +SKIP
    """

    def __init__(self, config: DepthProConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else DepthProConfig.preset("depth-pro")
        self.encoder = DepthProEncoder(self.config)
        f = self.config.decoder_features
        self.decoder = MultiresConvDecoder((f, *self.config.encoder_feature_dims), f)
        self.head = nn.Sequential(
            nn.Conv2d(f, f // 2, kernel_size=3, padding=1),
            nn.ConvTranspose2d(f // 2, f // 2, kernel_size=2, stride=2, bias=True),
            nn.Conv2d(f // 2, self.config.head_features, kernel_size=3, padding=1),
            nn.ReLU(True),
            nn.Conv2d(self.config.head_features, 1, kernel_size=1),
            nn.ReLU(),
        )
        self.head[4].bias.data.fill_(0.0)
        self.fov = FOVNetwork(f, self.config.fov_encoder) if self.config.use_fov_head else None

    # ------------------------------------------------------------------ network
    @property
    def img_size(self) -> int:
        """Side of the square network input, pixels."""
        return self.config.img_size

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """Run the network.

        Args:
            x: (B, 3, S, S) image normalised to [-1, 1] (mean = std = 0.5), S = ``img_size``.

        Returns:
            canonical inverse depth (B, 1, S, S), non-negative, and the horizontal field of view
            (B,) in degrees (None without FOV head). Metric inverse depth = canonical · W / f_px.
        """
        if x.ndim != 4 or tuple(x.shape[1:]) != (3, self.img_size, self.img_size):
            raise ValueError(
                f"expected a (B, 3, {self.img_size}, {self.img_size}) tensor, got {tuple(x.shape)}"
            )
        features, lowres = self.decoder(self.encoder(x))
        canonical_inverse_depth = self.head(features)
        fov_deg = self.fov(x, lowres) if self.fov is not None else None
        return canonical_inverse_depth, fov_deg

    # ------------------------------------------------------------- processing
    def preprocess(self, images: Tensor) -> Tensor:
        """(B, 3, H, W) RGB in [0, 1] → (B, 3, S, S) network input in the model's dtype and device."""
        x = images.to(self.device, torch.float32) * 2.0 - 1.0
        if x.shape[-2:] != (self.img_size, self.img_size):
            x = resize(x, size=(self.img_size, self.img_size))
        return x.to(self.dtype)

    @staticmethod
    def postprocess(
        canonical_inverse_depth: Tensor, focal_px: Tensor, image_size: tuple[int, int]
    ) -> tuple[Tensor, Tensor]:
        """Canonical inverse depth → metric inverse depth and depth at the input resolution.

        Args:
            canonical_inverse_depth: (B, 1, S, S) network output.
            focal_px: (B,) horizontal focal lengths of the input images, pixels.
            image_size: (H, W) of the input images.

        Returns:
            inverse depth (B, H, W) in 1/m, clamped to [1e-4, 1e4], and depth (B, H, W) in metres.
        """
        height, width = image_size
        inverse = canonical_inverse_depth.float() * (width / focal_px.float()).view(-1, 1, 1, 1)
        if inverse.shape[-2:] != (height, width):
            inverse = resize(inverse, size=(height, width))
        inverse = inverse.clamp(MIN_INVERSE_DEPTH, MAX_INVERSE_DEPTH)[:, 0]
        return inverse, 1.0 / inverse

    @torch.no_grad()
    def infer(
        self,
        image: ImageInput,
        *,
        f_px: float | Sequence[float] | Tensor | None = None,
        K: np.ndarray | Tensor | None = None,
        fov_deg: float | Sequence[float] | Tensor | None = None,
        use_exif: bool = True,
    ) -> Prediction:
        """Metric depth for an image or a batch of same-size images.

        The metric scale comes from, in order: the camera you give (``f_px``, ``K`` or
        ``fov_deg``, at most one), the EXIF 35 mm focal length of a file (``use_exif``), or the
        FOV head. Only the horizontal focal length fx matters for the scale.

        Args:
            image: path, PIL image, (H, W, 3) uint8 array, (3, H, W) or (B, 3, H, W) tensor
                (float in [0, 1] or uint8), or a list of same-size images.
            f_px: horizontal focal length, pixels (scalar or one per image).
            K: (3, 3) or (B, 3, 3) intrinsics, pixels, OpenCV convention; returned as given.
            fov_deg: horizontal field of view, degrees (scalar or one per image).
            use_exif: use the EXIF focal length of files that carry one.

        Returns:
            A :class:`Prediction`; arrays are (H, W) for one image and (B, H, W) for a batch.
        """
        pixels, exif_focals, batched = self._as_batch(image)
        batch, _, height, width = pixels.shape
        canonical, predicted_fov = self(self.preprocess(pixels))
        if predicted_fov is not None:
            predicted_fov = predicted_fov.float()
        focal, intrinsics, sources = self._resolve_camera(
            batch, height, width, f_px, K, fov_deg, exif_focals if use_exif else [None] * batch, predicted_fov
        )
        inverse_depth, depth = self.postprocess(canonical, focal, (height, width))
        fov_used = focal_to_fov(focal, width)
        prediction = Prediction(
            depth=depth,
            inverse_depth=inverse_depth,
            focal_px=focal,
            focal_source=sources,
            fov_deg=fov_used,
            intrinsics=intrinsics,
            predicted_fov_deg=predicted_fov,
        )
        return prediction if batched else prediction[0]

    def _as_batch(self, image: ImageInput) -> tuple[Tensor, list[float | None], bool]:
        """(B, 3, H, W) float32 in [0, 1] on the model device, EXIF focal per image, batched flag."""
        if isinstance(image, Tensor):
            pixels = image
            batched = pixels.ndim == 4
            if pixels.ndim == 3:
                pixels = pixels[None]
            if pixels.ndim != 4 or pixels.shape[1] != 3:
                raise ValueError(f"expected a (3, H, W) or (B, 3, H, W) tensor, got {tuple(image.shape)}")
            if pixels.dtype == torch.uint8:
                pixels = pixels.float() / 255.0
            elif pixels.numel() and not -1e-3 <= float(pixels.amin()) <= float(pixels.amax()) <= 1.0 + 1e-3:
                raise ValueError(
                    "float image tensors must hold RGB values in [0, 1] (divide 0–255 images by 255; "
                    "infer normalises itself, so do not pass normalised tensors)"
                )
            return pixels.float().to(self.device), [None] * pixels.shape[0], batched
        if isinstance(image, (list, tuple)):
            loaded = [_load_one(item) for item in image]
            if not loaded:
                raise ValueError("empty list of images")
            shapes = {item.rgb.shape for item in loaded}
            if len(shapes) > 1:
                raise ValueError(f"images in a batch must share one size, got {sorted(shapes)}")
            batched = True
        else:
            loaded = [_load_one(image)]
            batched = False
        array = np.stack([item.rgb for item in loaded])
        pixels = torch.from_numpy(array).to(self.device).permute(0, 3, 1, 2).float() / 255.0
        return pixels, [item.focal_px for item in loaded], batched

    def _resolve_camera(
        self,
        batch: int,
        height: int,
        width: int,
        f_px: Any,
        K: Any,
        fov_deg: Any,
        exif_focals: list[float | None],
        predicted_fov: Tensor | None,
    ) -> tuple[Tensor, Tensor, list[FocalSource]]:
        """Focal length (B,), intrinsics (B, 3, 3) and source per image, float32 on the model device."""
        given = [
            name for name, value in (("f_px", f_px), ("K", K), ("fov_deg", fov_deg)) if value is not None
        ]
        if len(given) > 1:
            raise ValueError(f"give at most one of f_px, K and fov_deg (got {', '.join(given)})")
        device = self.device

        def per_image(value: Any, name: str, upper: float = math.inf) -> Tensor:
            t = torch.as_tensor(value, dtype=torch.float32, device=device).flatten()
            if t.numel() == 1:
                t = t.expand(batch)
            if t.numel() != batch:
                raise ValueError(f"{name} has {t.numel()} values for a batch of {batch}")
            if not torch.isfinite(t).all() or (t <= 0).any() or (t >= upper).any():
                bound = "positive and finite" if upper == math.inf else f"strictly between 0 and {upper:g}"
                raise ValueError(f"{name} must be {bound}, got {t.tolist()}")
            return t.clone()

        if K is not None:
            intrinsics = torch.as_tensor(K, dtype=torch.float32, device=device)
            if intrinsics.shape == (3, 3):
                intrinsics = intrinsics.expand(batch, 3, 3)
            if intrinsics.shape != (batch, 3, 3):
                raise ValueError(f"K must be (3, 3) or ({batch}, 3, 3), got {tuple(intrinsics.shape)}")
            focal = per_image(intrinsics[:, 0, 0], "K[0, 0]")
            return focal, intrinsics.clone(), ["user"] * batch

        if f_px is not None or fov_deg is not None:
            if f_px is not None:
                focal = per_image(f_px, "f_px")
            else:
                focal = fov_to_focal(per_image(fov_deg, "fov_deg", upper=180.0), width)
            sources: list[FocalSource] = ["user"] * batch
        else:
            focal = torch.empty(batch, dtype=torch.float32, device=device)
            sources = []
            for i, exif in enumerate(exif_focals):
                if exif is not None:
                    focal[i], source = exif, "exif"
                elif predicted_fov is not None:
                    # The head's output is a raw linear value; keep the focal length defined.
                    fov = predicted_fov[i].clamp(MIN_FOV_DEG, MAX_FOV_DEG)
                    if fov != predicted_fov[i]:
                        warnings.warn(
                            f"predicted FOV {float(predicted_fov[i]):.4g}° is outside (0°, 180°); "
                            f"using {float(fov):.4g}° (untrained or unsuitable weights?)",
                            stacklevel=4,  # the caller of infer (past the no_grad wrapper)
                        )
                    focal[i], source = fov_to_focal(fov, width), "predicted"
                else:
                    raise ValueError(
                        "this model has no FOV head: give f_px, K or fov_deg "
                        "(or an image with an EXIF focal length)"
                    )
                sources.append(source)
        return focal, intrinsics_matrix(focal, width, height), sources

    # ---------------------------------------------------------------- weights
    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike = "apple/DepthPro",
        *,
        config: DepthProConfig | str | None = None,
        device: str | torch.device | None = "auto",
        precision: str | torch.dtype | None = "auto",
        filename: str | None = None,
        revision: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        local_files_only: bool = False,
    ) -> DepthPro:
        """Load weights from the Hugging Face Hub or a local file.

        Args:
            name_or_path: a Hub repo id (``apple/DepthPro``, ``apple/DepthPro-hf``, ...), a local
                ``.pt``/``.pth``/``.safetensors`` file, or a folder holding one. Apple's layout, the
                transformers ``DepthPro-hf`` layout (4.x and 5.x key names) and this package's
                own files are recognised.
            config: architecture (preset name or config); default: stored in the file, else
                inferred from the tensor shapes.
            device: "auto" (CUDA, MPS, CPU), or any torch device.
            precision: "auto" (fp16 on GPU, fp32 on CPU), "fp32", "fp16" or "bf16".
            filename, revision, cache_dir, local_files_only: Hub download options.

        Raises:
            CheckpointError: the weights cannot be found, downloaded or matched to a config.
        """
        from .weights import load_checkpoint, resolve_checkpoint

        path = resolve_checkpoint(
            name_or_path,
            filename=filename,
            revision=revision,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
        )
        state_dict, stored_config = load_checkpoint(path)
        if isinstance(config, str):
            config = DepthProConfig.preset(config)
        return cls.from_state_dict(
            state_dict, config=config or stored_config, device=device, precision=precision
        )

    @classmethod
    def from_state_dict(
        cls,
        state_dict: dict[str, Tensor],
        *,
        config: DepthProConfig | None = None,
        device: str | torch.device | None = "auto",
        precision: str | torch.dtype | None = "auto",
    ) -> DepthPro:
        """Build a model around a state dict in this package's (= Apple's) layout, without random init."""
        from .weights import CheckpointError, infer_config

        config = config or infer_config(state_dict)
        target = resolve_device(device)
        dtype = resolve_dtype(precision, target)
        with torch.device("meta"):
            model = cls(config)
        try:
            model.load_state_dict(state_dict, strict=True, assign=True)
        except RuntimeError as err:
            raise CheckpointError(f"weights do not fit the {config.name!r} architecture: {err}") from err
        return model.to(device=target, dtype=dtype).eval()

    def save_pretrained(self, path: str | os.PathLike) -> Path:
        """Write the weights and config as one ``.safetensors`` file that ``from_pretrained`` reads."""
        from .weights import save_checkpoint

        return save_checkpoint(self, path)


def _load_one(image: Any) -> LoadedImage:
    if isinstance(image, (str, os.PathLike)):
        return load_image(image)
    if isinstance(image, Image.Image):
        return image_from_pil(image)
    if isinstance(image, LoadedImage):
        return image
    if isinstance(image, np.ndarray):
        return LoadedImage(rgb=_array_to_rgb(image))
    if isinstance(image, Tensor):
        raise ValueError("tensors cannot be mixed into a list of images; stack them into (B, 3, H, W)")
    raise TypeError(f"unsupported image type {type(image).__name__}")


def _array_to_rgb(array: np.ndarray) -> np.ndarray:
    """(H, W), (H, W, 1|3|4) uint8, or float in [0, 1] → (H, W, 3) uint8."""
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise ValueError(f"expected an (H, W, 3) image array, got shape {array.shape}")
    if array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.floating):
            raise ValueError(f"image arrays must be uint8 or float in [0, 1], got {array.dtype}")
        if array.size and not -1e-3 <= float(np.nanmin(array)) <= float(np.nanmax(array)) <= 1.0 + 1e-3:
            raise ValueError("float image arrays must hold values in [0, 1] (use uint8 for 0–255 images)")
        array = np.clip(np.rint(np.nan_to_num(array) * 255.0), 0, 255).astype(np.uint8)
    array = array[..., :3]
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    return np.ascontiguousarray(array)
