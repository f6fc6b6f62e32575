"""Depth Pro side by side with transformers' ``DepthProForDepthEstimation``: same weights, precision, input.

    python benchmarks/vs_transformers.py --preset vits --device cpu --runs 5
    python benchmarks/vs_transformers.py --preset depth-pro --device cpu --runs 2 --warmup 1 --threads 2
    python benchmarks/vs_transformers.py --preset depth-pro --device cuda --precision fp16 --runs 20

Our ``DepthPro`` is built on the meta device and materialised once with cheap random weights (speed does
not depend on them), or loaded from ``--checkpoint``; transformers' model is built from it by
``metricdepth.models.depth_pro.weights.transformers_depth_pro`` (the same weights converted to its
layout, loaded strictly, cast the same way). Both run the same (B, 3, S, S) input in [-1, 1] under
``torch.inference_mode()``, one forward each in turn (the first of each pair alternates), so that
machine noise hits both. CUDA timings synchronise before reading the clock. CUDA peak memory is
``torch.cuda.max_memory_allocated`` during each model's forwards: both models' weights are resident,
so the increase over what was allocated before the forward is printed beside it. On CPU only the
process's peak resident set (both models) is known.

The outputs are compared too: max |Δ canonical inverse depth| / max |ours| (transformers'
``predicted_depth`` is the canonical inverse depth, before any post-processing) and the FOV
difference in degrees.

The ``tiny`` preset cannot be expressed in transformers (its depth head hard-codes 32 channels where
tiny has 8); ``vits`` is the smallest preset that can. ``--preset tiny --head-features 32`` is a
seconds-long smoke run of the script.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import platform
import statistics
import sys
import time
from collections.abc import Callable

import torch
import transformers
from _machine import device_name, peak_rss_bytes
from torch import Tensor, nn

from metricdepth import DepthPro, DepthProConfig
from metricdepth.device import resolve_device, resolve_dtype
from metricdepth.models.depth_pro.weights import transformers_depth_pro

NAMES = ("metricdepth", "transformers")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="depth-pro", help="architecture (ignored with --checkpoint)")
    parser.add_argument("--checkpoint", default=None, help="weights file or Hub id (default: random weights)")
    parser.add_argument(
        "--head-features",
        type=int,
        default=None,
        help="override the preset's head_features (32 lets transformers express tiny: a quick smoke run)",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "fp16", "bf16"],
        help="both models' dtype (auto: fp16 on CUDA, fp32 on CPU)",
    )
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3, help="timed forwards per model")
    parser.add_argument("--warmup", type=int, default=1, help="untimed forwards per model first")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    args = parser.parse_args()
    if args.runs < 1 or args.warmup < 0 or args.batch < 1:
        parser.error("--runs and --batch must be at least 1, --warmup at least 0")

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        device = resolve_device(args.device)
        dtype = resolve_dtype(args.precision, device)
    except ValueError as err:
        parser.error(str(err))

    start = time.perf_counter()
    if args.checkpoint:
        ours = DepthPro.from_pretrained(args.checkpoint, device=device, precision=dtype)
    else:
        config = DepthProConfig.preset(args.preset)
        if args.head_features is not None:
            config = dataclasses.replace(
                config, head_features=args.head_features, name=f"{config.name}-head{args.head_features}"
            )
        ours = random_depth_pro(config, device, dtype)
    ours_build_s = time.perf_counter() - start
    start = time.perf_counter()
    try:
        hf = transformers_depth_pro(ours)
    except ValueError as err:
        sys.exit(f"error: {err}")
    hf_build_s = time.perf_counter() - start

    size = ours.img_size
    generator = torch.Generator().manual_seed(0)
    x = (torch.rand(args.batch, 3, size, size, generator=generator) * 2 - 1).to(device, dtype)

    def run_ours() -> tuple[Tensor, Tensor | None]:
        canonical, fov = ours(x)
        return canonical[:, 0], fov

    def run_hf() -> tuple[Tensor, Tensor | None]:
        out = hf(pixel_values=x)
        return out.predicted_depth, out.field_of_view

    forwards: dict[str, Callable[[], tuple[Tensor, Tensor | None]]] = dict(
        zip(NAMES, (run_ours, run_hf), strict=True)
    )
    times: dict[str, list[float]] = {name: [] for name in NAMES}
    peak: dict[str, int] = dict.fromkeys(NAMES, 0)
    held: dict[str, int] = dict.fromkeys(NAMES, 0)
    outputs: dict[str, tuple[Tensor, Tensor | None]] = {}
    with torch.inference_mode():
        for i in range(args.warmup + args.runs):
            for name in NAMES if i % 2 == 0 else NAMES[::-1]:
                outputs.pop(name, None)
                sync(device)
                if device.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(device)
                    before = torch.cuda.memory_allocated(device)
                t0 = time.perf_counter()
                outputs[name] = forwards[name]()
                sync(device)
                elapsed = time.perf_counter() - t0
                if i < args.warmup:
                    continue
                times[name].append(elapsed)
                if device.type == "cuda":
                    used = torch.cuda.max_memory_allocated(device)
                    if used > peak[name]:
                        peak[name], held[name] = used, before

    report(args, ours, hf, device, dtype, ours_build_s, hf_build_s, times, peak, held, outputs)


def report(
    args: argparse.Namespace,
    ours: DepthPro,
    hf: nn.Module,
    device: torch.device,
    dtype: torch.dtype,
    ours_build_s: float,
    hf_build_s: float,
    times: dict[str, list[float]],
    peak: dict[str, int],
    held: dict[str, int],
    outputs: dict[str, tuple[Tensor, Tensor | None]],
) -> None:
    params = {name: sum(p.numel() for p in m.parameters()) for name, m in zip(NAMES, (ours, hf), strict=True)}
    weights = f"checkpoint {args.checkpoint}" if args.checkpoint else "random weights"
    chunking = getattr(ours, "chunking", None)
    now = datetime.datetime.now().isoformat(sep=" ", timespec="minutes")
    print(f"metricdepth vs transformers DepthPro, {now}")
    print(
        f"preset        {ours.config.name} ({params['metricdepth'] / 1e6:.1f} M parameters, transformers "
        f"{params['transformers'] / 1e6:.1f} M), input {ours.img_size}², batch {args.batch}, {weights}"
    )
    print(
        f"device        {device} {device_name(device)}, {str(dtype).removeprefix('torch.')}, "
        f"threads {torch.get_num_threads()}"
    )
    print(
        f"versions      torch {torch.__version__}, transformers {transformers.__version__}, "
        f"python {platform.python_version()}"
    )
    print(
        f"attention     transformers {getattr(hf.config, '_attn_implementation', '?')}"
        + (f"; metricdepth chunking {chunking}" if chunking is not None else "")
    )
    print(f"build         metricdepth {ours_build_s:.1f} s, transformers (conversion) {hf_build_s:.1f} s")
    print(f"runs          {args.runs} timed per model after {args.warmup} warm-up, interleaved")
    print()
    header = f"{'model':<14}{'median':>10}{'min':>10}{'max':>10}"
    if device.type == "cuda":
        header += "   peak memory (over what was held before the forward)"
    print(header)
    for name in NAMES:
        t = times[name]
        line = f"{name:<14}{seconds(statistics.median(t)):>10}{seconds(min(t)):>10}{seconds(max(t)):>10}"
        if device.type == "cuda":
            line += f"   {peak[name] / 2**30:.2f} GiB (+{(peak[name] - held[name]) / 2**30:.2f} GiB)"
        print(line)
    if device.type != "cuda" and peak_rss_bytes() is not None:
        print(f"peak memory   {peak_rss_bytes() / 2**30:.2f} GiB process RSS (both models)")
    print()
    ratio = statistics.median(times["transformers"]) / statistics.median(times["metricdepth"])
    print(f"speed-up (transformers / metricdepth): {ratio:.2f}× (medians)")

    (ours_depth, ours_fov), (hf_depth, hf_fov) = outputs["metricdepth"], outputs["transformers"]
    ours_depth, hf_depth = ours_depth.float(), hf_depth.float()
    scale = ours_depth.abs().amax().item()
    error = (hf_depth - ours_depth).abs().amax().item() / scale if scale > 0 else float("nan")
    print(f"agreement     canonical inverse depth max |Δ| / max |ours| = {error:.2e}", end="")
    if ours_fov is not None and hf_fov is not None:
        fov_diff = (hf_fov.float() - ours_fov.float()).abs().amax().item()
        print(
            f"; FOV max |Δ| = {fov_diff:.2e}° (ours {ours_fov.float()[0].item():.3f}°, "
            f"transformers {hf_fov.float()[0].item():.3f}°)"
        )
    else:
        print("; no FOV head")


def random_depth_pro(config: DepthProConfig, device: torch.device, dtype: torch.dtype) -> DepthPro:
    """``DepthPro(config)`` with random weights, allocated once on ``device`` in ``dtype``.

    Built on the meta device (no memory, no initialisation), then materialised and filled in place:
    conv / linear weights N(0, 1/fan-in), LayerNorm scales 1, LayerScale 0.1, biases and embeddings
    N(0, 0.02²). Plausible activation scales, so that no model runs on denormals or overflows fp16.
    """
    with torch.device("meta"):
        model = DepthPro(config)
    model = model.to(dtype).to_empty(device=device)
    generator = torch.Generator(device=device).manual_seed(0)
    with torch.no_grad():
        for module in model.modules():
            for name, p in module.named_parameters(recurse=False):
                if name in ("weight", "in_proj_weight") and p.ndim >= 2:
                    fan_in = p.shape[0] if isinstance(module, nn.ConvTranspose2d) else p[0].numel()
                    p.normal_(0.0, fan_in**-0.5, generator=generator)
                elif name == "weight":
                    p.fill_(1.0)
                elif name == "gamma":
                    p.fill_(0.1)
                else:
                    p.normal_(0.0, 0.02, generator=generator)
    return model.eval()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def seconds(value: float) -> str:
    return f"{value:.3f} s" if value < 10 else f"{value:.1f} s"


if __name__ == "__main__":
    main()
