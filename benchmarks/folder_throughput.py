"""Images per second through ``predict_files`` (the runner of ``metricdepth predict``), all outputs written.

    python benchmarks/folder_throughput.py --device cuda --precision fp16 --count 200 --workers 8
    python benchmarks/folder_throughput.py --device cuda --precision bf16 --compile --batch-size 8
    python benchmarks/folder_throughput.py --preset tiny --device cpu --count 24 --batch-size 4

A folder of ``--count`` synthetic JPEG photos of mixed sizes (default 4032×3024, 1920×1080 and
1024×768 in turn, textured so the encoders do real work) is written first; the model (random weights
of ``--preset``, speed does not depend on them) is loaded and warmed up on one batch; then the whole
folder goes through ``predict_files`` with the chosen formats (default: all five) and the clock stops
when the last file is on disk. Reported: images/s and seconds per image over the timed run, and the
per-stage settings. Model loading and the warm-up are excluded.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from _machine import device_name
from PIL import Image

from metricdepth import DepthPro, DepthProConfig
from metricdepth.batch import collect_inputs, predict_files
from metricdepth.device import resolve_device, resolve_dtype
from metricdepth.io.writers import FORMATS

SIZES = ((4032, 3024), (1920, 1080), (1024, 768))


def write_photos(folder: Path, count: int, sizes: list[tuple[int, int]]) -> None:
    rng = np.random.default_rng(0)
    for i in range(count):
        width, height = sizes[i % len(sizes)]
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        base = 127 + 60 * np.sin(xx / (17 + i % 5)) * np.cos(yy / 23)
        noise = rng.integers(-30, 30, size=(height // 8 + 1, width // 8 + 1, 3))
        noise = np.repeat(np.repeat(noise, 8, 0), 8, 1)[:height, :width]
        rgb = np.clip(base[..., None] + noise, 0, 255).astype(np.uint8)
        Image.fromarray(rgb).save(folder / f"photo_{i:04d}.jpg", quality=90)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="depth-pro")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--count", type=int, default=120)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--formats", default=",".join(FORMATS))
    parser.add_argument(
        "--sizes", default=",".join(f"{w}x{h}" for w, h in SIZES), help="photo sizes, WxH, used in turn"
    )
    parser.add_argument("--keep", type=Path, default=None, help="write photos and outputs here (kept)")
    args = parser.parse_args()
    warnings.filterwarnings(
        "ignore", message="predicted FOV"
    )  # random weights: FOV clamped, said once per image

    device = resolve_device(args.device)
    dtype = resolve_dtype(args.precision, device)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    formats = [f for f in args.formats.split(",") if f]
    root = args.keep or Path(tempfile.mkdtemp(prefix="metricdepth-throughput-"))
    photos, out = root / "photos", root / "out"
    photos.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    write_photos(photos, args.count, sizes)  # type: ignore[arg-type]
    print(f"photos        {args.count} JPEGs ({args.sizes}) written in {time.perf_counter() - start:.1f} s")

    with torch.device(device):
        model = DepthPro(DepthProConfig.preset(args.preset))
    model = model.to(dtype).eval().optimize_for_inference(compile=args.compile)
    options = dict(
        formats=formats,
        batch_size=args.batch_size,
        workers=args.workers,
        writers=args.writers,
        pad_batches=args.compile,
        focal="predicted",
    )
    warm, _ = collect_inputs(sorted(photos.iterdir())[: args.batch_size], root / "warm")
    predict_files(model, warm, overwrite=True, **options)  # type: ignore[arg-type]
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    items, _ = collect_inputs([photos], out)
    start = time.perf_counter()
    report = predict_files(model, items, **options)  # type: ignore[arg-type]
    elapsed = time.perf_counter() - start
    name = device_name(device)
    print(
        f"device        {device} {name}, {str(dtype).removeprefix('torch.')}, torch {torch.__version__}"
        f"{', compiled' if args.compile else ''}"
    )
    print(
        f"settings      preset {args.preset}, batch {args.batch_size}, workers {args.workers}, "
        f"writers {args.writers}, formats {','.join(formats)}"
    )
    written = len(report.written)
    print(f"written       {written} of {len(items)} images ({len(report.failures)} failed)")
    print(
        f"throughput    {written / elapsed:.2f} images/s "
        f"({elapsed / max(written, 1):.3f} s per image, {elapsed:.1f} s in all)"
    )
    if device.type == "cuda":
        print(f"peak memory   {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB allocated on the GPU")
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
