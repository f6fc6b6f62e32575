"""Speed of the vectorised boundary metrics vs a loop-based implementation, Middlebury Motorcycle (500×741).

    python benchmarks/boundary_speed.py

The loop version (tests/boundary_loops.py) walks above-threshold pixels in Python, as Apple's
reference does; Apple's own code takes 2–5 s for one mask-recall call on 2 cores (issue #3).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from boundary_loops import boundary_f1_loops, boundary_recall_loops  # noqa: E402
from metricdepth.metrics import boundary_f1, boundary_recall  # noqa: E402


def timed(fn, *args, runs: int) -> tuple[float, float]:
    times, value = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        value = fn(*args)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), value


def main() -> None:
    data = np.load(ROOT / "tests" / "data" / "boundary_public.npz")
    cases = {
        "F1 (moto_blur2)": (
            boundary_f1,
            boundary_f1_loops,
            data["moto_blur2__pred"],
            data["moto_blur2__target"],
        ),
        "mask recall (moto_mask_recall_blur)": (
            boundary_recall,
            boundary_recall_loops,
            data["moto_mask_recall_blur__pred"],
            data["moto_mask_recall_blur__target"],
        ),
        "mask recall (moto_mask_recall_gt)": (
            boundary_recall,
            boundary_recall_loops,
            data["moto_mask_recall_gt__pred"],
            data["moto_mask_recall_gt__target"],
        ),
        "mask recall (GT x 10% noise)": (
            boundary_recall,
            boundary_recall_loops,
            (
                data["moto_mask_recall_gt__pred"] * np.random.default_rng(0).uniform(0.9, 1.1, (500, 741))
            ).astype(np.float32),
            data["moto_mask_recall_gt__target"],
        ),
    }
    for name, (fast, slow, pred, target) in cases.items():
        fast_s, fast_value = timed(fast, pred, target, runs=10)
        slow_s, slow_value = timed(slow, pred, target, runs=2)
        print(
            f"{name:38s} {pred.shape[1]}x{pred.shape[0]}: vectorised {fast_s * 1000:7.1f} ms, "
            f"loops {slow_s * 1000:8.1f} ms, speed-up {slow_s / fast_s:5.1f}x, "
            f"|difference| {abs(fast_value - slow_value):.1e}"
        )


if __name__ == "__main__":
    main()
