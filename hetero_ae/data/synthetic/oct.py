"""Synthetic retinal OCT B-scans, a stand-in for the Kermany et al. (Cell 2018) OCT dataset.

Normal eye: a stack of layers with 1-D boundary curves, as in OCT segmentation models (Chiu et al.,
Opt. Express 2010), with the IN*OCT consensus layers and reflectivities (Staurenghi et al.,
Ophthalmology 2014): dark vitreous, bright RNFL, GCL/IPL/INL/OPL/ONL (dark nuclear, brighter
plexiform layers), ELM, myoid zone, bright ellipsoid zone, interdigitation zone, bright RPE on
Bruch's membrane, then a granular choroid with dark vessel lumens fading with depth. Bruch's
membrane is a random parabola (curvature, tilt, offset, wobble); inner layers thin out in a foveal
pit near the centre, where the ONL and myoid zone thicken; the RNFL thickens nasally; every layer's
thickness and reflectivity varies per patient. Inner-retinal vessels are bright dots casting
vertical shadows. Acquisition: Rayleigh amplitude speckle of random strength (Goodman 1976; Schmitt
et al., J. Biomed. Opt. 1999), a noise floor, an anisotropic resolution blur, depth roll-off,
lateral vignetting, gain and gamma.

Lesions, after their clinical OCT appearance:
- DRUSEN: dome-shaped RPE elevations over Bruch's membrane filled with medium-reflective material.
- DME: INL/OPL/ONL thickening with hyporeflective intraretinal cystoid spaces.
- CNV: fibrovascular PED: irregular hyperreflective heterogeneous sub-RPE (type 1) and subretinal
  (type 2) material, fragmented RPE, disrupted ellipsoid zone, often subretinal fluid beside it.
Elevations thin the ONL above them so the inner retina drapes over them. The mask is the lesion band
(top of the lesion layer to Bruch's membrane, DRUSEN/CNV; swollen INL-ONL plus cysts, DME).
Severity scales the lesions' size, height, number and contrast.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .common import ellipse, smooth_noise, to_uint8

CLASSES = ("NORMAL", "CNV", "DME", "DRUSEN")
NORMAL = "NORMAL"

# (name, reflectivity, thickness as a fraction of the image height), from the ILM down to Bruch's.
_LAYERS = (
    ("RNFL", 0.80, 0.018), ("GCL", 0.42, 0.026), ("IPL", 0.60, 0.022), ("INL", 0.30, 0.021),
    ("OPL", 0.58, 0.017), ("ONL", 0.20, 0.046), ("ELM", 0.50, 0.004), ("MZ", 0.26, 0.010),
    ("EZ", 0.88, 0.007), ("IZ", 0.48, 0.006), ("SRF", 0.03, 0.0), ("SHRM", 0.85, 0.0),
    ("RPE", 0.95, 0.011), ("SUB", 0.50, 0.0),
)
_INNER = ("RNFL", "GCL", "IPL", "INL", "OPL")


@dataclass
class _Eye:
    """Per-column geometry: Bruch's membrane depth (pixels), layer thicknesses and reflectivities."""

    bm: np.ndarray
    thick: dict[str, np.ndarray]
    refl: dict[str, np.ndarray]
    fovea: float

    def tops(self) -> dict[str, np.ndarray]:
        top, out = self.bm, {}
        for name, _, _ in reversed(_LAYERS):
            top = top - self.thick[name]
            out[name] = top
        return out


@dataclass
class _Lesion:
    """Mask band from the top of layer ``top`` to the bottom of ``bottom`` in ``active`` columns."""

    top: str
    bottom: str
    active: np.ndarray
    alpha: np.ndarray | None = None
    texture: float = 0.0

    def mask(self, eye: _Eye, tops: dict[str, np.ndarray], y: np.ndarray) -> np.ndarray:
        bottom = tops[self.bottom] + eye.thick[self.bottom]
        band = (y >= tops[self.top] - 1.0) & (y <= bottom + 0.5) & self.active[None, :]
        return band if self.alpha is None else band | (self.alpha > 0.5)


def _bump(x: np.ndarray, c: float, half: float, power: float) -> np.ndarray:
    return np.clip(1.0 - ((x - c) / half) ** 2, 0.0, None) ** power


def _profile(rng: np.random.Generator, size: int, sigma: float) -> np.ndarray:
    return smooth_noise(rng, (1, size), sigma)[0]


