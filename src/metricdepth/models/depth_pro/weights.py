"""Depth Pro weights: find them (Hub or disk), read them safely, convert layouts, infer the config.

Layouts understood:
- Apple's ``depth_pro.pt``: a plain state dict of fp16 tensors; also ``apple/DepthPro-mixin``'s
  ``model.safetensors`` and this package's own files (same key names).
- transformers' ``apple/DepthPro-hf`` ``model.safetensors`` (keys under ``depth_pro.``,
  ``fusion_stage.``, ``head.layers.``, ``fov_model.``), with 4.x (``attention.attention.query``)
  or 5.x (``attention.q_proj``) attention names. Separate q/k/v are concatenated into ``qkv``.
- Training checkpoints: a dict with the state dict under ``"model"`` or ``"state_dict"`` (and an
  optional ``"config"``), DDP ``module.`` prefixes stripped.

The other way, :func:`to_transformers_state_dict` writes Apple's layout in transformers' key names and
:func:`transformers_depth_pro` builds transformers' ``DepthProForDepthEstimation`` holding a model's
weights (to compare or benchmark the two implementations on the same weights).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from ...io.atomic import atomic_path
from ..vit import ViTConfig
from .config import DepthProConfig

if TYPE_CHECKING:
    import transformers

    from .model import DepthPro

__all__ = [
    "CheckpointError",
    "convert_hf_state_dict",
    "hub_reachable",
    "load_checkpoint",
    "normalize_state_dict",
    "resolve_checkpoint",
    "save_checkpoint",
    "to_transformers_state_dict",
    "transformers_depth_pro",
    "transformers_depth_pro_config",
    "write_safetensors",
]

HUB_FILENAMES = ("model.safetensors", "depth_pro.pt")
"""Files looked for in a Hub repo or a local folder, in this order."""

CONFIG_METADATA_KEY = "metricdepth.depth_pro.config"
WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".safetensors")


class CheckpointError(RuntimeError):
    """Weights could not be found, read, or matched to an architecture."""


# --------------------------------------------------------------------------- finding the file
def resolve_checkpoint(
    name_or_path: str | os.PathLike,
    *,
    filename: str | None = None,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
) -> Path:
    """Local path of the weights: an existing file or folder, else a Hub download (cached)."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        for candidate in (filename,) if filename else HUB_FILENAMES:
            if (path / candidate).is_file():
                return path / candidate
        found = sorted(p for p in path.iterdir() if p.suffix in WEIGHT_SUFFIXES)
        if len(found) == 1:
            return found[0]
        raise CheckpointError(f"{path}: no weights file found (looked for {', '.join(HUB_FILENAMES)})")
    name = str(name_or_path)
    looks_local = path.suffix in WEIGHT_SUFFIXES or name.startswith((".", "/", "~")) or name.count("/") != 1
    if looks_local or Path(name.split("/")[0]).is_dir():
        raise CheckpointError(
            f"{name}: checkpoint file not found (and it is not a Hub repo id like 'apple/DepthPro')"
        )
    return _download(name, filename, revision, cache_dir, local_files_only)


