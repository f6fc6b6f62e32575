"""Benchmark readers: each yields :class:`~metricdepth.data.Sample` dicts from a dataset's own layout.

Depth: :class:`Middlebury2014`, :class:`Booster`, :class:`ETH3D`, :class:`NuScenes`, :class:`Sintel`,
:class:`SunRGBD`, :class:`Spring`, :class:`IBims1`, :class:`Diode`, :class:`NYUv2Labeled`,
:class:`NYUv2Folder`, :class:`KittiEigen`, :class:`Void`, :class:`FolderDataset` (your own data).
Masks for boundary recall: :class:`DIS5K`, :class:`AM2k`, :class:`P3M10k`, :class:`MaskFolder`.
Focal length: :class:`ExifFocalFolder`. Evaluation protocols for each: ``metricdepth.evaluation``.

Shared conventions: ``K`` is in the OpenCV convention (first pixel centre at (0, 0); each reader's
docstring states its source's convention and the conversion); images come in their stored pixel order
(no EXIF rotation), the order of the ground truth; a reader that reads an image file sets
``exif_focal_px`` (float, pixels, from the EXIF 35 mm-equivalent focal) when the file has one. That is
metadata, not ground truth, and :class:`ExifFocalFolder` leaves it out: its ``focal_px`` ground truth
is that same value.
"""

from .booster import Booster
from .diode import Diode
from .eth3d import ETH3D
from .focal import ExifFocalFolder
from .folder import FolderDataset
from .ibims import IBims1
from .kitti import KittiEigen
from .masks import DIS5K, AM2k, MaskFolder, P3M10k
from .middlebury import Middlebury2014, middlebury_calibration
from .nuscenes import NuScenes
from .nyu import NYUv2Folder, NYUv2Labeled
from .sintel import Sintel, read_sintel_camera, read_sintel_depth
from .spring import Spring
from .sunrgbd import SunRGBD
from .void import Void

__all__ = [
    "DIS5K",
    "ETH3D",
    "AM2k",
    "Booster",
    "Diode",
    "ExifFocalFolder",
    "FolderDataset",
    "IBims1",
    "KittiEigen",
    "MaskFolder",
    "Middlebury2014",
    "NYUv2Folder",
    "NYUv2Labeled",
    "NuScenes",
    "P3M10k",
    "Sintel",
    "Spring",
    "SunRGBD",
    "Void",
    "middlebury_calibration",
    "read_sintel_camera",
    "read_sintel_depth",
]
