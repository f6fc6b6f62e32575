import io
import math

import numpy as np
import pytest
from PIL import Image

from metricdepth import ImageLoadError, load_image

# How each EXIF orientation stores an upright image U (a viewer applies the inverse to display it).
STORED = {
    1: lambda u: u,
    2: lambda u: u[:, ::-1],  # mirrored horizontally
    3: lambda u: u[::-1, ::-1],  # rotated 180°
    4: lambda u: u[::-1],  # mirrored vertically
    5: lambda u: u.transpose(1, 0, 2),  # mirrored along the main diagonal
    6: lambda u: np.rot90(u, 1),  # stored rotated 90° counter-clockwise; displayed by turning clockwise
    7: lambda u: np.rot90(u, 2).transpose(1, 0, 2),  # mirrored along the anti-diagonal
    8: lambda u: np.rot90(u, -1),  # stored rotated 90° clockwise
}


def exif_bytes(orientation=None, focal_35mm=None, in_base_ifd=False):
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    if focal_35mm is not None:
        if in_base_ifd:
            exif[0xA405] = focal_35mm
        else:
            exif.get_ifd(0x8769)[0xA405] = focal_35mm
    return exif.tobytes()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_all_exif_orientations(tmp_path, rgb, orientation):
    path = tmp_path / f"o{orientation}.png"
    Image.fromarray(np.ascontiguousarray(STORED[orientation](rgb))).save(
        path, exif=exif_bytes(orientation, 50)
    )
    loaded = load_image(path)
    np.testing.assert_array_equal(loaded.rgb, rgb)
    height, width = rgb.shape[:2]
    assert loaded.focal_px == pytest.approx(50 * math.hypot(width, height) / math.hypot(36, 24))


def smooth_image():
    """A JPEG-friendly asymmetric image: gradients and a dark block in one corner."""
    v, u = np.mgrid[0:60, 0:80]
    image = np.stack([u * 3, v * 4, 255 - u * 2], axis=-1).astype(np.uint8)
    image[:15, :25] = 0
    return image


def test_exif_rotated_jpeg(tmp_path):
    rgb = smooth_image()
    path = tmp_path / "rotated.jpg"
    Image.fromarray(np.ascontiguousarray(STORED[6](rgb))).save(path, quality=95, exif=exif_bytes(6))
    loaded = load_image(path)
    assert loaded.rgb.shape == rgb.shape and loaded.focal_px is None
    assert np.abs(loaded.rgb.astype(int) - rgb).mean() < 3  # JPEG noise, but the right way up


def test_real_iphone_exif_focal(data_dir):
    loaded = load_image(data_dir / "leuvenA.jpg")
    assert loaded.rgb.shape == (563, 751, 3) and loaded.rgb.dtype == np.uint8
    assert loaded.focal_px == pytest.approx(29 * math.hypot(751, 563) / math.hypot(36, 24))
    assert load_image(data_dir / "motorcycle_left.png").focal_px is None


def test_focal_in_base_ifd_and_zero_focal(tmp_path, rgb):
    path = tmp_path / "base.png"
    Image.fromarray(rgb).save(path, exif=exif_bytes(focal_35mm=28, in_base_ifd=True))
    assert load_image(path).focal_px == pytest.approx(28 * 100 / math.hypot(36, 24))
    Image.fromarray(rgb).save(path, exif=exif_bytes(focal_35mm=0))
    assert load_image(path).focal_px is None


def test_heic_with_exif(tmp_path):
    import pillow_heif

    rgb = smooth_image()
    path = tmp_path / "photo.heic"
    try:
        pillow_heif.from_pillow(Image.fromarray(rgb)).save(path, quality=-1, exif=exif_bytes(focal_35mm=26))
    except Exception as err:  # pragma: no cover - depends on the wheel's encoders
        pytest.skip(f"this pillow-heif build cannot encode HEIC: {err}")
    loaded = load_image(path)
    assert loaded.rgb.shape == rgb.shape
    assert np.abs(loaded.rgb.astype(int) - rgb).mean() < 4
    assert loaded.focal_px == pytest.approx(26 * 100 / math.hypot(36, 24))


def save(image, path, **kwargs):
    image.save(path, **kwargs)
    return load_image(path).rgb


def test_mode_conversions(tmp_path, rgb):
    grey = rgb[..., 0]
    out = save(Image.fromarray(grey), tmp_path / "l.png")
    assert out.shape == rgb.shape and (out == grey[..., None]).all()

    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)])
    np.testing.assert_array_equal(save(Image.fromarray(rgba), tmp_path / "rgba.png"), rgb)
    np.testing.assert_array_equal(
        save(Image.fromarray(rgba[..., [0, 3]], "LA"), tmp_path / "la.png"), np.repeat(grey[..., None], 3, 2)
    )

    palette = Image.fromarray(rgb).quantize(16)
    expected = np.asarray(palette.convert("RGB"))
    np.testing.assert_array_equal(save(palette, tmp_path / "p.png"), expected)
    palette.info["transparency"] = 0
    np.testing.assert_array_equal(save(palette, tmp_path / "pt.png", transparency=0), expected)

    sixteen = (grey.astype(np.uint16) * 257).astype(np.uint16)
    out = save(Image.fromarray(sixteen), tmp_path / "16bit.png")
    assert Image.open(tmp_path / "16bit.png").mode.startswith("I")
    np.testing.assert_array_equal(out, np.repeat(grey[..., None], 3, 2))

    bits = Image.fromarray(grey > 128)
    np.testing.assert_array_equal(
        save(bits, tmp_path / "1.png"), np.repeat(((grey > 128) * 255).astype(np.uint8)[..., None], 3, 2)
    )

    floats = Image.fromarray(grey.astype(np.float32) / 255.0, "F")
    np.testing.assert_array_equal(save(floats, tmp_path / "f.tiff"), np.repeat(grey[..., None], 3, 2))

    smooth = smooth_image()
    cmyk = save(Image.fromarray(smooth).convert("CMYK"), tmp_path / "cmyk.jpg", quality=95)
    assert cmyk.shape == smooth.shape and np.abs(cmyk.astype(int) - smooth).mean() < 4


def test_one_pixel_image(tmp_path):
    out = save(Image.new("RGB", (1, 1), (10, 20, 30)), tmp_path / "one.png")
    assert out.tolist() == [[[10, 20, 30]]]


def test_bad_files_name_the_file_and_the_problem(tmp_path, rgb):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "notes.jpg"
    text.write_text("this is not a picture\n")
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    cases = {
        empty: "empty",
        text: "not a recognised image",
        truncated: "truncated or corrupt",
        tmp_path / "missing.png": "not found",
        tmp_path: "directory",
    }
    for path, problem in cases.items():
        with pytest.raises(ImageLoadError) as info:
            load_image(path)
        assert str(path) in str(info.value) and problem in str(info.value)
