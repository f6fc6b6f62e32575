"""Procedural synthetic scenes with exact metric depth, intrinsics, masks and captions.

>>> from metricdepth.data.synthetic import SyntheticScenes
>>> ds = SyntheticScenes(size=384, families=("tabletop", "room", "street"), seed=0)
>>> s = ds[0]  # image, depth (m), valid, instance, instance_class, semantic, K, fov_deg, family, captions

Layers: :mod:`.primitives` (shapes, exact ray intersection) → :mod:`.raycast` (camera, ray casting,
shading) with :mod:`.textures`; :mod:`.objects` (classes with real sizes) → :mod:`.scenes` (families);
:mod:`.captions`; :mod:`.dataset` (samples, torch dataset, writer, contact sheet).
"""

from .captions import captions_for, count_words, structured_caption
from .dataset import (
    SyntheticScenes,
    collate_samples,
    contact_sheet,
    is_synthetic_output,
    render_sample,
    tune_cpu_allocator,
    worker_init,
    write_samples,
)
from .primitives import Primitive, intersect, rotation
from .raycast import Camera, Rendering, Scene, look_at, render
from .scenes import FAMILIES, FAMILY_CLASSES, SEMANTIC_CLASSES, sample_scene
from .textures import Material

__all__ = [
    "FAMILIES",
    "FAMILY_CLASSES",
    "SEMANTIC_CLASSES",
    "Camera",
    "Material",
    "Primitive",
    "Rendering",
    "Scene",
    "SyntheticScenes",
    "captions_for",
    "collate_samples",
    "contact_sheet",
    "count_words",
    "intersect",
    "is_synthetic_output",
    "look_at",
    "render",
    "render_sample",
    "rotation",
    "sample_scene",
    "structured_caption",
    "tune_cpu_allocator",
    "worker_init",
    "write_samples",
]