def _ramp(y: np.ndarray, edge: np.ndarray, width: float) -> np.ndarray:
    r = y - (edge.astype(np.float32) - np.float32(0.5 * width))
    r *= np.float32(1.0 / width)
    return np.clip(r, 0.0, 1.0, out=r)


def _coarse_noise(rng: np.random.Generator, size: int, sigma: float) -> np.ndarray:
    """Smooth noise drawn at half resolution and upsampled (cheap for sigma of a few pixels)."""
    half = (size + 1) // 2
    small = smooth_noise(rng, (half, half), sigma / 2.0).astype(np.float32)
    return small.repeat(2, 0).repeat(2, 1)[:size, :size]


def _paste_ellipse(alpha: np.ndarray, cy: float, cx: float, a: float, b: float) -> None:
    """Max-composite a soft ellipse (semi-axes a, b pixels) centred at (cy, cx) into ``alpha``."""
    r = int(np.ceil(1.3 * max(a, b))) + 2
    y0, x0 = int(round(cy)) - r, int(round(cx)) - r
    n, unit = 2 * r + 1, 1.0 / r
    patch = ellipse(n, ((cy - y0 - r) * unit, (cx - x0 - r) * unit), (a * unit, b * unit), softness=0.2)
    ys = slice(max(y0, 0), min(y0 + n, alpha.shape[0]))
    xs = slice(max(x0, 0), min(x0 + n, alpha.shape[1]))
    sub = patch[ys.start - y0:ys.stop - y0, xs.start - x0:xs.stop - x0]
    np.maximum(alpha[ys, xs], sub, out=alpha[ys, xs])


def _normal_eye(rng: np.random.Generator, x: np.ndarray, size: int) -> _Eye:
    depth, bow, tilt = rng.uniform(0.52, 0.7), rng.uniform(-0.04, 0.15), rng.uniform(-0.07, 0.07)
    bm = size * (depth - bow * x**2 + tilt * x + 0.006 * _profile(rng, size, size / 5))
    scale = size * rng.uniform(0.85, 1.4)
    thick = {n: np.full(size, t * scale * rng.uniform(0.85, 1.15)) for n, _, t in _LAYERS}
    refl = {n: np.full(size, r * rng.uniform(0.85, 1.15)) for n, r, _ in _LAYERS}
    fovea, pit = rng.uniform(-0.2, 0.2), rng.uniform(0.1, 0.18)
    g = np.exp(-(((x - fovea) / pit) ** 2))
    floor = rng.uniform(0.0, 0.15)
    for name in _INNER:
        thick[name] *= 1.0 - (1.0 - floor) * g
    nasal = 1.0 / (1.0 + np.exp(-rng.choice((-5.0, 5.0)) * (x - fovea)))
    thick["RNFL"] *= (1.0 - g) * (0.5 + rng.uniform(0.6, 1.4) * nasal)
    thick["GCL"] *= 1.0 + 0.35 * np.exp(-(((np.abs(x - fovea) - 1.5 * pit) / pit) ** 2))
    thick["ONL"] *= 1.0 + rng.uniform(0.3, 0.8) * g
    thick["MZ"] *= 1.0 + 0.6 * g
    return _Eye(bm, thick, refl, fovea)


def _drape(eye: _Eye, lift: np.ndarray) -> None:
    """Outer nuclear layer thinning over an elevation, so the inner retina drapes smoothly."""
    eye.thick["ONL"] = np.maximum(eye.thick["ONL"] - 0.35 * lift, 0.4 * eye.thick["ONL"])


def _drusen(rng: np.random.Generator, eye: _Eye, x: np.ndarray, size: int, sev: float) -> _Lesion:
    d = np.zeros(size)
    for _ in range(1 + min(int(rng.poisson(0.5 + 2.5 * sev)), 5)):
        height = size * (0.008 + 0.05 * sev) * rng.uniform(0.6, 1.0)
        half = (height * rng.uniform(1.5, 3.0) + 0.012 * size) * 2.0 / size
        d = np.maximum(d, height * _bump(x, eye.fovea + rng.uniform(-0.6, 0.6), half, 0.6))
    eye.thick["SUB"] = d
    _drape(eye, d)
    eye.refl["SUB"][:] = rng.uniform(0.3, 0.5)
    eye.refl["EZ"] *= 1.0 - 0.4 * sev * d / d.max()
    return _Lesion("RPE", "SUB", d > min(0.5, 0.5 * d.max()))


