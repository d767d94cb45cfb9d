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
