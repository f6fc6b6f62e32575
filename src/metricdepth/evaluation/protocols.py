"""Benchmarks by name: which reader opens a dataset and how the papers score it.

A :class:`Protocol` fixes the depth range, the crop, whether Depth Pro's boundary F1 applies (dense
ground truth only: holes would read as edges) and the columns the papers print. :data:`BENCHMARKS`
pairs each name with its reader; :func:`open_benchmark` parses the CLI's ``NAME=PATH[,KEY=VALUE...]``.
Readers are imported lazily (``"module:Class"``), so listing benchmarks costs nothing.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = ["BENCHMARKS", "Benchmark", "EvalSet", "Protocol", "open_benchmark", "parse_benchmark_arg"]

RSA_NYU_COLUMNS = ("d1", "d2", "d3", "abs_rel", "log10", "rmse")
RSA_KITTI_COLUMNS = ("d1", "d2", "d3", "abs_rel", "rmse_log", "rmse")
DEPTH_PRO_COLUMNS = ("d1", "abs_rel")
_BTS = "BTS / ZoeDepth"


@dataclass(frozen=True)
class Protocol:
    """How one benchmark is scored.

    Attributes:
        title: name printed in tables.
        min_depth, max_depth: ground truth outside (min, max) metres is ignored and predictions are
            clamped to it (None: no bound).
        crop: a :func:`metricdepth.metrics.crop_mask` name (``nyu_eigen``, ``kitti_garg``, ...) or None.
        boundary_f1: score Depth Pro's scale-invariant boundary F1 against the depth ground truth.
        columns: depth metrics shown in the paper-style table.
        source: where the range and crop come from.
    """

    title: str
    min_depth: float | None = 1e-3
    max_depth: float | None = None
    crop: str | None = None
    boundary_f1: bool = False
    columns: tuple[str, ...] = DEPTH_PRO_COLUMNS
    source: str = ""


@dataclass(frozen=True)
class Benchmark:
    """A reader (``"module:Class"`` under ``metricdepth.data.datasets``), its fixed options, its protocol."""

    reader: str
    protocol: Protocol
    options: dict[str, Any] = field(default_factory=dict)

    def reader_class(self) -> Any:
        module, _, name = self.reader.partition(":")
        return getattr(importlib.import_module(f"metricdepth.data.datasets.{module}"), name)

    def reader_options(self) -> tuple[str, ...] | None:
        """Keyword options the reader's ``__init__`` takes after the dataset path (None: any, **kwargs)."""
        parameters = list(inspect.signature(self.reader_class().__init__).parameters.values())[1:]  # self
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
            return None
        named = [
            p.name
            for p in parameters
            if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        ]
        return tuple(named[1:])  # the first is the dataset path, given as NAME=PATH


