"""Image loading: decode, undo EXIF orientation, read the 35 mm focal length, convert to RGB uint8.

Any format Pillow reads, plus HEIC/HEIF/AVIF through pillow-heif. Failures raise
:class:`ImageLoadError` naming the file and the problem.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError
from pillow_heif import register_heif_opener

from ..camera import focal_from_35mm

__all__ = ["IMAGE_EXTENSIONS", "ImageLoadError", "LoadedImage", "image_from_pil", "load_image"]

register_heif_opener()

IMAGE_EXTENSIONS = frozenset(
    {
        ".jpg",
        ".jpeg",
        ".png",
        ".bmp",
        ".tif",
        ".tiff",
        ".webp",
        ".heic",
        ".heif",
        ".avif",
        ".gif",
        ".ppm",
        ".pgm",
    }
)
"""File extensions treated as images when a folder is scanned (case-insensitive)."""

_EXIF_IFD = ExifTags.IFD.Exif
_FOCAL_35MM = ExifTags.Base.FocalLengthIn35mmFilm


class ImageLoadError(ValueError):
    """An input could not be read as an image; the message names the file and the reason."""


@dataclass
class LoadedImage:
    """An upright RGB image and what its metadata says about the camera.

    Attributes:
        rgb: (H, W, 3) uint8, EXIF orientation applied.
        focal_px: horizontal focal length from the EXIF 35 mm equivalent, pixels, or None.
        path: the file it came from, if any.
    """

    rgb: np.ndarray
    focal_px: float | None = None
    path: Path | None = None

    @property
    def width(self) -> int:
        return self.rgb.shape[1]

    @property
    def height(self) -> int:
        return self.rgb.shape[0]


def load_image(path: str | os.PathLike, upright: bool = True) -> LoadedImage:
    """Read an image file as upright RGB uint8 with its EXIF focal length.

    ``upright=False`` keeps the stored pixel order (for ground truth stored in that order).

    Handles all eight EXIF orientations (mirrored ones included), grayscale, alpha, palette,
    16-bit and float images, CMYK, and HEIC/HEIF.

    Raises:
        ImageLoadError: the file is missing, empty, not an image, truncated or corrupt.
    """
    path = Path(path)
    check_input_file(path, ImageLoadError, "an image")
    try:
        with Image.open(path) as image:
            image.load()
            return image_from_pil(image, path=path, upright=upright)
    except ImageLoadError:
        raise
    except UnidentifiedImageError as err:
        raise ImageLoadError(f"{path}: not a recognised image format") from err
    except Image.DecompressionBombError as err:
        raise ImageLoadError(f"{path}: image too large to decode safely ({err})") from err
    except (OSError, SyntaxError, ValueError, EOFError) as err:
        raise ImageLoadError(
            f"{path}: cannot decode image, the file is truncated or corrupt ({err})"
        ) from err


def check_input_file(path: Path, error: type[Exception], noun: str) -> None:
    """Raise ``error`` naming ``path`` when it is missing, a folder (not ``noun``), unreadable or empty."""
    if not path.exists():
        raise error(f"{path}: file not found")
    if path.is_dir():
        raise error(f"{path}: is a directory, not {noun}")
    try:
        size = path.stat().st_size
    except OSError as err:
        raise error(f"{path}: cannot access file ({err.strerror or err})") from err
    if size == 0:
        raise error(f"{path}: file is empty")


def image_from_pil(image: Image.Image, path: Path | None = None, upright: bool = True) -> LoadedImage:
    """Convert a decoded PIL image: orientation (unless ``upright`` is False), focal length, colour."""
    name = path if path is not None else "image"
    focal_35mm = exif_focal_35mm(image)
    oriented = image
    if upright:
        try:
            oriented = ImageOps.exif_transpose(image)
        except Exception as err:  # malformed EXIF must not make a readable image unreadable
            warnings.warn(f"{name}: ignoring unreadable EXIF orientation ({err})", stacklevel=2)
    rgb = _to_rgb_uint8(oriented)
    if rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise ImageLoadError(f"{name}: image has no pixels ({rgb.shape[1]}×{rgb.shape[0]})")
    height, width = rgb.shape[:2]
    focal_px = focal_from_35mm(focal_35mm, width, height) if focal_35mm else None
    return LoadedImage(rgb=rgb, focal_px=focal_px, path=path)


def exif_focal_35mm(image: Image.Image) -> float | None:
    """``FocalLengthIn35mmFilm`` (Exif sub-IFD, else base IFD) in mm, if present and positive."""
    try:
        exif = image.getexif()
        value = exif.get_ifd(_EXIF_IFD).get(_FOCAL_35MM, exif.get(_FOCAL_35MM))
        value = float(value) if value is not None else None
    except Exception:  # unreadable EXIF: treat as absent
        return None
    return value if value is not None and np.isfinite(value) and value > 0 else None


def _to_rgb_uint8(image: Image.Image) -> np.ndarray:
    """(H, W, 3) uint8 from any PIL mode; alpha is dropped, high bit depths are rescaled."""
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # 16-bit grey (Pillow opens 16-bit PNGs as I;16 or I): map 0..65535 to 0..255.
        grey = np.asarray(image, dtype=np.float64)
        grey = np.clip(np.rint(grey / 257.0), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if mode == "F":
        grey = np.asarray(image, dtype=np.float64)
        grey = np.nan_to_num(grey, nan=0.0, posinf=0.0, neginf=0.0)
        scale = 255.0 if grey.size and grey.max() <= 1.0 else 1.0
        grey = np.clip(np.rint(grey * scale), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if mode != "RGB":
        if mode in ("P", "PA"):
            image = image.convert("RGBA")
        image = image.convert("RGB")
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8))
