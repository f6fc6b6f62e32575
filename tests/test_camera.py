import math

import pytest
import torch

from metricdepth.camera import focal_from_35mm, focal_to_fov, fov_to_focal, intrinsics_matrix
from metricdepth.geometry import depth_discontinuities, depth_to_points


def test_focal_fov_roundtrip():
    assert fov_to_focal(90.0, 1000) == pytest.approx(500.0)
    assert focal_to_fov(500.0, 1000) == pytest.approx(90.0)
    fov = torch.tensor([30.0, 60.0, 100.0])
    torch.testing.assert_close(focal_to_fov(fov_to_focal(fov, 640), 640), fov)


def test_focal_from_35mm_uses_the_diagonal():
    # A full-frame 36x24 "image" 3600x2400 px: 1 mm = 100 px, so f35 = 50 mm is 5000 px.
    assert focal_from_35mm(50, 3600, 2400) == pytest.approx(5000.0)
    assert focal_from_35mm(29, 751, 563) == pytest.approx(29 * math.hypot(751, 563) / math.hypot(36, 24))


def test_back_projection():
    K = intrinsics_matrix(torch.tensor(100.0), width=5, height=3)
    assert K.tolist() == [[100, 0, 2], [0, 100, 1], [0, 0, 1]]
    depth = torch.full((3, 5), 2.0)
    points = depth_to_points(depth, K)
    assert points.shape == (3, 5, 3)
    torch.testing.assert_close(points[1, 2], torch.tensor([0.0, 0.0, 2.0]))
    torch.testing.assert_close(points[0, 4], torch.tensor([2 * 2 / 100, -1 * 2 / 100, 2.0]))
    # Reprojection gives the pixel back.
    uv = (K @ points.reshape(-1, 3).T).T
    torch.testing.assert_close(
        uv[:, :2] / uv[:, 2:],
        torch.stack(torch.meshgrid(torch.arange(5.0), torch.arange(3.0), indexing="xy"), -1).reshape(-1, 2),
    )


def test_discontinuities_mark_both_sides_of_a_step():
    depth = torch.ones(6, 8)
    depth[:, 4:] = 3.0
    edges = depth_discontinuities(depth)
    assert edges[:, 3:5].all() and not edges[:, :3].any() and not edges[:, 5:].any()
    assert not depth_discontinuities(torch.linspace(1, 1.02, 8).repeat(6, 1)).any()
