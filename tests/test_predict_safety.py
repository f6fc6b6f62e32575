"""predict and evaluate tried as a new user would: focal provenance, files that are not ours, resuming,
names with markup characters, unusable data, signals. Each case asserts the message names the file."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from metricdepth import DepthPro
from metricdepth.cli import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def photo_dir(tmp_path, data_dir):
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(data_dir / "leuvenA.jpg", folder / "leuvenA.jpg")  # EXIF FocalLengthIn35mmFilm = 29
    shutil.copy(data_dir / "motorcycle_left.png", folder / "moto.png")  # no EXIF
    return folder


@pytest.fixture
def count_infer(monkeypatch):
    """One entry per image the network ran on (``infer`` or the batch runner: both call ``forward``)."""
    calls = []
    forward = DepthPro.forward

    def counting(self, x, **kwargs):
        calls.extend([kwargs] * x.shape[0])
        return forward(self, x, **kwargs)

    monkeypatch.setattr(DepthPro, "forward", counting)
    return calls


# ------------------------------------------------------------------------------ focal provenance
def test_focal_policy_and_provenance(tmp_path, photo_dir, tiny_checkpoint):
    out = tmp_path / "out"
    assert (
        invoke("predict", photo_dir, "-o", out, "-c", tiny_checkpoint, "--formats", "npz,json").exit_code == 0
    )
    leuven = json.loads((out / "leuvenA.json").read_text())
    assert leuven["focal_source"] == "exif" and leuven["focal_policy"] == "auto"
    assert leuven["predicted_fov_deg"] is not None  # the head's own FOV is recorded even when EXIF was used
    assert str(np.load(out / "leuvenA.npz")["focal_source"]) == "exif"

    predicted = tmp_path / "predicted"
    result = invoke("predict", photo_dir, "-o", predicted, "-c", tiny_checkpoint, "--focal", "predicted")
    assert result.exit_code == 0, result.output
    assert json.loads((predicted / "leuvenA.json").read_text())["focal_source"] == "predicted"

    exif_only = invoke("predict", photo_dir, "-o", tmp_path / "e", "-c", tiny_checkpoint, "--focal", "exif")
    assert exif_only.exit_code == 1 and "moto.png" in exif_only.output and "no EXIF focal" in exif_only.output
    assert (tmp_path / "e" / "leuvenA.npz").is_file() and not (tmp_path / "e" / "moto.npz").exists()

    for args, message in (
        (["--focal", "exif", "--f-px", "500"], "cannot be combined"),
        (["--focal", "bogus"], "--focal"),
        (["--f-px", "1e308"], "--f-px"),
        (["--f-px", "1e-300"], "--f-px"),
    ):
        bad = invoke("predict", photo_dir, "-o", tmp_path / "x", "-c", tiny_checkpoint, *args)
        assert bad.exit_code == 2 and message in bad.output and "loading" not in bad.output, args
    assert "1e+308" in invoke("predict", photo_dir, "-c", tiny_checkpoint, "--f-px", "1e308").output


def test_focal_evaluation_scores_the_models_own_estimate_never_exif(tmp_path, photo_dir, tiny_checkpoint):
    """The issue's case: predict a photo with an EXIF focal, evaluate -d focal= on those predictions."""
    out = tmp_path / "preds"
    assert invoke("predict", photo_dir / "leuvenA.jpg", "-o", out, "-c", tiny_checkpoint).exit_code == 0
    stored = np.load(out / "leuvenA.npz")
    assert str(stored["focal_source"]) == "exif"
    result = invoke("evaluate", "-d", f"focal={photo_dir}", "--predictions", out, "-o", tmp_path / "eval")
    assert result.exit_code == 0, result.output
    row = json.loads((tmp_path / "eval" / "results.json").read_text())["rows"][0]
    assert row["images"] == 1
    # An untrained model's estimate is far from the EXIF truth (EXIF against EXIF scored 1.0 and 4e-8).
    assert row["focal_delta25"] == 0.0 and row["focal_median_rel_err"] > 0.25
    import csv

    per_image = list(csv.DictReader((tmp_path / "eval" / "per_image.csv").read_text().splitlines()))
    scored, truth = float(per_image[0]["focal_px"]), float(per_image[0]["gt_focal_px"])
    assert truth == pytest.approx(float(stored["focal_px"])) and abs(scored / truth - 1) > 0.25
    assert "the model's own" in (tmp_path / "eval" / "results.md").read_text()


