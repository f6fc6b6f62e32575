"""Forward latency and peak memory of a Depth Pro preset.

    python benchmarks/forward_latency.py --preset depth-pro --device cpu --runs 2 --warmup 1
    python benchmarks/forward_latency.py --preset depth-pro --device cuda --precision fp16 --runs 20
    python benchmarks/forward_latency.py --preset tiny --device cpu --onnx     # + ONNX Runtime beside
    python benchmarks/forward_latency.py --device cuda --precision bf16 --compile --runs 50
    python benchmarks/forward_latency.py --device cpu --chunking none           # the unbounded forward

Weights are random (speed does not depend on them). CUDA timings synchronise before reading the
clock. CPU peak memory is the process's peak resident set (weights included); CUDA peak memory is
``torch.cuda.max_memory_allocated`` during the timed runs. FLOPs are counted once by
``torch.utils.flop_counter`` on the meta device (2 per multiply-add; shapes only, no compute), and
TFLOP/s = FLOPs / median forward time.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from _machine import device_name, peak_rss_bytes

from metricdepth import DepthPro, DepthProConfig
from metricdepth.device import resolve_device, resolve_dtype, return_freed_memory
from metricdepth.models.depth_pro.chunking import Chunking, heap_return_is_free


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="depth-pro")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    parser.add_argument(
        "--compile", action="store_true", help="optimize_for_inference(compile=True) (CUDA graphs on CUDA)"
    )
    parser.add_argument(
        "--chunking",
        default="auto",
        help="auto (bounded on CPU, whole on GPU), none, or IMAGES,TILES,STRIPS (e.g. 1,7,8; 0 = no limit)",
    )
    parser.add_argument(
        "--keep-heap",
        action="store_true",
        help="CPU: keep glibc's default heap (by default, as in predict, freed memory goes back to the OS "
        "where that costs no time: the full-size model)",
    )
    parser.add_argument(
        "--channels-last", choices=("auto", "on", "off"), default="auto", help="NHWC convolution weights"
    )
    parser.add_argument(
        "--onnx",
        action="store_true",
        help="also export the model to ONNX (fp32) and time ONNX Runtime's CPU provider on the same input",
    )
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    dtype = resolve_dtype(args.precision, device)
    start = time.perf_counter()
    with torch.device(device):
        model = DepthPro(DepthProConfig.preset(args.preset))
    model = model.to(dtype).eval()
    build_s = time.perf_counter() - start
    model.chunking = parse_chunking(args.chunking)
    if device.type == "cpu" and not args.keep_heap and heap_return_is_free(model):
        return_freed_memory()  # as predict does
    channels_last = {"auto": None, "on": True, "off": False}[args.channels_last]
    forward = model.optimize_for_inference(compile=args.compile, channels_last=channels_last)
    x = torch.zeros(args.batch, 3, model.img_size, model.img_size, device=device, dtype=dtype)
    flops = count_flops(args.preset, args.batch)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        elif device.type == "mps":
            torch.mps.synchronize()

    with torch.inference_mode():
        for _ in range(args.warmup):
            forward(x)
        sync()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        times = []
        for _ in range(args.runs):
            sync()
            t0 = time.perf_counter()
            forward(x)
            sync()
            times.append(time.perf_counter() - t0)

    params = sum(p.numel() for p in model.parameters())
    print(
        f"preset        {args.preset} ({params / 1e6:.1f} M parameters, "
        f"input {model.img_size}², batch {args.batch})"
    )
    name = device_name(device)
    print(
        f"device        {device} {name}"
        f", {str(dtype).removeprefix('torch.')}, torch {torch.__version__}, threads {torch.get_num_threads()}"
        f"{', compiled' if args.compile else ''}"
    )
    chunking = Chunking.auto(device) if model.chunking == "auto" else model.chunking
    returned = device.type == "cpu" and not args.keep_heap and heap_return_is_free(model)
    heap = "freed memory returned" if returned else "kept (glibc default)"
    print(f"chunking      {chunking}; heap {heap}")
    print(f"build         {build_s:.1f} s")
    median = statistics.median(times)
    quartiles = statistics.quantiles(times, n=4) if len(times) > 1 else [median, median, median]
    print(
        f"forward       median {median:.4f} s, min {min(times):.4f} s, max {max(times):.4f} s, "
        f"IQR {quartiles[0]:.4f}-{quartiles[2]:.4f} s over {args.runs} runs ({args.warmup} warm-up)"
    )
    print(f"compute       {flops / 1e12:.4g} TFLOP per forward, {flops / median / 1e12:.4g} TFLOP/s achieved")
    if device.type == "cuda":
        print(f"peak memory   {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB allocated on the GPU")
    elif peak_rss_bytes() is not None:
        print(f"peak memory   {peak_rss_bytes() / 2**30:.2f} GiB process RSS")
    if args.onnx:
        onnx_latency(model.float().cpu(), x.float().cpu(), args)


def onnx_latency(model: DepthPro, x: torch.Tensor, args: argparse.Namespace) -> None:
    """Export to a temporary ONNX file and time ONNX Runtime (CPU provider) on ``x``."""
    import tempfile
    from pathlib import Path

    import onnxruntime

    from metricdepth.export import export_model

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.onnx"
        start = time.perf_counter()
        export_model(model, path, "onnx", check=False)
        export_s = time.perf_counter() - start
        options = onnxruntime.SessionOptions()
        if args.threads:
            options.intra_op_num_threads = args.threads
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        feed = {"image": x.numpy()}
        for _ in range(args.warmup):
            session.run(None, feed)
        times = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            session.run(None, feed)
            times.append(time.perf_counter() - t0)
    print(f"onnx export   {export_s:.1f} s (onnxruntime {onnxruntime.__version__}, CPUExecutionProvider)")
    print(
        f"onnxruntime   median {statistics.median(times):.3f} s, min {min(times):.3f} s over {args.runs} runs"
        f" ({args.warmup} warm-up)"
    )


def parse_chunking(text: str) -> Chunking | str:
    """``auto``, ``none`` or ``IMAGES,TILES,STRIPS`` (0 = no limit) → a :class:`Chunking` setting."""
    if text == "auto":
        return "auto"
    if text == "none":
        return Chunking()
    images, tiles, strips = (int(v) or None for v in text.split(","))
    return Chunking(images=images, tiles=tiles, strips=strips)


def count_flops(preset: str, batch: int) -> int:
    """FLOPs of one forward (whole-image evaluation) counted on the meta device."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = DepthPro(DepthProConfig.preset(preset)).eval()
        x = torch.zeros(batch, 3, model.img_size, model.img_size)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return counter.get_total_flops()


if __name__ == "__main__":
    main()
