"""Image + foreground mask sets for boundary recall: DIS5K, AM-2k, P3M-10k and any folder pair.

Samples carry no depth and no K: ``name``, ``image`` and ``mask``, a float32 alpha in [0, 1] (8-bit
PNG / 255; binary 0/255 masks give exactly 0 and 1; 16-bit PNGs / 65535). Boundary recall thresholds it
(Depth Pro's ``SI_boundary_Recall`` uses alpha > 0.1). A mask must have the image's size.

Layouts, as published (``root`` is the dataset folder, or the folder that contains it):

* DIS5K (Qin et al., ECCV 2022): ``DIS5K/DIS-{TR,VD,TE1,TE2,TE3,TE4}/im/*.jpg`` with
  ``gt/*.png`` (binary 0/255). Default subsets: DIS-TE1..TE4. Depth Pro evaluates on a fixed sample of
  200 images listed in its ``dis5k_sample_list.txt``, one image path per line such as
  ``DIS5K/DIS-TE1/im/12#Graphics#4#TrafficSign#8245751856_821be14f86_o.jpg`` (the ``DIS5K/`` prefix is
  optional; file names contain spaces and ``#``; the list spans DIS-TR and DIS-VD too). Names:
  ``<subset>/<stem>``.
* AM-2k (Li et al., IJCV 2022, GFM): ``AM-2k/{train,validation}/original/*.jpg`` with
  ``mask/*.png`` alpha mattes. Names: the stem.
* P3M-10k (Li et al., ACM MM 2021): ``P3M-10k/validation/P3M-500-P/blurred_image/*.jpg`` (faces
  blurred) and ``P3M-500-NP/original_image/*.jpg``, each with ``mask/*.png`` alpha mattes. Names: the
  stem.

Images and masks are paired by their path relative to the image / mask folder, without extension.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ...io.images import IMAGE_EXTENSIONS
from ..sample import Sample
from ._common import read_image, relative_name, require_dir, with_exif_focal

__all__ = [
    "DIS5K",
    "DIS5K_TEST_SUBSETS",
    "AM2k",
    "MaskFolder",
    "MaskPairs",
    "P3M10k",
    "pair_by_stem",
    "read_mask",
]

DIS5K_TEST_SUBSETS = ("DIS-TE1", "DIS-TE2", "DIS-TE3", "DIS-TE4")
_MASK_EXTENSIONS = (".png", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg")  # preference order

MaskItem = tuple[Path, Path, str]  # image, mask, sample name


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """(H, W) float32 alpha in [0, 1] from a mask / matte image (8- or 16-bit grey, or grey stored as RGB)."""
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: mask not found")
    with Image.open(path) as image:
        mode = image.mode
        if mode == "1":
            return np.asarray(image, dtype=np.float32)
        if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
            return np.clip(np.asarray(image, dtype=np.float64) / 65535.0, 0, 1).astype(np.float32)
        if mode == "F":
            return np.clip(np.nan_to_num(np.asarray(image, dtype=np.float32)), 0, 1)
        if mode != "L":
            image = image.convert("L")  # RGB masks are grey in every channel: L keeps that value
        return (np.asarray(image, dtype=np.float32) / 255.0).astype(np.float32)


def _files_by_key(folder: Path, extensions: Sequence[str]) -> dict[str, Path]:
    """Relative path without extension (posix) → file, for files under ``folder`` with those extensions.

    When several files share a key, the extension earlier in ``extensions`` wins.
    """
    rank = {ext: i for i, ext in enumerate(extensions)}
    found: dict[str, Path] = {}
    for path in folder.rglob("*"):
        ext = path.suffix.lower()
        if ext not in rank or not path.is_file():
            continue
        key = relative_name(path, folder)
        if key not in found or rank[ext] < rank[found[key].suffix.lower()]:
            found[key] = path
    return found


def pair_by_stem(
    image_dir: str | os.PathLike, mask_dir: str | os.PathLike, prefix: str = ""
) -> list[MaskItem]:
    """(image, mask, name) for every image under ``image_dir``, sorted; name = ``prefix`` + relative stem.

    Raises FileNotFoundError naming the folder if there is no image, or the images that lack a mask.
    """
    image_dir, mask_dir = require_dir(image_dir, "image"), require_dir(mask_dir, "mask")
    images = _files_by_key(image_dir, sorted(IMAGE_EXTENSIONS))
    if not images:
        raise FileNotFoundError(f"{image_dir}: no image found")
    masks = _files_by_key(mask_dir, _MASK_EXTENSIONS)
    missing = sorted(key for key in images if key not in masks)
    if missing:
        shown = ", ".join(images[key].name for key in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise FileNotFoundError(f"{mask_dir}: no mask for {len(missing)} image(s) of {image_dir}: {shown}")
    return [(images[key], masks[key], prefix + key) for key in sorted(images)]


def _dataset_dir(root: str | os.PathLike, folder: str, marker: str, what: str) -> Path:
    """``root`` if it holds ``marker``, else ``root/folder`` if that does; FileNotFoundError otherwise."""
    root = require_dir(root, what)
    for candidate in (root, root / folder):
        if (candidate / marker).is_dir():
            return candidate
    raise FileNotFoundError(f"{root}: no {marker} folder (nor {folder}/{marker}) for {what}")


class MaskPairs:
    """Shared reader: ``items`` is a sorted list of (image, mask, sample name); ``name`` labels the set."""

    def __init__(self, name: str, items: list[MaskItem]) -> None:
        self.name = name
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Sample:
        image_path, mask_path, name = self.items[index]
        image, exif_focal = read_image(image_path)
        mask = read_mask(mask_path)
        if mask.shape != image.shape[:2]:
            raise ValueError(
                f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]} but image {image_path} is "
                f"{image.shape[1]}x{image.shape[0]}"
            )
        return with_exif_focal(Sample(name=name, image=image, mask=mask), exif_focal)


class MaskFolder(MaskPairs):
    """Images under ``image_dir`` with same-named masks under ``mask_dir``; ``name`` labels the set."""

    def __init__(
        self, image_dir: str | os.PathLike, mask_dir: str | os.PathLike, name: str | None = None
    ) -> None:
        super().__init__(
            name if name is not None else Path(image_dir).name, pair_by_stem(image_dir, mask_dir)
        )


def _read_sample_list(sample_list: str | os.PathLike | Sequence[str]) -> list[str]:
    if isinstance(sample_list, (list, tuple)):
        return [str(entry) for entry in sample_list]
    path = Path(sample_list)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: sample list not found")
    lines = path.read_text().splitlines()
    return [line.strip() for line in lines if line.strip()]  # names contain spaces: whole lines


class DIS5K(MaskPairs):
    """DIS5K subsets (``im/*.jpg`` + ``gt/*.png``), or the images of a sample list such as Depth Pro's."""

    def __init__(
        self,
        root: str | os.PathLike,
        subsets: Sequence[str] | None = None,
        sample_list: str | os.PathLike | Sequence[str] | None = None,
    ) -> None:
        """``subsets`` defaults to DIS-TE1..TE4, or to every subset in ``sample_list`` when one is given."""
        if isinstance(subsets, str):
            subsets = (subsets,)
        if sample_list is None:
            subsets = tuple(subsets or DIS5K_TEST_SUBSETS)
            self.root = _dataset_dir(root, "DIS5K", subsets[0], "DIS5K")
            items: list[MaskItem] = []
            for subset in subsets:
                folder = require_dir(self.root / subset, f"DIS5K {subset}")
                items += pair_by_stem(folder / "im", folder / "gt", prefix=f"{subset}/")
            super().__init__("DIS5K", items)
            return
        entries = [e.removeprefix("./").removeprefix("DIS5K/") for e in _read_sample_list(sample_list)]
        if not entries:
            raise ValueError(f"{sample_list}: empty DIS5K sample list")
        self.root = _dataset_dir(root, "DIS5K", Path(entries[0]).parts[0], "DIS5K")
        items = []
        for entry in entries:
            subset = Path(entry).parts[0]
            if subsets is not None and subset not in subsets:
                continue
            image = self.root / entry
            mask = image.parent.parent / "gt" / f"{image.stem}.png"
            for path, what in ((image, "image"), (mask, "mask")):
                if not path.is_file():
                    raise FileNotFoundError(f"{path}: {what} of sample-list entry {entry!r} not found")
            items.append((image, mask, f"{subset}/{image.stem}"))
        if not items:
            raise FileNotFoundError(f"{sample_list}: no entry in subsets {', '.join(subsets or ())}")
        super().__init__("DIS5K", sorted(items, key=lambda item: item[2]))


class AM2k(MaskPairs):
    """AM-2k animal mattes: ``<split>/original/*.jpg`` with ``<split>/mask/*.png``."""

    def __init__(self, root: str | os.PathLike, split: str = "validation") -> None:
        self.root = _dataset_dir(root, "AM-2k", split, "AM-2k")
        super().__init__("AM-2k", pair_by_stem(self.root / split / "original", self.root / split / "mask"))


_P3M_IMAGE_FOLDER = {"P3M-500-P": "blurred_image", "P3M-500-NP": "original_image"}


class P3M10k(MaskPairs):
    """P3M-10k portrait mattes: ``validation/<subset>/{blurred_image|original_image}`` with ``mask``."""

    def __init__(self, root: str | os.PathLike, subset: str = "P3M-500-NP") -> None:
        if subset not in _P3M_IMAGE_FOLDER:
            raise ValueError(
                f"unknown P3M-10k subset {subset!r}: expected one of {', '.join(_P3M_IMAGE_FOLDER)}"
            )
        self.root = _dataset_dir(root, "P3M-10k", "validation", "P3M-10k")
        folder = self.root / "validation" / subset
        super().__init__(
            f"P3M-10k/{subset}", pair_by_stem(folder / _P3M_IMAGE_FOLDER[subset], folder / "mask")
        )