def _download(
    repo_id: str,
    filename: str | None,
    revision: str | None,
    cache_dir: str | os.PathLike | None,
    local_only: bool,
) -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError

    failures = []
    if not local_only and not hub_reachable():
        # huggingface_hub would retry for about a minute; use the cache, and advise at once.
        local_only = True
    for candidate in (filename,) if filename else HUB_FILENAMES:
        try:
            return Path(
                hf_hub_download(
                    repo_id, candidate, revision=revision, cache_dir=cache_dir, local_files_only=local_only
                )
            )
        except LocalEntryNotFoundError as err:  # offline (or unreachable) and not in the cache
            failures.append(f"{candidate}: not cached, and the Hub is unreachable ({type(err).__name__})")
        except EntryNotFoundError:
            failures.append(f"{candidate}: not in the repo")
        except RepositoryNotFoundError as err:
            raise CheckpointError(f"Hub repo {repo_id!r} not found (or private): {err}") from err
        except Exception as err:  # offline, connection refused, HTTP errors: all end in the same advice
            failures.append(
                f"{candidate}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
            )
    wanted = filename or ("depth_pro.pt" if repo_id == "apple/DepthPro" else HUB_FILENAMES[0])
    raise CheckpointError(
        f"could not get weights for {repo_id!r} from the Hugging Face Hub ({'; '.join(failures)}).\n"
        f"Download them where the Hub is reachable, e.g.\n"
        f"    hf download {repo_id} {wanted} --local-dir checkpoints\n"
        f"(or https://huggingface.co/{repo_id}/resolve/main/{wanted}),\n"
        f"copy the file here, and pass its path:\n"
        f"    metricdepth predict --checkpoint checkpoints/{wanted} ...\n"
        f"    DepthPro.from_pretrained('checkpoints/{wanted}')\n"
        f"Files already in the Hugging Face cache (HF_HOME) are used without a connection."
    )


PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")
"""Environment variables that route Hub traffic through a proxy (read via ``urllib.request.getproxies``)."""


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hub's host (``HF_ENDPOINT``, default huggingface.co) answers a TCP connection
    within ``timeout`` seconds, name lookup included.

    False at once when ``HF_HUB_OFFLINE`` is set. When a proxy serves the endpoint's scheme
    (``HTTPS_PROXY`` for https, honouring ``NO_PROXY``) the host may be unreachable directly yet
    reachable for huggingface_hub: then this says True and leaves the decision to huggingface_hub.
    """
    import socket
    import threading
    from urllib.parse import urlparse
    from urllib.request import getproxies, proxy_bypass

    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return False
    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host = endpoint.hostname or "huggingface.co"
    if getproxies().get(endpoint.scheme or "https") and not proxy_bypass(host):
        return True
    port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    answered: list[bool] = []

    def probe() -> None:  # in a thread: a slow DNS lookup is not bounded by the socket timeout
        try:
            with socket.create_connection((host, port), timeout=timeout):
                answered.append(True)
        except OSError:
            answered.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(answered and answered[0])


# --------------------------------------------------------------------------- reading the file
def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, Tensor], DepthProConfig | None]:
    """Read a weights file into Apple's key layout; also return a config stored in it, if any.

    ``.safetensors`` files are read with safetensors, anything else with
    ``torch.load(weights_only=True)``: no pickled code is ever executed.
    """
    path = Path(path)
    config: DepthProConfig | None = None
    try:
        if path.suffix == ".safetensors":
            state = load_file(path)
            config = _config_from_safetensors(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except (SafetensorError, OSError, RuntimeError, EOFError, ValueError) as err:
        raise CheckpointError(f"{path}: cannot read weights ({type(err).__name__}: {err})") from err
    except Exception as err:  # pickle.UnpicklingError and friends from weights_only loading
        raise CheckpointError(f"{path}: not a plain tensor checkpoint ({type(err).__name__}: {err})") from err
    if isinstance(state, dict) and isinstance(state.get("config"), dict):
        config = DepthProConfig.from_dict(state["config"])
    return normalize_state_dict(state, source=str(path)), config


def _config_from_safetensors(path: Path) -> DepthProConfig | None:
    from safetensors import safe_open

    with safe_open(path, framework="pt") as f:
        metadata = f.metadata() or {}
    text = metadata.get(CONFIG_METADATA_KEY)
    return DepthProConfig.from_json(text) if text else None


def normalize_state_dict(state: object, source: str = "checkpoint") -> dict[str, Tensor]:
    """Unwrap training checkpoints, strip DDP prefixes, convert the transformers layout."""
    if isinstance(state, dict):
        for wrapper in ("model", "state_dict", "model_state_dict"):
            if isinstance(state.get(wrapper), dict):
                state = state[wrapper]
                break
    if not isinstance(state, dict) or not state or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(f"{source}: expected a state dict of tensors")
    state = {key.removeprefix("module."): value for key, value in state.items()}
    if any(key.startswith(("depth_pro.", "fusion_stage.", "fov_model.")) for key in state):
        state = convert_hf_state_dict(state)
    return state


# ------------------------------------------------------------------ transformers → Apple layout
_HF_VIT_PREFIXES = {
    "depth_pro.encoder.patch_encoder.model.": "encoder.patch_encoder.",
    "depth_pro.encoder.image_encoder.model.": "encoder.image_encoder.",
    "fov_model.fov_encoder.model.": "fov.encoder.0.",
}
_HF_VIT_RULES = [
    (r"^embeddings\.cls_token$", "cls_token"),
    (r"^embeddings\.position_embeddings$", "pos_embed"),
    (r"^embeddings\.patch_embeddings\.projection\.", "patch_embed.proj."),
    (r"^layernorm\.", "norm."),
    (r"^encoder\.layer\.(\d+)\.attention\.(?:output\.dense|o_proj)\.", r"blocks.\1.attn.proj."),
    (r"^encoder\.layer\.(\d+)\.layer_scale([12])\.lambda1$", r"blocks.\1.ls\2.gamma"),
    (r"^encoder\.layer\.(\d+)\.", r"blocks.\1."),
]
_HF_QKV = re.compile(
    r"^(.*)encoder\.layer\.(\d+)\.attention\.(?:attention\.(query|key|value)|([qkv])_proj)\.(weight|bias)$"
)
_HF_RULES = [
    (r"^depth_pro\.neck\.feature_upsample\.image_block\.layers\.0\.", lambda m: "encoder.upsample_lowres."),
    (
        r"^depth_pro\.neck\.feature_upsample\.scaled_images\.(\d)\.layers\.(\d)\.",
        lambda m: f"encoder.upsample{2 - int(m[1])}.{m[2]}.",
    ),
    (
        r"^depth_pro\.neck\.feature_upsample\.intermediate\.(\d)\.layers\.(\d)\.",
        lambda m: f"encoder.upsample_latent{1 - int(m[1])}.{m[2]}.",
    ),
    (r"^depth_pro\.neck\.fuse_image_with_low_res\.", lambda m: "encoder.fuse_lowres."),
    (
        r"^depth_pro\.neck\.feature_projection\.projections\.(\d)\.",
        lambda m: f"decoder.convs.{4 - int(m[1])}.",
    ),
    (r"^fusion_stage\.intermediate\.(\d)\.", lambda m: f"decoder.fusions.{4 - int(m[1])}."),
    (r"^fusion_stage\.final\.", lambda m: "decoder.fusions.0."),
    (r"^head\.layers\.(\d)\.", lambda m: f"head.{m[1]}."),
    (r"^fov_model\.fov_encoder\.neck\.", lambda m: "fov.encoder.1."),
    (r"^fov_model\.conv\.", lambda m: "fov.downsample.0."),
    (r"^fov_model\.head\.layers\.(\d)\.", lambda m: f"fov.head.{m[1]}."),
]
_HF_FUSION_RULES = [
    (r"\.residual_layer([12])\.convolution1\.", r".resnet\1.residual.1."),
    (r"\.residual_layer([12])\.convolution2\.", r".resnet\1.residual.3."),
    (r"\.projection\.", ".out_conv."),
]


def convert_hf_state_dict(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """transformers ``DepthProForDepthEstimation`` keys → Apple's keys (q, k, v concatenated to qkv)."""
    out: dict[str, Tensor] = {}
    qkv: dict[str, dict[str, Tensor]] = {}
    for key, value in state.items():
        match = _HF_QKV.match(key)
        if match:
            prefix, block, long_name, short_name, kind = match.groups()
            part = (long_name or short_name)[0]  # q, k or v
            qkv.setdefault(f"{prefix}encoder.layer.{block}.attention.qkv.{kind}", {})[part] = value
            continue
        out[_convert_hf_key(key)] = value
    for key, parts in qkv.items():
        if set(parts) != {"q", "k", "v"}:
            raise CheckpointError(f"incomplete query/key/value tensors for {key}")
        out[_convert_hf_key(key)] = torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)
    return out


