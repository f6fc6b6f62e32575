"""Small pieces every benchmark reader shares: image and depth decoding, intrinsics, split files, crops.

Images are read in their stored pixel order (EXIF orientation is not applied), the order ground truth
is stored in, so depth, masks and K stay aligned with them.
"""

from __future__ import annotations

import os
import pickle
import zipfile
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath

import numpy as np

from ...io.images import load_image
from ..sample import Sample

__all__ = [
    "crop_sample",
    "disparity_to_depth",
    "find_one",
    "one_based_to_opencv",
    "pinhole",
    "read_image",
    "read_matrix_txt",
    "read_npy",
    "read_npy_map",
    "read_npz",
    "read_png_depth",
    "read_png_raw",
    "read_rgb",
    "read_split",
    "relative_name",
    "require_dir",
    "require_same_size",
    "resolve_listed",
    "select_names",
    "valid_depth",
    "with_exif_focal",
]


def read_image(path: str | os.PathLike) -> tuple[np.ndarray, float | None]:
    """A dataset image as ``(rgb, exif_focal_px)``; ``ImageLoadError`` names the file.

    ``rgb`` is (H, W, 3) uint8 in the file's stored pixel order: EXIF orientation is *not* applied, since
    ground truth (depth, masks, K) is stored in that order. ``exif_focal_px`` is the EXIF 35 mm-equivalent
    focal length in pixels (:attr:`metricdepth.io.images.LoadedImage.focal_px`, from the image diagonal,
    so the same in stored and upright order), or None when the file carries none.
    """
    loaded = load_image(path, upright=False)
    return loaded.rgb, loaded.focal_px


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """(H, W, 3) uint8 RGB in stored pixel order (no EXIF rotation); ``ImageLoadError`` names the file."""
    return read_image(path)[0]


def with_exif_focal(sample: Sample, exif_focal_px: float | None) -> Sample:
    """``sample`` with ``exif_focal_px`` (float, pixels) set when the image file gave one; returns it."""
    if exif_focal_px is not None:
        sample["exif_focal_px"] = float(exif_focal_px)  # type: ignore[typeddict-unknown-key]
    return sample


def read_png_depth(path: str | os.PathLike, scale: float) -> np.ndarray:
    """A 16-bit depth PNG as float32 metres: ``value · scale`` (e.g. 1/256 for KITTI, 1/1000 for mm).

    Zero stays zero (unknown). Raises ValueError naming the file if it is not a single-channel PNG.
    """
    return (read_png_raw(path).astype(np.float64) * scale).astype(np.float32)


def read_png_raw(path: str | os.PathLike) -> np.ndarray:
    """The stored integers of a single-channel (e.g. 16-bit) PNG, not yet decoded to metres.

    Raises ValueError naming the file if it has more than one channel or cannot be decoded (truncated,
    not an image); FileNotFoundError if it is missing.
    """
    from PIL import Image

    try:
        with Image.open(path) as png:
            raw = np.asarray(png)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: depth PNG not found") from None
    except (OSError, ValueError, SyntaxError, EOFError) as err:  # PIL's decoding errors
        raise ValueError(f"{path}: not a readable PNG: truncated or not an image ({err})") from None
    if raw.ndim != 2:
        raise ValueError(f"{path}: expected a single-channel depth PNG, got shape {raw.shape}")
    return raw


_NUMPY_READ_ERRORS = (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error, pickle.UnpicklingError)
"""What ``np.load`` raises on a truncated or foreign file."""


def read_npy(path: str | os.PathLike, what: str) -> np.ndarray:
    """The array of a ``.npy`` file (never unpickled).

    Raises FileNotFoundError if missing, ValueError naming the file and ``what`` it is if it is
    truncated, not NumPy data, or an ``.npz`` archive.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {what} file not found")
    try:
        array = np.load(path, allow_pickle=False)
    except _NUMPY_READ_ERRORS as err:
        raise ValueError(
            f"{path}: {what} is not a readable .npy file: truncated or not NumPy data ({err})"
        ) from None
    if not isinstance(array, np.ndarray):  # an .npz archive under a .npy name
        array.close()
        raise ValueError(f"{path}: {what} is an .npz archive, expected a single .npy array")
    return array


def read_npz(
    path: str | os.PathLike, what: str, required: Sequence[str], optional: Sequence[str] = ()
) -> dict[str, np.ndarray]:
    """The ``required`` arrays and those of ``optional`` present in an ``.npz`` file, fully read.

    Raises FileNotFoundError if missing; ValueError naming the file and ``what`` it is if it is
    truncated or not an .npz archive, or lacks a required array (listing the ones it has).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {what} file not found")
    unreadable = f"{path}: {what} is not a readable .npz file: truncated or not NumPy data"
    try:
        data = np.load(path, allow_pickle=False)
    except _NUMPY_READ_ERRORS as err:
        raise ValueError(f"{unreadable} ({err})") from None
    if isinstance(data, np.ndarray):
        raise ValueError(f"{path}: {what} is a single .npy array, expected an .npz archive")
    with data:
        missing = [key for key in required if key not in data.files]
        if missing:
            has = ", ".join(data.files) or "none"
            raise ValueError(f"{path}: no {', '.join(map(repr, missing))} array (has: {has})")
        try:  # members are decompressed here: a damaged one fails now
            return {key: data[key] for key in (*required, *optional) if key in data.files}
        except _NUMPY_READ_ERRORS as err:
            raise ValueError(f"{unreadable} ({err})") from None


