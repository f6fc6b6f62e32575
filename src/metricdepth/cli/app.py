"""``metricdepth`` commands (typer). Heavy imports happen inside commands, so ``--help`` loads no torch.

Every path and value printed goes through rich as plain text (never markup), so names such as
``foo[/bar].png`` print as they are. Usage errors (bad options, unusable output locations) exit with 2
before any model work; failed inputs are listed at the end and exit with 1.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.text import Text

app = typer.Typer(
    name="metricdepth",
    help="Metric depth (metres) from single photographs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True, soft_wrap=True, highlight=False)

F_PX_RANGE = (1.0, 1e7)
"""Accepted --f-px, pixels: beyond it the metric scale degenerates (FOV ~180° or ~0°)."""
BENCHMARK_NAMES = (
    "middlebury booster eth3d nuscenes sintel sunrgbd spring ibims diode diode-indoor diode-outdoor "
    "nyu nyu-bts kitti void dis5k am2k p3m10k masks focal folder"
)


def say(*parts: str | tuple[str, str], console: Console = console) -> None:
    """Print plain text; ``(text, style)`` parts are styled. Nothing is parsed as rich markup."""
    console.print(Text.assemble(*parts))


def _fail(message: str) -> NoReturn:
    say(("error:", "red"), " ", message)
    raise typer.Exit(2)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"metricdepth {version('metricdepth')}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool | None, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = None,
) -> None:
    """Metric depth (metres) from single photographs."""


def _writable_dir(path: Path, option: str, subject: str | None = None) -> None:
    """Usage error unless ``path`` is a folder we can write into, or one we could create.

    Nothing is created here: a folder that does not exist yet is made when the first file is written.
    ``subject`` names what the messages are about (default: ``option path``).
    """
    what = subject or f"{option} {path}"
    if path.exists() and not path.is_dir():
        _fail(f"{what}: {path} exists and is not a folder")
    existing = path
    while not existing.exists():
        if existing.is_symlink() or existing.parent == existing:
            _fail(f"{what}: {path} cannot be created (a broken link or a missing drive on the way)")
        existing = existing.parent
    if not existing.is_dir():
        _fail(f"{what}: {path} cannot be created, {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        _fail(f"{what}: no permission to write in {existing} (or it is on a read-only file system)")
    if existing == path:  # access() can be wrong (e.g. network file systems): try it
        probe = path / f".metricdepth-write-test.{os.getpid()}"
        try:
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as err:
            _fail(f"{what}: cannot write in {path} ({err.strerror or err})")


def _writable_file(path: Path, option: str) -> None:
    """Usage error unless ``path`` can be written as a file (not a folder, its folder writable)."""
    if path.is_dir():
        _fail(f"{option} {path}: is a folder; give a file name")
    _writable_dir(path.parent, option, subject=f"{option} {path}")


@contextlib.contextmanager
def _signals_as_exit() -> Iterator[None]:
    """SIGTERM (and SIGHUP) raise SystemExit, so partial outputs are cleaned up like on Ctrl-C."""

    def handler(signum, frame) -> None:
        raise SystemExit(128 + signum)

    names = ("SIGTERM", "SIGHUP")
    previous = {}
    for name in names:
        if hasattr(signal, name):
            with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
                previous[name] = signal.signal(getattr(signal, name), handler)
    try:
        yield
    finally:
        for name, old in previous.items():
            signal.signal(getattr(signal, name), old)


def _progress():
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.text import Text

    class RateColumn(ProgressColumn):
        """Images per second (or seconds per image when slower than one a second)."""

        def render(self, task) -> Text:
            speed = task.finished_speed or task.speed
            if not speed:
                return Text("")
            return Text(f"{speed:.2f} images/s" if speed >= 1 else f"{1 / speed:.1f} s/image")

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        RateColumn(),
        console=console,
    )


def _load_model(
    checkpoint: str, device: str, precision: str = "auto", *, inference: bool = False, compile: bool = False
):
    """The weights (usage error if unreadable); ``inference``: set up as predict runs them
    (:meth:`DepthPro.for_inference`)."""
    from ..models.depth_pro import CheckpointError, DepthPro

    say("loading ", checkpoint)
    try:
        if inference:
            model = DepthPro.for_inference(checkpoint, device, precision, compile=compile)
        else:
            model = DepthPro.from_pretrained(checkpoint, device=device, precision=precision)
    except (CheckpointError, ValueError) as err:
        _fail(str(err))
    say(
        f"model: {checkpoint} ({model.config.name}) on {model.device}, "
        f"{str(model.dtype).removeprefix('torch.')}"
    )
    return model


def _open_benchmarks(specs: list[str], **overrides):
    from ..evaluation import open_benchmark

    sets = []
    for spec in specs:
        try:
            sets.append(open_benchmark(spec, **overrides))
        except Exception as err:  # missing folder, unknown name or option: usage errors
            _fail(str(err))
    labels = [s.label for s in sets]
    if len(set(labels)) != len(labels):
        _fail(f"each dataset name may be given once, got {', '.join(labels)}")
    return sets


RelativeOption = Annotated[
    str | None,
    typer.Option(
        "--relative",
        help="A relative depth model: a Depth Pro / relative checkpoint, hf:ID (Depth Anything, DPT, MiDaS), "
        "a folder. Alone: relative depth; with --rsa: RSA's input.",
    ),
]
RSAOption = Annotated[
    str | None, typer.Option("--rsa", help="RSA head: an official RSA checkpoint or an rsa.safetensors.")
]
CaptionOption = Annotated[
    str | None,
    typer.Option(help="With --rsa: the caption of every image, or 'auto' (offline COCO detector)."),
]
CaptionsDirOption = Annotated[
    Path | None,
    typer.Option(
        help="With --rsa: caption files, the first line of each: DIR/REL.txt mirroring an input image's path "
        "below its folder (DIR/STEM.txt for single files), DIR/SAMPLE.txt for -d samples."
    ),
]
TextEncoderOption = Annotated[
    str | None,
    typer.Option(
        help="With --rsa: minilm, clip-rn50[=FILE], an HF / sentence-transformers id (default: the head's)."
    ),
]
DepthRangeOption = Annotated[
    str | None, typer.Option(help="With --rsa: MIN,MAX metres the depth is clamped to (default 0.001,10000).")
]
CaptionThresholdOption = Annotated[
    float, typer.Option(help="With --caption auto: the detector's score threshold.")
]
_NO_CAMERA_FORMATS = {"relative": ("depth16", "ply"), "rsa": ("ply",)}  # "": Depth Pro
"""Default formats left out per mode: relative depth has no metres, RSA no camera (ply needs --f-px)."""


def _parse_depth_range(text: str | None) -> tuple[float, float]:
    if text is None:
        return 1e-3, 1e4
    try:
        low, high = (float(v) for v in text.split(","))
    except ValueError:
        _fail(f"--depth-range {text!r}: expected MIN,MAX in metres, e.g. 0.2,10")
    if not (math.isfinite(low) and math.isfinite(high) and 0 < low < high):
        _fail(f"--depth-range {text!r}: need 0 < MIN < MAX")
    return low, high


def _check_rsa_options(relative, rsa, caption, captions_dir, text_encoder, depth_range) -> str | None:
    """The mode the RSA options ask for ("rsa", "relative" or None); usage errors exit with 2."""
    rsa_only = {"--caption": caption, "--captions-dir": captions_dir, "--text-encoder": text_encoder}
    rsa_only["--depth-range"] = depth_range
    if rsa is None:
        given = [name for name, value in rsa_only.items() if value is not None]
        if given:
            _fail(f"{', '.join(given)} only apply with --rsa CKPT")
        return "relative" if relative is not None else None
    if relative is None:
        _fail("--rsa needs the relative depth model it scales: --relative MODEL")
    if caption is not None and captions_dir is not None:
        _fail("give --caption or --captions-dir, not both")
    if captions_dir is not None and not captions_dir.is_dir():
        _fail(f"--captions-dir {captions_dir}: not a folder")
    _parse_depth_range(depth_range)
    return "rsa"


def _rsa_source(relative, rsa, caption, captions_dir, text_encoder, depth_range, threshold, device, output):
    """(depth source, per-item infer options, record fields) of --relative [--rsa]."""
    from ..models.depth_pro.weights import CheckpointError
    from ..models.relative import load_relative

    say("loading ", relative)
    try:
        relative_model = load_relative(relative, device=device)
    except (ValueError, FileNotFoundError, OSError) as err:
        _fail(str(err))
    if rsa is None:
        return relative_model, None, {"relative": relative_model.name}
    from ..rsa.baselines import load_scale_model
    from ..rsa.captions import caption_file_for, read_caption_file
    from ..rsa.detector import AutoCaptioner
    from ..rsa.pipeline import RSAPipeline

    low, high = _parse_depth_range(depth_range)
    try:
        head = load_scale_model(rsa)
        captioner = AutoCaptioner(score_threshold=threshold) if caption == "auto" else None
        pipeline = RSAPipeline(
            relative_model,
            text_encoder,
            head,
            min_depth=low,
            max_depth=high,
            captioner=captioner,
            device=device,
        )
    except (CheckpointError, ValueError, RuntimeError, OSError) as err:
        _fail(f"--rsa {rsa}: {err}")
    if pipeline.conditioning == "text" and caption is None and captions_dir is None:
        _fail("RSA needs a caption: --caption 'An image with ...', --caption auto, or --captions-dir DIR")
    say(
        f"RSA: {rsa} ({head.layout}) on {relative_model.name}",
        f", text encoder {pipeline.text_encoder.name}" if pipeline.text_encoder else "",
    )

    def options(item, info) -> dict:
        if pipeline.conditioning == "image":
            return {}
        if captions_dir is None:
            return {"caption": caption}
        path = captions_dir / f"{info['sample']}.txt" if "sample" in info else None
        if path is None:  # the caption file mirrors the image's place under the inputs, as its outputs do
            try:
                relative_stem = item.out_stem.relative_to(output)
            except ValueError:
                relative_stem = Path(item.out_stem.name)
            # the input's own name (outputs of same-stem inputs are renamed, e.g. photo_jpg)
            relative_stem = relative_stem.parent / Path(info["input"]).stem
            path = captions_dir / f"{relative_stem}.txt"
            if not path.is_file() and relative_stem.parent != Path("."):
                path = caption_file_for(info["input"], captions_dir)  # flat folder: DIR/STEM.txt
        return {"caption": read_caption_file(path)[0]}

    extra = {"rsa": rsa, **pipeline.describe()}
    if caption == "auto":
        extra["caption_threshold"] = threshold
    return pipeline, options, extra


@app.command()
def predict(
    inputs: Annotated[
        list[str] | None,
        typer.Argument(
            help="Image or video files, folders (searched recursively), glob patterns, file lists (.txt: "
            "a path per line) or Parquet manifests (.parquet: a path column)."
        ),
    ] = None,
    dataset: Annotated[
        list[str],
        typer.Option(
            "--dataset",
            "-d",
            help="NAME=PATH[,KEY=VALUE...]: predict exactly the samples a benchmark reader yields, each "
            f"stored under its sample name (for evaluate --predictions). NAME: {BENCHMARK_NAMES}.",
        ),
    ] = [],  # noqa: B006 - typer reads the default, never mutates it
    output: Annotated[Path, typer.Option("--output", "-o", help="Output folder.")] = Path(
        "metricdepth_output"
    ),
    checkpoint: Annotated[
        str, typer.Option("--checkpoint", "-c", help="Hub repo id or local .pt / .safetensors file.")
    ] = "apple/DepthPro",
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:1, mps.")] = "auto",
    precision: Annotated[
        str, typer.Option(help="auto (fp16 on GPU, fp32 on CPU), fp32, fp16, bf16.")
    ] = "auto",
    f_px: Annotated[
        float | None,
        typer.Option("--f-px", help="Focal length in pixels for every image (overrides --focal auto)."),
    ] = None,
    focal: Annotated[
        str,
        typer.Option(
            help="auto (--f-px, then EXIF, then the FOV head), exif (EXIF only), predicted (FOV head)."
        ),
    ] = "auto",
    formats: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated outputs: npz, depth16, color, ply, json (default: all; --relative: npz, "
            "color, json; --rsa: no ply unless --f-px)."
        ),
    ] = None,
    max_depth: Annotated[
        float | None,
        typer.Option("--max-depth", help="Metres; farther pixels are left out of the PNG and the PLY."),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace existing files that metricdepth did not write.")
    ] = False,
    skip_existing: Annotated[
        bool,
        typer.Option("--skip-existing", help="Skip images whose outputs metricdepth already wrote (resume)."),
    ] = False,
    relative: RelativeOption = None,
    rsa: RSAOption = None,
    caption: CaptionOption = None,
    captions_dir: CaptionsDirOption = None,
    text_encoder: TextEncoderOption = None,
    depth_range: DepthRangeOption = None,
    caption_threshold: CaptionThresholdOption = 0.5,
    batch_size: Annotated[
        int,
        typer.Option(
            "--batch-size", "-b", min=1, help="Images per forward pass (any sizes; all become 1536² inside)."
        ),
    ] = 1,
    workers: Annotated[
        int | None,
        typer.Option(
            min=0, help="Processes reading and resizing images (default: 0 on CPU, up to 8 on a GPU)."
        ),
    ] = None,
    writers: Annotated[int, typer.Option(min=0, help="Threads writing outputs (0: write in turn).")] = 2,
    use_ray: Annotated[
        bool,
        typer.Option(
            "--ray",
            help="Run on Ray Data actors (pip install 'metricdepth\\[ray]'); results manifest in "
            "OUT/manifest.parquet.",
        ),
    ] = False,
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address",
            metavar="ADDR",
            help="With --ray: the Ray cluster to join (auto, ray://head:10001, ...; default: a local "
            "instance on 127.0.0.1).",
        ),
    ] = None,
    num_actors: Annotated[
        int | None,
        typer.Option(
            "--num-actors", min=1, help="With --ray: actors (default: one per GPU of the cluster, else 1)."
        ),
    ] = None,
    compile_model: Annotated[
        bool,
        typer.Option(
            "--compile",
            help="torch.compile the network (on CUDA with CUDA graphs; batches padded to --batch-size).",
        ),
    ] = False,
    smooth_scale: Annotated[
        int,
        typer.Option(
            "--smooth-scale",
            min=0,
            help="Videos: smooth the metric scale over a centred window of N frames (odd; 0: off): each "
            "frame's median depth follows the moving median of the per-frame medians.",
        ),
    ] = 0,
) -> None:
    """Predict metric depth, focal length and a point cloud for each image (or benchmark sample).

    Videos (.mp4, .mov, .mkv, .webm, .avi, ...) get a depth video with one colour range, all frames'
    depth in one npz, one focal length for the clip and a sidecar JSON (metricdepth.video).

    With --rsa CKPT --relative MODEL: RSA's metric depth from a relative model and a caption
    (--caption TEXT, --caption auto, or --captions-dir). With --relative alone: relative depth."""
    from ..inference import FOCAL_POLICIES
    from ..io.writers import FORMATS

    rsa_mode = _check_rsa_options(relative, rsa, caption, captions_dir, text_encoder, depth_range)
    if caption_threshold != 0.5 and caption != "auto":
        _fail("--caption-threshold applies to --caption auto")
    if formats is None:
        skipped = _NO_CAMERA_FORMATS.get(rsa_mode or "", ())
        chosen = [f for f in FORMATS if f not in skipped or (f == "ply" and f_px and rsa_mode == "rsa")]
    else:
        chosen = [f.strip() for f in formats.split(",") if f.strip()]
    unknown = sorted(set(chosen) - set(FORMATS))
    if unknown or not chosen:
        _fail(f"--formats: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(FORMATS)}")
    if rsa_mode == "relative" and {"depth16", "ply"} & set(chosen):
        _fail("--relative alone predicts relative depth (no metres): depth16 and ply need --rsa CKPT as well")
    if f_px is not None and not (math.isfinite(f_px) and F_PX_RANGE[0] <= f_px <= F_PX_RANGE[1]):
        _fail(
            f"--f-px must be a focal length between {F_PX_RANGE[0]:g} and {F_PX_RANGE[1]:g} pixels, "
            f"got {f_px:g}"
        )
    if focal not in FOCAL_POLICIES:
        _fail(f"--focal: unknown {focal!r}; choose from {', '.join(FOCAL_POLICIES)}")
    if f_px is not None and focal != "auto":
        _fail(f"--f-px gives the focal length itself; it cannot be combined with --focal {focal}")
    if max_depth is not None and not (math.isfinite(max_depth) and max_depth > 0):
        _fail("--max-depth must be a positive number of metres")
    if overwrite and skip_existing:
        _fail("give at most one of --overwrite and --skip-existing")
    if not inputs and not dataset:
        _fail("give image files, folders or patterns, or --dataset NAME=PATH")
    from ..distributed.ray_data import ray_option_problem

    ray_problem = ray_option_problem(
        use_ray=use_ray,
        address=ray_address,
        num_actors=num_actors,
        relative_source=rsa_mode is not None,
        datasets=dataset,
        device=device,
    )
    if ray_problem is not None:
        _fail(ray_problem)
    _writable_dir(output, "--output")

    from ..batch import all_finished, collect_inputs, dataset_items, predict_files, report_message

    items, missing = collect_inputs(inputs or [], output)
    for eval_set, spec in zip(_open_benchmarks(dataset), dataset, strict=True):
        items += dataset_items(eval_set.dataset, output, spec)
    failures = list(missing)
    if not items:
        for _, message in failures:
            say(("error", "red"), " ", message)
        _fail("no images to process")
    from ..video import clips_finished, is_clip_item  # video files go to the clip pipeline

    if smooth_scale > 1 and smooth_scale % 2 == 0:
        _fail(f"--smooth-scale must be 0 (off) or an odd number of frames, got {smooth_scale}")
    clips = [item for item in items if is_clip_item(item)]
    images = [item for item in items if not is_clip_item(item)]
    if skip_existing and all_finished(images, chosen) and clips_finished(clips, chosen):  # no weights needed
        say(
            f"0 of {len(items) + len(missing)} inputs written to ",
            str(output),
            f", {len(items)} skipped (already done)",
        )
        for _, message in failures:
            say("  ", message)
        raise typer.Exit(1 if failures else 0)
    if use_ray:  # Ray Data actors (metricdepth.distributed.ray_data); also writes OUT/manifest.parquet
        from ..distributed.ray_data import RaySetupError, run_cli

        try:
            with _signals_as_exit():  # SIGTERM: the partial manifest is removed, Ray shut down
                ray_code = run_cli(
                    items,
                    missing,
                    output,
                    say=say,
                    progress=_progress,
                    checkpoint=checkpoint,
                    device=device,
                    precision=precision,
                    formats=chosen,
                    f_px=f_px,
                    focal=focal,
                    max_depth=max_depth,
                    overwrite=overwrite,
                    skip_existing=skip_existing,
                    batch_size=batch_size,
                    workers=workers,
                    writers=writers,
                    compile_model=compile_model,
                    address=ray_address,
                    num_actors=num_actors,
                )
        except RaySetupError as err:
            _fail(str(err))
        raise typer.Exit(ray_code)
    from ..distributed.sharding import RankShard

    try:  # under torchrun: this rank's disjoint share of the items, on cuda:LOCAL_RANK or the CPU
        shard = RankShard.join(device)
    except ValueError as err:
        _fail(str(err))
    if shard is not None:
        all_items, device = items, str(shard.device)
        items = shard.select(items, chosen)
        clips = [item for item in items if is_clip_item(item)]
        images = [item for item in items if not is_clip_item(item)]
    infer_options = None
    if rsa_mode is None:
        model = _load_model(checkpoint, device, precision, inference=True, compile=compile_model)
        extra = {"checkpoint": checkpoint, "model": model.config.name, "focal_policy": focal}
        on_gpu = model.device.type != "cpu"
    else:
        if compile_model:
            _fail("--compile applies to Depth Pro checkpoints, not to --relative / --rsa sources")
        model, infer_options, extra = _rsa_source(
            relative, rsa, caption, captions_dir, text_encoder, depth_range, caption_threshold, device, output
        )
        on_gpu = False
    if workers is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        workers = min(8, cpus) if on_gpu else 0
    with _progress() as progress, _signals_as_exit():
        task = progress.add_task("predicting", total=len(items))

        def on_done(item, error) -> None:
            if error is not None:
                say(("failed", "red"), " ", report_message(error, item.label), console=progress.console)
            progress.advance(task)

        report = predict_files(
            model,
            images,
            formats=chosen,
            f_px=f_px,
            focal=focal,
            max_depth=max_depth,
            extra=extra,
            overwrite=overwrite,
            skip_existing=skip_existing,
            on_done=on_done,
            infer_options=infer_options,
            batch_size=batch_size,
            workers=workers,
            writers=writers,
            pad_batches=compile_model and on_gpu,  # one shape for CUDA graphs; CPU runs images one by one
        )
        if clips:  # videos: metricdepth.video.predict_clips; their results join the report
            _predict_clips(
                model,
                clips,
                images,
                report,
                progress,
                on_done,
                formats=chosen,
                f_px=f_px,
                focal=focal,
                smooth_scale=smooth_scale,
                extra=extra,
                overwrite=overwrite,
                skip_existing=skip_existing,
                infer_options=infer_options,
                batch_size=batch_size,
                workers=workers,
                writers=writers,
                pad_batches=compile_model and on_gpu,
            )

    if shard is not None:  # torchrun: every rank's report, in item order; rank 0 prints the summary and
        report, items = shard.merge(report), all_items  # exits 1 on any failure (torchrun then stops
        if not shard.is_main:  # the others: they are done)
            raise typer.Exit(0)
    for path in report.cleaned:
        say("removed ", str(path), " (left by an interrupted run)")
    failures += report.failures
    skipped = f", {len(report.skipped)} skipped (already done)" if report.skipped else ""
    say(f"{len(report.written)} of {len(items) + len(missing)} inputs written to ", str(output), skipped)
    if failures:
        say((f"{len(failures)} failed:", "red"))
        for _, message in failures:
            say("  ", message)
        raise typer.Exit(1)


def _predict_clips(model, clips, images, report, progress, on_done, **options) -> None:
    """predict's video inputs through metricdepth.video.predict_clips (``options``: its keywords), with a
    progress bar of frames per clip; their results are added to the images' ``report``."""
    from ..video import predict_clips

    tasks: dict[str, int] = {}

    def on_frame(item, done: int, total: int) -> None:
        if item.label not in tasks:
            tasks[item.label] = progress.add_task(f"  {Path(item.label).name}", total=total)
        progress.update(tasks[item.label], completed=done)

    clip_report = predict_clips(
        model,
        clips,
        protected=[item.path for item in images if hasattr(item, "path")],
        on_frame=on_frame,
        on_done=on_done,
        **options,
    )
    report.written.update(clip_report.written)
    report.skipped.extend(clip_report.skipped)
    report.failures.extend(clip_report.failures)
    report.cleaned.extend(clip_report.cleaned)


