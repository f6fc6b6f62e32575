"""Initialise Depth Pro's ViTs from DINOv2 weights, as the paper does before training (Tab. 16).

DINOv2 ViTs use 14-pixel patches on a 37×37 grid (518² input); Depth Pro's use 16-pixel patches on
a 24×24 grid (384² tiles). :func:`adapt_vit_state_dict` converts a DINOv2 state dict (timm or Meta
key names, which agree for ViT-S/B/L) to any target ViT of the same width and depth:

- patch embedding: the 14×14 kernel is resampled bicubically to 16×16 and scaled by (14/16)², so
  that a constant patch keeps (approximately) its embedding: the paper's recipe.
  ``patch_resample="pinv"`` uses timm's pseudo-inverse resampling (FlexiViT) instead, which keeps
  it exactly;
- position embedding: the class-token position is kept, the patch-grid part is interpolated
  bicubically to the target grid (timm's ``resample_abs_pos_embed``, antialiased when shrinking);
- keys the target lacks (``mask_token``, ``register_tokens``, a classifier head) are dropped and
  reported.

Typical use::

    model = DepthPro(DepthProConfig.preset("depth-pro"))
    init_encoders(model, "checkpoints/dinov2_vitl14_pretrain.pth")  # or "hub" where it is reachable
    model.freeze_layernorms()
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from timm.layers import resample_abs_pos_embed, resample_patch_embed
from timm.models.vision_transformer import VisionTransformer
from torch import Tensor

from .model import VIT_PATHS, DepthPro
from .weights import CheckpointError, hub_reachable

__all__ = ["DINOV2_HUB_MODELS", "adapt_vit_state_dict", "dinov2_state_dict", "init_encoders"]

logger = logging.getLogger(__name__)

DINOV2_HUB_MODELS: dict[int, str] = {
    384: "vit_small_patch14_dinov2.lvd142m",
    768: "vit_base_patch14_dinov2.lvd142m",
    1024: "vit_large_patch14_dinov2.lvd142m",
}
"""timm model name of the DINOv2 ViT (patch 14, no registers) of each width, for ``source="hub"``."""

PatchResample = Literal["bicubic", "pinv"]
_BLOCK_KEY = re.compile(r"^blocks\.(\d+)\.")


# --------------------------------------------------------------------------- reading weights
def dinov2_state_dict(source: str | os.PathLike, *, embed_dim: int = 1024) -> dict[str, Tensor]:
    """A DINOv2 ViT state dict, from the Hugging Face Hub (via timm) or a local file.

    Args:
        source: ``"hub"`` for timm's ``vit_{small,base,large}_patch14_dinov2.lvd142m`` (chosen by
            ``embed_dim``; downloaded once into the Hugging Face cache), or the path of a
            ``.safetensors`` file (read with safetensors) or a ``.pth``/``.pt``/``.bin`` file (read
            with ``torch.load(weights_only=True)``: no pickled code runs). A top-level ``"model"``
            or ``"state_dict"`` entry is unwrapped, and a DDP ``module.`` prefix stripped.
        embed_dim: token width of the wanted ViT, for ``"hub"`` only.

    Returns:
        key → tensor (on the CPU, as stored), DINOv2's key names, patch size and grid still 14 / 37.

    Raises:
        CheckpointError: the file cannot be found or read, or the Hub cannot be reached (the message
            says how to use a local file instead).
        ValueError: no DINOv2 model of width ``embed_dim`` on the Hub.
    """
    if str(source) == "hub":
        return _hub_state_dict(embed_dim)
    path = Path(source).expanduser()
    if not path.is_file():
        raise CheckpointError(f"{path}: DINOv2 weights file not found (pass 'hub' or an existing file)")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: object = load_file(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # safetensors, pickle (weights_only refusals), truncated files
        raise CheckpointError(f"{path}: cannot read weights ({type(err).__name__}: {err})") from err
    if isinstance(state, dict):
        for wrapper in ("model", "state_dict"):
            if isinstance(state.get(wrapper), dict):
                state = state[wrapper]
                break
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: not a state dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _hub_state_dict(embed_dim: int) -> dict[str, Tensor]:
    name = DINOV2_HUB_MODELS.get(embed_dim)
    if name is None:
        raise ValueError(
            f"no DINOv2 ViT of width {embed_dim} on the Hub (widths: {sorted(DINOV2_HUB_MODELS)}); "
            "pass a local weights file instead"
        )
    import timm

    repo_id = timm.models.get_pretrained_cfg(name).hf_hub_id or f"timm/{name}"
    advice = (
        f"Download the weights where the Hub is reachable, e.g.\n"
        f"    hf download {repo_id} model.safetensors --local-dir checkpoints/{name}\n"
        f"(or Meta's dinov2_vit*14_pretrain.pth), copy the file here, and pass the local file path "
        f"(e.g. 'checkpoints/{name}/model.safetensors') instead of 'hub'. Weights already in the "
        f"Hugging Face cache (HF_HOME) are used without a connection."
    )

    overlay = {}
    if not hub_reachable():
        # huggingface_hub would retry for about a minute: use a cached copy, else advise at once.
        cached = _cached_hub_file(repo_id)
        if cached is None:
            raise CheckpointError(
                f"cannot download the DINOv2 weights {name!r}: the Hugging Face Hub is unreachable "
                f"(or HF_HUB_OFFLINE is set) and they are not in the cache.\n{advice}"
            )
        overlay = {"file": cached}
    try:
        model = timm.create_model(name, pretrained=True, pretrained_cfg_overlay=overlay)
    except Exception as err:
        raise CheckpointError(
            f"could not get the DINOv2 weights {name!r} from the Hugging Face Hub "
            f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}).\n{advice}"
        ) from err
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


def _cached_hub_file(repo_id: str) -> str | None:
    """Path of a weights file of Hub repo ``repo_id`` already in the Hugging Face cache, or None."""
    from huggingface_hub import try_to_load_from_cache

    for filename in ("model.safetensors", "pytorch_model.bin"):
        found = try_to_load_from_cache(repo_id, filename)
        if isinstance(found, str):
            return found
    return None


# --------------------------------------------------------------------------- converting
def _depth(state: dict[str, Tensor]) -> int:
    indices = {int(m.group(1)) for key in state if (m := _BLOCK_KEY.match(key))}
    return max(indices) + 1 if indices else 0


def adapt_vit_state_dict(
    state: dict[str, Tensor], target: VisionTransformer, *, patch_resample: PatchResample = "bicubic"
) -> dict[str, Tensor]:
    """Convert a (patch-14 DINOv2) ViT state dict to ``target``'s patch size and grid.

    Args:
        state: source state dict, timm / Meta DINOv2 key names (``cls_token``, ``pos_embed`` with
            the class position first, ``patch_embed.proj``, ``blocks.N....``, ``norm``).
        target: the ViT to load into; only its structure is read.
        patch_resample: ``"bicubic"`` (the paper's: bicubic interpolation of the kernel, scaled by
            (p_old / p_new)², which keeps a constant patch's embedding to within about 1 % of the
            embedding's size for a white-noise kernel, better for smooth trained kernels) or
            ``"pinv"`` (timm's ``resample_patch_embed``: exact for a bicubically resized patch).

    Returns:
        exactly ``target``'s keys, with ``target``'s shapes and the source dtypes; source keys
        the target lacks are left out (and logged).

    Raises:
        ValueError: width, depth or another shape does not match ``target`` (e.g. ViT-S weights for
            a ViT-L), or the source lacks some of ``target``'s keys.
    """
    if "patch_embed.proj.weight" not in state:
        raise ValueError("not a ViT state dict: no 'patch_embed.proj.weight'")
    width, depth = state["patch_embed.proj.weight"].shape[0], _depth(state)
    target_width, target_depth = target.embed_dim, len(target.blocks)
    if (width, depth) != (target_width, target_depth):
        raise ValueError(
            f"the weights are of a ViT of width {width} and depth {depth}, the target ViT has width "
            f"{target_width} and depth {target_depth}: choose weights of the target's size (e.g. DINOv2 "
            f"ViT-L for width 1024, ViT-S for 384)"
        )
    expected = target.state_dict()
    adapted: dict[str, Tensor] = {}
    for key, value in state.items():
        if key not in expected:
            continue
        if key == "patch_embed.proj.weight":
            value = _resample_patch_kernel(value, tuple(expected[key].shape[-2:]), patch_resample)
        elif key == "pos_embed":
            value = _resample_pos_embed(value, target, has_class_token="cls_token" in state)
        adapted[key] = value
    ignored = sorted(set(state) - set(adapted))
    if ignored:
        logger.info("ignored %d keys the target ViT lacks: %s", len(ignored), ", ".join(ignored))
    missing = sorted(set(expected) - set(adapted))
    mismatched = [
        f"{key}: {tuple(value.shape)} vs target {tuple(expected[key].shape)}"
        for key, value in adapted.items()
        if value.shape != expected[key].shape
    ]
    if missing or mismatched:
        raise ValueError(
            "the weights do not fit the target ViT"
            + (f"; missing keys: {', '.join(missing)}" if missing else "")
            + (f"; shape mismatches: {'; '.join(mismatched)}" if mismatched else "")
        )
    return adapted


def _resample_patch_kernel(kernel: Tensor, size: tuple[int, int], method: PatchResample) -> Tensor:
    """(C, 3, p, p) patch-embedding kernel → (C, 3, *size)."""
    if tuple(kernel.shape[-2:]) == size:
        return kernel
    if method == "pinv":
        return resample_patch_embed(kernel, list(size))
    if method != "bicubic":
        raise ValueError(f"patch_resample must be 'bicubic' or 'pinv', not {method!r}")
    old_h, old_w = kernel.shape[-2:]
    resized = F.interpolate(kernel.float(), size=size, mode="bicubic", align_corners=False)
    # A patch has (new/old)² as many pixels: scale so a constant patch sums to the same response.
    return (resized * (old_h * old_w) / (size[0] * size[1])).to(kernel.dtype)


def _resample_pos_embed(pos_embed: Tensor, target: VisionTransformer, *, has_class_token: bool) -> Tensor:
    """(1, P + g², C) position embedding → the target's (1, P + G², C); prefix positions kept."""
    prefix = 1 if has_class_token else 0
    if target.no_embed_class:
        raise ValueError("target ViTs without class-token position embedding are not supported")
    if prefix != target.num_prefix_tokens - getattr(target, "num_reg_tokens", 0):
        raise ValueError("the weights and the target ViT disagree about a class token")
    tokens = pos_embed.shape[1] - prefix
    side = math.isqrt(tokens)
    if side * side != tokens:
        raise ValueError(f"position embedding of {tokens} patch positions is not a square grid")
    new_size = list(target.patch_embed.grid_size)
    if [side, side] == new_size:
        return pos_embed
    return resample_abs_pos_embed(
        pos_embed, new_size=new_size, old_size=[side, side], num_prefix_tokens=prefix
    )


# --------------------------------------------------------------------------- loading
def init_encoders(
    model: DepthPro,
    source: str | os.PathLike,
    which: Sequence[str] = ("patch", "image", "fov"),
    *,
    patch_resample: PatchResample = "bicubic",
) -> dict[str, list[str]]:
    """Load DINOv2 weights into the ViTs ``which`` of ``model`` (other parameters untouched).

    Args:
        model: the Depth Pro network; parameters keep their device and dtype.
        source: ``"hub"`` or a local weights file (see :func:`dinov2_state_dict`); for ``"hub"``
            the DINOv2 model of each ViT's width is fetched.
        which: ViT names as in :meth:`DepthPro.vits` (``patch``, ``image``, ``fov``); ``fov`` is
            skipped, with a log message, for a model without FOV head.
        patch_resample: see :func:`adapt_vit_state_dict`.

    Returns:
        for each ViT loaded, the source keys it ignored (e.g. ``mask_token``). Every key of each
        listed ViT was loaded (strictly, after :func:`adapt_vit_state_dict`).

    Raises:
        ValueError: an unknown ViT name, or weights that do not fit (width, depth, shapes).
        CheckpointError: the weights cannot be read or downloaded.
    """
    unknown = [name for name in which if name not in VIT_PATHS]
    if unknown:
        raise ValueError(f"unknown ViT names {unknown}; choose from {list(VIT_PATHS)}")
    vits = model.vits()
    if "fov" in which and "fov" not in vits:
        logger.info("the model has no FOV head: its ViT is not initialised")
    report: dict[str, list[str]] = {}
    sources: dict[int, dict[str, Tensor]] = {}
    for name in dict.fromkeys(which):
        if name not in vits:
            continue
        vit = vits[name]
        width = vit.embed_dim
        if width not in sources:
            sources[width] = dinov2_state_dict(source, embed_dim=width)
        state = sources[width]
        try:
            adapted = adapt_vit_state_dict(state, vit, patch_resample=patch_resample)
        except ValueError as err:
            raise ValueError(f"{name} ViT ({VIT_PATHS[name]}): {err}") from err
        vit.load_state_dict(adapted, strict=True)
        report[name] = sorted(set(state) - set(adapted))
    return report
