"""Peak memory of one `metricdepth predict` image, by photo size: what a 12 MP or 48 MP photo costs.

Each size runs in a fresh process: load a tiny-preset model (smooth, realistic depth ≈ 3 m, so the
point cloud keeps most pixels), warm up on a small image, note the resident memory, then predict one
synthetic JPEG of the given size and write every output format. Printed: peak resident memory (the
process's high-water mark, ``ru_maxrss``), the part above the warmed-up baseline, and that per input
pixel. The network input is 512² for `tiny` (1536² for `depth-pro`), so the per-pixel part is the
image-size-dependent cost of decoding, resizing back, the two depth maps and the writers.

    python benchmarks/predict_memory.py --megapixels 12 48
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
import numpy as np, torch
from PIL import Image
from metricdepth import DepthPro, DepthProConfig
from metricdepth.batch import InputItem, predict_files

folder = Path(sys.argv[1])
torch.manual_seed(0)
torch.set_num_threads(2)
model = DepthPro(DepthProConfig.preset("tiny")).eval()
with torch.no_grad():
    model.head[4].weight.mul_(0.1)
    model.head[4].bias.fill_(0.3)
photo = folder / "photo.jpg"
small = folder / "small.jpg"
Image.new("RGB", (64, 48), (90, 120, 150)).save(small)
predict_files(model, [InputItem(small, folder / "out" / "small")])  # warm-up: kernels, allocator
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
start = time.perf_counter()
report = predict_files(model, [InputItem(photo, folder / "out" / "photo")])
seconds = time.perf_counter() - start
assert report.ok, report.failures
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
width, height = Image.open(photo).size
print(json.dumps({"width": width, "height": height, "baseline": baseline, "peak": peak, "seconds": seconds}))
"""


def write_photo(path: Path, megapixels: float) -> None:
    """A 4:3 JPEG of ``megapixels`` with gradients and texture, written row block by row block."""
    import numpy as np
    from PIL import Image

    width = round((megapixels * 1e6 * 4 / 3) ** 0.5)
    height = round(width * 3 / 4)
    rgb = np.empty((height, width, 3), np.uint8)
    x = np.arange(width)
    for top in range(0, height, 256):
        y = np.arange(top, min(top + 256, height))[:, None]
        rgb[top : top + 256, :, 0] = x * 255 // width
        rgb[top : top + 256, :, 1] = y * 255 // height
        rgb[top : top + 256, :, 2] = ((x + y) % 97) * 2
    Image.fromarray(rgb).save(path, quality=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megapixels", type=float, nargs="+", default=[12.0, 48.0])
    args = parser.parse_args()
    print("| photo | pixels | peak RSS | above warmed-up baseline | per pixel | predict + write |")
    print("|---|---|---|---|---|---|")
    for megapixels in args.megapixels:
        with tempfile.TemporaryDirectory() as folder:
            write_photo(Path(folder) / "photo.jpg", megapixels)
            done = subprocess.run([sys.executable, "-c", CHILD, folder], capture_output=True, text=True)
            if done.returncode:
                sys.exit(done.stderr)
            row = json.loads(done.stdout.strip().splitlines()[-1])
        pixels = row["width"] * row["height"]
        above = row["peak"] - row["baseline"]
        print(
            f"| {megapixels:g} MP | {row['width']}×{row['height']} | {row['peak'] / 2**30:.2f} GiB | "
            f"{above / 2**30:.2f} GiB | {above / pixels:.1f} B | {row['seconds']:.1f} s |"
        )


if __name__ == "__main__":
    main()
