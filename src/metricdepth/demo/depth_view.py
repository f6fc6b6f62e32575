"""The demo's depth panel: the colourised depth map, a colour bar in metres, and the depth under the cursor.

:func:`depth_view_html` builds one self-contained HTML fragment (no gradio here):

* the colour map (the same turbo inverse-depth colours as ``NAME_inverse_depth.png``, scaled down to
  at most ``display_size`` pixels for the page), as a WebP data URL;
* a colour bar whose ticks are labelled in metres (matplotlib);
* the depth map sampled on a grid of at most ``grid_size`` points along the longer side, in a
  ``data-grid`` attribute: little-endian uint16 codes of log depth (:func:`encode_depth_grid`, 0.03 %
  steps; 0 = no depth), base64. :data:`HOVER_JS` decodes it in the browser and shows e.g.
  "3.42 m at (812, 405)" under the cursor (pixel coordinates of the full-size photo).
"""

from __future__ import annotations

import base64
import html
import io
import math

import numpy as np
from PIL import Image

from ..io.writers import COLOR_DEPTH_RANGE, SKY_DEPTH

__all__ = [
    "DEFAULT_DISPLAY_SIZE",
    "DEFAULT_GRID_SIZE",
    "DEPTH_VIEW_CSS",
    "GRID_DEPTH_RANGE",
    "HOVER_JS",
    "colorbar_png",
    "colour_range",
    "decode_depth_grid",
    "depth_view_html",
    "encode_depth_grid",
    "grid_strides",
]

DEFAULT_DISPLAY_SIZE = 1024
"""Longest side (pixels) of the colour map shown on the page; downloads keep the full size."""
DISPLAY_QUALITY = 90
"""WebP quality of the colour map on the page (a quarter of the PNG's bytes; the download is the PNG)."""
DEFAULT_GRID_SIZE = 320
"""Longest side of the depth grid sent to the page for the hover readout (samples)."""
GRID_DEPTH_RANGE = (1e-4, 1e5)
"""Metres covered by the uint16 log-depth codes of the hover grid."""
_LOG_MIN = math.log(GRID_DEPTH_RANGE[0])
_LOG_STEP = (math.log(GRID_DEPTH_RANGE[1]) - _LOG_MIN) / 65534.0


def grid_strides(height: int, width: int, grid_size: int = DEFAULT_GRID_SIZE) -> int:
    """Pixel stride of the hover grid: every ``stride``-th row and column, at most ``grid_size`` per side."""
    if grid_size < 1:
        raise ValueError(f"grid_size must be positive, got {grid_size}")
    return max(1, math.ceil(max(height, width) / grid_size))


def encode_depth_grid(depth: np.ndarray) -> np.ndarray:
    """(h, w) metres → (h, w) uint16 codes: 0 for no depth (not finite, ≤ 0), else
    1 + round((ln d − ln 1e-4) / step), clipped to 1 … 65535 (step: 1e-4 … 1e5 m in 65534 steps)."""
    depth = np.asarray(depth, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        valid = np.isfinite(depth) & (depth > 0)
        codes = np.rint((np.log(np.where(valid, depth, 1.0)) - _LOG_MIN) / _LOG_STEP) + 1
    return np.where(valid, np.clip(codes, 1, 65535), 0).astype(np.uint16)


def decode_depth_grid(codes: np.ndarray) -> np.ndarray:
    """Inverse of :func:`encode_depth_grid` (what :data:`HOVER_JS` computes): metres, NaN for code 0."""
    codes = np.asarray(codes, dtype=np.float64)
    depth = np.exp(_LOG_MIN + (codes - 1) * _LOG_STEP)
    return np.where(codes > 0, depth, np.nan).astype(np.float32)


def _extent(values: np.ndarray) -> tuple[float, float]:
    """(min, max) of ``np.nan_to_num(values)`` (NaN counts as 0, ±inf as ±inf), without a copy of
    ``values``: ``fmin``/``fmax`` reductions skip NaN, ``min`` propagates it."""
    values = np.asarray(values)
    low = float(np.fmin.reduce(values, axis=None))
    high = float(np.fmax.reduce(values, axis=None))
    if math.isnan(float(values.min())):  # some NaN (or only NaN): it counts as 0
        low = 0.0 if math.isnan(low) else min(low, 0.0)
        high = 0.0 if math.isnan(high) else max(high, 0.0)
    return low, high


def _clip(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


def colour_range(inverse_depth: np.ndarray) -> tuple[float, float]:
    """(lo, hi) inverse depth (1/m) the colour map spans: the image's range after clipping to
    0.1–250 m, exactly as :func:`metricdepth.io.writers.colorize_inverse_depth` normalises.

    Clipping is monotonic, so this clips the extremes only (no full-size float64 copy)."""
    lo_clip, hi_clip = 1 / COLOR_DEPTH_RANGE[1], 1 / COLOR_DEPTH_RANGE[0]
    low, high = _extent(inverse_depth)
    return _clip(low, lo_clip, hi_clip), _clip(high, lo_clip, hi_clip)


def _nice_depths(low: float, high: float) -> list[float]:
    """Round depths strictly inside (low, high), roundest first: 1, 2, 5 × 10^k metres (wide ranges), then
    matplotlib's nice linear steps (narrow ranges)."""
    from matplotlib.ticker import MaxNLocator

    values = [
        mantissa * 10.0**exponent
        for exponent in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
        for mantissa in (1, 2, 5)
    ]
    values += [float(v) for v in MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]).tick_values(low, high)]
    return [v for v in values if low < v < high]


