"""RSA training on the project's trainer: CLI end to end, exact resume, schedule, loss, data."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from metricdepth.cli.app import app
from metricdepth.rsa import RSAHead, load_scale_model
from metricdepth.rsa.baselines import ImageBaseline
from metricdepth.rsa.training import RSAObjective, RSATask
from metricdepth.train import Trainer
from metricdepth.train.config import RSAConfig, load_config
from metricdepth.train.trainer import poly_factor

REPO = Path(__file__).resolve().parents[1]
TINY_RELATIVE = REPO / "examples" / "weights" / "tiny-relative.safetensors"


def tiny_overrides(tmp_path: Path, *extra: str) -> list[str]:
    """rsa-synthetic, cut to a few 48² scenes per family and a handful of steps."""
    out = [
        "rsa.relative=ground-truth",
        "rsa.size=16",
        f"rsa.cache_dir={tmp_path / 'cache'}",
        "run.steps=6",
        "run.batch_size=4",
        "run.log_every=1",
        "run.checkpoint_every=3",
        "val.every=3",
        "val.max_samples=3",
        "val.datasets.0.synthetic.length=3",
        "val.datasets.0.synthetic.size_range=[48,48]",
    ]
    for i in range(3):
        out += [f"data.datasets.{i}.synthetic.length=4", f"data.datasets.{i}.synthetic.size_range=[48,48]"]
    return out + list(extra)


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_cli_train_rsa_then_predict_with_an_auto_caption(tmp_path):
    runner = CliRunner()
    run = tmp_path / "run"
    result = runner.invoke(app, ["train-rsa", "rsa-synthetic", "-o", str(run), *tiny_overrides(tmp_path)])
    assert result.exit_code == 0, result.output
    for name in (
        "config.yaml",
        "log.jsonl",
        "last/model.safetensors",
        "last/training_state.pt",
        "best/metrics.json",
    ):
        assert (run / name).is_file(), name
    head = RSAHead.from_pretrained(run / "last")
    assert head.text_encoder == "minilm" and head.in_dim == 384 and head.layout == "large"
    # The acceptance command, offline: local relative checkpoint, local RSA head, detector caption.
    out = tmp_path / "out"
    image = REPO / "tests" / "data" / "motorcycle_left.png"
    result = runner.invoke(
        app,
        ["predict", str(image), "--caption", "auto", "--text-encoder", "minilm",
         "--relative", str(TINY_RELATIVE), "--rsa", str(run / "last"), "-o", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    import json

    import numpy as np

    record = json.loads((out / "motorcycle_left.json").read_text())
    assert record["caption"] == "An image with a motorcycle."
    assert record["text_encoder"] == "minilm" and record["kind"] == "metric"
    with np.load(out / "motorcycle_left.npz") as data:
        assert str(data["caption"]) == "An image with a motorcycle."
        assert data["depth"].shape == (500, 741) and np.isfinite(data["depth"]).all()
    assert not (out / "motorcycle_left.ply").exists()  # no camera, no point cloud by default


def test_killed_and_resumed_equals_uninterrupted(tmp_path):
    config = load_config("rsa-synthetic", tiny_overrides(tmp_path))
    Trainer(config, tmp_path / "a").fit()
    Trainer(config, tmp_path / "b", max_steps=3).fit()
    Trainer(config, tmp_path / "b", resume=True).fit()
    a = load_file(tmp_path / "a" / "last" / "model.safetensors")
    b = load_file(tmp_path / "b" / "last" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    steps = [line for line in (tmp_path / "b" / "log.jsonl").read_text().splitlines() if '"loss"' in line]
    assert len(steps) == 6


def test_image_baseline_trains_and_loads(tmp_path):
    overrides = tiny_overrides(tmp_path, "rsa.conditioning=image", "rsa.image_size=32", "run.steps=2")
    Trainer(load_config("rsa-synthetic", overrides), tmp_path / "img").fit()
    model = load_scale_model(tmp_path / "img" / "last")
    assert isinstance(model, ImageBaseline) and model.image_size == 32
    alpha, beta = model(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))
    assert alpha.shape == (2,) and (alpha > 0).all() and (beta > 0).all()


def test_poly_schedule():
    assert poly_factor(0, 100, 0.9, 1 / 3) == pytest.approx(1.0)
    assert poly_factor(100, 100, 0.9, 1 / 3) == pytest.approx(1 / 3)
    assert poly_factor(50, 100, 0.9, 1 / 3) == pytest.approx((2 / 3) * 0.5**0.9 + 1 / 3)
    config = load_config("rsa", ["data.datasets.0.source=synthetic", "rsa.relative=ground-truth"])
    assert config.optim.schedule == "poly" and config.rsa.loss == "huber"


class Constant(torch.nn.Module):
    """α, β as parameters, whatever the condition."""

    def __init__(self, alpha: float, beta: float) -> None:
        super().__init__()
        self.alpha, self.beta = (
            torch.nn.Parameter(torch.tensor(alpha)),
            torch.nn.Parameter(torch.tensor(beta)),
        )

    def forward(self, condition):
        n = condition.shape[0]
        return self.alpha.expand(n), self.beta.expand(n)


def batch(sources: list[int]) -> dict:
    n = len(sources)
    y = torch.linspace(0.1, 1.0, 16).reshape(1, 4, 4).repeat(n, 1, 1)
    depth = torch.full((n, 4, 4), 2.0)
    depth[:, 0, 0] = 0.0  # invalid
    valid = depth > 0
    return {
        "condition": torch.zeros(n, 3),
        "y": y,
        "depth": depth,
        "valid": valid,
        "source": torch.tensor(sources),
    }


def test_objective_l1_per_dataset_normalisation():
    model = Constant(1.0, 0.5)
    plain = RSAObjective(model, RSAConfig(normalize_datasets=False), ["a", "b"])
    loss, logs = plain(batch([0, 1]))
    b = batch([0])
    pred = 1 / (1.0 * b["y"][0] + 0.5)
    want = (pred - 2.0).abs()[b["valid"][0]].mean()
    assert float(loss.detach()) == pytest.approx(2 * float(want), rel=1e-5)
    assert logs["a"] == pytest.approx(float(want), rel=1e-5)
    normalised = RSAObjective(model, RSAConfig(normalize_datasets=True), ["a", "b"])
    loss_n, _ = normalised(batch([0, 1]))
    assert float(loss_n.detach()) == pytest.approx(
        float(loss.detach()), rel=1e-5
    )  # the value is still the sum
    loss_n.backward()
    grad_n = model.alpha.grad.clone()
    model.zero_grad()
    loss.backward()
    assert float(grad_n) == pytest.approx(float(model.alpha.grad) / float(want), rel=1e-4)  # ∇L / L


def test_objective_ignores_ground_truth_out_of_range():
    model = Constant(1.0, 0.5)
    objective = RSAObjective(model, RSAConfig(max_depth=1.5, normalize_datasets=False), ["a"])
    loss, logs = objective(batch([0]))  # every valid pixel is 2 m > max_depth: nothing to learn from
    assert float(loss.detach()) == 0.0 and "a" not in logs
    loss.backward()  # a step on such a batch must not crash the run
    assert float(model.alpha.grad) == 0.0
    # Each item may carry its dataset's own range (the reference masks NYU at 10 m, KITTI at 80 m).
    ranged = batch([0])
    ranged["min_depth"], ranged["max_depth"] = torch.tensor([0.0]), torch.tensor([10.0])
    loss, logs = objective(ranged)
    assert float(loss.detach()) > 0 and "a" in logs


def test_training_data_is_a_pure_function_of_position_and_draws_the_asked_captions(tmp_path):
    config = load_config("rsa-synthetic", tiny_overrides(tmp_path, "rsa.captions=structured"))
    task = RSATask()
    data = task.training_set(config, config.rsa.size)
    first, again = data[5], data[5]
    assert torch.equal(first["condition"], again["condition"]) and torch.equal(first["y"], again["y"])
    assert first["y"].shape == (16, 16) and first["condition"].shape == (384,)
    structured = {tuple(e.tolist()) for e in data.embeddings}
    conditions = {tuple(data[p]["condition"].tolist()) for p in range(40)}
    assert conditions <= structured and len(conditions) > 3
    texts = task.text_encoder.encode(["An image with a table."])  # encoded with the run's encoder
    assert texts.shape == (1, 384)
    # The second run reads the precomputed tables from the cache instead of rendering again.
    cached = sorted((tmp_path / "cache").glob("*.pt"))
    assert len(cached) == 4  # three families + the embeddings
    task2 = RSATask()
    task2.relative = "ground-truth"
    task2.text_encoder = task.text_encoder
    import metricdepth.rsa.training as training

    def refuse(config):
        raise AssertionError("precompute should read the cache")

    original = training.open_source
    training.open_source = refuse
    try:
        data2 = task2.training_set(config, config.rsa.size)
    finally:
        training.open_source = original
    assert torch.equal(data2[5]["y"], first["y"])


def test_bad_rsa_configs_name_the_key(tmp_path):
    from metricdepth.train.config import ConfigError

    with pytest.raises(ConfigError, match=r"rsa\.loss"):
        load_config("rsa-synthetic", ["rsa.loss=l2"])
    with pytest.raises(ConfigError, match=r"rsa\.captions"):
        load_config("rsa-synthetic", ["rsa.captions=poems"])
    with pytest.raises(ConfigError, match=r"rsa\.relative"):
        load_config("rsa-synthetic", ["rsa.relative="])
    assert math.isclose(load_config("rsa-synthetic").optim.decay_factor, 1 / 3, rel_tol=1e-5)


def test_cache_keys_follow_the_files_and_the_depth_range(tmp_path):
    from metricdepth.rsa.training import _cache_key
    from metricdepth.train.config import DatasetConfig

    weights = tmp_path / "lr=3e-4" / "best.safetensors"
    weights.parent.mkdir()
    weights.write_bytes(b"one")
    data = DatasetConfig(source="synthetic")
    rsa = RSAConfig(relative=f"depth-pro:{weights}")
    first = _cache_key(data, rsa)
    import os

    weights.write_bytes(b"retrained")
    os.utime(weights, ns=(1, 2))
    assert _cache_key(data, rsa) != first  # retrained weights behind a prefix and an '=' in the path
    assert _cache_key(data, RSAConfig(relative=rsa.relative, max_depth=10.0)) != _cache_key(data, rsa)


def test_validation_ranges_are_refused(tmp_path):
    from metricdepth.train.config import ConfigError

    with pytest.raises(ConfigError, match="protocol's range"):
        load_config("rsa-synthetic", ["val.datasets.0.max_depth=10"])