def test_evaluate_is_zero_shot_unless_use_exif(tmp_path, tiny_checkpoint, data_dir):
    """Depth predicted with an EXIF focal is rescaled to the model's own focal, unless --use-exif."""
    from metricdepth.evaluation.predictors import read_prediction

    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(data_dir / "leuvenA.jpg", photos / "leuvenA.jpg")
    preds, own = tmp_path / "preds", tmp_path / "own"
    assert invoke("predict", photos, "-o", preds, "-c", tiny_checkpoint, "--formats", "npz").exit_code == 0
    assert (
        invoke(
            "predict", photos, "-o", own, "-c", tiny_checkpoint, "--formats", "npz", "--focal", "predicted"
        ).exit_code
        == 0
    )
    exif_scaled = np.load(preds / "leuvenA.npz")["depth"]
    zero_shot = read_prediction(preds / "leuvenA.npz")
    assert zero_shot.focal_source == "predicted"
    np.testing.assert_allclose(zero_shot.depth.numpy(), np.load(own / "leuvenA.npz")["depth"], rtol=1e-5)
    with_exif = read_prediction(preds / "leuvenA.npz", use_exif=True)
    assert with_exif.focal_source == "exif" and np.array_equal(with_exif.depth.numpy(), exif_scaled)


# ------------------------------------------------------------------------------ files not ours
def test_files_metricdepth_did_not_write_are_never_replaced(
    tmp_path, photo_dir, tiny_checkpoint, count_infer
):
    mine = tmp_path / "mine"
    mine.mkdir()
    shutil.copy(photo_dir / "moto.png", mine / "a.png")
    Image.fromarray(np.full((4, 4), 1234, np.uint16)).save(mine / "a_depth.png")  # the user's ground truth
    before = (mine / "a_depth.png").read_bytes()
    result = invoke("predict", mine / "a.png", "-o", mine, "-c", tiny_checkpoint)
    assert result.exit_code == 1
    assert "a_depth.png" in result.output and "not written by metricdepth" in result.output
    assert "--overwrite" in result.output
    assert (mine / "a_depth.png").read_bytes() == before
    assert not (mine / "a.npz").exists() and count_infer == []  # checked before any model work

    assert invoke("predict", mine / "a.png", "-o", mine, "-c", tiny_checkpoint, "--overwrite").exit_code == 0
    assert (mine / "a_depth.png").read_bytes() != before and (mine / "a.npz").is_file()
    # Its own outputs are replaced by a plain re-run, and are never taken as inputs.
    again = invoke("predict", mine, "-o", mine, "-c", tiny_checkpoint, "--formats", "depth16,color")
    assert again.exit_code == 0, again.output
    assert "1 of 1 inputs" in again.output


def test_skip_existing_resumes_without_model_work(tmp_path, photo_dir, tiny_checkpoint, count_infer):
    out = tmp_path / "out"
    assert invoke("predict", photo_dir, "-o", out, "-c", tiny_checkpoint).exit_code == 0
    assert len(count_infer) == 2
    count_infer.clear()
    resumed = invoke("predict", photo_dir, "-o", out, "-c", tiny_checkpoint, "--skip-existing")
    assert resumed.exit_code == 0 and "2 skipped" in resumed.output and count_infer == []
    assert "loading" not in resumed.output  # all done: the weights are not even loaded
    (out / "moto.ply").unlink()  # an incomplete set is predicted again
    resumed = invoke("predict", photo_dir, "-o", out, "-c", tiny_checkpoint, "--skip-existing")
    assert resumed.exit_code == 0 and len(count_infer) == 1 and (out / "moto.ply").is_file()
    both = invoke("predict", photo_dir, "-o", out, "-c", tiny_checkpoint, "--skip-existing", "--overwrite")
    assert both.exit_code == 2


def test_globs_keep_their_folder_structure(tmp_path, photo_dir, tiny_checkpoint):
    tree = tmp_path / "scans"
    (tree / "a" / "b").mkdir(parents=True)
    shutil.copy(photo_dir / "moto.png", tree / "a" / "x.png")
    shutil.copy(photo_dir / "moto.png", tree / "a" / "b" / "x.png")
    out = tmp_path / "out"
    result = invoke("predict", f"{tree}/**/*.png", "-o", out, "-c", tiny_checkpoint, "--formats", "npz")
    assert result.exit_code == 0, result.output
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.npz")) == ["a/b/x.npz", "a/x.npz"]