def _convert_hf_key(key: str) -> str:
    for hf_prefix, prefix in _HF_VIT_PREFIXES.items():
        if key.startswith(hf_prefix):
            rest = key[len(hf_prefix) :].replace("attention.qkv.", "attn.qkv.")
            for pattern, replacement in _HF_VIT_RULES:
                rest, count = re.subn(pattern, replacement, rest)
                if count:
                    break
            return prefix + rest
    for pattern, replacement in _HF_RULES:
        new, count = re.subn(pattern, replacement, key)
        if count:
            if new.startswith("decoder.fusions."):
                for fusion_pattern, fusion_replacement in _HF_FUSION_RULES:
                    new = re.sub(fusion_pattern, fusion_replacement, new)
            return new
    raise CheckpointError(f"unrecognised key in a transformers DepthPro checkpoint: {key}")


# ------------------------------------------------------------------ Apple → transformers layout
_VIT_PREFIXES_TO_HF = {apple: hf for hf, apple in _HF_VIT_PREFIXES.items()}
_VIT_BLOCK = re.compile(r"^blocks\.(\d+)\.(.+)$")
_ATTENTION_NAMES = {
    # version: (q, k, v, output projection) module names under encoder.layer.N.
    4: (
        "attention.attention.query",
        "attention.attention.key",
        "attention.attention.value",
        "attention.output.dense",
    ),
    5: ("attention.q_proj", "attention.k_proj", "attention.v_proj", "attention.o_proj"),
}
_TO_HF_RULES = [
    (r"^encoder\.upsample_lowres\.", lambda m: "depth_pro.neck.feature_upsample.image_block.layers.0."),
    (
        r"^encoder\.upsample(\d)\.(\d)\.",
        lambda m: f"depth_pro.neck.feature_upsample.scaled_images.{2 - int(m[1])}.layers.{m[2]}.",
    ),
    (
        r"^encoder\.upsample_latent(\d)\.(\d)\.",
        lambda m: f"depth_pro.neck.feature_upsample.intermediate.{1 - int(m[1])}.layers.{m[2]}.",
    ),
    (r"^encoder\.fuse_lowres\.", lambda m: "depth_pro.neck.fuse_image_with_low_res."),
    (r"^decoder\.convs\.(\d)\.", lambda m: f"depth_pro.neck.feature_projection.projections.{4 - int(m[1])}."),
    (r"^decoder\.fusions\.0\.", lambda m: "fusion_stage.final."),
    (r"^decoder\.fusions\.(\d)\.", lambda m: f"fusion_stage.intermediate.{4 - int(m[1])}."),
    (r"^head\.(\d)\.", lambda m: f"head.layers.{m[1]}."),
    (r"^fov\.encoder\.1\.", lambda m: "fov_model.fov_encoder.neck."),
    (r"^fov\.downsample\.0\.", lambda m: "fov_model.conv."),
    (r"^fov\.head\.(\d)\.", lambda m: f"fov_model.head.layers.{m[1]}."),
]
_TO_HF_FUSION_RULES = [
    (r"\.resnet([12])\.residual\.1\.", r".residual_layer\1.convolution1."),
    (r"\.resnet([12])\.residual\.3\.", r".residual_layer\1.convolution2."),
    (r"\.out_conv\.", ".projection."),
]