@app.command()
def evaluate(
    dataset: Annotated[
        list[str],
        typer.Option(
            "--dataset",
            "-d",
            help="NAME=PATH[,KEY=VALUE...], e.g. kitti=raw/,depth_root=gt/,split_file=eigen.txt. "
            f"NAME: {BENCHMARK_NAMES}. Repeatable.",
        ),
    ],
    predictions: Annotated[
        Path | None,
        typer.Option(
            help="Folder of saved predictions (NAME.npz per sample, from predict -d or --save-predictions)."
        ),
    ] = None,
    checkpoint: Annotated[
        str | None, typer.Option("--checkpoint", "-c", help="Depth Pro weights to run instead.")
    ] = None,
    save_predictions: Annotated[
        Path | None,
        typer.Option(
            "--save-predictions",
            help="With --checkpoint: also store each prediction as DIR/NAME.npz (those of a --global-fit "
            "split in DIR/global-fit).",
        ),
    ] = None,
    use_exif: Annotated[
        bool,
        typer.Option(
            "--use-exif", help="Scale depth with EXIF focal lengths where images carry one (not zero-shot)."
        ),
    ] = False,
    alignment: Annotated[
        list[str],
        typer.Option(
            "--alignment",
            "-a",
            help="none, median, lstsq-scale, lstsq-depth, lstsq-disparity, global-depth, global-disparity.",
        ),
    ] = ["none"],  # noqa: B006 - typer reads the default, never mutates it
    global_fit: Annotated[
        list[str],
        typer.Option(
            "--global-fit",
            help="NAME=PATH[,...]: the split the global-* alignments are fitted on, for the --dataset "
            "of the same NAME. Repeatable.",
        ),
    ] = [],  # noqa: B006
    fit_predictions: Annotated[
        Path | None,
        typer.Option(help="Saved predictions of the --global-fit splits (default: --predictions)."),
    ] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder for the result tables.")] = Path(
        "metricdepth_eval"
    ),
    min_depth: Annotated[float | None, typer.Option("--min-depth", help="Metres; overrides presets.")] = None,
    max_depth: Annotated[float | None, typer.Option("--max-depth", help="Metres; overrides presets.")] = None,
    crop: Annotated[
        str | None,
        typer.Option(help="nyu_eigen, kitti_garg, kitti_eigen or none; overrides presets."),
    ] = None,
    boundary_f1: Annotated[
        bool | None,
        typer.Option("--boundary-f1/--no-boundary-f1", help="Score boundary F1 (default: dense-GT sets)."),
    ] = None,
    device: Annotated[str, typer.Option(help="For --checkpoint: auto, cpu, cuda, mps.")] = "auto",
    relative: RelativeOption = None,
    rsa: Annotated[
        list[str],
        typer.Option(
            "--rsa",
            help="RSA head(s) to evaluate on --relative (LABEL=CKPT or CKPT; repeatable; an Image baseline's "
            "file works too).",
        ),
    ] = [],  # noqa: B006
    baselines: Annotated[
        bool,
        typer.Option(
            "--baselines",
            help="With --relative: RSA's comparison table, Median, Linear Fit, Global (with --global-fit) "
            "and each --rsa head, one row per method.",
        ),
    ] = False,
    caption: Annotated[
        str,
        typer.Option(help="With --rsa: 'sample' (each sample's own caption), 'auto' (detector) or a text."),
    ] = "sample",
    caption_kind: Annotated[
        str, typer.Option(help="With --rsa and sample captions: all, structured, free or none.")
    ] = "all",
    captions_dir: CaptionsDirOption = None,
    text_encoder: TextEncoderOption = None,
    depth_range: DepthRangeOption = None,
    caption_threshold: CaptionThresholdOption = 0.5,
) -> None:
    """Evaluate predictions or a model on benchmarks; writes results.{md,csv,json} and per_image.csv.

    Depth sources: --predictions, --checkpoint (Depth Pro), --relative MODEL (score it with -a median,
    lstsq-disparity, global-disparity), --relative MODEL --rsa CKPT (RSA), and --baselines for RSA's
    whole comparison table."""
    from rich.progress import Progress

    if relative is not None:
        if predictions is not None or checkpoint is not None:
            _fail("--relative replaces --predictions / --checkpoint: give one depth source")
        _evaluate_rsa(
            dataset,
            relative,
            rsa,
            baselines,
            alignment,
            global_fit,
            caption,
            caption_kind,
            captions_dir,
            text_encoder,
            depth_range,
            output,
            device,
            min_depth,
            max_depth,
            crop,
            boundary_f1,
            caption_threshold,
        )
        return
    rsa_options = {
        "--rsa": bool(rsa),
        "--baselines": baselines,
        "--caption": caption != "sample",
        "--caption-kind": caption_kind != "all",
        "--captions-dir": captions_dir is not None,
        "--text-encoder": text_encoder is not None,
        "--depth-range": depth_range is not None,
        "--caption-threshold": caption_threshold != 0.5,
    }
    given = [name for name, used in rsa_options.items() if used]
    if given:
        _fail(f"{', '.join(given)} evaluate a relative model (RSA): add --relative MODEL")
    if (predictions is None) == (checkpoint is None):
        _fail("give exactly one of --predictions and --checkpoint (or --relative MODEL)")
    if save_predictions is not None and checkpoint is None:
        _fail("--save-predictions needs --checkpoint (the predictions are what the model predicts)")
    for name, value in (("--min-depth", min_depth), ("--max-depth", max_depth)):
        if value is not None and not (math.isfinite(value) and value >= 0):
            _fail(f"{name} must be a non-negative number of metres, got {value:g}")
    if min_depth is not None and max_depth is not None and min_depth >= max_depth:
        _fail(f"--min-depth {min_depth:g} must be below --max-depth {max_depth:g}")
    _writable_dir(output, "--output")
    if save_predictions is not None:
        _writable_dir(save_predictions, "--save-predictions")

    from ..evaluation import ModelPredictor, PredictionFolder, write_tables
    from ..evaluation import evaluate as run_evaluation

    overrides = {"min_depth": min_depth, "max_depth": max_depth, "crop": crop, "boundary_f1": boundary_f1}
    eval_sets = _open_benchmarks(dataset, **overrides)
    fit_sets = {s.label: s for s in _open_benchmarks(global_fit, **overrides)}
    try:
        fit_predictor = PredictionFolder(fit_predictions, use_exif=use_exif) if fit_predictions else None
        if predictions is not None:
            predictor = PredictionFolder(predictions, use_exif=use_exif)
    except FileNotFoundError as err:
        _fail(str(err))
    if checkpoint is not None:
        model = _load_model(checkpoint, device)
        info = {
            "checkpoint": checkpoint,
            "model": model.config.name,
            "focal_policy": "exif" if use_exif else "predicted",
        }
        predictor = ModelPredictor(model, use_exif=use_exif, save_to=save_predictions, info=info)
        if fit_sets and fit_predictor is None:  # the fit split's go beside: --fit-predictions DIR/global-fit
            fit_dir = save_predictions / "global-fit" if save_predictions is not None else None
            fit_predictor = ModelPredictor(model, use_exif=use_exif, save_to=fit_dir, info=info)

    total = sum(len(s.dataset) for s in eval_sets)
    if any(a.startswith("global-") for a in alignment):
        total += sum(len(s.dataset) for s in fit_sets.values())
    with Progress(console=console) as progress, _signals_as_exit():
        task = progress.add_task("evaluating", total=total)
        try:
            result = run_evaluation(
                predictor,
                eval_sets,
                alignment,
                global_fit=fit_sets,
                fit_predictor=fit_predictor,
                on_image=lambda *_: progress.advance(task),
            )
        except (FileNotFoundError, ValueError) as err:
            _fail(str(err))
    source = str(predictions) if predictions is not None else str(checkpoint)
    info = {"source": source, "datasets": dataset, "alignments": alignment, "use_exif": use_exif}
    if global_fit:
        info["global_fit"] = global_fit
    if save_predictions is not None:
        info["saved_predictions"] = str(save_predictions)
    try:
        paths = write_tables(result, output, info=info)
    except OSError as err:
        _fail(f"--output {output}: cannot write the results ({err.strerror or err})")
    typer.echo((output / "results.md").read_text())
    say("wrote ", ", ".join(p.name for p in paths), " to ", str(output))
    if result.failures:
        say((f"{len(result.failures)} image(s) not scored:", "red"))
        for label, name, reason in result.failures:
            say("  ", f"{label} / {name}: {reason}")
        raise typer.Exit(1)


