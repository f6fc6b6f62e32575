"""Training data: canonical targets, honest crop/resize/flip geometry, the mixture and the step sampler."""

from __future__ import annotations

import math
import warnings
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
import torch

from metricdepth.data.synthetic.dataset import SyntheticScenes
from metricdepth.train.config import LABEL_KINDS, AugmentConfig, DatasetConfig, SyntheticSourceConfig
from metricdepth.train.data import (
    MAX_ATTEMPTS,
    MixtureDataset,
    StepSampler,
    augment,
    canonical_target,
    check_augment_config,
    crop_box,
    crop_intrinsics,
    effective_trim,
    horizontal_fov_deg,
    open_source,
    sample_focal_px,
)

GEOMETRY_ONLY = AugmentConfig(color=0.0, blur=0.0, hflip=0.0)
"""Random crops, nothing photometric, no flips."""


@pytest.fixture(scope="module")
def scene() -> dict[str, Any]:
    """A synthetic sample (48 rows × 64 columns) with exact depth, some sky (invalid) pixels and K."""
    for index in range(12):
        sample = SyntheticScenes((48, 64), families=["street"], seed=3, length=100)[index]
        if 0.3 < sample["valid"].mean() < 0.98:
            return sample
    raise AssertionError("no synthetic street scene with sky in the first 12")


def fake_sample(
    name: str, height: int = 12, width: int = 16, depth: float = 2.0, **extra: Any
) -> dict[str, Any]:
    """A tiny sample: random image, a depth ramp from ``depth`` metres, K with f = width."""
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    ramp = depth + np.arange(height * width, dtype=np.float32).reshape(height, width) / 100
    sample = {
        "name": name,
        "image": rng.integers(0, 256, (height, width, 3), dtype=np.uint8),
        "depth": ramp,
        "valid": np.ones((height, width), bool),
        "K": np.array([[width, 0, (width - 1) / 2], [0, width, (height - 1) / 2], [0, 0, 1]], float),
    }
    sample.update(extra)
    return sample


def expected_nearest(values: np.ndarray, box: tuple[int, int, int, int], size: int) -> np.ndarray:
    """Nearest-neighbour resize of the crop ``box`` to size × size, derived independently: the source pixel
    whose area [u − 0.5, u + 0.5) holds the output pixel centre x0 + (j + 0.5) · w / S − 0.5."""
    x0, y0, w, h = box
    cols = np.floor(x0 + (np.arange(size) + 0.5) * w / size).astype(int)
    rows = np.floor(y0 + (np.arange(size) + 0.5) * h / size).astype(int)
    return values[rows[:, None], cols[None, :]]


def item_box(
    sample: dict[str, Any], size: int, config: AugmentConfig, seed: int
) -> tuple[int, int, int, int]:
    """The crop :func:`augment` draws with ``default_rng(seed)`` (it draws the crop first)."""
    height, width = sample["image"].shape[:2]
    return crop_box(height, width, config, np.random.default_rng(seed))


# ---------------------------------------------------------------------------------------------------
# Targets and focal lengths


def test_canonical_target_inverts_to_depth(scene):
    depth, valid, K = scene["depth"], scene["valid"], scene["K"]
    fow = K[0, 0] / depth.shape[1]
    target, ok = canonical_target(depth, valid, fow)
    assert target.dtype == np.float32 and ok.dtype == bool and target.shape == depth.shape
    np.testing.assert_array_equal(ok, valid & (depth > 0))
    assert ok.any() and not ok.all()
    np.testing.assert_allclose(fow / target[ok].astype(np.float64), depth[ok], rtol=2e-7)
    assert (target[~ok] == 0).all()
    relative, ok_relative = canonical_target(depth, valid, None)
    np.testing.assert_array_equal(ok_relative, ok)
    np.testing.assert_allclose(relative[ok], 1 / depth[ok], rtol=2e-7)


def test_canonical_target_rejects_unknown_depth():
    depth = np.array([[1.0, 0.0, np.nan], [np.inf, -2.0, 1e-45]], np.float32)
    target, ok = canonical_target(depth, None, 0.5)
    np.testing.assert_array_equal(ok, [[True, False, False], [False, False, False]])  # 1e-45 overflows
    np.testing.assert_array_equal(target, [[0.5, 0, 0], [0, 0, 0]])
    target, ok = canonical_target(depth, np.zeros((2, 3), bool), 0.5)
    assert not ok.any() and not target.any()
    with pytest.raises(ValueError, match="focal_over_width"):
        canonical_target(depth, None, 0.0)


