"""``metricdepth predict --rsa / --relative`` and ``evaluate --relative / --rsa / --baselines``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from metricdepth.cli.app import app
from metricdepth.rsa import RSAHead

REPO = Path(__file__).resolve().parents[1]
TINY_RELATIVE = str(REPO / "examples" / "weights" / "tiny-relative.safetensors")
IMAGE = REPO / "tests" / "data" / "leuvenA.jpg"


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def head_file(tmp_path_factory) -> Path:
    return RSAHead(384, "small", text_encoder="minilm").save_pretrained(
        tmp_path_factory.mktemp("head") / "rsa.safetensors"
    )


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("scenes")
    runner = CliRunner()
    for name, seed in (("test", 2000), ("train", 0)):
        result = runner.invoke(
            app, ["synth", str(root / name), "--count", "4", "--size", "64", "--seed", str(seed)]
        )
        assert result.exit_code == 0, result.output
    return root / "test", root / "train"


def run(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_usage_errors_exit_2_and_write_nothing(tmp_path, head_file):
    out = tmp_path / "out"
    result = run("predict", IMAGE, "--rsa", head_file, "--caption", "x", "-o", out)
    assert result.exit_code == 2 and "--relative" in result.output
    result = run("predict", IMAGE, "--caption", "x", "-o", out)
    assert result.exit_code == 2 and "only apply with --rsa" in result.output
    result = run("predict", IMAGE, "--rsa", head_file, "--relative", TINY_RELATIVE, "-o", out)
    assert result.exit_code == 2 and "needs a caption" in result.output
    result = run(
        "predict", IMAGE, "--rsa", head_file, "--relative", TINY_RELATIVE, "--caption", "x",
        "--depth-range", "5,1", "-o", out,
    )  # fmt: skip
    assert result.exit_code == 2 and "--depth-range" in result.output
    assert not out.exists()


def test_relative_prediction_alone(tmp_path):
    out = tmp_path / "out"
    result = run("predict", IMAGE, "--relative", TINY_RELATIVE, "-o", out)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "leuvenA.json",
        "leuvenA.npz",
        "leuvenA_inverse_depth.png",
    ]
    with np.load(out / "leuvenA.npz") as data:
        assert str(data["kind"]) == "relative" and "depth" not in data


def test_relative_alone_refuses_metric_formats_and_ignores_a_focal(tmp_path):
    result = run("predict", IMAGE, "--relative", TINY_RELATIVE, "--formats", "npz,ply", "-o", tmp_path / "x")
    assert result.exit_code == 2 and "depth16 and ply need --rsa" in result.output
    result = run("predict", IMAGE, "--relative", TINY_RELATIVE, "--f-px", "500", "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "out" / "leuvenA.ply").exists()


def test_captions_dir_mirrors_nested_folders(tmp_path, head_file):
    images = tmp_path / "images"
    for scene in ("bathroom", "kitchen"):
        (images / scene).mkdir(parents=True)
        shutil.copy(IMAGE, images / scene / "rgb_00045.jpg")
        (tmp_path / "captions" / scene).mkdir(parents=True)
        (tmp_path / "captions" / scene / "rgb_00045.txt").write_text(f"A {scene}.\n")
    out = tmp_path / "out"
    result = run(
        "predict", images, "--rsa", head_file, "--relative", TINY_RELATIVE,
        "--captions-dir", tmp_path / "captions", "-o", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    for scene in ("bathroom", "kitchen"):
        assert json.loads((out / scene / "rgb_00045.json").read_text())["caption"] == f"A {scene}."


def test_captions_dir_per_image_and_a_missing_caption_fails_only_that_image(tmp_path, head_file):
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(IMAGE, images / "a.jpg")
    shutil.copy(IMAGE, images / "b.jpg")
    captions = tmp_path / "captions"
    captions.mkdir()
    (captions / "a.txt").write_text("A street with houses.\nAn image with two cars.\n")
    out = tmp_path / "out"
    result = run(
        "predict", images, "--rsa", head_file, "--relative", TINY_RELATIVE, "--captions-dir", captions,
        "--f-px", "500", "-o", out,
    )  # fmt: skip
    assert result.exit_code == 1
    assert "b.txt" in result.output
    record = json.loads((out / "a.json").read_text())
    assert record["caption"] == "A street with houses." and record["focal_px"] == 500.0
    assert (out / "a.ply").is_file()  # with a focal length, RSA depth has a point cloud
    assert not (out / "b.npz").exists()


def test_evaluate_the_whole_comparison_in_one_command(tmp_path, head_file, scenes):
    test, train = scenes
    out = tmp_path / "eval"
    result = run(
        "evaluate", "-d", f"folder={test}", "--relative", "ground-truth", "--baselines",
        "--global-fit", f"folder={train}", "--rsa", f"RSA={head_file}", "-o", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [r["alignment"] for r in rows] == ["Median", "Linear Fit", "Global", "RSA"]
    assert all(r["images"] == 4 for r in rows)
    assert rows[1]["abs_rel"] < 1e-4  # Linear Fit undoes the normalisation of ground-truth relative depth
    assert "Linear Fit" in (out / "results.md").read_text()
    per_image = (out / "per_image.csv").read_text().splitlines()
    assert "caption" in per_image[0] and "An image with" in "\n".join(per_image)  # the captions RSA used


def test_evaluate_a_relative_model_under_alignments(tmp_path, scenes):
    test, _ = scenes
    out = tmp_path / "eval"
    result = run(
        "evaluate", "-d", f"folder={test}", "--relative", TINY_RELATIVE,
        "-a", "median", "-a", "lstsq-disparity", "-o", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [r["alignment"] for r in rows] == ["median", "lstsq-disparity"]
    result = run("evaluate", "-d", f"folder={test}", "--relative", TINY_RELATIVE, "-o", tmp_path / "e2")
    assert result.exit_code == 2 and "no metric scale" in result.output


def test_evaluate_refuses_options_it_would_ignore(tmp_path, head_file, scenes):
    test, _ = scenes
    out = tmp_path / "e"
    result = run("evaluate", "-d", f"folder={test}", "--predictions", test, "--caption", "auto", "-o", out)
    assert result.exit_code == 2 and "--caption" in result.output and "--relative" in result.output
    result = run(
        "evaluate", "-d", f"folder={test}", "--relative", "ground-truth", "--rsa", head_file,
        "-a", "median", "-o", out,
    )  # fmt: skip
    assert result.exit_code == 2 and "--baselines" in result.output
    assert not out.exists()


def test_same_stem_inputs_read_their_own_caption_files(tmp_path, head_file):
    for folder in ("a", "b"):
        (tmp_path / "imgs" / folder).mkdir(parents=True)
        shutil.copy(IMAGE, tmp_path / "imgs" / folder / "photo.jpg")
    (tmp_path / "caps").mkdir()
    (tmp_path / "caps" / "photo.txt").write_text("A photo.\n")
    out = tmp_path / "out"
    result = run(
        "predict", tmp_path / "imgs" / "a" / "photo.jpg", tmp_path / "imgs" / "b" / "photo.jpg",
        "--rsa", head_file, "--relative", TINY_RELATIVE, "--captions-dir", tmp_path / "caps", "-o", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    captions = [json.loads(p.read_text())["caption"] for p in sorted(out.glob("*.json"))]
    assert captions == ["A photo.", "A photo."]  # the second output is renamed, its caption is not


def test_evaluate_relative_with_alignments_refuses_rsa_only_options(tmp_path, scenes):
    test, _ = scenes
    args = ["evaluate", "-d", f"folder={test}", "--relative", "ground-truth", "-o", tmp_path / "e"]
    result = run(*args, "-a", "median", "--caption", "auto")
    assert result.exit_code == 2 and "--caption" in result.output
    result = run(*args, "--baselines", "-a", "median")
    assert result.exit_code == 2 and "drop -a" in result.output
