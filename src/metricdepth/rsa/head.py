"""The RSA head: an MLP from a text (or image) embedding to one global scale α and shift β.

Metric depth of an image whose relative model gives inverse relative depth y is ``1 / (α·y + β)``
(:func:`metric_depth`). The network is the paper's (Zeng et al., NeurIPS 2024):

=========== ============================================================ ===========
layout      trunk ``scene_feat_net``                                     each head
=========== ============================================================ ===========
``large``   D → 512 → 512 → 512 → 256 → 256                              256 → 256 → 128 → 128 → 64 → 1
``small``   D → 512 → 256 → 256                                          256 → 128 → 64 → 1
=========== ============================================================ ===========

LeakyReLU (slope 0.01) between linear layers, none after the last of each block; two heads with
separate weights (``scale_net``, ``shift_net``); α = exp(scale_net(trunk(t))), β = exp(shift_net(...)),
both strictly positive and unbounded. ``large`` is the released checkpoints' architecture (1,494,274
parameters for D = 1024, CLIP RN50), ``small`` the older one (804,354). The input width D follows the
text encoder (1024 for CLIP RN50, 384 for MiniLM).

Files: :meth:`RSAHead.from_pretrained` reads the official torch checkpoints strictly (the state dict
under ``'model'``, keys ``scene_feat_net.{0,2,...}``, ``scale_net.*``, ``shift_net.*``, an optional
``module.`` prefix from ``DataParallel``) with ``weights_only=True``, and this project's
``.safetensors`` files, whose metadata store the layout, the input width, the text encoder's name and
what the head is conditioned on (:meth:`RSAHead.save_pretrained`).
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["LAYOUTS", "RSAHead", "metric_depth"]

LAYOUTS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "large": ((512, 512, 512, 256, 256), (256, 128, 128, 64, 1)),
    "small": ((512, 256, 256), (128, 64, 1)),
}
"""layout → (trunk widths after the input, head widths after the trunk's 256)."""

METADATA_KEY = "metricdepth.rsa.head"
FORMAT = "metricdepth.rsa-head/1"
DEFAULT_FILENAME = "rsa.safetensors"
OFFICIAL_TEXT_ENCODER = "clip-rn50"
"""The text encoder of the official checkpoints (CLIP RN50, 1024-d)."""


def _mlp(widths: tuple[int, ...]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for index, (a, b) in enumerate(itertools.pairwise(widths)):
        if index:
            layers.append(nn.LeakyReLU(0.01))
        layers.append(nn.Linear(a, b))
    return nn.Sequential(*layers)


def metric_depth(inverse_relative: Tensor, alpha: Tensor, beta: Tensor, eps: float = 0.0) -> Tensor:
    """Depth (m) = 1 / (α·y + β + eps) for inverse relative depth y (B, H, W) and α, β (B,)."""
    return torch.reciprocal(alpha[:, None, None] * inverse_relative + beta[:, None, None] + eps)


class RSAHead(nn.Module):
    """Embedding (B, D) → (α, β), each (B,): the global scale and shift of inverse relative depth.

    Args:
        in_dim: the embedding width D (the text encoder's ``dim``).
        layout: ``"large"`` (the released checkpoints) or ``"small"`` (the older ones).
        text_encoder: the name of the text encoder the head was trained with (``TextEncoder.create``
            takes it); stored in saved files so a pipeline can rebuild it.
        conditioning: ``"text"`` (RSA) or ``"image"`` (the Image baseline's head).
    """

    def __init__(
        self,
        in_dim: int = 1024,
        layout: str = "large",
        *,
        text_encoder: str | None = None,
        conditioning: str = "text",
    ) -> None:
        super().__init__()
        if layout not in LAYOUTS:
            raise ValueError(f"unknown RSA head layout {layout!r}; choose {', '.join(LAYOUTS)}")
        if in_dim <= 0:
            raise ValueError(f"in_dim must be positive, got {in_dim}")
        trunk, head = LAYOUTS[layout]
        self.in_dim, self.layout = int(in_dim), layout
        self.text_encoder, self.conditioning = text_encoder, conditioning
        self.scene_feat_net = _mlp((in_dim, *trunk))
        self.scale_net = _mlp((trunk[-1], *head))
        self.shift_net = _mlp((trunk[-1], *head))

    def forward(self, embedding: Tensor) -> tuple[Tensor, Tensor]:
        """(B, D) embeddings → α (B,), β (B,), both > 0."""
        weight = self.scene_feat_net[0].weight  # embeddings may come from another device (the encoder's)
        features = self.scene_feat_net(embedding.to(device=weight.device, dtype=weight.dtype))
        return torch.exp(self.scale_net(features))[:, 0], torch.exp(self.shift_net(features))[:, 0]

    def extra_repr(self) -> str:
        return f"in_dim={self.in_dim}, layout={self.layout!r}, text_encoder={self.text_encoder!r}"

    # ----------------------------------------------------------------------------------- files
    def config(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "in_dim": self.in_dim,
            "layout": self.layout,
            "text_encoder": self.text_encoder,
            "conditioning": self.conditioning,
        }

    def save_pretrained(self, path: str | os.PathLike, **extra: str) -> Path:
        """Write the weights and the head's config (layout, input width, text encoder, conditioning,
        and any ``extra`` strings) to a ``.safetensors`` file, atomically. A folder gets
        ``rsa.safetensors`` inside it."""
        from ..models.depth_pro.weights import write_safetensors

        path = Path(path)
        if path.suffix != ".safetensors":
            path = path / DEFAULT_FILENAME
        return write_safetensors(
            self.state_dict(), path, {METADATA_KEY: json.dumps({**self.config(), **extra}, sort_keys=True)}
        )

    @classmethod
    def from_state_dict(
        cls, state: dict[str, Tensor], *, text_encoder: str | None = None, conditioning: str = "text"
    ) -> RSAHead:
        """A head whose layout and input width are read off ``state`` (the official key names, with
        or without a ``module.`` prefix); loaded strictly."""
        state = {key.removeprefix("module."): value for key, value in state.items()}
        layout, in_dim = _layout_of(state)
        head = cls(in_dim, layout, text_encoder=text_encoder, conditioning=conditioning)
        head.load_state_dict(state, strict=True)
        return head

    @classmethod
    def from_pretrained(
        cls, name_or_path: str | os.PathLike, *, map_location: str | torch.device = "cpu"
    ) -> RSAHead:
        """Read a head: an official RSA torch checkpoint (``{'model': state_dict, ...}``, read with
        ``weights_only=True``; its text encoder is CLIP RN50), this project's ``.safetensors`` (a
        file, a folder holding ``rsa.safetensors`` or ``model.safetensors`` such as a training run's
        ``RUN/last``), or a Hugging Face Hub repo holding ``rsa.safetensors``.

        Raises:
            CheckpointError: the file is missing, unreadable or not an RSA head; the message names it.
        """
        from ..models.depth_pro.weights import CheckpointError, resolve_checkpoint

        path = Path(name_or_path).expanduser()
        if path.is_dir():
            found = [
                path / name for name in (DEFAULT_FILENAME, "model.safetensors") if (path / name).is_file()
            ]
            if not found:
                raise CheckpointError(f"{path}: no {DEFAULT_FILENAME} (or model.safetensors) in the folder")
            path = found[0]
        elif not path.is_file():
            path = resolve_checkpoint(name_or_path, filename=DEFAULT_FILENAME)
        try:
            head = _read_safetensors(path) if path.suffix == ".safetensors" else _read_torch(path)
        except CheckpointError:
            raise
        except Exception as err:  # corrupt files, missing or unexpected keys, wrong shapes
            raise CheckpointError(f"{path}: not a readable RSA head ({type(err).__name__}: {err})") from None
        return head.to(map_location).eval()


def _layout_of(state: dict[str, Tensor]) -> tuple[str, int]:
    from ..models.depth_pro.weights import CheckpointError

    trunk = sorted(
        int(key.split(".")[1])
        for key in state
        if key.startswith("scene_feat_net.") and key.endswith(".weight")
    )
    for layout, (widths, _) in LAYOUTS.items():
        if trunk == list(range(0, 2 * len(widths), 2)):
            weight = state.get("scene_feat_net.0.weight")
            if weight is None or weight.ndim != 2:
                break
            return layout, int(weight.shape[1])
    keys = ", ".join(sorted(state)[:6])
    raise CheckpointError(
        f"the weights are not an RSA head (large or small layout): expected scene_feat_net.0/2/4[/6/8], "
        f"scale_net.*, shift_net.*; found {keys}{', ...' if len(state) > 6 else ''}"
    )


def _read_safetensors(path: Path) -> RSAHead:
    from safetensors import safe_open

    from ..models.depth_pro.weights import CheckpointError

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
        state = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118 - not a dict
    config = json.loads(metadata[METADATA_KEY]) if METADATA_KEY in metadata else {}
    if not config and not any(key.startswith("scene_feat_net.") for key in state):
        raise CheckpointError(f"{path}: not an RSA head (no {METADATA_KEY} metadata and no RSA weights)")
    head = RSAHead.from_state_dict(
        state, text_encoder=config.get("text_encoder"), conditioning=config.get("conditioning", "text")
    )
    if config.get("layout", head.layout) != head.layout:
        raise CheckpointError(
            f"{path}: metadata says layout {config['layout']!r}, weights are {head.layout!r}"
        )
    return head


def _read_torch(path: Path) -> RSAHead:
    from ..models.depth_pro.weights import CheckpointError

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(
            f"{path}: not readable as a torch checkpoint with weights_only=True ({type(err).__name__}: {err})"
        ) from None
    state = checkpoint.get("model", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: expected a state dict (or {{'model': state dict}}) of tensors")
    head = RSAHead.from_state_dict(state)
    if head.in_dim == 1024:  # the released checkpoints embed captions with CLIP RN50
        head.text_encoder = OFFICIAL_TEXT_ENCODER
    return head
