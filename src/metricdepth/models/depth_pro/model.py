"""Depth Pro network: ``forward`` is export-friendly (tensors in, tensors out); ``infer`` delegates to
:mod:`metricdepth.inference` (images in, metres out); loading comes from :mod:`.loading`."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from timm.models.vision_transformer import VisionTransformer
from torch import Tensor, nn

from ...inference import infer_canonical
from ...ops import PointwiseConv2d
from ...prediction import Prediction
from .chunking import Chunking, decode_in_strips, heap_return_is_free
from .config import PRESETS, DepthProConfig
from .decoder import MultiresConvDecoder
from .encoder import DepthProEncoder
from .fov import FOVNetwork
from .loading import PretrainedMixin

__all__ = ["PARAMETER_GROUPS", "VIT_PATHS", "DepthPro"]

VIT_PATHS: dict[str, str] = {
    "patch": "encoder.patch_encoder",
    "image": "encoder.image_encoder",
    "fov": "fov.encoder.0",
}
"""Module path of each ViT of :class:`DepthPro`, by the name :meth:`DepthPro.vits` gives it."""

PARAMETER_GROUPS = ("encoder", "decoder", "fov_encoder", "fov_head")
"""The groups of :meth:`DepthPro.parameter_groups`, in order."""


class DepthPro(PretrainedMixin, nn.Module):
    """Zero-shot metric monocular depth (Bochkovskii et al., 2024).

    Example:
        >>> model = DepthPro.from_pretrained("apple/DepthPro")      # doctest: +SKIP
        >>> pred = model.infer("photo.jpg")                          # doctest: +SKIP
        >>> pred.depth.shape, pred.focal_px, pred.focal_source       # doctest: +SKIP
    """

    config_class = DepthProConfig
    presets = PRESETS
    display_name = "Depth Pro"

    def __init__(self, config: DepthProConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else DepthProConfig.preset("depth-pro")
        self.encoder = DepthProEncoder(self.config)
        f = self.config.decoder_features
        self.decoder = MultiresConvDecoder((f, *self.config.encoder_feature_dims), f)
        # The coarsest fusion block gets no skip input, so its resnet1 (kept for the checkpoint layout)
        # never runs: frozen, so that DDP without find_unused_parameters sees no unused parameter.
        self.decoder.fusions[-1].resnet1.requires_grad_(False)
        self.head = nn.Sequential(
            nn.Conv2d(f, f // 2, kernel_size=3, padding=1),
            nn.ConvTranspose2d(f // 2, f // 2, kernel_size=2, stride=2, bias=True),
            nn.Conv2d(f // 2, self.config.head_features, kernel_size=3, padding=1),
            nn.ReLU(True),
            PointwiseConv2d(self.config.head_features, 1),
            nn.ReLU(),
        )
        self.head[4].bias.data.fill_(0.0)
        self.fov = FOVNetwork(f, self.config.fov_encoder) if self.config.use_fov_head else None
        self.chunking: Chunking | str = "auto"
        """How ``forward`` bounds memory (:class:`~.chunking.Chunking`). "auto": ``CPU_CHUNKING`` on CPU
        without autograd (inference), whole batches otherwise."""

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

    def forward(self, x: Tensor, *, with_fov: bool = True) -> tuple[Tensor, Tensor | None]:
        """Run the network.

        Args:
            x: (B, 3, S, S) image normalised to [-1, 1] (mean = std = 0.5), S = ``img_size``. Memory is
                bounded by :attr:`chunking` (on CPU, "auto" bounds it under ``torch.no_grad`` /
                ``inference_mode`` only; with autograd on, the whole batch runs at once).
            with_fov: run the FOV head. ``False`` skips it (None is returned for the FOV), to train
                the depth network alone; the FOV head is trained afterwards on the frozen depth
                network (paper §3.3). Under DDP also :meth:`freeze` the FOV groups, so that no
                trainable parameter is left unused.

        Returns:
            canonical inverse depth (B, 1, S, S), non-negative, and the horizontal field of view
            (B,) in degrees (None without FOV head or with ``with_fov=False``). Metric inverse
            depth = canonical · W / f_px.
        """
        if x.ndim != 4 or tuple(x.shape[1:]) != (3, self.img_size, self.img_size):
            raise ValueError(
                f"expected a (B, 3, {self.img_size}, {self.img_size}) tensor, got {tuple(x.shape)}"
            )
        chunking = self.chunking
        if chunking == "auto":  # bounded on CPU, for inference only: autograd keeps activations anyway
            chunking = Chunking() if torch.is_grad_enabled() else Chunking.auto(x.device)
        assert isinstance(chunking, Chunking)
        if chunking.images and x.shape[0] > chunking.images:
            parts = [self._forward(part, chunking, with_fov) for part in x.split(chunking.images)]
            depths, fovs = zip(*parts, strict=True)
            return torch.cat(depths), None if fovs[0] is None else torch.cat(fovs)  # type: ignore[arg-type]
        return self._forward(x, chunking, with_fov)

    def _forward(self, x: Tensor, chunking: Chunking, with_fov: bool) -> tuple[Tensor, Tensor | None]:
        if (chunking.strips or 1) > 1:
            levels = self.encoder(x, tile_chunk=chunking.tiles, project_fine=False)
            canonical_inverse_depth, lowres = decode_in_strips(self, levels, chunking.strips or 1)
            del levels  # before the FOV head: its weights are the last to be paged in
        else:
            features, lowres = self.decoder(self.encoder(x, tile_chunk=chunking.tiles))
            canonical_inverse_depth = self.head(features)
        fov_deg = self.fov(x, lowres) if with_fov and self.fov is not None else None
        return canonical_inverse_depth, fov_deg

    # ------------------------------------------------------------------- speed
    @classmethod
    def for_inference(
        cls, checkpoint: str, device: str = "auto", precision: str = "auto", *, compile: bool = False
    ) -> DepthPro:
        """Weights loaded and set up as ``metricdepth predict``, the demo and Ray actors run them.

        :meth:`from_pretrained`, then on the CPU for the full-size model freed tensors of 16 MiB or
        more go back to the OS (:func:`metricdepth.device.return_freed_memory`: a 0.25 GiB lower
        peak for one 1536² photo, benchmarks/README.md), then :meth:`optimize_for_inference`.

        Raises:
            CheckpointError, ValueError: weights that cannot be read, an unusable device or precision.
        """
        model = cls.from_pretrained(checkpoint, device=device, precision=precision)
        if model.device.type == "cpu" and heap_return_is_free(model):
            from ...device import return_freed_memory

            return_freed_memory()
        model.optimize_for_inference(compile=compile)
        return model

    def optimize_for_inference(
        self, *, compile: bool = False, mode: str | None = None, channels_last: bool | None = None
    ) -> DepthPro:
        """Set up the fast path for the model's device, in place; returns the model.

        - Attention already runs through PyTorch's fused ``scaled_dot_product_attention`` (flash /
          memory-efficient kernels on CUDA) in every ViT (timm's ``fused_attn``); this checks it.
        - ``channels_last`` (default: on CUDA only): the convolutional parts (encoder projections and
          upsamplers, decoder, heads) keep NHWC weights, so cuDNN runs its tensor-core kernels without
          layout transposes. On CPU the default stays NCHW, bit for bit today's results.
        - ``compile``: ``torch.compile`` of ``forward`` (``nn.Module.compile``, the model stays a
          ``DepthPro``). ``mode`` defaults to ``"reduce-overhead"`` on CUDA (CUDA graphs: one launch per
          forward instead of thousands; give every call the same batch shape, e.g. ``predict_files(...,
          pad_batches=True)``) and to torch's default elsewhere.

        Precision is the weights' dtype (``from_pretrained(precision=...)``): casting the weights, not
        autocast, halves their memory and bandwidth and needs no per-op casts; the image resizes and
        the metric post-processing run in fp32 either way.
        """
        for name, vit in self.vits().items():
            if not all(getattr(block.attn, "fused_attn", False) for block in vit.blocks):
                warnings.warn(
                    f"the {name} ViT does not use fused attention (TIMM_FUSED_ATTN=0 set?): slower, and "
                    "attention matrices are held whole",
                    stacklevel=2,
                )
        on_cuda = self.device.type == "cuda"
        if channels_last if channels_last is not None else on_cuda:
            for module in self.modules():
                if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)) and module.weight.ndim == 4:
                    module.to(memory_format=torch.channels_last)
        if compile:
            self.compile(mode=mode or ("reduce-overhead" if on_cuda else None))
        return self

    # --------------------------------------------------------------------- training
    def vits(self) -> dict[str, VisionTransformer]:
        """The ViTs by name: ``patch`` and ``image`` (depth encoder), ``fov`` (FOV head, if any)."""
        return {
            name: self.get_submodule(path)
            for name, path in VIT_PATHS.items()
            if name != "fov" or self.fov is not None
        }

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute the blocks of all ViTs in the backward pass (non-reentrant checkpoints).

        Trades about one extra ViT forward for keeping only block inputs, not block activations;
        gradients are unchanged. Has no effect without autograd (inference, ``torch.no_grad``).
        """
        for vit in self.vits().values():
            vit.set_grad_checkpointing(enable)

    def parameter_groups(self, *, trainable_only: bool = False) -> dict[str, list[tuple[str, nn.Parameter]]]:
        """(name, parameter) pairs by module group, for per-group learning rates and freezing.

        Groups (every parameter in exactly one; all four keys always present):

        - ``encoder``: the patch and image ViTs (DINOv2-initialised; paper lr 1.28e-5);
        - ``decoder``: the rest of the depth network: the encoder's projections, upsamplers and
          low-resolution fusion, the decoder and the depth head (paper lr 1.28e-4);
        - ``fov_encoder``: the FOV head's ViT;
        - ``fov_head``: the rest of the FOV head (token projection, downsampling of the depth
          features, head). Both FOV groups are empty without FOV head.

        Args:
            trainable_only: leave out parameters with ``requires_grad=False`` (e.g. frozen
                LayerNorms), as an optimiser wants them.
        """
        vits = self.vits()
        owner: dict[int, str] = {}
        for group, names in (("encoder", ("patch", "image")), ("fov_encoder", ("fov",))):
            for name in names:
                if name in vits:
                    owner.update(dict.fromkeys(map(id, vits[name].parameters()), group))
        if self.fov is not None:
            for p in self.fov.parameters():
                owner.setdefault(id(p), "fov_head")
        groups: dict[str, list[tuple[str, nn.Parameter]]] = {g: [] for g in PARAMETER_GROUPS}
        for name, p in self.named_parameters():
            if p.requires_grad or not trainable_only:
                groups[owner.get(id(p), "decoder")].append((name, p))
        return groups

    def freeze(self, *groups: str) -> list[str]:
        """Set ``requires_grad=False`` on the parameters of the :meth:`parameter_groups` ``groups``.

        DDP (without ``find_unused_parameters``) needs every trainable parameter to get a gradient
        in every step. Training the depth network alone (``forward(x, with_fov=False)``) therefore
        needs ``freeze("fov_encoder", "fov_head")`` first; training the FOV head afterwards on the
        frozen depth network (paper §3.3) needs ``freeze("encoder", "decoder")``. Freeze before
        wrapping the model in DDP and before building the optimiser.

        Returns:
            the names of the frozen parameters.
        """
        unknown = set(groups) - set(PARAMETER_GROUPS)
        if unknown:
            raise ValueError(f"unknown parameter groups {sorted(unknown)}; choose from {PARAMETER_GROUPS}")
        named = self.parameter_groups()
        frozen = [(name, p) for group in groups for name, p in named[group]]
        for _, p in frozen:
            p.requires_grad_(False)
        return [name for name, _ in frozen]

    def layernorm_parameters(
        self, which: Sequence[str] = ("patch", "image", "fov")
    ) -> list[tuple[str, nn.Parameter]]:
        """(name, parameter) of the LayerNorm weights and biases (blocks' norm1/norm2, final norm) of
        the ViTs ``which`` (names as in :meth:`vits`; ``fov`` is skipped without FOV head)."""
        unknown = set(which) - set(VIT_PATHS)
        if unknown:
            raise ValueError(f"unknown ViT names {sorted(unknown)}; choose from {list(VIT_PATHS)}")
        vits = self.vits()
        found = []
        for name in which:
            if name not in vits:
                continue
            for module_name, module in vits[name].named_modules():
                if isinstance(module, nn.LayerNorm):
                    for param_name, p in module.named_parameters(recurse=False):
                        found.append((f"{VIT_PATHS[name]}.{module_name}.{param_name}", p))
        return found

    def freeze_layernorms(self, which: Sequence[str] = ("patch", "image", "fov")) -> list[str]:
        """Set ``requires_grad=False`` on the LayerNorms of the pretrained ViTs ``which``.

        The paper keeps the pretrained (DINOv2) LayerNorms frozen while fine-tuning (Tab. 16).
        Call it after loading the encoder weights and before building the optimiser (pass
        ``parameter_groups(trainable_only=True)``); under DDP, before wrapping the model. LayerNorm
        has no running statistics, so ``train()``/``eval()`` does not matter for it.

        Returns:
            the names of the frozen parameters.
        """
        frozen = self.layernorm_parameters(which)
        for _, p in frozen:
            p.requires_grad_(False)
        return [name for name, _ in frozen]

    # -------------------------------------------------------------------- inference
    def infer(
        self,
        image: Any,
        *,
        f_px: float | Sequence[float] | Tensor | None = None,
        K: np.ndarray | Tensor | None = None,
        fov_deg: float | Sequence[float] | Tensor | None = None,
        focal: str = "auto",
        use_exif: bool = True,
        batch_size: int = 4,
    ) -> Prediction | list[Prediction]:
        """Metric depth for an image, a list of images (any sizes) or a (B, 3, H, W) tensor.

        The metric scale comes from, in order (``focal="auto"``): the camera you give (``f_px``,
        ``K`` or ``fov_deg``, at most one), the EXIF 35 mm focal length of a file (``use_exif``),
        the FOV head. ``focal="exif"`` or ``"predicted"`` insists on one source. Only the
        horizontal focal length fx sets the scale. See :func:`metricdepth.inference.infer_canonical`.

        Args:
            image: path, PIL image, (H, W, 3) uint8 array, (3, H, W) or (B, 3, H, W) tensor
                (float in [0, 1] or uint8), or a list of images of any sizes.
            f_px: horizontal focal length, pixels (scalar or one per image).
            K: (3, 3) or (B, 3, 3) intrinsics, pixels, OpenCV convention; returned as given.
            fov_deg: horizontal field of view, degrees (scalar or one per image).
            focal: "auto", "exif" or "predicted".
            use_exif: under "auto", use the EXIF focal length of files that carry one.
            batch_size: images per forward pass.

        Returns:
            A :class:`Prediction` for one image, a list for a list, a batched one for a 4-D tensor.
        """
        return infer_canonical(
            self,
            image,
            f_px=f_px,
            K=K,
            fov_deg=fov_deg,
            focal=focal,
            use_exif=use_exif,  # type: ignore[arg-type]
            batch_size=batch_size,
        )
