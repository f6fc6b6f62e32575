"""Synthetic samples: deterministic by (seed, index), rendered on the fly, written to disk, previewed.

A sample is the toolkit's :class:`~metricdepth.data.Sample` dict with every field filled:
``image`` (H, W, 3) uint8, ``depth`` (H, W) float32 metres along the optical axis (0 = sky),
``valid`` (H, W) bool, ``instance`` (H, W) int32 (0 = none), ``instance_class`` (class of instance
i at index i − 1), ``semantic`` (H, W) uint8 index into :data:`SEMANTIC_CLASSES`, ``K`` (3, 3),
``fov_deg``, ``focal_px``, ``family`` and ``captions`` (structured ones, then a free one).
Instances with fewer than ``min_pixels`` visible pixels are removed from the instance map (their
pixels get 0 but keep their depth and class), so the captions name exactly what the map shows.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...io.atomic import FileGroup
from ...io.writers import colorize_inverse_depth, write_json
from ..sample import Sample
from .captions import captions_for
from .raycast import render
from .scenes import FAMILIES, SEMANTIC_CLASSES, sample_scene

__all__ = [
    "SyntheticScenes",
    "collate_samples",
    "contact_sheet",
    "is_synthetic_output",
    "render_sample",
    "tune_cpu_allocator",
    "worker_init",
    "write_samples",
]


def tune_cpu_allocator() -> bool:
    """Keep freed memory inside the process (glibc ``mallopt``), an opt-in CPU speed-up.

    Rendering makes many short-lived per-pixel temporaries of 0.1–2 MB; by default glibc maps each
    from the kernel and unmaps it on free, so every allocation pays page faults and zeroing. With
    larger mmap/trim thresholds they are recycled from the heap: about 1.4× more samples per second
    on this project's CPU machine. Affects the whole process; returns False where glibc is absent.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3
    return all(
        mallopt(option, value)
        for option, value in (
            (m_mmap_threshold, 32 << 20),
            (m_trim_threshold, 256 << 20),
            (m_top_pad, 64 << 20),
        )
    )


