"""Depth Pro weights: find them (Hub or disk), read them safely, convert layouts, infer the config.

Layouts understood:
- Apple's ``depth_pro.pt``: a plain state dict of fp16 tensors; also ``apple/DepthPro-mixin``'s
  ``model.safetensors`` and this package's own files (same key names).
- transformers' ``apple/DepthPro-hf`` ``model.safetensors`` (keys under ``depth_pro.``,
  ``fusion_stage.``, ``head.layers.``, ``fov_model.``), with 4.x (``attention.attention.query``)
  or 5.x (``attention.q_proj``) attention names. Separate q/k/v are concatenated into ``qkv``.
- Training checkpoints: a dict with the state dict under ``"model"`` or ``"state_dict"`` (and an
  optional ``"config"``), DDP ``module.`` prefixes stripped.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from ...io.atomic import atomic_path
from .config import DepthProConfig

__all__ = [
    "CheckpointError",
    "convert_hf_state_dict",
    "hub_reachable",
    "load_checkpoint",
    "normalize_state_dict",
    "resolve_checkpoint",
    "save_checkpoint",
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
