"""Building models from weights: ``from_pretrained``, ``from_state_dict``, config inference, saving.

:class:`PretrainedMixin` gives a model class (``cls(config)`` builds it; ``cls.config_class`` and
``cls.presets`` describe its architectures) the timm / transformers-style loaders. It knows nothing
of any network: it only calls ``cls``, so model modules import it and it imports none of them.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import Tensor

from ...device import resolve_device, resolve_dtype
from .weights import CheckpointError, load_checkpoint, resolve_checkpoint, save_checkpoint

__all__ = ["PretrainedMixin", "infer_config", "state_dict_shapes"]

Model = TypeVar("Model", bound="PretrainedMixin")


@functools.cache
def state_dict_shapes(model_class: type, config: Any) -> dict[str, tuple[int, ...]]:
    """key → shape of the state dict of ``model_class(config)`` (built on the meta device, no memory)."""
    with torch.device("meta"):
        model = model_class(config)
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}


def infer_config(model_class: type, state: dict[str, Tensor]) -> Any:
    """The preset of ``model_class`` (with or without FOV head) whose keys and shapes equal ``state``'s."""
    shapes = {key: tuple(value.shape) for key, value in state.items()}
    has_fov = any(key.startswith("fov.") for key in shapes)
    for preset in model_class.presets.values():
        config = preset if has_fov else dataclasses.replace(preset, fov_encoder=None)
        if state_dict_shapes(model_class, config) == shapes:
            return config
    raise CheckpointError(
        f"the weights match no {getattr(model_class, 'display_name', model_class.__name__)} preset "
        f"({', '.join(model_class.presets)}); pass config= with the architecture they were trained with"
    )


class PretrainedMixin:
    """``from_pretrained`` / ``from_state_dict`` / ``save_pretrained`` for a model class."""

    config_class: Any
    presets: dict[str, Any]

    @classmethod
    def from_pretrained(
        cls: type[Model],
        name_or_path: str | os.PathLike = "apple/DepthPro",
        *,
        config: Any = None,
        device: str | torch.device | None = "auto",
        precision: str | torch.dtype | None = "auto",
        filename: str | None = None,
        revision: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        local_files_only: bool = False,
    ) -> Model:
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
            filename, revision, cache_dir, local_files_only: Hub download options. Without a
                connection to the Hub, the cache is used at once (no retries).

        Raises:
            CheckpointError: the weights cannot be found, downloaded or matched to a config.
        """
        path = resolve_checkpoint(
            name_or_path,
            filename=filename,
            revision=revision,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
        )
        state_dict, stored_config = load_checkpoint(path)
        if isinstance(config, str):
            config = cls.config_class.preset(config)
        # Cast in place, one tensor at a time, before building: each original is freed as its cast
        # appears, so an fp16 file becomes fp32 weights with ~the fp32 size at peak, not fp16 + fp32.
        dtype = resolve_dtype(precision, resolve_device(device))
        for key in list(state_dict):
            if state_dict[key].is_floating_point() and state_dict[key].dtype != dtype:
                state_dict[key] = state_dict[key].to(dtype)
        return cls.from_state_dict(
            state_dict, config=config or stored_config, device=device, precision=precision
        )

    @classmethod
    def from_state_dict(
        cls: type[Model],
        state_dict: dict[str, Tensor],
        *,
        config: Any = None,
        device: str | torch.device | None = "auto",
        precision: str | torch.dtype | None = "auto",
    ) -> Model:
        """Build a model around a state dict in this package's (= Apple's) layout, without random init."""
        config = config or infer_config(cls, state_dict)
        target = resolve_device(device)
        dtype = resolve_dtype(precision, target)
        with torch.device("meta"):
            model = cls(config)
        try:
            model.load_state_dict(state_dict, strict=True, assign=True)  # type: ignore[attr-defined]
        except RuntimeError as err:
            raise CheckpointError(f"weights do not fit the {config.name!r} architecture: {err}") from err
        return model.to(device=target, dtype=dtype).eval()  # type: ignore[attr-defined]

    @classmethod
    def state_dict_shapes(cls, config: Any) -> dict[str, tuple[int, ...]]:
        """key → shape of the state dict of ``cls(config)``."""
        return state_dict_shapes(cls, config)

    def save_pretrained(self, path: str | os.PathLike) -> Path:
        """Write the weights and config as one ``.safetensors`` file that ``from_pretrained`` reads."""
        return save_checkpoint(self, path)  # type: ignore[arg-type]
