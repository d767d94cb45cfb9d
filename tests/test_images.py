from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from hetero_ae.data.images import load_image


def save(tmp_path, img: Image.Image, name: str):
    path = tmp_path / name
    img.save(path)
    return path


@pytest.mark.parametrize("mode,name", [("L", "g.png"), ("RGB", "c.jpg"), ("RGBA", "a.png"), ("P", "p.png"),
                                       ("I;16", "d.png"), ("L", "t.tiff"), ("RGB", "b.bmp")])
def test_every_common_mode_loads_as_rgb_uint8(tmp_path, mode, name):
    base = Image.fromarray((np.arange(48 * 48).reshape(48, 48) % 251).astype(np.uint8))
    img = base.convert(mode) if mode != "I;16" else Image.fromarray((np.asarray(base).astype(np.uint16) * 200))
    out = load_image(save(tmp_path, img, name), 32)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8


def test_grayscale_is_repeated_to_three_channels(tmp_path):
    out = load_image(save(tmp_path, Image.fromarray(np.full((8, 8), 77, np.uint8)), "g.png"), 8)
    assert (out == 77).all()


def test_16_bit_uses_its_full_range(tmp_path):
    a = np.zeros((8, 8), np.uint16)
    a[:, 4:] = 4000  # 12-bit data stored in 16 bits
    out = load_image(save(tmp_path, Image.fromarray(a), "d.png"), 8)
    assert out[0, 0, 0] == 0 and out[0, 7, 0] == 255


def test_exif_orientation_is_applied_as_a_viewer_shows_the_image(tmp_path):
    from PIL import ExifTags

    a = np.zeros((32, 64), np.uint8)
    a[:, :32] = 255  # left half bright as stored; orientation 6 (turn 90 degrees clockwise): top half bright
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    Image.fromarray(a).save(tmp_path / "phone.jpg", exif=exif.tobytes(), quality=95)
    out = load_image(tmp_path / "phone.jpg", 32)[..., 0].astype(float)
    assert out[:12].mean() > 200 and out[-12:].mean() < 50
    from hetero_ae.data.datasets import _load_mask

    Image.fromarray(a).save(tmp_path / "mask.png", exif=exif.tobytes())  # a mask is turned as its image is
    mask = _load_mask(tmp_path / "mask.png", 32)
    assert mask[:12].all() and not mask[-12:].any()


def test_16_bit_grayscale_with_alpha_loads_like_16_bit_grayscale(tmp_path):
    import png

    grey = (np.arange(32 * 32).reshape(32, 32) * 4).astype(np.uint16)  # 12-bit values in 16-bit samples
    with_alpha = np.stack([grey, np.full_like(grey, 65535)], axis=2).reshape(32, 64)
    png.from_array(with_alpha, "LA;16").save(str(tmp_path / "la16.png"))
    png.from_array(grey, "L;16").save(str(tmp_path / "l16.png"))
    np.testing.assert_array_equal(load_image(tmp_path / "la16.png", 32), load_image(tmp_path / "l16.png", 32))


def test_an_image_past_the_decompression_bomb_limit_is_one_line_of_ours(tmp_path, monkeypatch, capsys):
    from hetero_ae.data.images import UnreadableImage

    path = save(tmp_path, Image.fromarray(np.full((40, 40), 9, np.uint8)), "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 1600 pixels: past the limit, not twice past it
    assert load_image(path, 8).shape == (8, 8, 3)
    err = capsys.readouterr().err.strip()
    assert err.startswith("hetero-ae: note:") and "big.png" in err and "\n" not in err, err
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)  # twice past it: Pillow's DecompressionBombError
    with pytest.raises(UnreadableImage, match="cannot read image .*big.png"):
        load_image(path, 8)