def _dme(rng: np.random.Generator, eye: _Eye, x: np.ndarray, size: int, sev: float) -> _Lesion:
    c, half = eye.fovea + rng.uniform(-0.2, 0.2), rng.uniform(0.2, 0.3) + 0.25 * sev
    prof = _bump(x, c, half, 1.0)
    swell = size * (0.01 + 0.09 * sev) * rng.uniform(0.7, 1.0)
    for name, share in (("INL", 0.35), ("OPL", 0.15), ("ONL", 0.5)):
        eye.thick[name] += share * swell * prof
        eye.refl[name] *= 1.0 - 0.15 * prof
    tops, alpha = eye.tops(), np.zeros((size, size), dtype=np.float32)
    for _ in range(1 + min(int(rng.poisson(1.0 + 6.0 * sev)), 12)):
        col = (c + rng.uniform(-0.7, 0.7) * half + 1.0) * (size - 1) / 2.0
        layer = "INL" if rng.random() < 0.5 else "ONL"
        at = int(np.clip(col, 0, size - 1))
        t = eye.thick[layer][at]
        a = min(0.45 * t, size * rng.uniform(0.008, 0.012 + 0.04 * sev))
        cy = tops[layer][at] + t * rng.uniform(0.35, 0.55)
        if a >= 0.5:
            _paste_ellipse(alpha, cy, col, a, a * rng.uniform(0.7, 1.5))
    return _Lesion("INL", "ONL", swell * prof > max(min(1.0, 0.5 * swell), 0.3 * swell), alpha)


def _cnv(rng: np.random.Generator, eye: _Eye, x: np.ndarray, size: int, sev: float) -> _Lesion:
    c, half = eye.fovea + rng.uniform(-0.25, 0.25), (0.08 + 0.22 * sev) * rng.uniform(0.7, 1.0)
    height = size * (0.012 + 0.07 * sev) * rng.uniform(0.7, 1.0)
    rough = 1.0 + 0.25 * _profile(rng, size, size / 25)
    prof = _bump(x, c, half, 0.6)
    eye.thick["SUB"] = np.clip(height * prof * rough, 0.0, None)
    shrm = _bump(x, c + rng.uniform(-0.3, 0.3) * half, rng.uniform(0.5, 0.9) * half, 0.6)
    eye.thick["SHRM"] = np.clip(height * rng.uniform(0.1, 0.4) * shrm * rough, 0.0, None)
    if rng.random() < 0.3 + 0.6 * sev:
        at = c + rng.choice((-1.0, 1.0)) * half * rng.uniform(0.3, 0.9)
        fluid = size * (0.008 + 0.04 * sev) * rng.uniform(0.5, 1.0)
        eye.thick["SRF"] = fluid * _bump(x, at, half * rng.uniform(0.6, 1.2), 0.6)
    eye.refl["SUB"][:] = rng.uniform(0.65, 0.85)
    eye.refl["RPE"] *= 1.0 - 0.6 * prof * np.clip(_profile(rng, size, size / 60), 0.0, 1.0)
    eye.refl["EZ"] *= 1.0 - 0.6 * prof
    lesion = eye.thick["SUB"] + eye.thick["SHRM"] + eye.thick["SRF"]
    _drape(eye, lesion)
    return _Lesion("SRF", "SUB", lesion > min(0.5, 0.5 * lesion.max()), texture=0.35)


_LESIONS: dict[str, Callable[..., _Lesion]] = {"CNV": _cnv, "DME": _dme, "DRUSEN": _drusen}


