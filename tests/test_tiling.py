import torch

from metricdepth.models.depth_pro.tiling import merge_tiles, split_tiles, tile_grid


def test_reference_grid_geometry():
    assert tile_grid(1536, 384, 0.25) == (5, 288)
    assert tile_grid(768, 384, 0.5) == (3, 192)
    assert tile_grid(384, 384, 0.0) == (1, 384)


def test_split_order_is_row_major_and_tile_major():
    batch = 2
    x = torch.arange(batch * 1536 * 1536, dtype=torch.float32).reshape(batch, 1, 1536, 1536)
    tiles = split_tiles(x, 384, 0.25)
    assert tiles.shape == (25 * batch, 1, 384, 384)
    offsets = [0, 288, 576, 864, 1152]
    for j, y0 in enumerate(offsets):
        for i, x0 in enumerate(offsets):
            for b in range(batch):
                assert torch.equal(tiles[(j * 5 + i) * batch + b], x[b, :, y0 : y0 + 384, x0 : x0 + 384])


def test_merge_inverts_split_on_token_grids():
    """Tiles cut from a feature map at token stride, merged with half the overlap, give the map back."""
    for size, tile, overlap, padding in (
        (96, 24, 0.25, 3),
        (48, 24, 0.5, 6),
        (32, 8, 0.25, 1),
        (16, 8, 0.5, 2),
    ):
        features = torch.randn(3, 4, size, size)
        merged = merge_tiles(split_tiles(features, tile, overlap), batch_size=3, padding=padding)
        assert torch.equal(merged, features), (size, tile, overlap)
