"""Building blocks shared by the synthetic dataset generators.

Every function draws randomness only from the ``rng`` it is given, so a generator seeded
the same way produces the same bytes.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter


def grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """(yy, xx) coordinates in [-1, 1] over a size x size image."""
    c = np.linspace(-1.0, 1.0, size)
    return np.meshgrid(c, c, indexing="ij")


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise rescaled to zero mean and unit standard deviation."""
    n = gaussian_filter(rng.standard_normal(shape), sigma=sigma, mode="reflect")
    return (n - n.mean()) / (n.std() + 1e-12)


def bias_field(rng: np.random.Generator, size: int, strength: float) -> np.ndarray:
    """A smooth multiplicative field around 1 (MRI-like intensity inhomogeneity)."""
    return np.exp(strength * smooth_noise(rng, (size, size), sigma=size / 4))


def ellipse(size: int, center: tuple[float, float], axes: tuple[float, float], angle: float = 0.0,
            softness: float = 0.0) -> np.ndarray:
    """A filled ellipse in [0, 1] (coordinates in [-1, 1]); ``softness`` > 0 gives a smooth edge."""
    yy, xx = grid(size)
    ca, sa = np.cos(angle), np.sin(angle)
    y, x = yy - center[0], xx - center[1]
    u, v = (x * ca + y * sa) / axes[1], (-x * sa + y * ca) / axes[0]
    r = np.sqrt(u * u + v * v)
    if softness <= 0:
        return (r <= 1.0).astype(np.float64)
    return np.clip((1.0 + softness - r) / (2 * softness), 0.0, 1.0)


def irregular_blob(rng: np.random.Generator, size: int, center: tuple[float, float], radius: float,
                   roughness: float = 0.3, softness: float = 0.15) -> np.ndarray:
    """A lobulated blob in [0, 1]: a circle whose radius varies smoothly with the angle."""
    yy, xx = grid(size)
    y, x = yy - center[0], xx - center[1]
    theta = np.arctan2(y, x)
    k = np.arange(1, 6)
    amp = rng.normal(0, roughness, k.size) / k
    phase = rng.uniform(0, 2 * np.pi, k.size)
    rad = radius * (1 + np.sum(amp[:, None, None] * np.cos(k[:, None, None] * theta + phase[:, None, None]), 0))
    r = np.sqrt(x * x + y * y) / np.maximum(rad, 1e-6)
    return np.clip((1.0 + softness - r) / (2 * softness), 0.0, 1.0)


def to_uint8(image: np.ndarray, lo: float = 0.0, hi: float = 1.0) -> np.ndarray:
    """Clip ``image`` from [lo, hi] to 0..255 uint8."""
    return np.round(np.clip((image - lo) / (hi - lo), 0.0, 1.0) * 255.0).astype(np.uint8)