def _evaluate_rsa(
    dataset,
    relative,
    rsa,
    baselines,
    alignment,
    global_fit,
    caption,
    caption_kind,
    captions_dir,
    text_encoder,
    depth_range,
    output,
    device,
    min_depth,
    max_depth,
    crop,
    boundary_f1,
    caption_threshold,
) -> None:
    """``evaluate --relative``: a relative model under alignments, RSA heads, or the whole comparison."""
    from rich.progress import Progress

    from ..evaluation import evaluate as run_evaluation
    from ..evaluation import write_tables
    from ..models.depth_pro.weights import CheckpointError
    from ..models.relative import load_relative
    from ..rsa.baselines import RelativePredictor, compare, load_scale_model
    from ..rsa.captions import CAPTION_KINDS
    from ..rsa.pipeline import ORACLE_RELATIVE

    if caption_kind not in CAPTION_KINDS:
        _fail(f"--caption-kind {caption_kind!r}: choose {', '.join(CAPTION_KINDS)}")
    if not baselines and not rsa and "none" in alignment:
        _fail(
            "a relative model has no metric scale: give -a median / lstsq-disparity / global-disparity, "
            "--rsa CKPT, or --baselines"
        )
    if not rsa and not baselines:
        unused = {
            "--caption": caption != "sample",
            "--caption-kind": caption_kind != "all",
            "--captions-dir": captions_dir is not None,
            "--text-encoder": text_encoder is not None,
            "--depth-range": depth_range is not None,
        }
        given = [name for name, used in unused.items() if used]
        if given:
            _fail(f"{', '.join(given)} apply to RSA heads: add --rsa CKPT (or --baselines)")
    if baselines and list(alignment) != ["none"]:
        _fail("--baselines scores Median, Linear Fit and Global itself: drop -a/--alignment")
    if rsa and not baselines and list(alignment) != ["none"]:
        _fail("-a/--alignment scores the relative model itself: add --baselines to RSA's table, or drop -a")
    if rsa and not baselines and global_fit:
        _fail("--global-fit fits the Global baseline: add --baselines")
    if caption_threshold != 0.5 and caption != "auto":
        _fail("--caption-threshold applies to --caption auto")
    low, high = _parse_depth_range(depth_range)
    _writable_dir(output, "--output")
    overrides = {"min_depth": min_depth, "max_depth": max_depth, "crop": crop, "boundary_f1": boundary_f1}
    eval_sets = _open_benchmarks(dataset, **overrides)
    fit_sets = {s.label: s for s in _open_benchmarks(global_fit, **overrides)}
    try:
        source = relative if relative == ORACLE_RELATIVE else load_relative(relative, device=device)
        models = {}
        for spec in rsa:
            label, sep, path = spec.partition("=")
            label, path = (
                (label, path) if sep and not Path(spec).exists() else ("RSA" if len(rsa) == 1 else spec, spec)
            )
            models[label] = load_scale_model(path)
    except (CheckpointError, ValueError, FileNotFoundError, OSError) as err:
        _fail(str(err))
    captioner = None
    if caption == "auto":
        from ..rsa.detector import AutoCaptioner, DetectorUnavailable

        try:
            captioner = AutoCaptioner(score_threshold=caption_threshold)
        except (DetectorUnavailable, ValueError) as err:
            _fail(f"--caption auto: {err}")
    total = sum(len(s.dataset) for s in eval_sets)
    runs = (3 if baselines else 0) + len(models) if (baselines or models) else 1
    with Progress(console=console) as progress, _signals_as_exit():
        task = progress.add_task(
            "evaluating", total=total * runs + sum(len(s.dataset) for s in fit_sets.values())
        )
        advance = lambda *_: progress.advance(task)  # noqa: E731
        try:
            if baselines or models:
                result = compare(
                    source,
                    eval_sets,
                    models=models,
                    text_encoder=text_encoder,
                    global_fit=fit_sets if baselines and fit_sets else None,
                    caption=caption,
                    caption_kind=caption_kind,
                    captions_dir=captions_dir,
                    depth_range=(low, high),
                    on_image=advance,
                    device=device,
                    captioner=captioner,
                )
                if not baselines:  # only the heads' rows
                    result.rows = [r for r in result.rows if r["alignment"] in models]
                    result.per_image = [r for r in result.per_image if r["alignment"] in models]
            else:
                result = run_evaluation(
                    RelativePredictor(source), eval_sets, alignment, global_fit=fit_sets, on_image=advance
                )
        except (FileNotFoundError, ValueError, RuntimeError) as err:
            _fail(str(err))
    info = {
        "source": f"relative {relative}",
        "rsa": rsa,
        "datasets": dataset,
        "caption": caption,
        "caption_kind": caption_kind,
        "caption_threshold": caption_threshold if caption == "auto" else None,
        "alignments": "methods" if (baselines or models) else alignment,
    }
    if global_fit:
        info["global_fit"] = global_fit
    try:
        write_tables(result, output, info=info)
    except OSError as err:
        _fail(f"--output {output}: cannot write the results ({err.strerror or err})")
    typer.echo((output / "results.md").read_text())
    say("wrote results to ", str(output))
    if result.failures:
        say((f"{len(result.failures)} image(s) not scored:", "red"))
        for label, name, reason in result.failures[:20]:
            say("  ", f"{label} / {name}: {reason}")
        raise typer.Exit(1)