def to_transformers_state_dict(state: dict[str, Tensor], version: int | None = None) -> dict[str, Tensor]:
    """Apple's keys → transformers ``DepthProForDepthEstimation`` keys: the inverse of
    :func:`convert_hf_state_dict`.

    Each ViT's fused ``qkv`` (3C, C) weight and (3C,) bias is split into query, key and value
    (C, C) / (C,) tensors; every other tensor keeps its shape. Values are not copied: tensors are
    the inputs themselves or views of them (q, k, v are views of ``qkv``), on the same device, in
    the same dtype.

    Args:
        state: a state dict in this package's (= Apple's) layout, e.g. ``DepthPro.state_dict()``.
        version: transformers major version whose attention names to write: 4
            (``attention.attention.query``, ``attention.output.dense``) or 5 (``attention.q_proj``,
            ``attention.o_proj``). None: that of the installed transformers.

    Raises:
        CheckpointError: a key that is not part of Depth Pro's layout.
        ValueError: an unknown ``version``, or None while transformers is not installed.
    """
    if version is None:
        version = _installed_transformers_version()
    if version not in _ATTENTION_NAMES:
        raise ValueError(f"transformers version {version!r}: choose 4 or 5 (its key names)")
    query, key_, value_, output = _ATTENTION_NAMES[version]
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        prefix = next((p for p in _VIT_PREFIXES_TO_HF if key.startswith(p)), None)
        if prefix is None:
            out[_to_hf_key(key)] = value
            continue
        hf, rest = _VIT_PREFIXES_TO_HF[prefix], key[len(prefix) :]
        block = _VIT_BLOCK.match(rest)
        if block is None:
            out[hf + _vit_embedding_key(key, rest)] = value
            continue
        layer, tail = f"{hf}encoder.layer.{block[1]}.", block[2]
        if tail in ("attn.qkv.weight", "attn.qkv.bias"):
            kind = tail.rsplit(".", 1)[1]
            for name, part in zip((query, key_, value_), value.chunk(3, dim=0), strict=True):
                out[f"{layer}{name}.{kind}"] = part
        elif tail.startswith("attn.proj."):
            out[f"{layer}{output}.{tail.rsplit('.', 1)[1]}"] = value
        elif re.fullmatch(r"ls[12]\.gamma", tail):
            out[f"{layer}layer_scale{tail[2]}.lambda1"] = value
        elif re.fullmatch(r"(norm[12]|mlp\.fc[12])\.(weight|bias)", tail):
            out[layer + tail] = value
        else:
            raise CheckpointError(f"unrecognised ViT key in a Depth Pro state dict: {key}")
    return out


def _vit_embedding_key(key: str, rest: str) -> str:
    """transformers' name (under the ViT's prefix) of a ViT tensor outside the blocks."""
    if rest == "cls_token":
        return "embeddings.cls_token"
    if rest == "pos_embed":
        return "embeddings.position_embeddings"
    if rest in ("patch_embed.proj.weight", "patch_embed.proj.bias"):
        return "embeddings.patch_embeddings.projection." + rest.rsplit(".", 1)[1]
    if rest in ("norm.weight", "norm.bias"):
        return "layernorm." + rest.rsplit(".", 1)[1]
    raise CheckpointError(f"unrecognised ViT key in a Depth Pro state dict: {key}")


def _to_hf_key(key: str) -> str:
    for pattern, replacement in _TO_HF_RULES:
        new, count = re.subn(pattern, replacement, key)
        if count:
            if new.startswith("fusion_stage."):
                for fusion_pattern, fusion_replacement in _TO_HF_FUSION_RULES:
                    new = re.sub(fusion_pattern, fusion_replacement, new)
            return new
    raise CheckpointError(f"unrecognised key in a Depth Pro state dict: {key}")


def _installed_transformers_version() -> int:
    """Key-name version of the installed transformers: 5 from 5.0 on, else 4."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        major = int(version("transformers").split(".")[0])
    except PackageNotFoundError:
        raise ValueError("transformers is not installed: pass version=4 or version=5") from None
    return 5 if major >= 5 else 4


TRANSFORMERS_HEAD_FEATURES = 32
"""Channels before the last 1×1 conv of transformers' depth head (hard-coded there)."""


