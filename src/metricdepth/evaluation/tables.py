"""Result files: paper-style Markdown plus machine-readable CSV / JSON, byte-for-byte deterministic.

``results.md`` holds up to three tables laid out as in the papers — depth (a row per alignment, the
protocol's columns per dataset, as RSA's and Depth Pro's Table 1), boundaries (F1 / recall per dataset,
Depth Pro's Table 2) and focal length (Depth Pro's focal table) — then every metric in long form and
the protocol of each dataset. ``results.csv`` / ``results.json`` hold the long form, ``per_image.csv``
one row per image and alignment. ``results.json`` is strict JSON: NaN and ±inf are written as ``null``.
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..io.atomic import atomic_path
from ..io.writers import write_json
from ..metrics.depth import METRIC_NAMES, SILOG_VARIANT
from .protocols import Protocol
from .runner import EvalResult

__all__ = ["markdown_report", "write_tables"]

HEADINGS = {
    "d1": "δ1↑",
    "d2": "δ2↑",
    "d3": "δ3↑",
    "abs_rel": "AbsRel↓",
    "sq_rel": "SqRel↓",
    "rmse": "RMSE↓",
    "rmse_log": "RMSElog↓",
    "log10": "log10↓",
    "silog": "SILog↓",
    "boundary_f1": "F1↑",
    "boundary_recall": "R↑",
    "focal_delta25": "δ25%↑",
    "focal_delta50": "δ50%↑",
    "focal_median_rel_err": "median rel. err↓",
}


FOCAL_COLUMNS = ("focal_delta25", "focal_delta50", "focal_median_rel_err")


def _fmt(value: Any, digits: int = 4) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _depth_table(result: EvalResult) -> list[str]:
    depth_rows = [r for r in result.rows if "d1" in r]
    labels = list(dict.fromkeys(r["dataset"] for r in depth_rows))
    if not labels:
        return []
    by_key = {(r["dataset"], r["alignment"]): r for r in depth_rows}
    columns = [(label, metric) for label in labels for metric in result.protocols[label].columns]
    header = ["Alignment"] + [f"{result.protocols[lb].title} {HEADINGS[m]}" for lb, m in columns]
    alignments = list(dict.fromkeys(r["alignment"] for r in depth_rows))
    body = [
        [mode] + [_fmt(by_key[(lb, mode)][m], 3) if (lb, mode) in by_key else "" for lb, m in columns]
        for mode in alignments
    ]
    return ["## Depth", "", *_table(header, body), ""]


def _single_row_table(result: EvalResult, title: str, metrics: tuple[str, ...]) -> list[str]:
    first_rows: dict[str, dict[str, Any]] = {}
    for row in result.rows:  # these metrics repeat on every alignment row of a dataset
        first_rows.setdefault(row["dataset"], row)
    cells = [
        (result.protocols[label].title, metric, row[metric])
        for label, row in first_rows.items()
        for metric in metrics
        if metric in row
    ]
    if not cells:
        return []
    header = [f"{name} {HEADINGS[metric]}" for name, metric, _ in cells]
    return [f"## {title}", "", *_table(header, [[_fmt(v, 3) for *_, v in cells]]), ""]


def _protocol_lines(protocols: dict[str, Protocol]) -> list[str]:
    lines = ["## Protocols", ""]
    for label, p in protocols.items():
        depth_range = f"{p.min_depth if p.min_depth is not None else 0:g}–{p.max_depth or float('inf'):g} m"
        crop = p.crop or "no crop"
        source = f" ({p.source})" if p.source else ""
        lines.append(f"- {label} ({p.title}): depth range {depth_range}, {crop}{source}")
    lines += [
        "",
        "Depth metrics are per-image values averaged over images (BTS / RSA protocol), on valid ground "
        f"truth inside the crop and range; predictions clamped to the range; silog = {SILOG_VARIANT}. "
        "Boundary metrics are Depth Pro's (scale-invariant, unaligned prediction).",
    ]
    return lines


def markdown_report(result: EvalResult, info: dict[str, Any] | None = None) -> str:
    """The ``results.md`` text."""
    lines = ["# metricdepth evaluation", ""]
    for key, value in (info or {}).items():
        lines.append(f"- {key}: {', '.join(map(str, value)) if isinstance(value, list) else value}")
    lines.append("")
    lines += _depth_table(result)
    lines += _single_row_table(result, "Boundaries", ("boundary_f1", "boundary_recall"))
    lines += _single_row_table(
        result, "Focal length (the model's own estimate, never EXIF or user values)", FOCAL_COLUMNS
    )
    columns = _columns(result.rows)
    body = [[_fmt(r.get(c, "")) for c in columns] for r in result.rows]
    lines += ["## All metrics", "", *_table(columns, body)]
    lines += ["", *_protocol_lines(result.protocols)]
    if result.failures:
        lines += ["", "## Not scored", ""]
        lines += [f"- {label} / {name}: {reason}" for label, name, reason in result.failures]
    return "\n".join(lines) + "\n"


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    keys = list(dict.fromkeys(k for row in rows for k in row))
    fixed = ["dataset", "alignment", "image", "images", *METRIC_NAMES]
    return [k for k in fixed if k in keys] + [k for k in keys if k not in fixed]


def _csv_text(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=_columns(rows), lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: _fmt(v) for k, v in row.items()} for row in rows)
    return buffer.getvalue()


def write_tables(
    result: EvalResult, out_dir: str | os.PathLike, info: dict[str, Any] | None = None
) -> list[Path]:
    """Write ``results.md``, ``results.csv``, ``results.json`` and ``per_image.csv`` into ``out_dir``."""
    out = Path(out_dir)
    paths = []
    for name, text in (
        ("results.md", markdown_report(result, info)),
        ("results.csv", _csv_text(result.rows)),
        ("per_image.csv", _csv_text(result.per_image)),
    ):
        with atomic_path(out / name) as tmp:
            tmp.write_text(text)
        paths.append(out / name)
    payload = {
        "info": info or {},
        "silog": SILOG_VARIANT,
        "protocols": {label: asdict(p) for label, p in result.protocols.items()},
        "rows": result.rows,
        "failures": [dict(zip(("dataset", "image", "reason"), f, strict=True)) for f in result.failures],
    }
    paths.append(write_json(out / "results.json", payload))  # strict JSON: NaN and inf become null
    return paths