@app.command()
def synth(
    out_dir: Annotated[
        Path | None, typer.Argument(help="Folder to write samples to (the evaluation folder format).")
    ] = None,
    count: Annotated[int | None, typer.Option(help="Number of samples (default 12 with --preview).")] = None,
    size: Annotated[int, typer.Option(help="Image side, pixels.")] = 384,
    family: Annotated[
        list[str], typer.Option("--family", "-f", help="tabletop, room, street (repeatable; default all).")
    ] = [],  # noqa: B006 - typer reads the default, never mutates it
    seed: Annotated[int, typer.Option(help="Samples depend only on (seed, index).")] = 0,
    preview: Annotated[
        Path | None, typer.Option(help="Write a contact sheet PNG (RGB, depth, instances, classes) instead.")
    ] = None,
    shadows: Annotated[bool, typer.Option(help="Cast shadows (slower).")] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace existing files that synth did not write.")
    ] = False,
    device: Annotated[str, typer.Option(help="cpu or cuda: where to ray-cast.")] = "cpu",
) -> None:
    """Render procedural scenes with exact metric depth, masks, intrinsics and captions."""
    if (out_dir is None) == (preview is None):
        _fail("give an output folder or --preview FILE.png (not both)")
    count = count if count is not None else (12 if preview is not None else None)
    if count is None or count < 1:
        _fail("--count must be a positive number of samples")
    if preview is not None:
        _writable_file(preview, "--preview")
    else:
        _writable_dir(out_dir, "OUT_DIR")  # type: ignore[arg-type]

    from PIL import Image
    from rich.progress import Progress

    from ..data.synthetic import FAMILIES, SyntheticScenes, contact_sheet, is_synthetic_output, write_samples
    from ..io.atomic import atomic_path
    from ..io.guard import OutputExistsError, OutputGuard
    from ..io.writers import png_metadata

    if preview is not None:
        guard = OutputGuard(
            overwrite=overwrite,
            replaceable=is_synthetic_output,
            option="--preview",
            writer="metricdepth synth",
        )
        try:
            guard.check([preview], "--preview")
        except OutputExistsError as err:
            _fail(str(err))

    try:
        scenes = SyntheticScenes(size, family or FAMILIES, seed, length=count, device=device, shadows=shadows)
    except ValueError as err:
        _fail(str(err))
    with Progress(console=console) as progress, _signals_as_exit():
        task = progress.add_task("rendering", total=count)
        if preview is not None:
            samples = []
            for index in range(count):
                samples.append(scenes[index])
                progress.advance(task)
            with atomic_path(preview) as tmp:
                sheet = Image.fromarray(contact_sheet(samples))
                sheet.save(tmp, format="PNG", pnginfo=png_metadata({"generator": "synth"}))
            say("wrote ", str(preview))
        else:
            try:  # every file is checked before the first is written
                write_samples(
                    scenes, out_dir, count, on_sample=lambda _: progress.advance(task), overwrite=overwrite
                )
            except OutputExistsError as err:
                _fail(str(err))
            say(f"wrote {count} samples to ", str(out_dir))