def transformers_depth_pro_config(config: DepthProConfig) -> transformers.DepthProConfig:
    """The ``transformers.DepthProConfig`` of the same architecture as ``config``.

    The three ViTs become ``Dinov2Config`` sub-configs (image size = tile size, no mask token,
    LayerNorm eps 1e-6, exact GELU); transformers' ``patch_size`` is the tile size in pixels (384
    for ``depth-pro``), its ``intermediate_hook_ids`` are our ``hook_block_ids`` reversed, its
    scaled-image lists run coarsest first. transformers' DepthPro is less general than ours, so
    some configs cannot be expressed: among the presets ``depth-pro`` and ``vits`` can, ``tiny``
    (8 head features; transformers hard-codes 32) cannot.

    Raises:
        ValueError: the architecture cannot be expressed in transformers' DepthPro (why is said).
    """
    import transformers

    problems = _transformers_incompatibilities(config)
    if problems:
        raise ValueError(
            f"the {config.name!r} Depth Pro config cannot be expressed as a transformers DepthProConfig: "
            + "; ".join(problems)
        )

    def vit(v: ViTConfig) -> transformers.Dinov2Config:
        return transformers.Dinov2Config(
            hidden_size=v.embed_dim,
            num_hidden_layers=v.depth,
            num_attention_heads=v.num_heads,
            mlp_ratio=int(v.mlp_ratio),
            image_size=v.img_size,
            patch_size=v.patch_size,
            qkv_bias=True,
            layer_norm_eps=1e-6,
            hidden_act="gelu",
            use_swiglu_ffn=False,
            use_mask_token=False,
        )

    d0, d1, d2, d3 = config.encoder_feature_dims
    (_, overlap0), (_, overlap1), (_, overlap2) = config.pyramid
    pad0, _ = _merge_paddings(config)
    return transformers.DepthProConfig(
        fusion_hidden_size=config.decoder_features,
        patch_size=config.tile_size,
        intermediate_hook_ids=[config.hook_block_ids[1], config.hook_block_ids[0]],
        intermediate_feature_dims=[d0, d0],
        scaled_images_ratios=[0.25, 0.5, 1],
        scaled_images_overlap_ratios=[overlap2, overlap1, overlap0],
        scaled_images_feature_dims=[d3, d2, d1],
        merge_padding_value=pad0,
        use_batch_norm_in_fusion_residual=False,
        use_bias_in_fusion_residual=True,
        use_fov_model=config.use_fov_head,
        num_fov_head_layers=2,
        patch_model_config=vit(config.patch_encoder),
        image_model_config=vit(config.image_encoder),
        # transformers wants a FOV ViT config even without FOV head; it is then unused.
        fov_model_config=vit(config.fov_encoder or config.image_encoder),
    )


def _merge_paddings(config: DepthProConfig) -> tuple[int, int]:
    """Tokens cropped per tile seam at scales 1 and 1/2 (as :class:`DepthProEncoder` crops them)."""
    from .tiling import tile_grid

    tile, patch = config.tile_size, config.patch_encoder.patch_size
    return tuple(  # type: ignore[return-value]
        (tile - tile_grid(config.img_size, tile, overlap)[1]) // patch // 2
        for _, overlap in config.pyramid[:2]
    )