def _metres(value: float) -> str:
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"


def colorbar_png(
    lo: float,
    hi: float,
    cmap: str = "turbo",
    width_px: int = 560,
    *,
    far_clipped: bool = False,
    near_clipped: bool = False,
) -> bytes:
    """A horizontal colour bar of inverse depth ``lo`` … ``hi`` (1/m), ticks labelled in metres.

    Far (``1/lo``) is on the left, near (``1/hi``) on the right, as in the colour map (near = warm).
    Both ends are labelled, with round depths between them; an end the colour map clips (depths beyond
    it share its colour) reads "≥ 250 m" / "≤ 0.1 m".

    Returns:
        PNG bytes, ``width_px`` wide.
    """
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo <= hi):
        raise ValueError(f"need 0 < lo <= hi (1/m), got {lo}, {hi}")
    flat = hi <= lo * (1 + 1e-9)
    top = hi * 1.0001 if flat else hi  # a flat map still gets a (one-colour) bar
    dpi = 100
    figure = Figure(figsize=(width_px / dpi, 0.78), dpi=dpi)
    axes = figure.add_axes((0.07, 0.6, 0.86, 0.32))
    bar = figure.colorbar(
        ScalarMappable(norm=Normalize(vmin=lo, vmax=top), cmap=cmap), cax=axes, orientation="horizontal"
    )
    ends = [(lo, 1 / lo)] if flat else [(lo, 1 / lo), (hi, 1 / hi)]
    ticks = list(ends)
    min_gap = 0.11 * (top - lo)
    for depth in _nice_depths(1 / hi, 1 / lo):
        position = 1 / depth
        if all(abs(position - p) >= min_gap for p, _ in ticks):
            ticks.append((position, depth))
    ticks.sort()
    labels = [f"{_metres(d)} m" for _, d in ticks]
    if far_clipped:
        labels[0] = "≥ " + labels[0]
    if near_clipped and not flat:
        labels[-1] = "≤ " + labels[-1]
    bar.set_ticks([p for p, _ in ticks], labels=labels)
    axes.tick_params(labelsize=9, pad=2)
    axes.set_xlabel("depth in metres (far ← → near)", fontsize=9, labelpad=2)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def _png_data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def depth_view_html(
    depth: np.ndarray,
    colour_map: Image.Image | np.ndarray,
    inverse_depth: np.ndarray,
    *,
    display_size: int = DEFAULT_DISPLAY_SIZE,
    grid_size: int = DEFAULT_GRID_SIZE,
    title: str = "",
) -> str:
    """The depth panel's HTML: colour map, colour bar in metres, hover readout data.

    Args:
        depth: (H, W) float32 metres. Read in place: beside the hover grid only bool masks are made
            at full size (at most 2 bytes per pixel at once), and ``inverse_depth`` is not copied.
        colour_map: (H, W, 3) uint8 colourised inverse depth (e.g. the ``color`` output file).
        inverse_depth: (H, W) 1/m, to label the colour bar with the colour map's own range.
        display_size: longest side of the colour map on the page, pixels.
        grid_size: longest side of the hover grid, samples.
        title: the photo's name, for the image's alt text.
    """
    depth = np.asarray(depth)
    height, width = depth.shape
    image = colour_map if isinstance(colour_map, Image.Image) else Image.fromarray(np.asarray(colour_map))
    if image.size != (width, height):
        raise ValueError(f"colour map {image.size} does not match depth {width}×{height}")
    if max(image.size) > display_size:
        image = image.copy()
        image.thumbnail((display_size, display_size), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="WEBP", quality=DISPLAY_QUALITY)
    stride = grid_strides(height, width, grid_size)
    grid = encode_depth_grid(depth[::stride, ::stride])
    grid_h, grid_w = grid.shape
    lo, hi = colour_range(inverse_depth)
    low, high = _extent(inverse_depth)
    clipped = {"far_clipped": low < lo, "near_clipped": high > hi}
    # the nearest and farthest depth short of the sky, without copying the depth map (a bool mask;
    # NaN and ±inf compare False to one of the bounds)
    valid = depth > 0
    valid &= depth < SKY_DEPTH
    if valid.any():
        near = float(np.minimum.reduce(depth, axis=None, where=valid, initial=np.inf))
        far = float(np.maximum.reduce(depth, axis=None, where=valid, initial=-np.inf))
        span = f"{_metres(near)}–{_metres(far)} m"
    else:
        span = "no depth"
    alt = html.escape(f"depth map of {title}" if title else "depth map", quote=True)
    grid_text = base64.b64encode(grid.astype("<u2").tobytes()).decode("ascii")
    image_url = "data:image/webp;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
    return (
        f'<div class="md-depth-view" data-width="{width}" data-height="{height}" data-stride="{stride}" '
        f'data-grid-width="{grid_w}" data-grid-height="{grid_h}" data-log-min="{_LOG_MIN!r}" '
        f'data-log-step="{_LOG_STEP!r}" data-grid="{grid_text}">'
        f'<img class="md-depth" src="{image_url}" alt="{alt}" draggable="false">'
        f'<img class="md-colorbar" src="{_png_data_url(colorbar_png(lo, hi, **clipped))}" '
        f'alt="colour bar: depth in metres">'
        f'<div class="md-readout" aria-live="polite">Depth under the cursor: move the mouse over the map '
        f"({width}×{height} px, {span})</div></div>"
    )


