from pathlib import Path

import numpy as np
from PIL import Image

from metricdepth.batch import collect_inputs, output_paths
from metricdepth.io.writers import (
    is_metricdepth_output,
    is_prediction_output,
    write_color_png,
    write_depth_png,
)


def make(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".txt":
        path.write_text("x")
    else:
        Image.new("RGB", (4, 3)).save(path, format="PNG")
    return path


def test_files_folders_globs_and_names(tmp_path):
    a = make(tmp_path / "in" / "a.jpg")
    make(tmp_path / "in" / "sub" / "b.PNG")
    make(tmp_path / "in" / "readme.txt")
    other = make(tmp_path / "other" / "a.png")
    explicit = make(tmp_path / "other" / "weird.dat")
    out = tmp_path / "out"
    items, missing = collect_inputs(
        [tmp_path / "in", other, explicit, a, str(tmp_path / "other" / "*.png"), tmp_path / "nope.jpg"], out
    )
    assert [
        (i.path.relative_to(tmp_path).as_posix(), i.out_stem.relative_to(out).as_posix()) for i in items
    ] == [
        ("in/a.jpg", "a"),
        ("in/sub/b.PNG", "sub/b"),
        ("other/a.png", "a_png"),  # same stem as in/a.jpg: the extension keeps them apart
        ("other/weird.dat", "weird"),  # named explicitly, so tried whatever its extension
    ]
    assert missing == [(str(tmp_path / "nope.jpg"), f"{tmp_path / 'nope.jpg'}: file not found")]


def test_empty_folder_and_unmatched_pattern(tmp_path):
    (tmp_path / "empty").mkdir()
    items, missing = collect_inputs([tmp_path / "empty", str(tmp_path / "*.heic")], tmp_path / "out")
    assert items == [] and [m[1].split(": ")[1] for m in missing] == [
        "folder holds no image files",
        "pattern matched no files",
    ]


def test_earlier_outputs_are_not_inputs(tmp_path):
    """Images metricdepth wrote carry its mark, whatever --formats wrote them (no JSON needed)."""
    prediction = {"kind": "metric"}  # what save_prediction adds to every file of a prediction
    make(tmp_path / "photo.jpg")
    write_depth_png(tmp_path / "photo_depth.png", np.ones((3, 4)), metadata=prediction)
    write_color_png(tmp_path / "photo_inverse_depth.png", np.ones((3, 4)), metadata=prediction)
    write_depth_png(tmp_path / "sub" / "old_depth.png", np.ones((3, 4)), metadata=prediction)  # no JSON
    make(tmp_path / "scan_depth.png")  # a user's image with an output-like name: kept
    write_depth_png(tmp_path / "gt_depth.png", np.ones((3, 4)))  # ground truth a user encoded: kept
    (tmp_path / "photo.json").write_text("{}")
    items, _ = collect_inputs([tmp_path], tmp_path)
    assert sorted(i.path.name for i in items) == ["gt_depth.png", "photo.jpg", "scan_depth.png"]
    assert is_prediction_output(tmp_path / "photo_depth.png")
    assert is_metricdepth_output(tmp_path / "gt_depth.png") and not is_prediction_output(
        tmp_path / "gt_depth.png"
    )
    assert not is_metricdepth_output(tmp_path / "scan_depth.png")
    assert not is_metricdepth_output(tmp_path / "photo.json")  # "{}": not ours


def test_no_two_inputs_share_an_output_file(tmp_path):
    """``X_inverse.jpg`` would write ``X_inverse_depth.png``, the colour map of ``X.jpg``."""
    make(tmp_path / "scene.jpg")
    make(tmp_path / "scene_inverse.jpg")
    items, _ = collect_inputs([tmp_path], tmp_path / "out")
    files = [p for item in items for p in output_paths(item.out_stem)]
    assert len(files) == len(set(files)) == 10


def test_globs_skip_non_images_and_earlier_outputs(tmp_path):
    make(tmp_path / "a.png")
    write_depth_png(tmp_path / "a_depth.png", np.ones((3, 4)), metadata={"kind": "metric"})
    make(tmp_path / "notes.txt")
    items, _ = collect_inputs([str(tmp_path / "*")], tmp_path)
    assert [i.path.name for i in items] == ["a.png"]
