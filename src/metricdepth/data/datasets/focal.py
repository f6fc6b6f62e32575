"""Photos with an EXIF 35 mm-equivalent focal length, for evaluating focal-length / FoV estimates.

Layout: any folder; images (``metricdepth.io.images.IMAGE_EXTENSIONS``, case-insensitive) are
searched recursively. The ground truth is EXIF ``FocalLengthIn35mmFilm`` (tag 0xA405, in the Exif
sub-IFD 0x8769, or the base IFD), converted as in :func:`metricdepth.camera.focal_from_35mm`:
f_px = f35 · √(W² + H²) / √(36² + 24²), with W × H the image size (the diagonal, so EXIF rotation
does not change it). The image is returned in stored pixel order (no EXIF rotation), as by every
reader. No depth, no K, no split. Images without a usable value (absent, zero, unreadable EXIF or
file) are skipped and listed in ``skipped``. Names: the path relative to ``root`` without extension.
"""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image

from ...io.images import IMAGE_EXTENSIONS, exif_focal_35mm, load_image
from ..sample import Sample
from ._common import relative_name, require_dir

__all__ = ["ExifFocalFolder"]


def _has_exif_focal(path: Path) -> bool:
    """Whether the file opens as an image with a positive EXIF 35 mm focal length (header only)."""
    try:
        with Image.open(path) as image:
            return exif_focal_35mm(image) is not None
    except Exception:  # not an image, truncated, unreadable: no focal either way
        return False


class ExifFocalFolder:
    """Images under ``root`` (recursive) with an EXIF 35 mm focal length; ``ds[i]`` has ``focal_px``."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = require_dir(root, "EXIF focal")
        images = sorted(
            p for p in self.root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
        )
        self.items: list[Path] = []
        self.skipped: list[Path] = []
        for path in images:
            (self.items if _has_exif_focal(path) else self.skipped).append(path)
        if not self.items:
            raise FileNotFoundError(
                f"{self.root}: no image with an EXIF FocalLengthIn35mmFilm "
                f"({len(images)} image(s) found, {len(self.skipped)} without it)"
            )

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Sample:
        path = self.items[index]
        loaded = load_image(path, upright=False)  # stored order, as every reader
        if loaded.focal_px is None:
            raise ValueError(f"{path}: no EXIF FocalLengthIn35mmFilm")
        return Sample(
            name=relative_name(path, self.root),
            image=loaded.rgb,
            focal_px=float(loaded.focal_px),
        )