# ------------------------------------------------------------------------------ output locations
def test_unusable_output_locations_are_usage_errors_before_model_work(tmp_path, photo_dir, tiny_checkpoint):
    a_file = tmp_path / "file.txt"
    a_file.write_text("keep me")
    result = invoke("predict", photo_dir, "-o", a_file, "-c", tiny_checkpoint)
    assert result.exit_code == 2 and "file.txt" in result.output and "loading" not in result.output
    result = invoke("predict", photo_dir, "-o", a_file / "sub", "-c", tiny_checkpoint)
    assert result.exit_code == 2 and "loading" not in result.output

    scene = tmp_path / "folder"
    scene.mkdir()
    Image.new("RGB", (8, 6)).save(scene / "im.png")
    np.save(scene / "im_depth.npy", np.ones((6, 8), np.float32))
    evaluated = invoke("evaluate", "-d", f"folder={scene}", "--checkpoint", tiny_checkpoint, "-o", a_file)
    assert evaluated.exit_code == 2 and "file.txt" in evaluated.output and "loading" not in evaluated.output
    saved = invoke(
        "evaluate",
        "-d",
        f"folder={scene}",
        "--checkpoint",
        tiny_checkpoint,
        "-o",
        tmp_path / "e",
        "--save-predictions",
        a_file,
    )
    assert saved.exit_code == 2 and "loading" not in saved.output
    assert a_file.read_text() == "keep me"

    assert invoke("synth", a_file, "--count", "1", "--size", "64").exit_code == 2
    preview = invoke("synth", "--preview", tmp_path, "--count", "1", "--size", "64")
    assert preview.exit_code == 2 and "folder" in preview.output
    assert a_file.read_text() == "keep me" and "Traceback" not in preview.output


# --------------------------------------------------------------------------- names and messages
def test_names_with_markup_characters_print_as_they_are(tmp_path, photo_dir, tiny_checkpoint):
    folder = tmp_path / "in"
    (folder / "foo[").mkdir(parents=True)
    (folder / "foo[" / "bar].png").write_bytes(b"not a png")
    (folder / "[bold]x.png").write_bytes(b"")
    shutil.copy(photo_dir / "moto.png", folder / "good.png")
    result = invoke("predict", folder, "-o", tmp_path / "out", "-c", tiny_checkpoint, "--formats", "npz")
    assert result.exit_code == 1, result.output
    assert "foo[/bar].png" in result.output and "[bold]x.png" in result.output
    assert "Traceback" not in result.output and "MarkupError" not in result.output
    assert (tmp_path / "out" / "good.npz").is_file()  # the batch went on


