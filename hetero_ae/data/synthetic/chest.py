"""Synthetic frontal (PA) chest radiographs: stand-ins for Kermany chest_xray and Kaggle COVID-19.

Model. A random patient (body, lung and heart size, inspiration depth, position, a few degrees of rotation,
smooth elastic displacement) maps pixels to patient coordinates (y down, x = 0 on the midline, image right =
patient left) with analytic anatomy. Projected density = soft tissue of thorax and shoulders, minus the air
of two lungs (rounded apices, sharp costophrenic angles, domed hemidiaphragms with the right one higher,
mediastinal borders with aortic knob and the heart bulging to the image right), plus spine, trachea, clavicles,
arched posterior and faint anterior ribs (symmetric periodic bands), hila, branching vascular trees, and in
some patients breast shadows and a gastric bubble. Smooth anatomy is computed at half resolution and upsampled;
vessels, textures and noise at full resolution; then a random exposure (offset, contrast, heel, gamma) and
quantum noise. A finding replaces lung air by fluid (``fill`` in [0, 1], vessels fade with it): "consolidation"
a dense homogeneous lobar opacity cut by a sharp fissure-like edge, optional air bronchograms; "ground-glass"
bilateral peripheral lower-zone hazy patches, vessels still visible; "viral" bilateral perihilar
streaky-reticular opacities. Size and density grow with severity; mask = lesion shape > 0.5 inside the lungs.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.ndimage import gaussian_filter

from .common import grid, irregular_blob, smooth_noise, to_uint8

FINDINGS = ("normal", "consolidation", "ground-glass", "viral")
SIDES = (-1.0, 1.0)  # image left = patient right, image right = patient left
Arr = np.ndarray
Rng = np.random.Generator


# Pose (scale, shift ty/tx, angle) and geometry in patient units: apex = y of the lung tops, domes = y of the
# (right, left) diaphragm domes, cp_depth = costophrenic angle below the dome, width = lateral lung extent,
# body = thorax half-width, uc / ud = lateral position of apex / dome peak, hearts = (right, left) heart bulge.
_Patient = NamedTuple("_Patient", [
    ("scale", float), ("ty", float), ("tx", float), ("angle", float), ("apex", float), ("domes", tuple),
    ("cp_depth", float), ("width", float), ("body", float), ("uc", float), ("ud", float), ("hearts", tuple),
    ("rib_space", float), ("breast", float), ("bubble", bool)])


def _patient(rng: Rng) -> _Patient:
    dome_r = 0.26 + 0.26 * rng.uniform()
    width = rng.uniform(0.66, 0.8)
    return _Patient(scale=rng.uniform(0.8, 1.02), ty=rng.uniform(-0.04, 0.1), tx=rng.uniform(-0.06, 0.06),
                    angle=rng.normal(0.0, 0.035), apex=rng.uniform(-0.8, -0.7),
                    domes=(dome_r, dome_r + rng.uniform(0.03, 0.09)), cp_depth=rng.uniform(0.14, 0.22),
                    width=width, body=width + rng.uniform(0.1, 0.3), uc=rng.uniform(0.25, 0.32),
                    ud=rng.uniform(0.32, 0.45), hearts=(rng.uniform(0.07, 0.14), rng.uniform(0.28, 0.4)),
                    rib_space=rng.uniform(0.1, 0.125), breast=rng.uniform(0.03, 0.07) * (rng.uniform() < 0.4),
                    bubble=bool(rng.uniform() < 0.6))


def _upsample(a: Arr, size: int) -> Arr:
    """Bilinear upsampling of (a stack of) square arrays whose corners match the image corners (no BLAS)."""
    pos = np.linspace(0.0, a.shape[-1] - 1.0, size)
    i0 = np.clip(pos.astype(int), 0, a.shape[-1] - 2)
    f, a = (pos - i0).astype(np.float32), a.astype(np.float32)
    rows = a[..., i0, :] * (1.0 - f)[:, None] + a[..., i0 + 1, :] * f[:, None]
    return rows[..., i0] * (1.0 - f) + rows[..., i0 + 1] * f


def _noise(rng: Rng, n: int, size: int, sigma: float = 1.0) -> Arr:
    return _upsample(smooth_noise(rng, (n, n), sigma), size)


def _soft(d: Arr, eps: float) -> Arr:
    return np.clip(d / eps + 0.5, 0.0, 1.0)


def _coords(rng: Rng, n: int, p: _Patient) -> tuple[Arr, Arr]:
    """Patient coordinates (y, x) on an n x n grid: rigid pose plus a smooth elastic displacement."""
    yy, xx = (c.astype(np.float32) for c in grid(n))
    yy = yy + 0.025 * _noise(rng, 8, n, 1.2) - p.ty
    xx = xx + 0.025 * _noise(rng, 8, n, 1.2) - p.tx
    ca, sa = float(np.cos(p.angle)), float(np.sin(p.angle))
    return (yy * ca - xx * sa) / p.scale, (yy * sa + xx * ca) / p.scale


def _to_image(p: _Patient, y: Arr, x: Arr) -> tuple[Arr, Arr]:
    ca, sa = np.cos(p.angle), np.sin(p.angle)
    return p.ty + p.scale * (y * ca + x * sa), p.tx + p.scale * (-y * sa + x * ca)


def _borders(p: _Patient, side: float, t: Arr) -> tuple[Arr, Arr]:
    """(medial, lateral) distance of the lung borders from the midline at relative height t."""
    lateral = p.uc + (p.width - p.uc) * np.sqrt(1.0 - (1.0 - t) ** 2)
    s = np.clip((t - 0.4) / 0.52, 0.0, 1.0)
    heart = p.hearts[side > 0] * s * (2.0 - s)
    knob = 0.03 * (np.clip(1.0 - ((t - 0.2) / 0.07) ** 2, 0.0, 1.0) + np.clip((t - 0.12) / 0.1, 0.0, 1.0))
    apex = p.uc * (1.0 - np.sqrt(np.minimum(t / 0.12, 1.0)))
    return np.maximum(0.08 + np.maximum(heart, knob * (side > 0)), apex), lateral


def _lung(p: _Patient, y: Arr, x: Arr, side: float, eps: float) -> tuple[Arr, Arr, Arr]:
    """(soft mask, lateral coordinate u, relative air thickness) of one lung."""
    dome = p.domes[side > 0]
    u = side * x
    t = np.clip((y - p.apex) / (dome + p.cp_depth - p.apex), 0.0, 1.0)
    med, lat = _borders(p, side, t)
    dia = dome + p.cp_depth * ((u - p.ud) / (p.width - p.ud)) ** 2
    top = 0.6 * (y - p.apex - 3.0 * (u - p.uc) ** 2)
    d = np.minimum(np.minimum(lat - u, u - med), np.minimum(top, dia - y))
    rel = np.clip((2.0 * u - med - lat) / (lat - med + 1e-3), -1.0, 1.0)
    return _soft(d, eps), u, (0.5 + 0.5 * np.sqrt(t)) * (1.0 - 0.45 * rel * rel)


def _ribs(p: _Patient, y: Arr, x: Arr) -> Arr:
    """Posterior ribs (arches with a bright lower cortex), anterior ribs and clavicles."""
    u = np.abs(x)
    inside = np.clip((p.width + 0.1 - u) / 0.05, 0.0, 1.0) * np.clip((u - 0.06) / 0.03, 0.0, 1.0)
    v = y - (1.5 - 0.5 * (y - p.apex)) * (u - 0.12) ** 2 - p.apex + 0.08
    k = np.maximum(v, 0.0) * (1.0 - 0.06 * v) / p.rib_space
    f = k - np.floor(k)
    post = np.clip(np.minimum(f, 0.42 - f) / 0.1, 0.0, 1.0) * (1.0 + 0.6 * (f > 0.32)) * (k < 10.5)
    w = (y - 0.45 * (p.width - u) - p.apex + 0.05) / p.rib_space
    fa = w - np.floor(w)
    ant = np.clip(np.minimum(fa, 0.4 - fa) / 0.1, 0.0, 1.0) * np.clip((u - 0.3) / 0.1, 0.0, 1.0) * (w > 0.0)
    clav_v = (y - (p.apex + 0.06 - 0.25 * (u - 0.06) + 0.3 * (u - 0.3) ** 2)) / 0.035
    clav = np.sqrt(np.clip(1.0 - clav_v * clav_v, 0.0, 1.0)) * np.clip((0.75 - u) / 0.05, 0.0, 1.0) * (u > 0.04)
    return (0.075 * post + 0.035 * ant) * inside + 0.16 * clav


def _body(p: _Patient, y: Arr, x: Arr, lung: Arr, eps: float) -> Arr:
    """Soft tissue (thorax, shoulders, heart, hila, abdomen, breasts), spine, trachea, gastric bubble."""
    half = p.body + 0.3 * np.clip((p.apex + 0.4 - y) / 0.7, 0.0, 1.0)
    ax = np.abs(x)
    d = 0.78 * (1.0 - (1.0 - np.clip(1.0 - (x / half) ** 2, 0.0, 1.0)) ** 4)
    d += 0.08 * _soft(y - p.domes[0] + 0.35, 0.3) * (1.0 - lung)
    d += 0.05 * _soft(0.085 - ax, 4 * eps) * (1.0 + 0.12 * np.cos(2 * np.pi * y / 0.09))
    d -= 0.07 * _soft(0.04 - ax, 3 * eps) * _soft(p.apex + 0.4 - y, 0.05)
    for side in SIDES:
        hy, hu = _hilum(p, side)
        d += 0.14 * np.clip(1.0 - ((y - hy) / 0.12) ** 2 - ((side * x - hu) / 0.07) ** 2, 0.0, 1.0)
    if p.breast > 0:
        by = p.domes[0] + p.cp_depth - 0.3
        q = ((y - by) / 0.28) ** 2 + ((ax - 0.45) / 0.38) ** 2
        d += p.breast * _soft(1.0 - q, 0.4) * np.clip((y - by + 0.25) / 0.35, 0.0, 1.0)
    if p.bubble:
        q = ((y - p.domes[1] - 0.12) / 0.05) ** 2 + ((x - 0.42) / 0.09) ** 2
        d -= 0.2 * _soft(1.0 - q, 0.3) * (y > p.domes[1] + 0.05)
    return d


def _hilum(p: _Patient, side: float) -> tuple[float, float]:
    bottom = p.domes[side > 0] + p.cp_depth
    return p.apex + (0.47 - 0.04 * (side > 0)) * (bottom - p.apex), 0.14 + 0.2 * p.hearts[side > 0]


def _tree(rng: Rng, roots: Arr, angles: Arr, length: float, depth: int, step: float) -> tuple[Arr, Arr, Arr]:
    """Points (y, u, weight) along a binary branching tree; angle 0 points laterally, + downwards."""
    ys, us, ws = [], [], []
    pos, ang, w = roots.astype(float), angles.astype(float), 1.0
    for _ in range(depth):
        s = np.linspace(0.0, 1.0, max(3, int(length / step)))
        bend = rng.normal(0.0, 0.15, ang.size)[:, None] * s
        py = pos[:, :1] + length * s * np.sin(ang[:, None] + bend)
        pu = pos[:, 1:] + length * s * np.cos(ang[:, None] + bend)
        ys, us, ws = ys + [py.ravel()], us + [pu.ravel()], ws + [np.full(py.size, w)]
        pos = np.repeat(np.stack([py[:, -1], pu[:, -1]], 1), 2, axis=0)
        split = rng.uniform(0.2, 0.55, 2 * ang.size) * np.tile([-1.0, 1.0], ang.size)
        ang = np.repeat(ang + bend[:, -1], 2) + split
        length, w = length * rng.uniform(0.66, 0.78), w * 0.72
    return np.concatenate(ys), np.concatenate(us), np.concatenate(ws)


def _raster(p: _Patient, size: int, y: Arr, x: Arr, w: Arr, sigma: float) -> Arr:
    """Splat weighted patient-coordinate points on the image grid and blur (sigma in 256-px pixels)."""
    iy, ix = _to_image(p, y, x)
    iy, ix = np.round((iy + 1.0) * (size - 1) / 2).astype(int), np.round((ix + 1.0) * (size - 1) / 2).astype(int)
    ok = (iy >= 0) & (iy < size) & (ix >= 0) & (ix < size)
    canvas = np.bincount(iy[ok] * size + ix[ok], weights=w[ok], minlength=size * size).reshape(size, size)
    return gaussian_filter(canvas.astype(np.float32), sigma * size / 256, truncate=2.5) * (size / 256)


def _vessels(rng: Rng, p: _Patient, size: int) -> Arr:
    """Branching vascular trees from both hila; trunks are splatted thicker than the branches."""
    parts = []
    for side in SIDES:
        hy, hu = _hilum(p, side)
        angles = np.linspace(-1.4, 1.3, 8) + rng.normal(0.0, 0.12, 8)
        roots = np.stack([hy + 0.04 * np.sin(angles), hu + 0.04 * np.cos(angles)], 1)
        py, pu, pw = _tree(rng, roots, angles, rng.uniform(0.13, 0.17), 5, 1.0 / (size * p.scale))
        parts.append((py, side * pu, pw))
    y, x, w = (np.concatenate(a) for a in zip(*parts))
    big, off = w > 0.6, 1.6 / (size * p.scale)
    w = np.where(big, 0.5 * w, w)
    y = np.concatenate([y] + [y[big] + dy for dy in (-off, off, 0.0, 0.0)])
    x = np.concatenate([x] + [x[big] + dx for dx in (0.0, 0.0, -off, off)])
    return _raster(p, size, y, x, np.concatenate([w] + [w[big]] * 4), 1.0)


def _point(p: _Patient, side: float, t: float, frac: float) -> tuple[float, float]:
    """Patient (y, x) of a point at relative height t and relative width frac inside one lung."""
    dome = p.domes[side > 0]
    med, lat = _borders(p, side, np.float64(t))
    u = float(med + frac * (lat - med))
    dia = dome + p.cp_depth * ((u - p.ud) / (p.width - p.ud)) ** 2
    return min(p.apex + t * (dome + p.cp_depth - p.apex), dia - 0.06), side * u


def _blobs(rng: Rng, p: _Patient, size: int, centers: list[tuple[float, float]], radius: float,
           roughness: float, softness: float = 0.3) -> Arr:
    """Union of irregular blobs (patient-coordinate centres) drawn coarse and upsampled."""
    n = min(size, max(64, size // 4))
    shape = np.zeros((n, n))
    for cy, cx in centers:
        iy, ix = _to_image(p, np.float64(cy), np.float64(cx))
        r = radius * p.scale * rng.uniform(0.75, 1.25)
        shape = np.maximum(shape, irregular_blob(rng, n, (float(iy), float(ix)), r, roughness, softness))
    return _upsample(shape, size)


def _consolidation(rng: Rng, p: _Patient, size: int, y: Arr, lungs: list, sev: float) -> tuple[Arr, Arr]:
    side = SIDES[rng.integers(2)]
    (lung, u, _), n = lungs[side > 0], y.shape[0]
    above, radius = rng.uniform() < 0.35, 0.12 + 0.38 * sev
    fy, fx = _point(p, side, rng.uniform(0.38, 0.62), 0.5)
    cy = fy + (-0.45 if above else 0.45) * radius
    shape = _blobs(rng, p, size, [(cy, fx + side * rng.uniform(-0.1, 0.1))], radius, 0.25, 0.12)
    edge = (fy + rng.uniform(-0.25, 0.25) * (u - side * fx) - y) * (1.0 if above else -1.0)
    shape = shape * _upsample(_soft(edge, 1.5 / (n * p.scale)) * lung, size)
    fill = (0.45 + 0.55 * sev) * (0.92 + 0.08 * _noise(rng, max(8, size // 8), size))
    if rng.uniform() < 0.5:
        hy, hu = _hilum(p, side)
        ang = np.arctan2(cy - hy, side * fx - hu) + rng.normal(0, 0.3, 3)
        by, bu, bw = _tree(rng, np.tile([hy, hu], (3, 1)), ang, 0.14, 4, 1.2 / (size * p.scale))
        fill = fill * (1.0 - np.clip(_raster(p, size, by, side * bu, bw, 0.7), 0.0, 0.4) * shape)
    return fill * shape, shape


def _ground_glass(rng: Rng, p: _Patient, size: int, y: Arr, lungs: list, sev: float) -> tuple[Arr, Arr]:
    sides = SIDES if rng.uniform() < 0.85 else (SIDES[rng.integers(2)],)
    n = 1 + int(round(4 * sev)) + int(rng.integers(0, 2))
    centers = [_point(p, s, rng.uniform(0.45, 0.92), rng.uniform(0.6, 0.92)) for s in sides for _ in range(n)]
    shape = _blobs(rng, p, size, centers, 0.07 + 0.1 * sev, 0.35)
    patchy = 0.7 + 0.3 * _noise(rng, max(8, size // 8), size)
    return (0.18 + 0.37 * sev) * patchy * shape, shape


def _viral(rng: Rng, p: _Patient, size: int, y: Arr, lungs: list, sev: float) -> tuple[Arr, Arr]:
    centers = [_point(p, s, rng.uniform(0.4, 0.6), rng.uniform(0.1, 0.35)) for s in SIDES]
    shape = _blobs(rng, p, size, centers, 0.13 + 0.17 * sev, 0.3)
    net = np.abs(_noise(rng, y.shape[0], size, 0.8 * y.shape[0] / 128))
    roots = np.repeat([(_hilum(p, s)[0], s * _hilum(p, s)[1]) for s in SIDES], 12, axis=0)
    ang = np.pi / 2 + np.repeat(SIDES, 12) * (rng.uniform(-1.4, 1.4, 24) - np.pi / 2)
    streak = _raster(p, size, *_tree(rng, roots, ang, 0.1 + 0.06 * sev, 3, 1.2 / (size * p.scale)), 1.0)
    texture = 0.35 + 0.4 * np.clip(1.0 - net / 0.5, 0.0, 1.0) + np.clip(2.0 * streak, 0.0, 0.6)
    return (0.2 + 0.35 * sev) * texture * shape, shape


_LESIONS = {"consolidation": _consolidation, "ground-glass": _ground_glass, "viral": _viral}


def _exposure(rng: Rng, density: Arr) -> Arr:
    heel = np.linspace(-1.0, 1.0, density.shape[0], dtype=np.float32)[:, None]
    img = rng.uniform(-0.08, 0.08) + rng.uniform(0.8, 1.2) * density * (1.0 + rng.uniform(-0.06, 0.06) * heel)
    lut = np.linspace(0.0, 1.0, 1024, dtype=np.float32) ** rng.uniform(0.7, 1.4)
    img = lut[(np.clip(img, 0.0, 1.0) * 1023.0).astype(np.int32)]
    return img + rng.uniform(0.004, 0.018) * rng.standard_normal(img.shape, dtype=np.float32)


def sample(rng: Rng, size: int, finding: str, severity: float) -> tuple[Arr, Arr]:
    """(image uint8 (size, size) grayscale, mask bool (size, size)); finding is one of FINDINGS;
    the mask is all False for "normal". severity in [0, 1]: 0 = subtle, 1 = obvious."""
    if finding not in FINDINGS:
        raise ValueError(f"unknown chest finding {finding!r}; expected one of {FINDINGS}")
    sev = float(np.clip(severity, 0.0, 1.0))
    p = _patient(rng)
    n = max(16, size // 2)
    y, x = _coords(rng, n, p)
    eps = 2.0 / (n * p.scale)
    lungs = [_lung(p, y, x, side, eps) for side in SIDES]
    lung_lo = lungs[0][0] + lungs[1][0]
    anatomy = _body(p, y, x, lung_lo, eps) + (0.5 + 0.5 * lung_lo) * _ribs(p, y, x)
    air = lungs[0][0] * lungs[0][2] + lungs[1][0] * lungs[1][2]
    anatomy, air, lung = _upsample(np.stack([anatomy, air, lung_lo]), size)
    fill = shape = np.zeros((size, size), np.float32)
    if finding != "normal":
        fill, shape = _LESIONS[finding](rng, p, size, y, lungs, sev)
        fill = np.clip(fill, 0.0, 1.0)
    texture = 0.6 * _vessels(rng, p, size) + 0.12 * _noise(rng, max(8, size // 4), size)
    density = anatomy + (0.12 * lung * texture - 0.6 * air) * (1.0 - fill)
    mask = (shape > 0.5) & (lung > 0.5)
    return to_uint8(_exposure(rng, density)), mask
