"""Throughput of the synthetic scene generator: samples per second at a given size.

Measures what training sees: a torch DataLoader with one rendering worker per core (each set up by
``metricdepth.data.synthetic.worker_init``: one torch thread, allocator tuned) delivering batches
stacked by ``collate_samples``. Also prints one process rendering alone (all torch threads) and the
time of one sample per family.

    python benchmarks/synthetic_throughput.py --size 384 --count 400 --workers 2 --batch-size 8
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch
from torch.utils.data import DataLoader

from metricdepth.data.synthetic import FAMILIES, SyntheticScenes, collate_samples, worker_init


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--count", type=int, default=400, help="samples through the DataLoader")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--shadows", action="store_true")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}")
    families = ", ".join(FAMILIES)
    print(f"size {args.size}x{args.size}, families {families}, shadows {args.shadows}, device {args.device}")
    dataset = SyntheticScenes(args.size, seed=0, length=args.count, device=args.device, shadows=args.shadows)
    dataset[0]  # warm-up (imports, allocator)

    for family in FAMILIES:
        single = SyntheticScenes(args.size, (family,), seed=1, device=args.device, shadows=args.shadows)
        start = time.perf_counter()
        for index in range(10):
            single[index]
        print(f"  {family:9s} {1000 * (time.perf_counter() - start) / 10:7.1f} ms/sample (one process)")
    start = time.perf_counter()
    for index in range(30):
        dataset[index]
    print(
        f"one process, {torch.get_num_threads()} threads: {30 / (time.perf_counter() - start):6.1f} samples/s"
    )

    if args.workers > 0 and args.device == "cpu":
        loader = DataLoader(
            dataset,
            batch_size=args.batch_size,
            num_workers=args.workers,
            worker_init_fn=worker_init,
            collate_fn=collate_samples,
        )
        iterator = iter(loader)
        next(iterator)  # start the workers before timing
        start = time.perf_counter()
        seen = sum(len(batch["name"]) for batch in iterator)
        elapsed = time.perf_counter() - start
        print(
            f"DataLoader, {args.workers} workers, batches of {args.batch_size}: "
            f"{seen / elapsed:6.1f} samples/s ({seen} samples in {elapsed:.1f} s)"
        )


if __name__ == "__main__":
    main()