def _train_command(
    config: str | None,
    overrides: list[str],
    out: Path | None,
    resume: bool,
    max_steps: int | None,
    checkpoint_every: int | None,
    init: str | None,
    list_configs: bool,
    task: str | None,
) -> None:
    """Shared by ``train`` and ``train-fov``: parse, check, run the library's trainer, report."""
    try:
        from ..train.config import ConfigError, load_config
        from ..train.config import list_configs as shipped
    except ImportError as err:
        _fail(f"training needs the [train] extra ({err.name} is missing): pip install 'metricdepth[train]'")
    if list_configs:
        for name, description in shipped().items():
            say((name, "bold"), "  ", description)
        return
    if config is None:
        _fail("give a CONFIG (a YAML file or a shipped name: metricdepth train --list-configs)")
    if out is None:
        _fail("give the run folder with -o RUN_DIR")
    for value, option in ((max_steps, "--max-steps"), (checkpoint_every, "--checkpoint-every")):
        if value is not None and value < 1:
            _fail(f"{option} must be a positive number of steps")
    if task is not None:
        overrides = [*overrides, f"run.task={task}"]
    try:
        train_config = load_config(config, overrides)
    except ConfigError as err:
        _fail(str(err))
    _writable_dir(out, "-o")

    from ..models.depth_pro.weights import CheckpointError
    from ..train import RunExistsError, Trainer

    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    is_main = int(os.environ.get("RANK", "0")) == 0
    total = min(max_steps or train_config.run.steps, train_config.run.steps)
    with contextlib.ExitStack() as stack:
        stack.enter_context(_signals_as_exit())
        progress = stack.enter_context(_progress()) if is_main else None
        bar = progress.add_task("training", total=total) if progress is not None else None

        def on_log(record: dict) -> None:
            if progress is None:
                return
            if "loss" in record:
                progress.update(
                    bar, completed=record["step"], description=f"training  loss {record['loss']:.4f}"
                )
            elif any(key.startswith("val/") for key in record):
                shown = {k[4:]: v for k, v in record.items() if k.startswith("val/") and "/" not in k[4:]}
                text = "  ".join(f"{k} {v:.4f}" for k, v in shown.items() if isinstance(v, float))
                progress.console.print(Text(f"step {record['step']}: validation  {text}"))

        trainer = Trainer(
            train_config,
            out,
            resume=resume,
            max_steps=max_steps,
            checkpoint_every=checkpoint_every,
            init=init,
            on_log=on_log,
        )
        try:
            result = trainer.fit()
        except (RunExistsError, ConfigError) as err:  # usage: the run folder or the config
            if progress is not None:
                progress.stop()
            _fail(str(err))
        except (
            CheckpointError,
            OSError,
            ValueError,
            RuntimeError,
            FloatingPointError,
        ) as err:  # data, numerics
            if progress is not None:
                progress.stop()
            say(("error:", "red"), " ", str(err))
            raise typer.Exit(1) from None
    if is_main:
        say(
            f"stopped at step {result.step}{' (distributed)' if distributed else ''}; weights in ",
            str(out / "last"),
        )
        if result.best is not None:
            best = result.best
            say(f"best {best['metric']} {best['value']:.4f} at step {best['step']}: ", str(out / "best"))


