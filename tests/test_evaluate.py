import csv
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from metricdepth.cli import app
from test_datasets import motorcycle_scene  # noqa: F401 - fixture

runner = CliRunner()


@pytest.fixture
def predictions(tmp_path, motorcycle_scene):  # noqa: F811
    """Saved predictions for the Motorcycle scene: the ground truth scaled by 1.1 (holes filled)."""
    from metricdepth.data.datasets import Middlebury2014

    sample = Middlebury2014(motorcycle_scene)[0]
    depth = np.where(sample["valid"], sample["depth"] * 1.1, 3.0).astype(np.float32)
    folder = tmp_path / "preds"
    folder.mkdir()
    np.savez(folder / f"{sample['name']}.npz", depth=depth, focal_px=np.float64(1000.0))
    return folder


def test_evaluate_writes_tables_and_is_deterministic(tmp_path, motorcycle_scene, predictions):  # noqa: F811
    outputs = []
    for run in range(2):
        out = tmp_path / f"eval{run}"
        result = runner.invoke(
            app,
            [
                "evaluate",
                "-d",
                f"middlebury={motorcycle_scene}",
                "--predictions",
                str(predictions),
                "-a",
                "none",
                "-a",
                "median",
                "-o",
                str(out),
            ],
        )
        assert result.exit_code == 0, result.output
        outputs.append({p.name: p.read_bytes() for p in sorted(out.iterdir())})
    assert outputs[0] == outputs[1]
    assert sorted(outputs[0]) == ["per_image.csv", "results.csv", "results.json", "results.md"]

    rows = json.loads(outputs[0]["results.json"])["rows"]
    assert [(r["dataset"], r["alignment"], r["images"]) for r in rows] == [
        ("middlebury", "none", 1),
        ("middlebury", "median", 1),
    ]
    metric, median = rows
    assert metric["abs_rel"] == pytest.approx(0.1, rel=1e-5) and metric["d1"] == 1.0
    assert median["abs_rel"] == pytest.approx(0.0, abs=1e-6)
    assert metric["focal_median_rel_err"] == pytest.approx(abs(1000 - 994.978) / 994.978)
    per_image = list(csv.DictReader(outputs[0]["per_image.csv"].decode().splitlines()))
    assert [r["image"] for r in per_image] == ["Motorcycle-perfect"] * 2
    assert "| middlebury | none | 1 |" in outputs[0]["results.md"].decode()


def test_evaluate_usage_errors(tmp_path, motorcycle_scene):  # noqa: F811
    missing = runner.invoke(
        app, ["evaluate", "-d", f"middlebury={motorcycle_scene}", "--predictions", str(tmp_path / "none")]
    )
    assert missing.exit_code == 2 and "not found" in missing.output
    both = runner.invoke(app, ["evaluate", "-d", f"middlebury={motorcycle_scene}"])
    assert both.exit_code == 2 and "exactly one" in both.output
    bad = runner.invoke(app, ["evaluate", "-d", "kitti=/x", "--predictions", str(tmp_path)])
    assert bad.exit_code == 2 and "NAME=PATH" in bad.output
