"""The pipelined batch runner behind ``predict``: batches, workers and writer threads change only speed."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from metricdepth import DepthPro
from metricdepth.batch import collect_inputs, predict_files
from metricdepth.cli import app
from metricdepth.models.depth_pro.chunking import Chunking


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def folder(tmp_path_factory, data_dir) -> Path:
    """Seven photos of five sizes in two folders (two with EXIF), and one unreadable file."""
    root = tmp_path_factory.mktemp("photos")
    (root / "sub").mkdir()
    shutil.copy(data_dir / "leuvenA.jpg", root / "leuvenA.jpg")  # EXIF focal
    moto = Image.open(data_dir / "motorcycle_left.png").convert("RGB")
    moto.save(root / "moto.png")
    moto.resize((333, 217)).save(root / "sub" / "small.png")
    moto.resize((120, 300)).save(root / "sub" / "tall.jpg")
    Image.open(data_dir / "leuvenA.jpg").convert("RGB").resize((640, 360)).save(root / "messi.png")
    moto.crop((0, 0, 200, 200)).save(root / "sub" / "square.png")
    shutil.copy(data_dir / "leuvenA.jpg", root / "sub" / "exif_copy.jpg")
    (root / "broken.jpg").write_bytes(b"not a jpeg")
    return root


def outputs(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_batch_size_4_writes_the_same_files_as_batch_size_1(tmp_path, folder, camera_checkpoint):
    one = invoke(
        "predict",
        folder,
        "-o",
        tmp_path / "one",
        "-c",
        camera_checkpoint,
        "--batch-size",
        "1",
        "--writers",
        "0",
    )
    four = invoke(
        "predict",
        folder,
        "-o",
        tmp_path / "four",
        "-c",
        camera_checkpoint,
        "--batch-size",
        "4",
        "--workers",
        "2",
        "--writers",
        "3",
    )
    for result in (one, four):
        assert result.exit_code == 1, result.output  # the broken file, reported at the end
        assert "7 of 8 inputs written" in result.output and "broken.jpg" in result.output
    a, b = outputs(tmp_path / "one"), outputs(tmp_path / "four")
    assert len(a) == 7 * 5 and a.keys() == b.keys()
    npz = [name for name in a if name.endswith(".npz")]
    for name in npz:  # the arrays: equal to float rounding (batched kernels may sum in another order)
        x, y = np.load(tmp_path / "one" / name), np.load(tmp_path / "four" / name)
        assert x.files == y.files
        for key in x.files:
            if x[key].dtype.kind == "f":
                np.testing.assert_allclose(x[key], y[key], rtol=1e-5, atol=0)
            else:
                assert np.array_equal(x[key], y[key])
    different = sorted(name for name in a if a[name] != b[name])
    # Measured on the CPUs used so far: every file identical, byte for byte.
    assert different == [], different


def test_mixed_failures_in_one_batch(tmp_path, folder, tiny_model):
    """An unreadable file, an unmet focal policy and a failing write each fail their image only."""
    items, missing = collect_inputs([folder], tmp_path / "out")
    assert not missing and len(items) == 8
    import metricdepth.batch as batch_module

    real_save = batch_module.save_prediction

    def save(prediction, rgb, stem, **kwargs):
        if Path(stem).name == "exif_copy":
            raise OSError("disk full (simulated)")
        return real_save(prediction, rgb, stem, **kwargs)

    seen = []
    batch_module.save_prediction = save
    try:
        report = predict_files(
            tiny_model,
            items,
            focal="exif",
            batch_size=4,
            workers=2,
            writers=2,
            on_done=lambda item, error: seen.append((item.label, error)),
        )
    finally:
        batch_module.save_prediction = real_save
    assert [label for label, _ in seen] == [item.label for item in items]  # reported in item order
    assert list(report.written) == [str(folder / "leuvenA.jpg")]  # the only photo with an EXIF focal
    messages = dict(report.failures)
    assert (
        "not a jpeg" in messages[str(folder / "broken.jpg")]
        or "broken.jpg" in messages[str(folder / "broken.jpg")]
    )
    assert "no EXIF focal length" in messages[str(folder / "moto.png")]
    assert "disk full" in messages[str(folder / "sub" / "exif_copy.jpg")]
    assert len(report.failures) == 7
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        p.name for p in report.written[str(folder / "leuvenA.jpg")]
    )


def test_padded_batches_give_the_same_predictions(tmp_path, folder, tiny_model, monkeypatch):
    """``pad_batches`` (one input shape for compiled models) runs full batches and drops the padding."""
    shapes = []
    forward = DepthPro.forward

    def recording(self, x, **kwargs):
        shapes.append(x.shape[0])
        return forward(self, x, **kwargs)

    monkeypatch.setattr(DepthPro, "forward", recording)
    runs = {}
    for pad in (False, True):
        out = tmp_path / str(pad)
        items, _ = collect_inputs([folder / "sub"], out)
        shapes.clear()
        report = predict_files(tiny_model, items, f_px=300.0, formats=["npz"], batch_size=3, pad_batches=pad)
        assert report.ok and len(report.written) == 4
        assert shapes == ([3, 3] if pad else [3, 1])
        runs[pad] = {p.name: np.load(p)["depth"] for p in sorted(out.rglob("*.npz"))}
    assert runs[False].keys() == runs[True].keys()
    for name, depth in runs[False].items():
        np.testing.assert_allclose(runs[True][name], depth, rtol=1e-5)


def test_batched_mixed_sizes_equal_single_images_without_chunking(tmp_path, folder, tiny_model):
    """Whole batches (the GPU default, no per-image chunking): images of different sizes share a forward
    pass and each comes back as when predicted alone, to float rounding."""
    runs = {}
    tiny_model.chunking = Chunking()
    try:
        for batch_size in (1, 4):
            out = tmp_path / str(batch_size)
            items, _ = collect_inputs([folder], out)
            report = predict_files(
                tiny_model, items, f_px=400.0, formats=["npz", "json"], batch_size=batch_size
            )
            assert len(report.written) == 7 and len(report.failures) == 1
            runs[batch_size] = {p.name: np.load(p)["depth"] for p in sorted(out.rglob("*.npz"))}
    finally:
        tiny_model.chunking = "auto"
    assert len(runs[1]) == 7 and runs[1].keys() == runs[4].keys()
    assert len({depth.shape for depth in runs[1].values()}) >= 5  # mixed sizes
    for name, depth in runs[1].items():  # compared as inverse depth, relative to its range
        inverse, batched = 1 / depth, 1 / runs[4][name]
        assert np.abs(batched - inverse).max() <= 1e-4 * np.abs(inverse).max(), name


def test_results_are_reported_in_item_order(tmp_path, data_dir, tiny_model):
    """Skipped, unreadable and written items come back in input order, whatever stage decided them."""
    photos = tmp_path / "photos"
    photos.mkdir()
    moto = Image.open(data_dir / "motorcycle_left.png").convert("RGB").resize((160, 120))
    for name in ("a.png", "c_done.png", "d.png", "e.png"):
        moto.save(photos / name)
    (photos / "b_broken.png").write_bytes(b"\x89PNG broken")
    out = tmp_path / "out"
    done_items, _ = collect_inputs([photos / "c_done.png"], out)
    assert predict_files(tiny_model, done_items, f_px=200.0).ok
    items, _ = collect_inputs([photos], out)
    seen = []
    report = predict_files(
        tiny_model,
        items,
        f_px=200.0,
        skip_existing=True,
        batch_size=4,
        writers=2,
        on_done=lambda item, error: seen.append((Path(item.label).name, type(error).__name__)),
    )
    assert [name for name, _ in seen] == ["a.png", "b_broken.png", "c_done.png", "d.png", "e.png"]
    assert seen[1][1] != "NoneType" and all(error == "NoneType" for _, error in seen[:1] + seen[2:])
    assert report.skipped == [str(photos / "c_done.png")]
    assert list(report.written) == [str(photos / n) for n in ("a.png", "d.png", "e.png")]


def test_interrupted_writes_leave_complete_sets(tmp_path, folder, tiny_model):
    """An interrupt while writes are queued: every image has all its outputs or none."""
    items, _ = collect_inputs([folder], tmp_path / "out")
    calls = []

    def stop(item, error):
        calls.append(item)
        if len(calls) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        predict_files(tiny_model, items, f_px=500.0, batch_size=2, writers=2, on_done=stop)
    stems: dict[str, set[str]] = {}
    for path in (tmp_path / "out").rglob("*"):
        if path.is_file():
            assert not path.name.startswith("."), f"temporary left behind: {path}"
            stem = path.name.split(".")[0].removesuffix("_inverse_depth").removesuffix("_depth")
            stems.setdefault(str(path.parent / stem), set()).add(path.name)
    assert stems and all(len(files) == 5 for files in stems.values()), stems


def test_cli_rejects_bad_runner_options(tmp_path, folder, tiny_checkpoint):
    for option in (["--batch-size", "0"], ["--workers", "-1"], ["--writers", "-2"]):
        result = invoke("predict", folder, "-o", tmp_path, "-c", tiny_checkpoint, *option)
        assert result.exit_code == 2 and "Invalid value" in result.output


def test_progress_reports_a_rate(tmp_path, folder, tiny_checkpoint):
    result = invoke("predict", folder / "sub", "-o", tmp_path, "-c", tiny_checkpoint, "--f-px", "300")
    assert result.exit_code == 0, result.output
    assert "images/s" in result.output or "s/image" in result.output


def test_compile_is_refused_for_rsa_sources(tmp_path, folder):
    result = invoke("predict", folder, "-o", tmp_path, "--relative", "x.safetensors", "--compile")
    assert result.exit_code == 2 and "--compile applies to Depth Pro" in result.output


def test_the_runner_batches_depth_pro_and_compiled_wrappers_of_it(tiny_model):
    import torch

    from metricdepth.runner import is_canonical_network

    assert is_canonical_network(tiny_model) and not is_canonical_network(object())
    assert is_canonical_network(torch.compile(tiny_model))  # an OptimizedModule holding a DepthPro


def test_exif_policy_fails_without_a_forward_pass(tmp_path, data_dir, tiny_model, monkeypatch):
    forwards = []
    forward = DepthPro.forward
    monkeypatch.setattr(
        DepthPro, "forward", lambda self, x, **k: forwards.append(x.shape[0]) or forward(self, x, **k)
    )
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(data_dir / "leuvenA.jpg", photos / "exif.jpg")
    Image.open(data_dir / "motorcycle_left.png").convert("RGB").resize((160, 120)).save(photos / "plain.png")
    items, _ = collect_inputs([photos], tmp_path / "out")
    report = predict_files(tiny_model, items, focal="exif", formats=["npz"], batch_size=2)
    assert list(report.written) == [str(photos / "exif.jpg")]
    assert "no EXIF focal length" in dict(report.failures)[str(photos / "plain.png")]
    assert forwards == [1]  # only the photo with an EXIF focal went through the network