def _transformers_incompatibilities(config: DepthProConfig) -> list[str]:
    """Why transformers' DepthPro cannot express ``config`` (empty: it can)."""
    problems = []
    if config.head_features != TRANSFORMERS_HEAD_FEATURES:
        problems.append(
            f"head_features={config.head_features}, but transformers' depth head hard-codes "
            f"{TRANSFORMERS_HEAD_FEATURES} channels"
        )
    if config.encoder_feature_dims[0] != config.decoder_features:
        problems.append(
            f"encoder_feature_dims[0]={config.encoder_feature_dims[0]} differs from decoder_features="
            f"{config.decoder_features}, but transformers projects the second hooked block to "
            "fusion_hidden_size and the first one's output to intermediate_feature_dims[1]"
        )
    vits = [config.patch_encoder, config.image_encoder, config.fov_encoder]
    ratios = sorted({v.mlp_ratio for v in vits if v is not None and v.mlp_ratio != int(v.mlp_ratio)})
    if ratios:
        problems.append(f"ViT mlp_ratio {ratios}: transformers' Dinov2Config takes whole numbers")
    if tuple(scale for scale, _ in config.pyramid) != (1.0, 0.5, 0.25):
        problems.append(f"pyramid scales {[s for s, _ in config.pyramid]}: transformers needs (1, 0.5, 0.25)")
        return problems
    patch, grid, size = config.patch_encoder.patch_size, config.patch_encoder.grid_size, config.img_size
    if patch & (patch - 1):
        problems.append(
            f"ViT patch size {patch} is not a power of two (transformers sizes features with log2)"
        )
    pad0, pad1 = _merge_paddings(config)
    if min(grid // 4, pad0) != pad0 or min(grid // 4, 2 * pad0) != pad1:
        problems.append(
            f"tile seams crop {pad0} and {pad1} tokens at scales 1 and 1/2; transformers crops "
            f"min({grid // 4}, p) and min({grid // 4}, 2p) for one merge_padding_value p"
        )
    for scale, overlap in config.pyramid[:2]:
        stride = int(config.tile_size * (1 - overlap))
        if (int(size * scale) - config.tile_size) % stride:  # transformers' unfold would drop the last tiles
            problems.append(f"tiles of overlap {overlap} do not cover the scale-{scale} image exactly")
    return problems


def transformers_depth_pro(
    model: DepthPro,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> transformers.DepthProForDepthEstimation:
    """transformers' ``DepthProForDepthEstimation`` with ``model``'s architecture and weights.

    Built on the meta device (no random initialisation), then loaded strictly with copies of
    ``model``'s tensors in the key names of the installed transformers; the two models share no
    memory. ``out = hf(pixel_values=x)`` on the same normalised (B, 3, S, S) input in [-1, 1] then
    gives ``out.predicted_depth`` (B, S, S), the canonical inverse depth of ``model(x)[0]``
    (B, 1, S, S), and ``out.field_of_view`` (B,), degrees, its FOV (with a FOV head).
    transformers' attention implementation is its default (``hf.config._attn_implementation``).

    Args:
        model: a :class:`DepthPro` whose config :func:`transformers_depth_pro_config` can express.
        device: device of the result; default ``model``'s.
        dtype: floating-point dtype of the result; default ``model``'s.

    Returns:
        the transformers model, in eval mode.

    Raises:
        ValueError: ``model.config`` cannot be expressed in transformers (why is said).
    """
    import transformers

    config = transformers_depth_pro_config(model.config)
    with torch.device("meta"):
        hf = transformers.DepthProForDepthEstimation(config)
    version = 5 if any(".q_proj." in key for key in hf.state_dict()) else 4
    device = torch.device(device) if device is not None else model.device
    dtype = dtype if dtype is not None else model.dtype
    state = {
        key: value.detach().to(device=device, dtype=dtype, copy=True)
        for key, value in to_transformers_state_dict(model.state_dict(), version).items()
    }
    hf.load_state_dict(state, strict=True, assign=True)
    del state
    return hf.eval()


# ------------------------------------------------------------------------------------- saving
def save_checkpoint(model: torch.nn.Module, path: str | os.PathLike) -> Path:
    """Write ``model``'s weights and config to a ``.safetensors`` file, atomically."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"{path}: save_pretrained writes .safetensors files")
    return write_safetensors(
        model.state_dict(), path, {CONFIG_METADATA_KEY: json.dumps(model.config.to_dict(), sort_keys=True)}
    )


def write_safetensors(
    state: dict[str, torch.Tensor], path: str | os.PathLike, metadata: dict[str, str]
) -> Path:
    """Write tensors (copied to contiguous CPU memory) and string ``metadata`` to a ``.safetensors`` file,
    atomically, with ordinary file permissions."""
    path = Path(path)
    tensors = {key: value.detach().contiguous().cpu() for key, value in state.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata={**metadata, "format": "pt"})
        _umask_permissions(tmp)
    return path


def _umask_permissions(path: Path) -> None:
    """Give a file the permissions of an ordinary new file (safetensors creates it owner-only)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)
