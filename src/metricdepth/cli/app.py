"""``metricdepth`` commands (typer). Heavy imports happen inside commands so ``--help`` is fast."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(
    name="metricdepth",
    help="Metric depth (metres) from single photographs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True, soft_wrap=True)


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


@app.command()
def predict(
    inputs: Annotated[
        list[str], typer.Argument(help="Image files, folders (searched recursively) or glob patterns.")
    ],
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
        typer.Option(
            "--f-px", help="Focal length in pixels for every image (default: EXIF, else predicted)."
        ),
    ] = None,
    formats: Annotated[
        str, typer.Option(help="Comma-separated outputs: npz, depth16, color, ply, json.")
    ] = "npz,depth16,color,ply,json",
    max_depth: Annotated[
        float | None,
        typer.Option("--max-depth", help="Metres; farther pixels are left out of the PNG and the PLY."),
    ] = None,
) -> None:
    """Predict metric depth, focal length and a point cloud for each image."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..batch import collect_inputs, predict_files, report_message
    from ..io.writers import FORMATS
    from ..models.depth_pro import CheckpointError, DepthPro

    chosen = [f.strip() for f in formats.split(",") if f.strip()]
    unknown = sorted(set(chosen) - set(FORMATS))
    if unknown or not chosen:
        _fail(f"--formats: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(FORMATS)}")
    if f_px is not None and not (math.isfinite(f_px) and f_px > 0):
        _fail("--f-px must be a positive number of pixels")
    if max_depth is not None and not (math.isfinite(max_depth) and max_depth > 0):
        _fail("--max-depth must be a positive number of metres")

    items, missing = collect_inputs(inputs, output)
    failures = list(missing)
    if not items:
        for _, message in failures:
            console.print(f"[red]error[/red] {message}")
        _fail("no images to process")

    console.print(f"loading {checkpoint}")
    try:
        model = DepthPro.from_pretrained(checkpoint, device=device, precision=precision)
    except (CheckpointError, ValueError) as err:
        _fail(str(err))
    console.print(
        f"model: {checkpoint} ({model.config.name}) on {model.device}, "
        f"{str(model.dtype).removeprefix('torch.')}"
    )

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        task = progress.add_task("predicting", total=len(items))

        def on_done(item, error) -> None:
            if error is not None:
                progress.console.print(f"[red]failed[/red] {report_message(error, item.path)}")
            progress.advance(task)

        report = predict_files(
            model,
            items,
            formats=chosen,
            f_px=f_px,
            max_depth=max_depth,
            extra={"checkpoint": checkpoint, "model": model.config.name},
            on_done=on_done,
        )

    failures += report.failures
    console.print(f"{len(report.written)} of {len(items) + len(missing)} inputs written to {output}")
    if failures:
        console.print(f"[red]{len(failures)} failed:[/red]")
        for _, message in failures:
            console.print(f"  {message}")
        raise typer.Exit(1)


@app.command()
def evaluate(
    dataset: Annotated[
        list[str],
        typer.Option(
            "--dataset",
            "-d",
            help="NAME=PATH[,KEY=VALUE...], e.g. kitti=raw/,depth_root=gt/,split_file=eigen.txt. "
            "NAME: middlebury booster eth3d nuscenes sintel sunrgbd spring ibims diode diode-indoor "
            "diode-outdoor nyu nyu-bts kitti void dis5k am2k p3m10k masks focal folder. Repeatable.",
        ),
    ],
    predictions: Annotated[
        Path | None, typer.Option(help="Folder of saved predictions (NAME.npz with key depth, metres).")
    ] = None,
    checkpoint: Annotated[
        str | None, typer.Option("--checkpoint", "-c", help="Depth Pro weights to run instead.")
    ] = None,
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
) -> None:
    """Evaluate predictions or a model on benchmarks; writes results.{md,csv,json} and per_image.csv."""
    from rich.progress import Progress

    from ..evaluation import ModelPredictor, PredictionFolder, open_benchmark, write_tables
    from ..evaluation import evaluate as run_evaluation

    if (predictions is None) == (checkpoint is None):
        _fail("give exactly one of --predictions and --checkpoint")
    overrides = {"min_depth": min_depth, "max_depth": max_depth, "crop": crop, "boundary_f1": boundary_f1}
    try:
        eval_sets = [open_benchmark(spec, **overrides) for spec in dataset]
        labels = [s.label for s in eval_sets]
        if len(set(labels)) != len(labels):
            _fail(f"each dataset name may be given once, got {', '.join(labels)}")
        fit_sets = {s.label: s for s in (open_benchmark(spec, **overrides) for spec in global_fit)}
        fit_predictor = PredictionFolder(fit_predictions) if fit_predictions is not None else None
        if predictions is not None:
            predictor = PredictionFolder(predictions)
        else:
            from ..models.depth_pro import DepthPro

            predictor = ModelPredictor(DepthPro.from_pretrained(checkpoint, device=device))
    except typer.Exit:
        raise
    except Exception as err:  # missing folder, unknown name, unreadable checkpoint: usage errors
        _fail(str(err))

    total = sum(len(s.dataset) for s in eval_sets)
    if any(a.startswith("global-") for a in alignment):
        total += sum(len(s.dataset) for s in fit_sets.values())
    with Progress(console=console) as progress:
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
    info = {"source": source, "datasets": dataset, "alignments": alignment}
    if global_fit:
        info["global_fit"] = global_fit
    paths = write_tables(result, output, info=info)
    typer.echo((output / "results.md").read_text())
    console.print(f"wrote {', '.join(p.name for p in paths)} to {output}")
    if result.failures:
        console.print(f"[red]{len(result.failures)} image(s) not scored:[/red]")
        for label, name, reason in result.failures:
            console.print(f"  {label} / {name}: {reason}")
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
    device: Annotated[str, typer.Option(help="cpu or cuda: where to ray-cast.")] = "cpu",
) -> None:
    """Render procedural scenes with exact metric depth, masks, intrinsics and captions."""
    from PIL import Image
    from rich.progress import Progress

    from ..data.synthetic import FAMILIES, SyntheticScenes, contact_sheet, write_samples
    from ..io.writers import atomic_path

    if (out_dir is None) == (preview is None):
        _fail("give an output folder or --preview FILE.png (not both)")
    count = count if count is not None else (12 if preview is not None else None)
    if count is None or count < 1:
        _fail("--count must be a positive number of samples")
    try:
        dataset = SyntheticScenes(
            size, family or FAMILIES, seed, length=count, device=device, shadows=shadows
        )
    except ValueError as err:
        _fail(str(err))
    with Progress(console=console) as progress:
        task = progress.add_task("rendering", total=count)
        if preview is not None:
            samples = []
            for index in range(count):
                samples.append(dataset[index])
                progress.advance(task)
            with atomic_path(preview) as tmp:
                Image.fromarray(contact_sheet(samples)).save(tmp, format="PNG")
            console.print(f"wrote {preview}")
        else:
            write_samples(dataset, out_dir, count, on_sample=lambda _: progress.advance(task))
            console.print(f"wrote {count} samples to {out_dir}")


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(2)


def main() -> None:
    app()