DEPTH_VIEW_CSS = """
.md-depth-view { display: flex; flex-direction: column; gap: 4px; }
.md-depth-view img.md-depth { width: 100%; height: auto; cursor: crosshair; image-rendering: auto; }
.md-depth-view img.md-colorbar { width: 100%; height: auto; }
.md-depth-view .md-readout { font-family: ui-monospace, monospace; font-size: 1.05em; min-height: 1.5em; }
"""
"""Styles of the depth panel (plain CSS; the gradio app scopes them to its HTML component)."""

HOVER_JS = """
const readout = (view) => view.querySelector('.md-readout');
const grid = (view) => {
  if (view._mdGrid && view._mdGridSource === view.dataset.grid) return view._mdGrid;
  const bytes = atob(view.dataset.grid);
  const codes = new Uint16Array(bytes.length / 2);
  for (let i = 0; i < codes.length; i++) {
    codes[i] = bytes.charCodeAt(2 * i) | (bytes.charCodeAt(2 * i + 1) << 8);
  }
  view._mdGrid = codes;
  view._mdGridSource = view.dataset.grid;
  return codes;
};
const metres = (d) => (d >= 100 ? d.toFixed(0) : d.toPrecision(3));
element.addEventListener('mousemove', (event) => {
  const image = event.target.closest ? event.target.closest('img.md-depth') : null;
  if (!image) return;
  const view = image.closest('.md-depth-view');
  const width = +view.dataset.width, height = +view.dataset.height, stride = +view.dataset.stride;
  const gridWidth = +view.dataset.gridWidth, gridHeight = +view.dataset.gridHeight;
  const box = image.getBoundingClientRect();
  if (box.width <= 0 || box.height <= 0) return;
  const x = Math.min(width - 1, Math.max(0, Math.floor(((event.clientX - box.left) / box.width) * width)));
  const y = Math.min(height - 1, Math.max(0, Math.floor(((event.clientY - box.top) / box.height) * height)));
  const column = Math.min(gridWidth - 1, Math.round(x / stride));
  const row = Math.min(gridHeight - 1, Math.round(y / stride));
  const code = grid(view)[row * gridWidth + column];
  const px = column * stride, py = row * stride;
  let text;
  if (code === 0) {
    text = `no depth at (${px}, ${py})`;
  } else {
    const depth = Math.exp(+view.dataset.logMin + (code - 1) * +view.dataset.logStep);
    text = depth >= 9990 ? `sky (beyond 10 km) at (${px}, ${py})` : `${metres(depth)} m at (${px}, ${py})`;
  }
  readout(view).textContent = text;
});
"""
"""Browser code of the hover readout: run once per page by the gradio app with ``element`` the depth
panel's container; it listens there (event delegation), so new results need no new listeners."""