def read_npy_map(path: str | os.PathLike, what: str) -> np.ndarray:
    """An (H, W) map stored as ``.npy``, (H, W, 1) accepted; errors name the file and ``what`` it is
    (missing, truncated, not NumPy data, wrong shape)."""
    array = read_npy(path, what)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim != 2:
        raise ValueError(f"{path}: {what} must be HxW or HxWx1, got shape {array.shape}")
    return array


def relative_name(path: Path, root: Path) -> str:
    """A sample name: ``path`` relative to ``root``, without its extension, with ``/`` separators."""
    return path.relative_to(root).with_suffix("").as_posix()


def valid_depth(depth: np.ndarray) -> np.ndarray:
    """(H, W) bool: finite and > 0."""
    return np.isfinite(depth) & (depth > 0)


def pinhole(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """(3, 3) float64 intrinsics, pixels."""
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])


def one_based_to_opencv(K: np.ndarray) -> np.ndarray:
    """(3, 3) float64 copy of a MATLAB-convention K (first pixel centre at (1, 1)) in OpenCV's (at (0, 0)).

    Only the principal point moves: cx − 1, cy − 1 (fx, fy and skew do not depend on the origin).
    """
    K = np.array(K, dtype=np.float64)
    if K.shape != (3, 3):
        raise ValueError(f"K must be 3x3, got shape {K.shape}")
    K[0, 2] -= 1.0
    K[1, 2] -= 1.0
    return K


def read_split(path: str | os.PathLike) -> list[list[str]]:
    """Whitespace-separated fields of every non-empty line that is not a ``#`` comment."""
    rows = []
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            rows.append(line.split())
    return rows


def require_dir(path: str | os.PathLike, what: str) -> Path:
    """``Path(path)`` if it is a folder, else FileNotFoundError saying which dataset expected it."""
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: {what} folder not found")
    return root


def find_one(candidates: Iterable[Path], what: str) -> Path:
    """The first existing path among ``candidates``; FileNotFoundError listing them otherwise."""
    candidates = list(candidates)
    for candidate in candidates:
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"no {what}: looked for {', '.join(map(str, candidates))}")


def crop_sample(sample: Sample, top: int, left: int, height: int, width: int) -> Sample:
    """Crop every per-pixel field of ``sample`` to the box and move K's principal point with it."""
    out: Sample = dict(sample)  # type: ignore[assignment]
    for key in ("image", "depth", "valid", "mask", "instance"):
        if key in sample:
            out[key] = sample[key][top : top + height, left : left + width]  # type: ignore[literal-required]
    if "K" in sample:
        K = np.array(sample["K"], dtype=np.float64)
        K[0, 2] -= left
        K[1, 2] -= top
        out["K"] = K
    return out


def read_matrix_txt(path: str | os.PathLike, rows: int = 3, cols: int = 3) -> np.ndarray:
    """A ``rows``×``cols`` float64 matrix from a text file of whitespace-separated numbers, row-major."""
    text = Path(path).read_text()
    try:
        values = [float(v) for v in text.split()]
    except ValueError as err:
        raise ValueError(f"{path}: not a whitespace-separated matrix of numbers ({err})") from None
    if len(values) != rows * cols:
        raise ValueError(f"{path}: expected {rows * cols} numbers ({rows}x{cols}), found {len(values)}")
    return np.array(values, dtype=np.float64).reshape(rows, cols)


def resolve_listed(base: Path, listed: str) -> Path | None:
    """``base / listed`` with the fewest leading components of ``listed`` dropped that exists, else None.

    Split files name paths relative to some ancestor of the folder a user points at (or carry an absolute
    prefix from the authors' machines); dropping leading components finds them under ``base`` wherever
    in the dataset's tree ``base`` is.
    """
    parts = [part for part in PurePosixPath(listed.replace("\\", "/")).parts if part not in ("/", ".")]
    for start in range(len(parts)):
        candidate = base.joinpath(*parts[start:])
        if candidate.exists():
            return candidate
    return None


def disparity_to_depth(
    disparity: np.ndarray, focal_px: float, baseline_m: float
) -> tuple[np.ndarray, np.ndarray]:
    """Stereo disparity (pixels) to depth along the optical axis: Z = focal_px · baseline_m / d.

    Returns ``(depth, valid)``: float32 metres, 0 where the disparity is not finite or not > 0 (unknown,
    or at infinity), and that validity as a bool mask.
    """
    disparity = np.asarray(disparity, dtype=np.float64)
    valid = np.isfinite(disparity) & (disparity > 0)
    depth = np.zeros(disparity.shape, np.float32)
    depth[valid] = focal_px * baseline_m / disparity[valid]
    return depth, valid


def require_same_size(path: str | os.PathLike, array: np.ndarray, image: np.ndarray, what: str) -> None:
    """ValueError naming ``path`` unless ``array`` covers the same H×W pixels as ``image``."""
    if array.shape[:2] != image.shape[:2]:
        raise ValueError(
            f"{path}: {what} is {array.shape[1]}x{array.shape[0]} but the image is "
            f"{image.shape[1]}x{image.shape[0]}"
        )


def select_names(
    found: Iterable[str], wanted: str | Iterable[str] | None, where: str | os.PathLike
) -> list[str]:
    """Sorted unique ``found`` names (e.g. scenes), restricted to ``wanted`` if given.

    FileNotFoundError names the ``wanted`` entries missing from ``found`` (``where`` says where they
    were looked for).
    """
    available = set(found)
    if wanted is None:
        return sorted(available)
    chosen = {wanted} if isinstance(wanted, str) else set(wanted)
    missing = sorted(chosen - available)
    if missing:
        raise FileNotFoundError(f"{where}: not found: {', '.join(missing)}")
    return sorted(chosen)