ConfigArg = Annotated[
    str | None, typer.Argument(help="A YAML config file or a shipped config name (see --list-configs).")
]
OverridesArg = Annotated[
    list[str] | None,
    typer.Argument(help="KEY=VALUE overrides of the config, e.g. optim.lr_decoder=1e-4 run.steps=500."),
]
RunDirOption = Annotated[Path | None, typer.Option("-o", "--output", help="The run folder.")]
ResumeOption = Annotated[
    bool, typer.Option("--resume", help="Continue the run in -o exactly where it stopped.")
]
MaxStepsOption = Annotated[
    int | None, typer.Option(help="Stop after this step (the schedule still spans run.steps).")
]
CheckpointEveryOption = Annotated[int | None, typer.Option(help="Save RUN/last every N steps.")]
ListConfigsOption = Annotated[bool, typer.Option("--list-configs", help="List the shipped configs.")]


@app.command()
def train(
    config: ConfigArg = None,
    overrides: OverridesArg = None,
    out: RunDirOption = None,
    resume: ResumeOption = False,
    max_steps: MaxStepsOption = None,
    checkpoint_every: CheckpointEveryOption = None,
    init: Annotated[
        str | None, typer.Option(help="Start from these Depth Pro weights (file, RUN/last, Hub id).")
    ] = None,
    list_configs: ListConfigsOption = False,
) -> None:
    """Train Depth Pro (also under torchrun --nproc_per_node N -m metricdepth train ...)."""
    _train_command(
        config, overrides or [], out, resume, max_steps, checkpoint_every, init, list_configs, None
    )