BENCHMARKS: dict[str, Benchmark] = {
    # Depth Pro, Table 1 (zero-shot metric depth) and Table 2 (boundaries).
    "middlebury": Benchmark(
        "middlebury:Middlebury2014", Protocol("Middlebury", boundary_f1=True, source="full range, dense")
    ),
    "booster": Benchmark(
        "booster:Booster", Protocol("Booster", max_depth=10.0, source="Booster evaluation script: 1 mm-10 m")
    ),
    "eth3d": Benchmark("eth3d:ETH3D", Protocol("ETH3D", source="no cap (Marigold)")),
    "nuscenes": Benchmark(
        "nuscenes:NuScenes", Protocol("nuScenes", max_depth=80.0, source="UniDepth: 80 m; lidar ≥ 1 m")
    ),
    "sintel": Benchmark(
        "sintel:Sintel",
        Protocol("Sintel", min_depth=0.1, max_depth=70.0, boundary_f1=True, source="DepthCrafter: 0.1-70"),
    ),
    "sunrgbd": Benchmark(
        "sunrgbd:SunRGBD", Protocol("SUN-RGBD", max_depth=8.0, source="SUN-RGBD toolbox clips at 8 m")
    ),
    "spring": Benchmark("spring:Spring", Protocol("Spring", boundary_f1=True, source="no cap; sky invalid")),
    "ibims": Benchmark(
        "ibims:IBims1", Protocol("iBims-1", max_depth=10.0, boundary_f1=True, source="ZoeDepth: 10 m")
    ),
    "diode": Benchmark(
        "diode:Diode", Protocol("DIODE", min_depth=0.6, max_depth=350.0, source="Marigold: 0.6-350 m")
    ),
    "diode-indoor": Benchmark(
        "diode:Diode",
        Protocol("DIODE indoor", max_depth=10.0, source="ZoeDepth: 10 m"),
        {"scene_type": "indoors"},
    ),
    "diode-outdoor": Benchmark(
        "diode:Diode",
        Protocol("DIODE outdoor", max_depth=80.0, source="ZoeDepth: 80 m"),
        {"scene_type": "outdoor"},
    ),
    # RSA, Tables 1-3 (BTS protocol: per-image metrics averaged over images).
    "nyu": Benchmark(
        "nyu:NYUv2Labeled",
        Protocol("NYUv2", max_depth=10.0, crop="nyu_eigen", columns=RSA_NYU_COLUMNS, source=_BTS),
    ),
    "nyu-bts": Benchmark(
        "nyu:NYUv2Folder",
        Protocol("NYUv2", max_depth=10.0, crop="nyu_eigen", columns=RSA_NYU_COLUMNS, source=_BTS),
    ),
    "kitti": Benchmark(
        "kitti:KittiEigen",
        Protocol(
            "KITTI",
            max_depth=80.0,
            crop="kitti_garg",
            columns=RSA_KITTI_COLUMNS,
            source="ZoeDepth / RSA: Garg crop on the 352x1216 KB crop",
        ),
    ),
    "void": Benchmark(
        "void:Void",
        Protocol("VOID", min_depth=0.2, max_depth=5.0, columns=RSA_NYU_COLUMNS, source="RSA: 0.2-5 m"),
    ),
    # Boundary recall against masks and mattes (Depth Pro, Table 2); focal length (Depth Pro, Table 3).
    "dis5k": Benchmark("masks:DIS5K", Protocol("DIS5K")),
    "am2k": Benchmark("masks:AM2k", Protocol("AM-2k")),
    "p3m10k": Benchmark("masks:P3M10k", Protocol("P3M-10k")),
    "masks": Benchmark("masks:MaskFolder", Protocol("masks")),
    "focal": Benchmark("focal:ExifFocalFolder", Protocol("EXIF focal")),
    # Users' own data.
    "folder": Benchmark("folder:FolderDataset", Protocol("folder")),
}


@dataclass
class EvalSet:
    """An opened dataset with the protocol it is scored under; ``label`` names it in the tables."""

    label: str
    dataset: Any
    protocol: Protocol


def _value(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_benchmark_arg(spec: str) -> tuple[str, str, dict[str, Any]]:
    """``"NAME=PATH[,KEY=VALUE...]"`` → (name, path, options); values that parse become bool/int/float."""
    name, _, rest = spec.partition("=")
    path, *pairs = rest.split(",")
    if name not in BENCHMARKS or not path:
        raise ValueError(
            f"dataset {spec!r}: expected NAME=PATH[,KEY=VALUE...] with NAME one of {', '.join(BENCHMARKS)}"
        )
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"dataset {spec!r}: option {pair!r} is not KEY=VALUE")
        options[key] = _value(value)
    return name, path, options


def open_benchmark(spec: str, **protocol_overrides: Any) -> EvalSet:
    """Open ``NAME=PATH[,KEY=VALUE...]``.

    ``protocol_overrides`` (e.g. ``max_depth=20``) replace preset fields when not None; ``crop="none"``
    removes the crop, any other crop must be one of :data:`~metricdepth.metrics.depth.CROP_NAMES`.
    Raises ValueError (an option the reader does not take, naming the ones it does; an unknown crop,
    listing the valid names) before touching the dataset, then ValueError / FileNotFoundError carrying
    the reader's message.
    """
    from ..metrics.depth import CROP_NAMES  # torch: imported when a dataset is opened, not listed

    name, path, options = parse_benchmark_arg(spec)
    benchmark = BENCHMARKS[name]
    accepted = benchmark.reader_options()
    unknown = [key for key in options if accepted is not None and key not in accepted]
    if unknown:
        takes = ", ".join(accepted) if accepted else "no options"
        raise ValueError(
            f"dataset {spec!r}: {name} ({benchmark.reader.partition(':')[2]}) does not take "
            f"{', '.join(map(repr, unknown))}; it accepts: {takes}"
        )
    overrides = {k: v for k, v in protocol_overrides.items() if v is not None}
    if overrides.get("crop") == "none":
        overrides["crop"] = None
    elif "crop" in overrides and overrides["crop"] not in CROP_NAMES:
        raise ValueError(f"unknown crop {overrides['crop']!r}; choose one of none, {', '.join(CROP_NAMES)}")
    try:
        dataset = benchmark.reader_class()(path, **{**benchmark.options, **options})
    except TypeError as err:  # an option value of the wrong kind
        raise ValueError(f"dataset {spec!r}: {err}") from None
    return EvalSet(name, dataset, replace(benchmark.protocol, **overrides))