def test_horizontal_fov(scene):
    assert horizontal_fov_deg(50.0, 100) == pytest.approx(90.0)
    assert horizontal_fov_deg(scene["K"][0, 0], scene["image"].shape[1]) == pytest.approx(scene["fov_deg"])


def test_sample_focal_px_prefers_K_and_exif_only_on_request():
    K = np.diag([30.0, 31.0, 1.0])
    assert sample_focal_px({"K": K, "focal_px": 20.0, "exif_focal_px": 10.0}) == 30.0
    assert sample_focal_px({"focal_px": 20.0, "exif_focal_px": 10.0}) == 20.0
    assert sample_focal_px({"exif_focal_px": 10.0}) is None
    assert sample_focal_px({"exif_focal_px": 10.0}, use_exif=True) == 10.0
    assert sample_focal_px({"K": np.full((3, 3), np.nan), "focal_px": 0.0}) is None


# ---------------------------------------------------------------------------------------------------
# Geometry


def test_crop_box_stays_inside_and_centres():
    config = AugmentConfig(scale=[0.2, 1.0], ratio=[0.5, 2.0], center_crop=0.0)
    rng = np.random.default_rng(0)
    for _ in range(300):
        x0, y0, w, h = crop_box(30, 50, config, rng)
        assert 1 <= w <= 50 and 1 <= h <= 30 and 0 <= x0 <= 50 - w and 0 <= y0 <= 30 - h
        assert w * h <= 1.0 * 30 * 50 * 1.1
    centred = replace(config, center_crop=1.0)
    for _ in range(50):
        x0, y0, w, h = crop_box(30, 50, centred, rng)
        assert (x0, y0) == ((50 - w) // 2, (30 - h) // 2)
    full = AugmentConfig(scale=[1.0, 1.0], ratio=[50 / 30, 50 / 30])
    assert crop_box(30, 50, full, rng) == (0, 0, 50, 30)


def test_crop_intrinsics_analytic():
    K = np.array([[40.0, 0.0, 31.5], [0.0, 42.0, 23.5], [0.0, 0.0, 1.0]])
    box, size = (10, 4, 32, 20), 64
    new = crop_intrinsics(K, box, size)
    assert new[0, 0] == 40 * 64 / 32 and new[1, 1] == 42 * 64 / 20
    assert new[0, 2] == pytest.approx((31.5 + 0.5 - 10) * 2 - 0.5)
    assert new[1, 2] == pytest.approx((23.5 + 0.5 - 4) * 64 / 20 - 0.5)
    np.testing.assert_array_equal(new[2], [0, 0, 1])
    flipped = crop_intrinsics(K, box, size, flip=True)
    assert flipped[0, 0] == new[0, 0] and flipped[1, 2] == new[1, 2]
    assert flipped[0, 2] == pytest.approx(size - 1 - new[0, 2])
    # The whole image at its own size: K unchanged (the pixel-centre convention is consistent).
    np.testing.assert_allclose(crop_intrinsics(K, (0, 0, 64, 64), 64), K)


@pytest.mark.parametrize(("size", "flip"), [(32, False), (32, True), (96, False)])
def test_item_depth_and_K_follow_the_crop(scene, size, flip):
    """Metric depth recovered from the item (fx' / (S · target)) is the nearest-neighbour-resized ground
    truth of the crop, and 3D points re-project with the item's K onto the pixels that show them."""
    config = replace(GEOMETRY_ONLY, hflip=float(flip), scale=[0.3, 0.6])
    for seed in range(4):
        item = augment(scene, size, config, np.random.default_rng(seed))
        box = item_box(scene, size, config, seed)
        x0, y0, w, h = box
        K_item = item["K"].double().numpy()
        np.testing.assert_allclose(K_item, crop_intrinsics(scene["K"], box, size, flip), rtol=1e-6)
        assert item["focal_over_width"] == pytest.approx(scene["K"][0, 0] / w)
        assert item["fov_deg"] == pytest.approx(horizontal_fov_deg(scene["K"][0, 0], w))
        assert item["fov_deg"] == pytest.approx(horizontal_fov_deg(K_item[0, 0], size), rel=1e-6)

        depth = expected_nearest(scene["depth"], box, size)
        valid = expected_nearest(scene["valid"], box, size) & (depth > 0)
        if flip:
            depth, valid = depth[:, ::-1], valid[:, ::-1]
        target, ok = item["target"][0].double().numpy(), item["valid"][0].numpy()
        np.testing.assert_array_equal(ok, valid)
        recovered = K_item[0, 0] / (size * target[ok])
        np.testing.assert_allclose(recovered, depth[ok], rtol=1e-6)

        # Back-project the source pixel shown at output (i, j), mirror the scene if flipped, project with K'.
        K_inv = np.linalg.inv(scene["K"])
        rows, cols = np.nonzero(ok)
        for i, j in list(zip(rows, cols, strict=True))[:: max(1, len(rows) // 40)]:
            jj = size - 1 - j if flip else j
            u = math.floor(x0 + (jj + 0.5) * w / size)
            v = math.floor(y0 + (i + 0.5) * h / size)
            point = scene["depth"][v, u] * (K_inv @ [u, v, 1.0])
            if flip:
                point[0] = -point[0]
            x, y, z = K_item @ point
            assert abs(x / z - j) <= 0.5 * max(1.0, size / w) + 1e-4
            assert abs(y / z - i) <= 0.5 * max(1.0, size / h) + 1e-4
            assert K_item[0, 0] / (size * target[i, j]) == pytest.approx(point[2], rel=1e-6)


def test_uncropped_item_keeps_focal_over_width(scene):
    height, width = scene["depth"].shape
    config = replace(GEOMETRY_ONLY, scale=[1.0, 1.0], ratio=[width / height] * 2)
    item = augment(scene, 40, config, np.random.default_rng(1))
    assert item["focal_over_width"] == scene["K"][0, 0] / width
    assert item["fov_deg"] == pytest.approx(scene["fov_deg"])
    target, ok = canonical_target(scene["depth"], scene["valid"], scene["K"][0, 0] / width)
    expected = expected_nearest(target, (0, 0, width, height), 40)
    np.testing.assert_array_equal(item["target"][0].numpy(), expected)
    np.testing.assert_array_equal(item["valid"][0].numpy(), expected_nearest(ok, (0, 0, width, height), 40))


def test_flip_mirrors_image_depth_and_cx(scene):
    plain, mirrored = (replace(AugmentConfig(), hflip=p, color=1.0, blur=1.0) for p in (0.0, 1.0))
    a = augment(scene, 48, plain, np.random.default_rng(7))
    b = augment(scene, 48, mirrored, np.random.default_rng(7))
    for key in ("image", "target", "valid"):
        assert torch.equal(b[key], a[key].flip(-1)), key
    assert b["K"][0, 0] == a["K"][0, 0] and b["K"][1, 2] == a["K"][1, 2]
    assert b["K"][0, 2].item() == pytest.approx(48 - 1 - a["K"][0, 2].item())
    assert b["focal_over_width"] == a["focal_over_width"]


def test_photometric_augmentation_leaves_geometry(scene):
    quiet = replace(AugmentConfig(), color=0.0, blur=0.0)
    loud = replace(AugmentConfig(), color=1.0, blur=1.0, color_strength=0.5)
    a = augment(scene, 48, quiet, np.random.default_rng(11))
    b = augment(scene, 48, loud, np.random.default_rng(11))
    for key in ("target", "valid", "K"):
        assert torch.equal(a[key], b[key]), key
    assert a["focal_over_width"] == b["focal_over_width"]
    assert not torch.equal(a["image"], b["image"])
    for item in (a, b):
        assert item["image"].dtype == torch.float32 and item["image"].shape == (3, 48, 48)
        assert item["image"].min() >= -1 and item["image"].max() <= 1


def test_image_matches_network_normalisation():
    sample = fake_sample("flat", 16, 16)
    sample["image"][:] = (0, 128, 255)
    config = replace(GEOMETRY_ONLY, scale=[1.0, 1.0], ratio=[1.0, 1.0])
    item = augment(sample, 8, config, np.random.default_rng(0))
    np.testing.assert_allclose(item["image"][:, 0, 0].numpy(), [-1.0, 128 / 255 * 2 - 1, 1.0], atol=1e-6)


def test_depth_free_and_focal_only_samples():
    image = np.zeros((20, 30, 3), np.uint8)
    item = augment(
        {"name": "photo", "image": image, "focal_px": 30.0}, 16, GEOMETRY_ONLY, np.random.default_rng(0)
    )
    assert item["target"].shape == (1, 16, 16) and not item["target"].any() and not item["valid"].any()
    assert math.isfinite(item["fov_deg"]) and math.isfinite(item["focal_over_width"])
    # Without K, the principal point is assumed at the image centre.
    full = replace(GEOMETRY_ONLY, scale=[1.0, 1.0], ratio=[1.5, 1.5])
    item = augment({"image": image, "focal_px": 30.0}, 30, full, np.random.default_rng(0))
    np.testing.assert_allclose(item["K"].numpy(), [[30, 0, 14.5], [0, 45, 14.5], [0, 0, 1]], rtol=1e-6)
    unknown = augment(
        {"image": image, "depth": np.ones((20, 30), np.float32)}, 16, GEOMETRY_ONLY, np.random.default_rng(0)
    )
    assert torch.isnan(unknown["K"]).all() and math.isnan(unknown["fov_deg"])
    assert math.isnan(unknown["focal_over_width"])
    assert unknown["valid"].all() and torch.equal(unknown["target"], torch.ones(1, 16, 16))  # 1 / depth
    with pytest.raises(ValueError, match="depth"):
        augment(
            {"image": image, "depth": np.ones((5, 5), np.float32)},
            16,
            GEOMETRY_ONLY,
            np.random.default_rng(0),
        )


def test_relative_items_use_inverse_depth():
    sample = fake_sample("rel")
    metric = augment(sample, 8, GEOMETRY_ONLY, np.random.default_rng(2))
    relative = augment(sample, 8, GEOMETRY_ONLY, np.random.default_rng(2), metric=False)
    ratio = (metric["target"] / relative["target"])[metric["valid"]]
    torch.testing.assert_close(ratio, torch.full_like(ratio, metric["focal_over_width"]))


# ---------------------------------------------------------------------------------------------------
# Mixture


def fake_datasets(*lengths: int) -> list[list[dict[str, Any]]]:
    return [[fake_sample(f"d{d}_{i}") for i in range(n)] for d, n in enumerate(lengths)]


def metric(name: str, weight: float = 1.0, **kw: Any) -> DatasetConfig:
    return DatasetConfig(source=f"folder=/data/{name}", kind="metric", weight=weight, **kw)


def test_mixture_is_deterministic_per_position():
    configs = [metric("a"), metric("b")]
    one = MixtureDataset(configs, 8, AugmentConfig(), seed=5, datasets=fake_datasets(3, 4))
    two = MixtureDataset(configs, 8, AugmentConfig(), seed=5, datasets=fake_datasets(3, 4))
    for position in (0, 17, 12345678901):
        a, b = one[position], two[position]
        assert a.keys() == b.keys() and a["position"] == position
        for key, value in a.items():
            assert torch.equal(value, b[key]) if torch.is_tensor(value) else value == b[key], key
    assert not torch.equal(one[1]["image"], one[2]["image"])
    other_seed = MixtureDataset(configs, 8, AugmentConfig(), seed=6, datasets=fake_datasets(3, 4))
    assert not torch.equal(one[1]["image"], other_seed[1]["image"])
    assert len(one) >= 2**62
    assert one.names == ["folder:a", "folder:b"]
    with pytest.raises(IndexError):
        one[-1]


def test_mixture_honours_weights_and_labels():
    configs = [metric("a", 3.0), DatasetConfig(source="folder=/x/b", kind="relative", weight=1.0, name="bee")]
    mixture = MixtureDataset(configs, 4, GEOMETRY_ONLY, datasets=fake_datasets(5, 5))
    np.testing.assert_allclose(mixture.probabilities, [0.75, 0.25])
    items = [mixture[p] for p in range(2000)]
    sources = np.array([item["source"] for item in items])
    assert abs((sources == 0).mean() - 0.75) < 0.03
    assert {item["kind"] for item in items if item["source"] == 0} == {LABEL_KINDS.index("metric")}
    assert {item["kind"] for item in items if item["source"] == 1} == {LABEL_KINDS.index("relative")}
    assert {item["trim"] for item in items} == {0.2}
    assert mixture.names == ["folder:a", "bee"]


class Flaky:
    """A reader of 10 samples: 0 raises, 1 has no depth, 2 no focal length, 3 no valid depth."""

    def __len__(self) -> int:
        return 10

    def name(self, index: int) -> str:
        return f"flaky_{index}"

    def __getitem__(self, index: int) -> dict[str, Any]:
        if index == 0:
            raise OSError("truncated file")
        sample = fake_sample(self.name(index))
        if index == 1:
            del sample["depth"]
        if index == 2:
            del sample["K"]
        if index == 3:
            sample["valid"][:] = False
        return sample


def test_bad_samples_are_redrawn_and_recorded():
    mixture = MixtureDataset([metric("flaky")], 8, GEOMETRY_ONLY, seed=1, datasets=[Flaky()])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        items = [mixture[p] for p in range(60)]
    assert all(item["valid"].any() for item in items)
    reasons = {name: reason for _, name, reason in mixture.skipped}
    assert reasons == {
        "flaky_0": "OSError: truncated file",
        "flaky_1": "no valid depth",
        "flaky_2": "no focal length (K or focal_px)",
        "flaky_3": "no valid depth",
    }
    assert {label for label, _, _ in mixture.skipped} == {"folder:flaky"}
    assert len(mixture.skipped) > len(reasons)  # drawn again and again, ...
    assert len(caught) == len(reasons)  # ... warned about once each
    assert all("folder:flaky/flaky_" in str(w.message) for w in caught)
    again = MixtureDataset([metric("flaky")], 8, GEOMETRY_ONLY, seed=1, datasets=[Flaky()])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert torch.equal(again[13]["image"], items[13]["image"])  # redraws are deterministic too


def test_relative_data_needs_no_focal_and_all_bad_raises():
    no_focal = [fake_sample("n0"), fake_sample("n1")]
    for sample in no_focal:
        del sample["K"]
    relative = DatasetConfig(source="folder=/r", kind="relative")
    item = MixtureDataset([relative], 8, GEOMETRY_ONLY, datasets=[no_focal])[0]
    assert item["valid"].any() and math.isnan(item["focal_over_width"])
    mixture = MixtureDataset([metric("m")], 8, GEOMETRY_ONLY, datasets=[no_focal])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(RuntimeError, match=r"no usable sample in 10 draws.*folder:m/n[01] \(no focal"):
            mixture[0]
    assert len(mixture.skipped) == MAX_ATTEMPTS


def test_config_validation_messages():
    augment_config = AugmentConfig()
    cases = [
        (replace(metric("a"), kind="stereo"), "dataset 'folder:a' .*kind 'stereo'"),
        (replace(metric("a"), weight=0.0), "dataset 'folder:a' .*weight must be > 0"),
        (replace(metric("a"), trim=1.0, name="mine"), r"dataset 'mine' .*trim must be in \[0, 1\)"),
    ]
    for config, message in cases:
        with pytest.raises(ValueError, match=message):
            MixtureDataset([config], 8, augment_config, datasets=[[fake_sample("x")]])
        with pytest.raises(ValueError, match=message):
            open_source(config)
    with pytest.raises(ValueError, match="has no samples"):
        MixtureDataset([metric("a")], 8, augment_config, datasets=[[]])
    with pytest.raises(ValueError, match=r"augment.scale"):
        check_augment_config(AugmentConfig(scale=[0.5, 1.5]))
    with pytest.raises(ValueError, match=r"augment.hflip"):
        MixtureDataset([metric("a")], 8, AugmentConfig(hflip=2.0), datasets=[[fake_sample("x")]])
    assert effective_trim(DatasetConfig(kind="synthetic")) == 0.0
    assert effective_trim(metric("a")) == 0.2 and effective_trim(metric("a", trim=0.1)) == 0.1
    assert effective_trim(DatasetConfig(source="folder=/r", kind="relative")) == 0.2


def test_open_source_names_the_spec(tmp_path):
    missing = str(tmp_path / "nowhere")
    with pytest.raises((FileNotFoundError, ValueError), match="nowhere"):
        open_source(DatasetConfig(source=f"folder={missing}", kind="metric"))
    with pytest.raises(ValueError, match="bogus=x"):
        open_source(DatasetConfig(source="bogus=x", kind="metric"))
    synthetic = SyntheticSourceConfig(size_range=[40, 50], families=["room"], seed=4, length=7)
    dataset = open_source(DatasetConfig(source="synthetic", synthetic=synthetic))
    assert isinstance(dataset, SyntheticScenes) and len(dataset) == 7
    assert dataset.size_range == (40, 50) and dataset.families == ("room",) and dataset.seed == 4


# ---------------------------------------------------------------------------------------------------
# Sampler and loader


def steps_of(sampler: StepSampler, batch: int) -> list[list[int]]:
    positions = list(sampler)
    return [positions[i : i + batch] for i in range(0, len(positions), batch)]


def test_step_sampler_ranks_union_equals_one_process():
    single = steps_of(StepSampler(6, steps=4), 6)
    ranks = [steps_of(StepSampler(3, rank=r, world_size=2, steps=4), 3) for r in range(2)]
    assert len(single) == 4 and all(len(r) == 4 for r in ranks)
    for step in range(4):
        assert (
            sorted(ranks[0][step] + ranks[1][step])
            == sorted(single[step])
            == list(range(6 * step, 6 * step + 6))
        )
        assert not set(ranks[0][step]) & set(ranks[1][step])
    assert list(StepSampler(2, rank=1, world_size=3, steps=2)) == [1, 4, 7, 10]
    assert len(StepSampler(3, rank=1, world_size=2, start_step=1, steps=4)) == 9
    with pytest.raises(ValueError, match="rank"):
        StepSampler(2, rank=2, world_size=2)


def test_step_sampler_resume_is_exact():
    uninterrupted = list(StepSampler(4, rank=1, world_size=2, steps=7))
    resumed = list(StepSampler(4, rank=1, world_size=2, start_step=3, steps=7))
    assert resumed == uninterrupted[3 * 4 :]
    endless = iter(StepSampler(4, rank=1, world_size=2, start_step=3))
    assert [next(endless) for _ in range(16)] == uninterrupted[12:]
    with pytest.raises(TypeError):
        len(StepSampler(4))

    mixture = MixtureDataset([metric("a")], 8, AugmentConfig(), datasets=fake_datasets(6))
    loader = torch.utils.data.DataLoader(mixture, batch_size=4, sampler=StepSampler(4, steps=5))
    resumed_loader = torch.utils.data.DataLoader(
        mixture, batch_size=4, sampler=StepSampler(4, start_step=3, steps=5)
    )
    batches, resumed_batches = list(loader), list(resumed_loader)
    assert len(batches) == 5 and len(resumed_batches) == 2
    for a, b in zip(batches[3:], resumed_batches, strict=True):
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["position"], b["position"])


def test_dataloader_batches_synthetic_scenes():
    synthetic = SyntheticSourceConfig(size_range=[48, 80], seed=2, length=1000)
    mixture = MixtureDataset(
        [DatasetConfig(source="synthetic", synthetic=synthetic)], 32, AugmentConfig(), seed=3
    )
    loader = torch.utils.data.DataLoader(
        mixture, batch_size=3, sampler=StepSampler(3, steps=1), num_workers=0
    )
    (batch,) = list(loader)
    assert batch["image"].shape == (3, 3, 32, 32) and batch["image"].dtype == torch.float32
    assert batch["target"].shape == (3, 1, 32, 32) and batch["target"].dtype == torch.float32
    assert batch["valid"].shape == (3, 1, 32, 32) and batch["valid"].dtype == torch.bool
    assert batch["K"].shape == (3, 3, 3) and batch["K"].dtype == torch.float32
    for key in ("focal_over_width", "fov_deg", "trim"):
        assert batch[key].shape == (3,) and batch[key].dtype == torch.float64, key
    for key in ("kind", "source", "position"):
        assert batch[key].shape == (3,) and batch[key].dtype == torch.int64, key
    assert batch["position"].tolist() == [0, 1, 2]
    assert (batch["kind"] == LABEL_KINDS.index("synthetic")).all() and (batch["trim"] == 0).all()
    assert (batch["target"][batch["valid"]] > 0).all() and (batch["target"][~batch["valid"]] == 0).all()
    assert torch.isfinite(batch["focal_over_width"]).all() and (batch["fov_deg"] > 10).all()
    # The item's K agrees with its focal_over_width: fx' / S = f / w_c.
    torch.testing.assert_close(
        batch["K"][:, 0, 0].double() / 32, batch["focal_over_width"], rtol=1e-6, atol=0
    )