def test_corrupt_predictions_name_the_file(tmp_path):
    data = tmp_path / "d"
    data.mkdir()
    preds = tmp_path / "p"
    preds.mkdir()
    for name in ("a", "b", "c"):
        Image.new("RGB", (8, 6)).save(data / f"{name}.png")
        np.save(data / f"{name}_depth.npy", np.full((6, 8), 2.0, np.float32))
    (preds / "a.npz").write_bytes(b"garbage")
    np.savez(preds / "b.npz", depth=np.full((6, 8), 2.0, np.float32))
    full = (preds / "b.npz").read_bytes()
    (preds / "c.npz").write_bytes(full[: len(full) // 2])
    result = invoke("evaluate", "-d", f"folder={data}", "--predictions", preds, "-o", tmp_path / "e")
    assert result.exit_code == 1 and "2 image(s) not scored" in result.output
    assert str(preds / "a.npz") in result.output and str(preds / "c.npz") in result.output
    assert "Traceback" not in result.output


# ------------------------------------------------------------------------------- unusable data
def _folder(root, gts):
    root.mkdir()
    for name, gt in gts.items():
        Image.new("RGB", gt.shape[::-1]).save(root / f"{name}.png")
        np.save(root / f"{name}_depth.npy", gt.astype(np.float32))
    return root


@pytest.mark.parametrize(
    "gt",
    [np.full((6, 8), np.nan), np.zeros((6, 8)), np.full((6, 8), np.inf), np.full((6, 8), 50.0)],
    ids=["nan", "zero", "inf", "out-of-range"],
)
def test_ground_truth_without_a_valid_pixel_is_a_named_failure(tmp_path, gt):
    data = _folder(tmp_path / "d", {"bad": gt, "good": np.full((6, 8), 2.0)})
    preds = tmp_path / "p"
    preds.mkdir()
    for name in ("bad", "good"):
        np.savez(preds / f"{name}.npz", depth=np.full((6, 8), 2.0, np.float32))
    result = invoke(
        "evaluate", "-d", f"folder={data}", "--predictions", preds, "-o", tmp_path / "e", "--max-depth", "10"
    )
    assert result.exit_code == 1 and "bad" in result.output and "no valid ground-truth pixel" in result.output
    report = json.loads((tmp_path / "e" / "results.json").read_text())
    assert report["rows"][0]["images"] == 1 and [f["image"] for f in report["failures"]] == ["bad"]


@pytest.mark.parametrize("value", [np.nan, -1.0, 0.0, np.inf])
def test_unusable_predictions_are_named_failures_not_clamped(tmp_path, value):
    data = _folder(tmp_path / "d", {"im": np.full((6, 8), 2.0)})
    preds = tmp_path / "p"
    preds.mkdir()
    np.savez(preds / "im.npz", depth=np.full((6, 8), value, np.float32))
    result = invoke("evaluate", "-d", f"folder={data}", "--predictions", preds, "-o", tmp_path / "e")
    assert (
        result.exit_code == 1 and "im" in result.output and "NaN, infinite or not positive" in result.output
    )
    text = (tmp_path / "e" / "results.json").read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in results.json"))


def test_weights_that_produce_nan_write_nothing(tmp_path, photo_dir, tiny_state_dict):
    state = dict(tiny_state_dict)
    state["head.4.bias"] = torch.full_like(state["head.4.bias"], float("nan"))
    checkpoint = DepthPro.from_state_dict(state, device="cpu").save_pretrained(tmp_path / "nan.safetensors")
    out = tmp_path / "out"
    result = invoke("predict", photo_dir, "-o", out, "-c", checkpoint)
    assert result.exit_code == 1 and "non-finite" in result.output
    assert "leuvenA.jpg" in result.output and "moto.png" in result.output
    assert not out.exists() or not any(p.is_file() for p in out.rglob("*"))


# ------------------------------------------------------------------------------------- signals
def test_a_signal_while_writing_leaves_no_partial_outputs(tmp_path, monkeypatch):
    from metricdepth.cli.app import _signals_as_exit
    from metricdepth.io import writers
    from test_writers import make_prediction

    write_ply = writers.write_ply

    def interrupted(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)  # arrives while the third of five files is written
        return write_ply(*args, **kwargs)

    monkeypatch.setattr(writers, "write_ply", interrupted)
    with pytest.raises(SystemExit), _signals_as_exit():
        writers.save_prediction(
            make_prediction(np.ones((4, 5))), np.zeros((4, 5, 3), np.uint8), tmp_path / "a"
        )
    assert os.listdir(tmp_path) == []


def test_a_signal_during_the_commit_waits_until_every_file_is_in_place(tmp_path, monkeypatch):
    from metricdepth.cli.app import _signals_as_exit
    from metricdepth.io import atomic, writers
    from test_writers import make_prediction

    replace = os.replace
    sent = []

    def replace_and_signal(src, dst):
        if not sent and not str(dst).endswith(".tmp"):
            sent.append(dst)
            os.kill(os.getpid(), signal.SIGTERM)
        return replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", replace_and_signal)
    with pytest.raises(SystemExit), _signals_as_exit():
        writers.save_prediction(
            make_prediction(np.ones((4, 5))), np.zeros((4, 5, 3), np.uint8), tmp_path / "a"
        )
    assert sent and sorted(os.listdir(tmp_path)) == sorted(
        ["a.npz", "a_depth.png", "a_inverse_depth.png", "a.ply", "a.json"]
    )


def test_temporaries_of_killed_runs_are_cleaned_up(tmp_path, photo_dir, tiny_checkpoint):
    from metricdepth.io.atomic import temporary_name

    out = tmp_path / "out"
    out.mkdir()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    stale = out / f".moto.npz.{int(dead.stdout)}.0123abcd.tmp"
    stale.write_bytes(b"half")
    live = temporary_name(out / "other.npz")  # this process's own: kept
    live.write_bytes(b"x")
    (out / ".notes.tmp").write_text("not ours")
    result = invoke("predict", photo_dir / "moto.png", "-o", out, "-c", tiny_checkpoint, "--formats", "npz")
    assert result.exit_code == 0 and "interrupted run" in result.output
    assert not stale.exists() and live.exists() and (out / ".notes.tmp").exists()


def test_only_exact_local_temporaries_count_as_stale(tmp_path):
    """On a shared file system (Ray, torchrun over nodes) another file's or another machine's
    temporary is never removed: the name must match exactly and the PID must be this machine's."""
    from metricdepth.io.atomic import _HOST, remove_stale_temporaries, temporary_name

    dead = 4194305  # above Linux's PID limit: no such process
    assert temporary_name(tmp_path / "1.npz").name.startswith(f".1.npz.{_HOST}-{os.getpid()}.")
    removed = {
        f".1.npz.{_HOST}-{dead}.0123abcd.tmp",  # this machine, dead
        f".1.npz.{dead}.0123abcd.tmp",  # an older version's name
        f"..1.npz.{_HOST}-{dead}.0123abcd.tmp.{_HOST}-{dead}.4567abcd.tmp",  # a temporary's temporary
    }
    kept = {
        f".11.npz.{_HOST}-{dead}.0123abcd.tmp",  # another file whose name ends alike
        f".1.npz.elsewhere-{dead}.0123abcd.tmp",  # another machine's process
    }
    for name in removed | kept:
        (tmp_path / name).write_bytes(b"x")
    assert {p.name for p in remove_stale_temporaries([tmp_path / "1.npz"])} == removed
    assert {p.name for p in tmp_path.iterdir()} == kept


# ------------------------------------------------------------------------------------- startup
def test_import_and_help_load_no_torch():
    code = (
        "import sys, metricdepth, metricdepth.cli\n"
        "from typer.testing import CliRunner\n"
        "for args in (['--help'], ['predict', '--help'], ['evaluate', '--help']):\n"
        "    assert CliRunner().invoke(metricdepth.cli.app, args).exit_code == 0\n"
        "assert 'torch' not in sys.modules and 'timm' not in sys.modules, 'heavy import'\n"
        "assert metricdepth.Prediction.__name__ == 'Prediction' and 'torch' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_offline_hub_goes_straight_to_the_cache_and_advises(monkeypatch, tmp_path):
    import huggingface_hub

    from metricdepth import CheckpointError
    from metricdepth.models.depth_pro.weights import PROXY_VARIABLES, hub_reachable, resolve_checkpoint

    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens: refused at once
    for name in ("HF_HUB_OFFLINE", *PROXY_VARIABLES):
        monkeypatch.delenv(name, raising=False)
    assert not hub_reachable()
    seen = []

    def fake_download(repo_id, filename, **kwargs):
        seen.append(kwargs["local_files_only"])
        raise huggingface_hub.errors.LocalEntryNotFoundError("not cached")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    with pytest.raises(CheckpointError, match=r"--checkpoint checkpoints/depth_pro\.pt"):
        resolve_checkpoint("apple/DepthPro", cache_dir=tmp_path)
    assert seen and all(seen)  # cache only: no network retries


def test_a_global_fit_image_that_fails_is_skipped_and_listed(tmp_path):
    rng = np.random.default_rng(1)
    train = _folder(tmp_path / "train", {f"t{i}": rng.uniform(1, 9, (6, 8)) for i in range(3)})
    test = _folder(tmp_path / "test", {"x": rng.uniform(1, 9, (6, 8))})
    train_preds, test_preds = tmp_path / "tp", tmp_path / "xp"
    train_preds.mkdir()
    test_preds.mkdir()
    for name in ("t0", "t1"):
        np.savez(train_preds / f"{name}.npz", depth=(np.load(train / f"{name}_depth.npy") - 0.5) / 3)
    # t2 has no prediction: skipped and listed; the fit uses t0 and t1.
    np.savez(test_preds / "x.npz", depth=(np.load(test / "x_depth.npy") - 0.5) / 3)
    result = invoke(
        "evaluate", "-d", f"folder={test}", "--predictions", test_preds, "-a", "global-depth",
        "--global-fit", f"folder={train}", "--fit-predictions", train_preds, "-o", tmp_path / "e",
    )  # fmt: skip
    assert result.exit_code == 1 and "t2" in result.output and "global fit" in result.output
    report = json.loads((tmp_path / "e" / "results.json").read_text())
    assert report["rows"][0]["global_scale"] == pytest.approx(3.0)
    assert report["rows"][0]["abs_rel"] == pytest.approx(0.0, abs=1e-6)
    assert [f["image"] for f in report["failures"]] == ["t2"]


def test_bad_crop_and_dataset_options_are_usage_errors(tmp_path):
    data = _folder(tmp_path / "d", {"im": np.full((6, 8), 2.0)})
    for args, message in (
        (["--crop", "bogus"], "bogus"),
        (["--min-depth", "5", "--max-depth", "1"], "--min-depth"),
    ):
        result = invoke("evaluate", "-d", f"folder={data}", "--predictions", tmp_path, *args)
        assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
    result = invoke("predict", "-d", f"folder={data},bogus=1", "-o", tmp_path / "o", "-c", "nope.pt")
    assert result.exit_code == 2 and "bogus" in result.output and "loading" not in result.output


# ------------------------------------------------------------------ review: ownership everywhere
def test_save_predictions_never_replaces_a_users_file(tmp_path, tiny_checkpoint):
    mine = _folder(tmp_path / "mine", {"a": np.full((6, 8), 2.0), "b": np.full((6, 8), 3.0)})
    (mine / "a.json").write_text(json.dumps({"fx": 100.0, "cx": 3.5, "cy": 2.5}))  # ground truth
    before = (mine / "a.json").read_bytes()
    result = invoke(
        "evaluate", "-d", f"folder={mine}", "-c", tiny_checkpoint, "--save-predictions", mine,
        "-o", tmp_path / "e",
    )  # fmt: skip
    assert (
        result.exit_code == 1 and "a.json" in result.output and "not written by metricdepth" in result.output
    )
    assert (mine / "a.json").read_bytes() == before and not (mine / "a.npz").exists()
    assert (mine / "b.npz").is_file()  # the other sample was saved and scored


def test_predictions_in_a_folder_dataset_are_never_read_as_ground_truth(tmp_path, tiny_checkpoint):
    from metricdepth.data.datasets import FolderDataset

    mine = _folder(tmp_path / "mine", {"a": np.full((6, 8), 2.0)})
    Image.new("RGB", (8, 6)).save(mine / "b.png")  # no ground truth at all
    result = invoke("predict", mine, "-o", mine, "-c", tiny_checkpoint, "--focal", "predicted")
    assert result.exit_code == 0, result.output
    assert (mine / "b_depth.png").is_file() and (mine / "a.json").is_file()
    dataset = FolderDataset(mine)
    assert dataset.names == ["a"]  # b_depth.png is a prediction, not b's ground truth
    sample = dataset[0]
    assert "K" not in sample and "focal_px" not in sample  # a.json is the prediction's camera
    np.testing.assert_array_equal(sample["depth"], np.full((6, 8), 2.0, np.float32))
    evaluated = invoke("evaluate", "-d", f"folder={mine}", "--predictions", mine, "-o", tmp_path / "e")
    assert evaluated.exit_code == 0, evaluated.output
    assert "focal_delta25" not in json.loads((tmp_path / "e" / "results.json").read_text())["rows"][0]
    # Ground truth a user encodes with metricdepth's own PNG writer is still ground truth.
    from metricdepth.io.writers import is_prediction_output, write_depth_png

    write_depth_png(mine / "c_depth.png", np.full((6, 8), 4.0))
    Image.new("RGB", (8, 6)).save(mine / "c.png")
    assert not is_prediction_output(mine / "c_depth.png") and is_prediction_output(mine / "b_depth.png")
    assert FolderDataset(mine).names == ["a", "c"]


def test_two_inputs_never_share_outputs(tmp_path, tiny_checkpoint):
    mine = tmp_path / "mine"
    mine.mkdir()
    for suffix in ("png", "jpg"):
        Image.new("RGB", (8, 6)).save(mine / f"a.{suffix}")
    np.save(mine / "a_depth.npy", np.full((6, 8), 2.0, np.float32))
    out = tmp_path / "out"
    result = invoke("predict", "-d", f"folder={mine}", "-o", out, "-c", tiny_checkpoint, "--formats", "npz")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["a.npz", "a_png.npz"]  # as predict names files
    out2 = tmp_path / "out2"
    both = invoke(
        "predict", mine / "a.jpg", "-d", f"folder={mine}", "-o", out2,
        "-c", tiny_checkpoint, "--formats", "npz", "--focal", "predicted",
    )  # fmt: skip
    assert both.exit_code == 1 and "also an output of" in both.output  # a.jpg and sample a: one name
    clash = tmp_path / "clash"
    (clash / "x").mkdir(parents=True)
    Image.new("RGB", (8, 6)).save(clash / "x" / "A.png")
    Image.new("RGB", (8, 6)).save(clash / "a.png")
    result = invoke("predict", clash / "x" / "A.png", clash / "a.png", "-o", out, "-c", tiny_checkpoint)
    assert result.exit_code == 0  # names that differ only in case get distinct outputs (a_png)
    assert {p.name for p in out.glob("*.json")} >= {"A.json", "a_png.json"}


def test_an_npz_with_another_writer_is_not_ours(tmp_path, photo_dir, tiny_checkpoint):
    out = tmp_path / "out"
    out.mkdir()
    np.savez(out / "moto.npz", depth=np.ones((2, 2)), writer="my-own-tool")
    before = (out / "moto.npz").read_bytes()
    result = invoke("predict", photo_dir / "moto.png", "-o", out, "-c", tiny_checkpoint, "--formats", "npz")
    assert result.exit_code == 1 and "moto.npz" in result.output
    assert (out / "moto.npz").read_bytes() == before


def test_outputs_of_the_version_before_marks_are_recognised(
    tmp_path, photo_dir, tiny_checkpoint, count_infer
):
    """0.1 outputs carried no mark; the JSON written with them lists them, with the pixel convention."""
    out = tmp_path / "out"
    out.mkdir()
    np.savez(out / "moto.npz", depth=np.ones((2, 2), np.float32), focal_px=1.0)
    files = ["moto.npz", "moto.json"]
    convention = "OpenCV: pixel centres at integer coordinates, x right, y down, z forward"
    (out / "moto.json").write_text(json.dumps({"files": files, "pixel_convention": convention}))
    skipped = invoke(
        "predict", photo_dir / "moto.png", "-o", out, "-c", tiny_checkpoint, "--formats", "npz,json",
        "--skip-existing",
    )  # fmt: skip
    assert skipped.exit_code == 0 and "1 skipped" in skipped.output and count_infer == []
    again = invoke(
        "predict", photo_dir / "moto.png", "-o", out, "-c", tiny_checkpoint, "--formats", "npz,json"
    )
    assert again.exit_code == 0, again.output
    assert json.loads((out / "moto.json").read_text())["writer"] == "metricdepth"


def test_a_failed_commit_leaves_none_of_the_images_files(tmp_path, monkeypatch):
    from metricdepth.io import atomic, writers
    from test_writers import make_prediction

    prediction, rgb = make_prediction(np.ones((4, 5))), np.zeros((4, 5, 3), np.uint8)
    writers.save_prediction(prediction, rgb, tmp_path / "a")  # an earlier run's complete set
    replace, calls = os.replace, []

    def failing(src, dst):
        if not str(dst).endswith(".tmp"):
            calls.append(dst)
            if len(calls) == 3:
                raise OSError(28, "No space left on device")
        return replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", failing)
    with pytest.raises(OSError, match="No space"):
        writers.save_prediction(prediction, rgb, tmp_path / "a")
    assert os.listdir(tmp_path) == []  # neither the new set nor a mix of old and new


def test_behind_a_proxy_the_hub_is_left_to_huggingface_hub(monkeypatch):
    from metricdepth.models.depth_pro.weights import PROXY_VARIABLES, hub_reachable

    for name in ("HF_HUB_OFFLINE", "NO_PROXY", "no_proxy", *PROXY_VARIABLES):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "https://hub.invalid:9")  # .invalid never resolves
    assert not hub_reachable()
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert hub_reachable()  # the proxy may reach it: huggingface_hub decides
    monkeypatch.setenv("NO_PROXY", "hub.invalid")
    assert not hub_reachable()  # not through the proxy: probed directly
    monkeypatch.delenv("NO_PROXY")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert not hub_reachable()


def test_save_predictions_with_a_global_fit_keeps_the_splits_apart(tmp_path, camera_checkpoint):
    """Fit and evaluation splits may share sample names: the fit split is saved in DIR/global-fit."""
    rng = np.random.default_rng(2)
    train = _folder(tmp_path / "train", {"im0": rng.uniform(1, 9, (6, 8)), "im1": rng.uniform(1, 9, (6, 8))})
    test = _folder(tmp_path / "test", {"im0": rng.uniform(1, 9, (6, 8))})
    saved = tmp_path / "saved"
    common = ["-d", f"folder={test}", "-a", "global-disparity", "--global-fit", f"folder={train}"]
    direct = invoke(
        "evaluate", *common, "-c", camera_checkpoint, "--save-predictions", saved, "-o", tmp_path / "e1"
    )
    assert direct.exit_code == 0, direct.output
    assert (saved / "im0.npz").is_file() and (saved / "global-fit" / "im1.npz").is_file()
    again = invoke(
        "evaluate",
        *common,
        "--predictions",
        saved,
        "--fit-predictions",
        saved / "global-fit",
        "-o",
        tmp_path / "e2",
    )
    assert again.exit_code == 0, again.output
    rows = [json.loads((tmp_path / e / "results.json").read_text())["rows"] for e in ("e1", "e2")]
    assert rows[0][0]["global_scale"] == pytest.approx(rows[1][0]["global_scale"], rel=1e-6)
    assert rows[0][0]["abs_rel"] == pytest.approx(rows[1][0]["abs_rel"], rel=1e-6)


def test_synth_never_replaces_a_users_file(tmp_path):
    out = tmp_path / "synth"
    assert invoke("synth", out, "--count", "2", "--size", "64").exit_code == 0
    names = sorted(p.name for p in out.iterdir())
    again = invoke("synth", out, "--count", "2", "--size", "64")  # its own files: replaced quietly
    assert again.exit_code == 0 and sorted(p.name for p in out.iterdir()) == names
    mine = out / names[1]  # a user's file under a sample's name
    mine.write_text("mine")
    result = invoke("synth", out, "--count", "2", "--size", "64")  # checked before anything is written
    assert (
        result.exit_code == 2 and names[1] in result.output and "not written by metricdepth" in result.output
    )
    assert mine.read_text() == "mine"
    picture = tmp_path / "holiday.png"
    Image.new("RGB", (4, 4)).save(picture)
    before = picture.read_bytes()
    preview = invoke("synth", "--preview", picture, "--count", "1", "--size", "64")
    assert preview.exit_code == 2 and "holiday.png" in preview.output and picture.read_bytes() == before
    assert invoke("synth", "--preview", tmp_path / "sheet.png", "--count", "1", "--size", "64").exit_code == 0
    assert invoke("synth", "--preview", tmp_path / "sheet.png", "--count", "1", "--size", "64").exit_code == 0


# ------------------------------------------------------------- second review: marked ground truth
def test_ground_truth_metricdepth_wrote_is_never_replaced_by_a_prediction(tmp_path, tiny_checkpoint):
    from metricdepth.io.writers import write_depth_png

    mine = tmp_path / "mine"
    mine.mkdir()
    Image.new("RGB", (8, 6)).save(mine / "a.jpg")
    write_depth_png(mine / "a_depth.png", np.full((6, 8), 2.0))  # ground truth, encoded with our writer
    before = (mine / "a_depth.png").read_bytes()
    result = invoke("predict", mine / "a.jpg", "-o", mine, "-c", tiny_checkpoint)
    assert result.exit_code == 1 and "a_depth.png" in result.output and "--overwrite" in result.output
    assert (mine / "a_depth.png").read_bytes() == before

    synth = tmp_path / "syn"
    assert invoke("synth", synth, "--count", "2", "--size", "64").exit_code == 0
    meta = {p: p.read_bytes() for p in synth.glob("*.json")}
    result = invoke("predict", synth, "-o", synth, "-c", tiny_checkpoint)
    assert result.exit_code == 1 and all(p.read_bytes() == b for p, b in meta.items())
    saved = invoke(
        "evaluate",
        "-d",
        f"folder={synth}",
        "-c",
        tiny_checkpoint,
        "--save-predictions",
        synth,
        "-o",
        tmp_path / "e",
    )
    assert saved.exit_code == 1 and "--save-predictions" in saved.output and "--overwrite" not in saved.output
    assert all(p.read_bytes() == b for p, b in meta.items())


def test_save_predictions_checks_before_model_work(tmp_path, tiny_checkpoint, count_infer):
    mine = _folder(tmp_path / "mine", {"a": np.full((6, 8), 2.0)})
    saved = tmp_path / "saved"
    saved.mkdir()
    (saved / "a.json").write_text("{}")
    result = invoke(
        "evaluate",
        "-d",
        f"folder={mine}",
        "-c",
        tiny_checkpoint,
        "--save-predictions",
        saved,
        "-o",
        tmp_path / "e",
    )
    assert result.exit_code == 1 and "a.json" in result.output and count_infer == []


def test_synth_reruns_over_its_own_older_output_and_overwrite_is_explicit(tmp_path):
    out = tmp_path / "old"
    assert invoke("synth", out, "--count", "2", "--size", "64").exit_code == 0
    # A folder written before marks: the same files without them.
    for png in out.glob("*.png"):
        Image.open(png).convert("RGB").save(png)
    for npz in out.glob("*_depth.npz"):
        arrays = dict(np.load(npz))
        arrays.pop("writer"), arrays.pop("generator")
        np.savez_compressed(npz, **arrays)
    for meta in out.glob("*.json"):
        data = json.loads(meta.read_text())
        data.pop("writer"), data.pop("generator")
        meta.write_text(json.dumps(data))
    assert invoke("synth", out, "--count", "2", "--size", "64").exit_code == 0
    stranger = out / "x.txt"
    stranger.write_text("keep")
    first = sorted(out.glob("*.png"))[0]
    first.write_text("mine")
    blocked = invoke("synth", out, "--count", "2", "--size", "64")
    assert blocked.exit_code == 2 and first.name in blocked.output and "--overwrite" in blocked.output
    assert first.read_text() == "mine" and len(list(out.glob("*.json"))) == 2  # nothing written
    assert invoke("synth", out, "--count", "2", "--size", "64", "--overwrite").exit_code == 0
    assert first.read_bytes() != b"mine" and stranger.read_text() == "keep"


def test_outputs_of_an_older_version_without_json_are_not_inputs(tmp_path, tiny_checkpoint):
    """Older depth PNGs (exactly the old text chunks) and their colour maps are never photos."""
    from PIL import PngImagePlugin

    folder = tmp_path / "old"
    folder.mkdir()
    Image.new("RGB", (8, 6)).save(folder / "a.jpg")
    info = PngImagePlugin.PngInfo()
    for key, value in (("depth_scale", "0.001"), ("depth_unit", "m"), ("invalid_value", "0")):
        info.add_text(key, value)
    info.add_text("description", "depth along the optical axis = value * depth_scale metres")
    Image.fromarray(np.full((6, 8), 2000, np.uint16)).save(folder / "a_depth.png", pnginfo=info)
    Image.new("RGB", (8, 6)).save(folder / "a_inverse_depth.png")
    result = invoke("predict", folder, "-o", tmp_path / "out", "-c", tiny_checkpoint, "--formats", "npz")
    assert result.exit_code == 0 and "1 of 1 inputs" in result.output


def test_names_that_differ_only_in_case_stay_apart(tmp_path, camera_checkpoint):
    from metricdepth.data.datasets import FolderDataset

    mine = tmp_path / "mine"
    mine.mkdir()
    for name in ("A", "a"):
        Image.new("RGB", (8, 6)).save(mine / f"{name}.jpg")
        np.save(mine / f"{name}_depth.npy", np.full((6, 8), 2.0, np.float32))
    names = FolderDataset(mine).names
    assert len({n.casefold() for n in names}) == 2
    saved = tmp_path / "saved"
    result = invoke(
        "evaluate",
        "-d",
        f"folder={mine}",
        "-c",
        camera_checkpoint,
        "--save-predictions",
        saved,
        "-o",
        tmp_path / "e",
    )
    assert result.exit_code == 0, result.output
    again = invoke("evaluate", "-d", f"folder={mine}", "--predictions", saved, "-o", tmp_path / "e2")
    assert again.exit_code == 0, again.output