@app.command("train-fov")
def train_fov(
    config: ConfigArg = None,
    overrides: OverridesArg = None,
    out: RunDirOption = None,
    resume: ResumeOption = False,
    max_steps: MaxStepsOption = None,
    checkpoint_every: CheckpointEveryOption = None,
    init: Annotated[
        str | None,
        typer.Option(help="The trained depth network to add the FOV head to (RUN/last, file, Hub id)."),
    ] = None,
    list_configs: ListConfigsOption = False,
) -> None:
    """Train the FOV head alone on a frozen depth network (run.task=fov)."""
    _train_command(
        config, overrides or [], out, resume, max_steps, checkpoint_every, init, list_configs, "fov"
    )


@app.command("train-rsa")
def train_rsa(
    config: ConfigArg = None,
    overrides: OverridesArg = None,
    out: RunDirOption = None,
    resume: ResumeOption = False,
    max_steps: MaxStepsOption = None,
    checkpoint_every: CheckpointEveryOption = None,
    init: Annotated[
        str | None,
        typer.Option(help="Start from this RSA head (an official checkpoint, rsa.safetensors, RUN/last)."),
    ] = None,
    list_configs: ListConfigsOption = False,
) -> None:
    """Train an RSA head (caption → scale and shift of a frozen relative model; run.task=rsa).

    The head is saved as RUN/last/model.safetensors with its text encoder's name: predict --rsa RUN/last."""
    _train_command(
        config, overrides or [], out, resume, max_steps, checkpoint_every, init, list_configs, "rsa"
    )