def collate_samples(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``DataLoader(collate_fn=...)``: per-pixel arrays and K stacked into (B, ...) tensors, everything
    else (names, captions, instance classes, FOV) as lists. Samples must share one image size."""
    batch: dict[str, Any] = {}
    for key in samples[0]:
        values = [sample[key] for sample in samples]
        if isinstance(values[0], np.ndarray):
            shapes = {v.shape for v in values}
            if len(shapes) > 1:
                raise ValueError(f"cannot stack {key!r} of different shapes {sorted(shapes)}")
            batch[key] = torch.from_numpy(np.stack(values))
        else:
            batch[key] = values
    return batch


def worker_init(worker_id: int) -> None:
    """``DataLoader(worker_init_fn=...)`` for rendering workers: one torch thread per worker (run one
    worker per core) and :func:`tune_cpu_allocator`."""
    torch.set_num_threads(1)
    tune_cpu_allocator()


def render_sample(
    family: str,
    rng: np.random.Generator,
    width: int,
    height: int,
    *,
    device: torch.device | str = "cpu",
    shadows: bool = False,
    min_pixels: int | None = None,
) -> Sample:
    """Draw one ``family`` scene with ``rng`` and render it at ``width`` × ``height``."""
    scene, camera, instance_class = sample_scene(family, rng, width, height)
    out = render(scene, camera, device=device, shadows=shadows)
    primitive = out.primitive.cpu().numpy()
    instance_of = np.array([p.instance for p in scene.primitives], dtype=np.int64)
    semantic_of = np.array([0] + [SEMANTIC_CLASSES.index(p.label) for p in scene.primitives], dtype=np.uint8)
    threshold = min_pixels if min_pixels is not None else max(16, (width * height) // 5000)
    counts = np.bincount(instance_of, weights=out.pixel_counts, minlength=len(instance_class) + 1)
    kept = [i for i in range(1, len(counts)) if counts[i] >= threshold]
    relabel = np.zeros(len(counts), dtype=np.int32)
    relabel[kept] = np.arange(1, len(kept) + 1, dtype=np.int32)
    instance_by_primitive = np.concatenate([[0], relabel[instance_of]]).astype(np.int32)
    visible = [instance_class[i - 1] for i in kept]
    return Sample(
        image=out.rgb.cpu().numpy(),
        depth=out.depth.cpu().numpy().astype(np.float32),
        valid=out.valid.cpu().numpy(),
        instance=instance_by_primitive[primitive + 1],
        instance_class=visible,
        semantic=semantic_of[primitive + 1],
        K=camera.K.copy(),
        focal_px=float(camera.K[0, 0]),
        fov_deg=camera.fov_deg,
        family=family,
        captions=captions_for(visible, family, rng),
    )


class SyntheticScenes(torch.utils.data.Dataset):
    """Procedural scenes with exact metric depth, masks, intrinsics and captions.

    ``ds[i]`` depends only on (``seed``, ``i``) and the options, never on call order; the family
    cycles through ``families`` with the index. Works as a map-style torch dataset (workers render
    in parallel); sample fields are numpy arrays (see the module docstring).

    Args:
        size: image side (square) or (height, width), pixels.
        size_range: (smallest, largest) side, pixels: each sample then draws its own height and
            width uniformly from it (random resolution and aspect; ``size`` is ignored).
        families: any of ``"tabletop"``, ``"room"``, ``"street"``.
        seed: base seed.
        length: number of samples the dataset reports.
        device: where to ray-cast (``"cuda"`` renders on the GPU; samples come back as numpy).
        shadows: cast shadow rays (slower).
    """

    def __init__(
        self,
        size: int | tuple[int, int] = 384,
        families: Sequence[str] = FAMILIES,
        seed: int = 0,
        length: int = 100_000,
        *,
        size_range: tuple[int, int] | None = None,
        device: torch.device | str = "cpu",
        shadows: bool = False,
    ) -> None:
        unknown = [f for f in families if f not in FAMILIES]
        if unknown or not families:
            raise ValueError(f"unknown scene families {unknown}; choose from {', '.join(FAMILIES)}")
        self.height, self.width = (size, size) if isinstance(size, int) else size
        if size_range is not None and not 8 <= size_range[0] <= size_range[1]:
            raise ValueError(
                f"size_range {size_range} must be (smallest, largest) sides of at least 8 pixels"
            )
        if min(self.height, self.width) < 8:
            raise ValueError(f"image size {self.width}x{self.height} is too small (minimum 8 pixels)")
        self.size_range = size_range
        self.families, self.seed, self.length = tuple(families), seed, length
        self.device, self.shadows = device, shadows

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Sample:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} samples")
        rng = np.random.default_rng([self.seed, index])
        family = self.families[index % len(self.families)]
        height, width = self.height, self.width
        if self.size_range is not None:
            height, width = (
                int(side) for side in rng.integers(self.size_range[0], self.size_range[1] + 1, 2)
            )
        sample = render_sample(family, rng, width, height, device=self.device, shadows=self.shadows)
        sample["name"] = self.name(index)
        return sample

    def name(self, index: int) -> str:
        """Sample ``index``'s name, without rendering it: ``FAMILY_SEED_INDEX``."""
        return f"{self.families[index % len(self.families)]}_{self.seed}_{index:06d}"


GENERATOR = "synth"
"""The ``generator`` entry of every file :func:`write_samples` writes (with metricdepth's mark)."""


def is_synthetic_output(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a file :func:`write_samples` wrote: marked as generated, or, for folders
    written before marks, one of ``NAME.png`` / ``NAME_depth.npz`` / ``NAME.json`` beside a
    ``NAME.json`` with the generator's fields."""
    from ...io.writers import carries_mark

    path = Path(path)
    if not path.is_file():
        return False
    if carries_mark(path, field="generator"):
        return True
    for suffix in (".png", "_depth.npz", ".json"):
        if not path.name.endswith(suffix):
            continue
        meta = path.with_name(path.name[: -len(suffix)] + ".json")
        try:
            data = json.loads(meta.read_text()) if meta.is_file() and meta.stat().st_size < 1 << 20 else None
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and {"K", "family", "semantic_classes", "captions"} <= data.keys():
            return _looks_generated(path, suffix)
    return False


def _looks_generated(path: Path, suffix: str) -> bool:
    """The file itself has the form :func:`write_samples` gives it (an RGB PNG, the npz's arrays)."""
    import zipfile

    from PIL import Image

    try:
        if suffix == ".png":
            with Image.open(path) as image:
                return image.format == "PNG" and image.mode == "RGB"
        if suffix == "_depth.npz":
            with zipfile.ZipFile(path) as archive:
                names = set(archive.namelist())
            return {"depth.npy", "valid.npy", "instance.npy", "semantic.npy"} <= names
    except Exception:  # unreadable or not what its name says: not generated
        return False
    return True  # the JSON itself was checked by the caller


def write_samples(
    dataset: SyntheticScenes,
    out_dir: str | os.PathLike,
    count: int,
    on_sample: Callable[[str], None] | None = None,
    overwrite: bool = False,
) -> list[Path]:
    """Materialise samples 0 … count−1 in the folder format :class:`~metricdepth.data.datasets.FolderDataset`
    reads: ``NAME.png``, ``NAME_depth.npz`` (depth, valid, instance, semantic) and ``NAME.json``
    (K, fov_deg, family, instance_class, captions).

    A sample's three files appear together or not at all, and carry metricdepth's mark with
    ``generator="synth"``. Only files written this way are replaced, unless ``overwrite``: any other
    file in the way raises :class:`~metricdepth.io.guard.OutputExistsError` naming it, before
    anything is written.
    """
    from PIL import Image

    from ...io.guard import OutputGuard
    from ...io.writers import WRITER_MARK, png_metadata

    out = Path(out_dir)
    guard = OutputGuard(
        overwrite=overwrite, replaceable=is_synthetic_output, option="OUT_DIR", writer="metricdepth synth"
    )

    def targets(name: str) -> list[Path]:
        return [out / f"{name}.png", out / f"{name}_depth.npz", out / f"{name}.json"]

    for index in range(count):  # every file checked before the first is written
        guard.check(targets(dataset.name(index)), dataset.name(index))
    paths = []
    for index in range(count):
        sample = dataset[index]
        name = sample["name"]
        png, npz, meta_path = targets(name)
        with FileGroup() as group:
            Image.fromarray(sample["image"]).save(
                group.stage(png), format="PNG", pnginfo=png_metadata({"generator": GENERATOR})
            )
            with open(group.stage(npz), "wb") as f:
                np.savez_compressed(
                    f,
                    depth=sample["depth"],
                    valid=sample["valid"],
                    instance=sample["instance"],
                    semantic=sample["semantic"],
                    writer=np.str_(WRITER_MARK),
                    generator=np.str_(GENERATOR),
                )
            meta = {
                "writer": WRITER_MARK,
                "generator": GENERATOR,
                "K": sample["K"].tolist(),
                "fov_deg": sample["fov_deg"],
                "family": sample["family"],
                "instance_class": sample["instance_class"],
                "semantic_classes": list(SEMANTIC_CLASSES),
                "captions": sample["captions"],
            }
            write_json(group.stage(meta_path), meta)
        paths.append(png)
        if on_sample is not None:
            on_sample(name)
    return paths


def _label_colors(labels: np.ndarray, seed: int) -> np.ndarray:
    """(H, W, 3) uint8: a fixed random colour per label value, black for 0."""
    palette = np.random.default_rng(seed).integers(40, 256, size=(int(labels.max()) + 1, 3), dtype=np.uint8)
    palette[0] = 0
    return palette[labels]


def contact_sheet(samples: Sequence[dict[str, Any]], tile: int = 256) -> np.ndarray:
    """(H, W, 3) uint8 sheet: one row per sample — RGB, depth (turbo on inverse depth, sky black),
    instance mask and class mask — with the first caption under each row."""
    from PIL import Image, ImageDraw

    rows = []
    for sample in samples:
        depth = sample["depth"]
        inverse = np.where(sample["valid"], 1 / np.maximum(depth, 1e-6), 0)
        colored = colorize_inverse_depth(inverse, depth_range=(0.05, 1e4))
        colored[~sample["valid"]] = 0
        panels = [
            sample["image"],
            colored,
            _label_colors(sample["instance"], 1),
            _label_colors(sample["semantic"], 2),
        ]
        height, width = sample["image"].shape[:2]
        scale = tile / max(height, width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        row = np.concatenate([np.asarray(Image.fromarray(p).resize(size, Image.NEAREST)) for p in panels], 1)
        caption = Image.new("RGB", (row.shape[1], 18), (255, 255, 255))
        text = f"{sample.get('family', '')}  fov {sample.get('fov_deg', 0):.0f}°  {sample['captions'][0]}"
        ImageDraw.Draw(caption).text((4, 3), text[:150], fill=(0, 0, 0))
        rows.append(np.concatenate([row, np.asarray(caption)], 0))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    return np.concatenate(rows, 0)
