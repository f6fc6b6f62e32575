"""RSA (Zeng et al., NeurIPS 2024): language resolves the metric scale of any relative depth model.

A frozen text encoder embeds a caption of the scene; an MLP head predicts one global scale α and shift
β; metric depth is 1 / (α·y + β) for the inverse relative depth y of a frozen relative model.

========================= ===================================================================
module                    what
========================= ===================================================================
``rsa.text``              :class:`TextEncoder`: CLIP (open_clip), sentence-transformers /
                          transformers encoders, the offline MiniLM; batched, cached, frozen
``rsa.head``              :class:`RSAHead`: the paper's MLP; official checkpoints, own files
``rsa.captions``          structured captions ("An image with two chairs, and a table."),
                          caption files (the reference's 15-line layout), caption kinds
``rsa.detector``          :class:`AutoCaptioner`: offline COCO detector (OpenCV DNN) → caption
``rsa.pipeline``          :class:`RSAPipeline`: relative model + caption → metric depth;
                          :class:`RSAPredictor` for the evaluation toolkit
``rsa.baselines``         Median, Linear Fit, Global (alignments) and :class:`ImageBaseline`
``rsa.training``          :class:`RSATask` for the project's trainer (``metricdepth train-rsa``)
========================= ===================================================================

Exports are lazy: ``from metricdepth import rsa`` loads neither open_clip nor transformers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

_EXPORTS = {
    "TextEncoder": "metricdepth.rsa.text",
    "TEXT_ENCODERS": "metricdepth.rsa.text",
    "RSAHead": "metricdepth.rsa.head",
    "metric_depth": "metricdepth.rsa.head",
    "RSAPipeline": "metricdepth.rsa.pipeline",
    "RSAPredictor": "metricdepth.rsa.pipeline",
    "ORACLE_RELATIVE": "metricdepth.rsa.pipeline",
    "ImageBaseline": "metricdepth.rsa.baselines",
    "BASELINE_ALIGNMENTS": "metricdepth.rsa.baselines",
    "load_scale_model": "metricdepth.rsa.baselines",
    "compare": "metricdepth.rsa.baselines",
    "AutoCaptioner": "metricdepth.rsa.detector",
    "COCODetector": "metricdepth.rsa.detector",
    "CAPTION_KINDS": "metricdepth.rsa.captions",
    "CaptionError": "metricdepth.rsa.captions",
    "caption_file_for": "metricdepth.rsa.captions",
    "read_caption_file": "metricdepth.rsa.captions",
    "select_captions": "metricdepth.rsa.captions",
    "structured_caption": "metricdepth.rsa.captions",
    "structured_captions": "metricdepth.rsa.captions",
    "RSATask": "metricdepth.rsa.training",
    "oracle_inverse_depth": "metricdepth.rsa.pipeline",
}

__all__ = [
    "BASELINE_ALIGNMENTS",
    "CAPTION_KINDS",
    "ORACLE_RELATIVE",
    "TEXT_ENCODERS",
    "AutoCaptioner",
    "COCODetector",
    "CaptionError",
    "ImageBaseline",
    "RSAHead",
    "RSAPipeline",
    "RSAPredictor",
    "RSATask",
    "TextEncoder",
    "caption_file_for",
    "compare",
    "load_scale_model",
    "metric_depth",
    "oracle_inverse_depth",
    "read_caption_file",
    "select_captions",
    "structured_caption",
    "structured_captions",
]

if TYPE_CHECKING:
    from .baselines import BASELINE_ALIGNMENTS, ImageBaseline, compare, load_scale_model
    from .captions import (
        CAPTION_KINDS,
        CaptionError,
        caption_file_for,
        read_caption_file,
        select_captions,
        structured_caption,
        structured_captions,
    )
    from .detector import AutoCaptioner, COCODetector
    from .head import RSAHead, metric_depth
    from .pipeline import ORACLE_RELATIVE, RSAPipeline, RSAPredictor, oracle_inverse_depth
    from .text import TEXT_ENCODERS, TextEncoder
    from .training import RSATask


__getattr__, __dir__ = lazy_exports("metricdepth.rsa", _EXPORTS, globals())