@app.command()
def export(
    output: Annotated[Path, typer.Option("--output", "-o", help="The file to write (.onnx, .pt2).")],
    checkpoint: Annotated[
        str, typer.Option("--checkpoint", "-c", help="Hub repo id or local .pt / .safetensors file.")
    ] = "apple/DepthPro",
    format: Annotated[str, typer.Option("--format", help="onnx or exported-program.")] = "onnx",
    check: Annotated[
        bool, typer.Option("--check/--no-check", help="Compare the exported model with PyTorch.")
    ] = True,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing file.")] = False,
) -> None:
    """Export the Depth Pro network (fixed input size, dynamic batch) to ONNX or a torch.export program."""
    from ..export import EXPORT_FORMATS, TOLERANCE, export_model

    if format not in EXPORT_FORMATS:
        _fail(f"--format {format!r}: choose {', '.join(EXPORT_FORMATS)}")
    if output.is_dir():
        _fail(f"-o {output}: is a folder; give the file to write")
    if output.exists() and not overwrite:
        _fail(f"-o {output} exists; pass --overwrite to replace it")
    _writable_dir(output.parent if str(output.parent) else Path("."), "-o")
    model = _load_model(checkpoint, "cpu", "fp32")
    metadata = {"metricdepth.checkpoint": checkpoint, "metricdepth.model": model.config.name}
    try:
        result = export_model(model, output, format, check=check, metadata=metadata)
    except (ImportError, ValueError, RuntimeError) as err:
        _fail(str(err))
    if result is not None:
        say(
            f"checked with {result.runtime} on a batch of {result.batch}: largest difference "
            f"{result.relative_error:.1e} of the output range (tolerance {TOLERANCE:g})"
        )
    elif check:
        say("not checked: onnxruntime is not installed")
    say(f"wrote {format} ", str(output))


@app.command()
def demo(
    checkpoint: Annotated[
        str, typer.Option("--checkpoint", "-c", help="Hub repo id or local .pt / .safetensors file.")
    ] = "apple/DepthPro",
    host: Annotated[
        str, typer.Option(help="Address to serve on (127.0.0.1: this machine only; 0.0.0.0: the network).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to serve on.")] = 7860,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:1, mps.")] = "auto",
    precision: Annotated[
        str, typer.Option(help="auto (fp16 on GPU, fp32 on CPU), fp32, fp16, bf16.")
    ] = "auto",
    relative: RelativeOption = None,
    rsa: RSAOption = None,
    text_encoder: TextEncoderOption = None,
    depth_range: DepthRangeOption = None,
    caption_threshold: CaptionThresholdOption = 0.5,
    max_upload_mb: Annotated[
        float, typer.Option("--max-upload-mb", help="Largest upload, MiB; larger files are refused.")
    ] = 20.0,
    max_pixels: Annotated[
        int, typer.Option("--max-pixels", min=1, help="Largest photo, pixels (W×H); larger: a message.")
    ] = 50_000_000,
    concurrency: Annotated[int, typer.Option(min=1, help="Predictions running at once (memory!).")] = 1,
    queue_size: Annotated[
        int, typer.Option("--queue-size", min=1, help="Requests that may wait; more are told to retry.")
    ] = 16,
) -> None:
    """Web demo (gradio): upload a photo; see its metric depth, focal length and 3D view; download outputs.

    Serves http://127.0.0.1:7860 until Ctrl-C. With --rsa CKPT --relative MODEL: a caption box, RSA depth."""
    import importlib.util

    missing = [name for name in ("gradio", "trimesh") if importlib.util.find_spec(name) is None]
    if missing:
        _fail(f"the demo needs {' and '.join(missing)}: pip install 'metricdepth[demo]'")
    mode = _check_rsa_options(relative, rsa, None, None, text_encoder, depth_range)
    if caption_threshold != 0.5 and mode != "rsa":
        _fail("--caption-threshold only applies with --rsa CKPT (the caption box's 'auto')")
    if mode == "relative":
        _fail("--relative alone predicts relative depth (no metres); the demo needs --rsa CKPT with it")
    if not (math.isfinite(max_upload_mb) and 0 < max_upload_mb <= 10_000):
        _fail(f"--max-upload-mb must be more than 0 and at most 10000 (MiB), got {max_upload_mb:g}")

    from ..demo.app import launch_demo, serve_until_stopped

    if mode is None:
        source = _load_model(checkpoint, device, precision, inference=True)
        extra = {"checkpoint": checkpoint, "model": source.config.name, "focal_policy": "auto"}
        description = f"Model: Depth Pro `{checkpoint}` ({source.config.name}) on {source.device}."
    else:
        source, _, extra = _rsa_source(
            relative, rsa, "auto", None, text_encoder, depth_range, caption_threshold, device, Path(".")
        )
        description = f"Model: RSA `{rsa}` on the relative depth of `{relative}`."
    if host not in ("127.0.0.1", "localhost", "::1"):
        say(("warning:", "yellow"), f" serving on {host}: other machines can reach this demo")
    with _signals_as_exit():
        try:
            blocks = launch_demo(
                source,
                host=host,
                port=port,
                max_upload_mb=max_upload_mb,
                max_pixels=max_pixels,
                concurrency=concurrency,
                queue_size=queue_size,
                extra=extra,
                description=description,
                block=False,
                quiet=True,
            )
        except OSError:  # the port is taken, the address cannot be bound
            _fail(f"cannot serve on {host}:{port}: the port is taken or the address cannot be bound (--port)")
        say("demo running at ", str(blocks.local_url), " (Ctrl-C stops it)")
        try:
            serve_until_stopped(blocks)
        finally:
            say("demo stopped")


def main() -> None:
    app()