def _render_layers(eye: _Eye, tops: dict[str, np.ndarray], y: np.ndarray, width: float
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Layer reflectivities as a sum of soft steps at each boundary; also the below-Bruch's ramp."""
    img, prev = np.zeros((y.shape[0], eye.bm.shape[0]), dtype=np.float32), 0.0
    for name, _, _ in _LAYERS:
        if eye.thick[name].any():
            img += (eye.refl[name] - prev).astype(np.float32) * _ramp(y, tops[name], width)
            prev = eye.refl[name]
    below = _ramp(y, eye.bm, width)
    img -= np.asarray(prev, dtype=np.float32) * below
    return img, below


def _choroid(rng: np.random.Generator, eye: _Eye, y: np.ndarray, below: np.ndarray) -> np.ndarray:
    """Granular stroma with dark vessel lumens, its signal fading with depth below Bruch's."""
    size = y.shape[0]
    lumen = np.clip(1.6 * _coarse_noise(rng, size, size / 80) - 0.6, 0.0, 1.0)
    fade = np.exp(-np.clip(y - eye.bm, 0.0, None) / (size * rng.uniform(0.05, 0.09)))
    return below * rng.uniform(0.35, 0.6) * (1.0 - 0.6 * lumen) * fade.astype(np.float32)


def _vessels(rng: np.random.Generator, eye: _Eye, tops: dict[str, np.ndarray], y: np.ndarray,
             img: np.ndarray) -> np.ndarray:
    """Bright vessel cross-sections in the inner retina with vertical shadows beneath them."""
    size, cols = y.shape[0], np.arange(y.shape[0], dtype=float)
    shade, spots, width = np.zeros(size), np.zeros(size), size * 0.01
    for _ in range(int(rng.integers(2, 6))):
        at = np.clip(eye.fovea + rng.choice((-1.0, 1.0)) * rng.uniform(0.25, 1.0), -0.97, 0.97)
        gx = np.exp(-(((cols - (at + 1.0) * (size - 1) / 2.0) / (width * rng.uniform(0.6, 1.4))) ** 2))
        shade += rng.uniform(0.35, 0.8) * gx
        spots += 0.5 * gx
    depth = (tops["GCL"] + 0.5 * width).astype(np.float32)
    spot = np.exp(-(((y - depth) / np.float32(width)) ** 2)) * spots.astype(np.float32)
    shadow = 1.0 - np.minimum(shade, 0.9).astype(np.float32) * _ramp(y, depth + 1.5 * width, 3 * width)
    return (img + spot) * shadow


def _acquire(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Rayleigh speckle, noise floor, resolution blur, depth roll-off, vignetting, gain, gamma."""
    size = img.shape[0]
    rayleigh = np.sqrt(rng.standard_exponential(img.shape, dtype=np.float32)) / np.float32(0.8862)
    strength = np.float32(rng.uniform(0.6, 1.0))
    s = np.clip(img, 0.0, None) + np.float32(rng.uniform(0.03, 0.09))
    s *= 1.0 - strength + strength * rayleigh
    s[:, 1:-1] = 0.5 * s[:, 1:-1] + 0.25 * (s[:, :-2] + s[:, 2:])
    s[1:-1] = 0.6 * s[1:-1] + 0.2 * (s[:-2] + s[2:])
    rows = np.exp(-rng.uniform(0.0, 0.6) * np.arange(size) / size)[:, None]
    cols = np.exp(0.12 * _profile(rng, size, size / 6))[None, :]
    s *= (rows * cols).astype(np.float32)
    return to_uint8(rng.uniform(0.8, 1.3) * s ** np.float32(rng.uniform(0.75, 1.3)))


def sample(rng: np.random.Generator, size: int, label: str, severity: float
           ) -> tuple[np.ndarray, np.ndarray]:
    """(image uint8 (size, size) grayscale, mask bool (size, size)); the mask is all False for NORMAL.

    severity in [0, 1]: 0 = subtle, 1 = obvious lesion.
    """
    if label not in CLASSES:
        raise ValueError(f"unknown OCT label {label!r}; expected one of {CLASSES}")
    sev = float(np.clip(severity, 0.0, 1.0))
    x = np.linspace(-1.0, 1.0, size)
    y = np.arange(size, dtype=np.float32)[:, None]
    eye = _normal_eye(rng, x, size)
    lesion = None if label == NORMAL else _LESIONS[label](rng, eye, x, size, sev)
    tops = eye.tops()
    img, below = _render_layers(eye, tops, y, max(size / 256, 0.5))
    img += _choroid(rng, eye, y, below)
    mask = np.zeros((size, size), dtype=bool)
    if lesion is not None:
        mask = lesion.mask(eye, tops, y)
        if lesion.alpha is not None:
            img = img * (1.0 - lesion.alpha)
        if lesion.texture:
            img *= 1.0 + lesion.texture * _coarse_noise(rng, size, size / 100) * mask
    img = _vessels(rng, eye, tops, y, img)
    return _acquire(rng, img), mask
