"""RSA pipeline: relative depth + caption → metric depth, captions recorded, the evaluation harness."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from metricdepth.evaluation.protocols import EvalSet, Protocol
from metricdepth.evaluation.runner import evaluate
from metricdepth.models.relative import CallableRelative
from metricdepth.rsa import RSAHead, RSAPipeline, RSAPredictor, compare, oracle_inverse_depth
from metricdepth.rsa.baselines import RelativePredictor


class FakeEncoder:
    """A frozen 'text encoder': the embedding says which of a few captions it was (one-hot)."""

    name, dim = "fake", 4
    vocabulary = ("An image with a cup.", "An image with a bus.", "", "A desk.")

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def encode(self, captions):
        captions = [captions] if isinstance(captions, str) else list(captions)
        self.calls.append(captions)
        out = torch.zeros(len(captions), self.dim)
        for i, caption in enumerate(captions):
            out[i, self.vocabulary.index(caption)] = 1.0
        return out


def fixed_head(alpha: float, beta: float, dim: int = 4, text_encoder: str = "fake") -> RSAHead:
    """A head whose α, β are exactly ``alpha``, ``beta`` for every embedding (last layers zeroed)."""
    head = RSAHead(dim, "small", text_encoder=text_encoder)
    with torch.no_grad():
        for net, value in ((head.scale_net, alpha), (head.shift_net, beta)):
            net[-1].weight.zero_()
            net[-1].bias.fill_(math.log(value))
    return head


def ramp(rgb: np.ndarray) -> np.ndarray:
    """Relative inverse depth: the horizontal pixel coordinate / width (0 .. 1)."""
    height, width = rgb.shape[:2]
    return np.tile(np.arange(width, dtype=np.float32) / width, (height, 1))


@pytest.fixture
def image() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (12, 20, 3), dtype=np.uint8)


def test_depth_is_one_over_alpha_y_plus_beta_and_the_caption_is_recorded(image):
    pipeline = RSAPipeline(CallableRelative(ramp), FakeEncoder(), fixed_head(2.0, 0.5))
    prediction = pipeline.infer(image, caption="An image with a cup.")
    y = torch.from_numpy(ramp(image))
    torch.testing.assert_close(prediction.depth, 1 / (2.0 * y + 0.5), rtol=1e-5, atol=0)
    torch.testing.assert_close(prediction.inverse_depth, 2.0 * y + 0.5, rtol=1e-5, atol=0)
    assert prediction.is_metric and prediction.caption == "An image with a cup."
    assert prediction.intrinsics is None and prediction.focal_px is None  # RSA has no camera model
    assert prediction.to_numpy()["caption"] == "An image with a cup."


def test_depth_is_clamped_to_the_range(image):
    pipeline = RSAPipeline(
        CallableRelative(ramp), FakeEncoder(), fixed_head(2.0, 0.01), min_depth=0.6, max_depth=5
    )
    depth = pipeline.infer(image, caption="A desk.").depth
    assert float(depth.max()) == pytest.approx(5.0) and float(depth.min()) >= 0.6 - 1e-6


def test_captions_per_image_auto_and_errors(image):
    class Captioner:
        def caption(self, rgb):
            assert rgb.dtype == np.uint8 and rgb.shape == image.shape
            return "An image with a bus."

    encoder = FakeEncoder()
    pipeline = RSAPipeline(CallableRelative(ramp), encoder, fixed_head(1.0, 1.0), captioner=Captioner())
    single = pipeline.infer(image, caption="auto")
    assert single.caption == "An image with a bus."
    both = pipeline.infer([image, image], caption=["A desk.", "auto"])
    assert [p.caption for p in both] == ["A desk.", "An image with a bus."]
    batched = pipeline.infer(
        torch.from_numpy(image).permute(2, 0, 1)[None].repeat(2, 1, 1, 1), caption="A desk."
    )
    assert batched.batched and batched.caption == ["A desk.", "A desk."]
    with pytest.raises(ValueError, match="needs a caption"):
        pipeline.infer(image)
    with pytest.raises(ValueError, match="3 captions for 2 images"):
        pipeline.infer([image, image], caption=["A desk."] * 3)


def test_user_focal_gives_intrinsics_for_point_clouds(image):
    pipeline = RSAPipeline(CallableRelative(ramp), FakeEncoder(), fixed_head(1.0, 1.0))
    prediction = pipeline.infer(image, caption="A desk.", f_px=30.0)
    assert prediction.focal_px == 30.0 and prediction.focal_source == "user"
    assert prediction.intrinsics.shape == (3, 3)


def test_encoder_and_head_widths_must_agree():
    with pytest.raises(ValueError, match="4-d embeddings but the RSA head takes 8-d"):
        RSAPipeline(CallableRelative(ramp), FakeEncoder(), fixed_head(1.0, 1.0, dim=8))
    with pytest.raises(ValueError, match="does not name its text encoder"):
        RSAPipeline(CallableRelative(ramp), None, RSAHead(4, "small"))


def test_oracle_relative_depth_loses_scale_and_shift():
    depth = np.array([[1.0, 2.0], [4.0, 0.0]], dtype=np.float32)
    y = oracle_inverse_depth(depth)
    torch.testing.assert_close(y, torch.tensor([[1.0, 1 / 3], [0.0, 0.0]]))
    # Any positive affine map of inverse depth gives the same y: nothing in y can tell the scale.
    torch.testing.assert_close(oracle_inverse_depth(depth * 7.0), y)


def synthetic_samples(count: int, seed: int) -> list[dict]:
    """Tiny scenes of two families whose scale only the caption tells: near (0.5-1 m) and far (5-10 m)."""
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(count):
        far = i % 2 == 1
        base = 5.0 if far else 0.5
        depth = (base * (1 + rng.random((16, 16)))).astype(np.float32)
        caption = "An image with a bus." if far else "An image with a cup."
        image = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
        samples.append({"name": f"s{i}", "image": image, "depth": depth, "captions": [caption]})
    return samples


def test_rsa_predictor_uses_each_samples_caption_and_the_runner_scores_it():
    samples = synthetic_samples(4, 0)
    encoder = FakeEncoder()
    pipeline = RSAPipeline("ground-truth", encoder, fixed_head(1.0, 1.0))
    predictor = RSAPredictor(pipeline)
    assert predictor.sample_caption(samples[1]) == "An image with a bus."
    eval_set = EvalSet("toy", samples, Protocol("toy"))
    result = evaluate(predictor, [eval_set], ("none",))
    assert not result.failures and result.rows[0]["images"] == 4
    assert [c for call in encoder.calls for c in call] == [s["captions"][0] for s in samples]


def test_relative_predictions_need_an_alignment():
    samples = synthetic_samples(2, 1)
    eval_set = EvalSet("toy", samples, Protocol("toy"))
    result = evaluate(RelativePredictor("ground-truth"), [eval_set], ("none",))
    assert len(result.failures) == 2 and "alignment" in result.failures[0][2]
    # Linear Fit in inverse depth undoes the min-max normalisation exactly (up to float32).
    result = evaluate(RelativePredictor("ground-truth"), [eval_set], ("lstsq-disparity",))
    assert result.rows[0]["abs_rel"] < 1e-5 and result.rows[0]["d1"] == 1.0


def test_compare_gives_one_row_per_method():
    train, test = synthetic_samples(8, 2), synthetic_samples(6, 3)
    protocol = Protocol("toy")
    test_set, fit_set = EvalSet("toy", test, protocol), EvalSet("toy", train, protocol)
    result = compare(
        "ground-truth",
        [test_set],
        models={"RSA": fixed_head(0.5, 0.1)},
        text_encoder=FakeEncoder(),
        global_fit={"toy": fit_set},
    )
    methods = [row["alignment"] for row in result.rows]
    assert methods == ["Median", "Linear Fit", "Global", "RSA"]
    rows = {row["alignment"]: row for row in result.rows}
    assert rows["Linear Fit"]["abs_rel"] < 1e-5  # min-max normalisation is affine in inverse depth
    assert all(rows[m]["images"] == 6 for m in methods)
    assert rows["Global"]["global_scale"] > 0
    only = compare(
        "ground-truth",
        [test_set],
        models={"RSA": fixed_head(0.5, 0.1)},
        text_encoder=FakeEncoder(),
        baselines=False,
    )
    assert [row["alignment"] for row in only.rows] == ["RSA"]
    assert only.rows[0]["d1"] == rows["RSA"]["d1"]
