"""Synthetic axial brain MRI slices, a stand-in for the Kaggle "Brain Tumor MRI" dataset.

Anatomy is the MNI152 T1 template (ICBM 2009a nonlinear symmetric, 1 mm; Fonov et al.,
NeuroImage 2011) as shipped inside nilearn, with its brain mask and white-matter map. It is
skull-stripped: the brain lies on black, cisterns and fissures filled with CSF. The axial slab
from the suprasellar cistern (z = -30 mm) to the lateral ventricles (z = +28 mm) is cached.

A subject is a random level, a random tone curve over the template's T1 values (a quarter of
subjects T2-like: bright CSF, dark white matter), a pose (rotation, zoom, shift) and a smooth
elastic displacement composed into one resampling, then bias field, gamma, gain and Rician
noise. Lesions are painted at image resolution after a radial mass-effect warp:

* glioma: in hemispheric white matter; irregular heterogeneous solid part with oedema
  (T1-hypo, T2-hyperintense) and, more often at high severity, a ring around a necrotic core;
* meningioma: extra-axial homogeneous bright round/oval mass on the convexity or falx dura;
* pituitary: round bright mass in the sellar/suprasellar midline (levels near the sella).

The mask marks the whole lesion, oedema included (BraTS "whole tumour"). Severity 0 gives
small low-contrast lesions, severity 1 large obvious ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.ndimage import (
    binary_closing,
    binary_dilation,
    binary_erosion,
    binary_fill_holes,
    distance_transform_edt,
    gaussian_filter,
    map_coordinates,
)

from .common import bias_field, ellipse, grid, irregular_blob, smooth_noise, to_uint8

CLASSES = ("notumor", "glioma", "meningioma", "pituitary")
NORMAL = "notumor"

SLAB = (42, 101)  # axial voxel indices k of the 1 mm template (z = k - 72 mm)
SELLA = (43, 53)  # slab levels that cut the suprasellar cistern
FOV = 200  # side of the square source window (mm) cut around the brain
MID = FOV // 2  # source column of the mid-sagittal plane
T1_KNOTS = np.array([0.0, 0.15, 0.3, 0.65, 0.86, 1.0])  # background, edge, CSF, GM, WM, max
RADIUS_MM = {"glioma": (4.0, 20.0), "meningioma": (4.0, 20.0), "pituitary": (3.0, 14.0)}
REACH = {"glioma": 3.0, "meningioma": 1.4, "pituitary": 1.4}  # patch half-width / radius
PUSH = {"glioma": 0.6, "meningioma": 0.9, "pituitary": 0.8}  # mass effect / lesion radius


@dataclass(frozen=True)
class Slab:
    t1: np.ndarray  # (levels, FOV, FOV) float32 in [0, 1]; anterior up, radiological left-right
    soft: np.ndarray  # (levels, FOV, FOV) float32 brain mask with a smoothed edge
    wm: tuple[np.ndarray, ...]  # per level: (n, 3) row, col, depth (mm) of hemispheric white matter
    edge: tuple[np.ndarray, ...]  # per level: (n, 2) outer brain surface points
    falx: tuple[np.ndarray, ...]  # per level: (n, 2) points of the interhemispheric fissure
    centre: np.ndarray  # (levels, 2) brain centroid
    sella: np.ndarray  # (levels, 2) centre of the suprasellar cistern (NaN where absent)


@dataclass(frozen=True)
class Lesion:
    centre: np.ndarray  # (row, col) in [-1, 1] image coordinates
    radius: float  # in [-1, 1] image units
    label: str


def _axial(volume: np.ndarray) -> np.ndarray:
    """(levels, FOV, FOV) slab, rows from anterior to posterior, centred on the brain."""
    slab = np.transpose(volume[::-1, ::-1, SLAB[0]:SLAB[1]], (2, 1, 0))
    slab = np.pad(slab, ((0, 0), (FOV, FOV), (FOV, FOV)))
    r0, c0 = FOV + 115 - FOV // 2, FOV + 98 - MID  # MNI y = -17 mm, x = 0 mm at the centre
    return np.ascontiguousarray(slab[:, r0:r0 + FOV, c0:c0 + FOV], dtype=np.float32)


def _envelope(mask: np.ndarray) -> np.ndarray:
    """Brain mask with cisterns, fissures and deep sulci filled (where CSF lies in life)."""
    return binary_fill_holes(binary_closing(mask, iterations=8))


def _sites(mask: np.ndarray, closed: np.ndarray, wm: np.ndarray, t1: np.ndarray, k: int) -> tuple:
    """Candidate lesion sites of one level (see :class:`Slab`)."""
    rows, cols = np.mgrid[:FOV, :FOV]
    edge = closed & ~binary_erosion(closed, iterations=2) & (np.abs(cols - MID) > 8)
    deep = binary_erosion(wm > 0.7, iterations=2) & (np.abs(cols - MID) > 10)
    r = np.nonzero(closed.any(1))[0]
    ends = (rows < r.min() + 0.3 * np.ptp(r)) | (rows > r.max() - 0.3 * np.ptp(r))
    falx = closed & (np.abs(cols - MID) <= 1) & (t1 < 0.45) & ends
    falx &= binary_erosion(closed, iterations=6)
    centre = np.argwhere(mask).mean(0)
    gap = np.nonzero(~mask[:, MID] & closed[:, MID])[0]
    sella = gap[gap > centre[0] - 60].mean() if gap.size and SELLA[0] <= k < SELLA[1] else np.nan
    wm_sites = np.column_stack([np.argwhere(deep), distance_transform_edt(closed)[deep]])
    return wm_sites, np.argwhere(edge), np.argwhere(falx), centre, np.array([sella, MID])


@lru_cache(maxsize=1)
def _slab() -> Slab:
    from nilearn.datasets import load_mni152_brain_mask, load_mni152_template, load_mni152_wm_template

    t1 = _axial(load_mni152_template(resolution=1).get_fdata())
    mask = _axial(load_mni152_brain_mask(resolution=1).get_fdata()) > 0.5
    wm = _axial(load_mni152_wm_template(resolution=1).get_fdata())
    t1 = np.clip(t1 / t1.max(), 0.0, 1.0) * mask
    closed = np.stack([_envelope(m) for m in mask])
    rim = binary_dilation(closed, iterations=2, structure=np.ones((1, 3, 3), bool)) & ~closed
    soft = gaussian_filter(closed.astype(np.float32), (0.0, 0.8, 0.8))
    per_level = [_sites(*args, k) for k, args in enumerate(zip(mask, closed, wm, t1), SLAB[0])]
    deep, edge, falx, centre, sella = zip(*per_level)
    t1 = np.where(mask, t1, np.where(closed, T1_KNOTS[2], np.where(rim, T1_KNOTS[1], 0.0)))
    return Slab(t1.astype(np.float32), soft, deep, edge, falx, np.array(centre), np.array(sella))


@lru_cache(maxsize=8)
def _upsampler(n: int, size: int) -> np.ndarray:
    """(size, n) linear interpolation matrix from an n-point to a size-point grid."""
    x = np.linspace(0.0, n - 1.0, size)
    return np.stack([np.interp(x, np.arange(n), e) for e in np.eye(n)], axis=1)


def _upsample(coarse: np.ndarray, size: int) -> np.ndarray:
    m = _upsampler(coarse.shape[0], size)
    return m @ coarse @ m.T


def _level(rng: np.random.Generator, slab: Slab, label: str) -> int:
    if label == "pituitary":
        return int(rng.integers(SELLA[0], SELLA[1])) - SLAB[0]
    ok = [i for i in range(len(slab.t1)) if label != "glioma" or len(slab.wm[i]) > 200]
    return int(rng.choice(ok))


def _tone(rng: np.random.Generator, t1: np.ndarray,
          soft: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """Template slice through a random tone curve; returns image, (CSF, GM, WM) levels, T2-ness."""
    t2 = rng.random() < 0.25
    if t2:
        csf, gm, wm = rng.uniform(0.8, 1.0), rng.uniform(0.5, 0.62), rng.uniform(0.3, 0.42)
        ys = [0.0, 0.7 * csf, csf, gm, wm, wm - 0.05]
    else:
        csf, gm, wm = rng.uniform(0.12, 0.3), rng.uniform(0.48, 0.64), rng.uniform(0.78, 0.92)
        ys = [0.0, 0.8 * csf, csf, gm, wm, wm + rng.uniform(0.0, 0.08)]
    return np.interp(t1, T1_KNOTS, ys).astype(np.float32) * soft, np.array([csf, gm, wm]), t2


def _pose(rng: np.random.Generator) -> tuple[float, np.ndarray, np.ndarray]:
    """(zoom, 2x2 rotation from image to source axes, shift in image units)."""
    zoom, theta = rng.uniform(0.82, 1.08), np.deg2rad(rng.uniform(-12.0, 12.0))
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    return zoom, rot, rng.uniform(-0.06, 0.06, 2)


def _to_image(src: np.ndarray, pose: tuple[float, np.ndarray, np.ndarray],
              disp: np.ndarray, size: int) -> np.ndarray:
    """Inverse of the pose + elastic map for one source point, as [-1, 1] image coordinates."""
    zoom, rot, shift = pose
    q = rot.T @ (src - (FOV - 1) / 2) * (2 * zoom / FOV) + shift
    g = q.copy()
    for _ in range(2):
        px = np.clip(np.round((g + 1) * (size - 1) / 2).astype(int), 0, size - 1)
        g = q - disp[:, px[0], px[1]]
    return g


def _place(rng: np.random.Generator, slab: Slab, level: int, label: str, severity: float,
           pose: tuple[float, np.ndarray, np.ndarray], disp: np.ndarray, size: int) -> Lesion:
    lo, hi = RADIUS_MM[label]
    r_mm = (lo + (hi - lo) * severity) * rng.uniform(0.85, 1.15)
    if label == "glioma":
        sites = slab.wm[level]
        sites = sites[sites[:, 2] >= min(r_mm, 0.8 * sites[:, 2].max())]
        src = sites[rng.integers(len(sites)), :2]
    elif label == "pituitary":
        src = slab.sella[level] + rng.normal(0.0, 1.5, 2) * [1.0, 0.3]
    else:
        use_falx = len(slab.falx[level]) > 0 and rng.random() < 0.35
        sites = slab.falx[level] if use_falx else slab.edge[level]
        p = sites[rng.integers(len(sites))].astype(float)
        normal = np.array([0.0, rng.choice([-1.0, 1.0])]) if use_falx else p - slab.centre[level]
        src = p + (0.6 if use_falx else -0.55) * r_mm * normal / np.linalg.norm(normal)
    return Lesion(_to_image(src, pose, disp, size), r_mm * 2 * pose[0] / FOV, label)


def _box(lesion: Lesion, size: int, reach: float) -> tuple[int, int, int, int, int]:
    """(centre row, centre col, half-width) in pixels and the clipped row/col start of a patch."""
    cy, cx = np.round((lesion.centre + 1) * (size - 1) / 2).astype(int)
    h = int(np.ceil(reach * lesion.radius * (size - 1) / 2)) + 2
    return cy, cx, h, max(cy - h, 0), max(cx - h, 0)


def _mass_effect(gy: np.ndarray, gx: np.ndarray, lesion: Lesion, size: int) -> None:
    """Radial push of tissue away from the lesion centre (in place, area preserving near it)."""
    cy, cx, h, r0, c0 = _box(lesion, size, 7.5)
    win = (slice(r0, cy + h + 1), slice(c0, cx + h + 1))
    dy, dx = gy[win] - lesion.centre[0], gx[win] - lesion.centre[1]
    d2 = dy * dy + dx * dx
    a, spread = PUSH[lesion.label] * lesion.radius, 2.5 * lesion.radius
    s2 = np.maximum(d2 - a * a * np.exp(-d2 / spread ** 2), 0.0)
    f = np.sqrt(s2 / np.maximum(d2, 1e-12))
    gy[win], gx[win] = lesion.centre[0] + dy * f, lesion.centre[1] + dx * f


def _shapes(rng: np.random.Generator, lesion: Lesion, n: int, r: float,
            severity: float) -> list[tuple[np.ndarray, str]]:
    """(alpha in [0, 1], compartment) layers on an n x n patch, r = radius in patch units."""
    if lesion.label == "glioma":
        fade = ellipse(n, (0.0, 0.0), (0.85, 0.85), 0.0, 0.15)  # keeps the oedema inside the patch
        oedema = irregular_blob(rng, n, (0.0, 0.0), r * (1.3 + 0.3 * severity), 0.4, 0.35) * fade
        layers = [(oedema, "oedema"),
                  (irregular_blob(rng, n, (0.0, 0.0), r, 0.35, 0.15), "solid")]
        if rng.random() < severity:
            layers.append((irregular_blob(rng, n, (0.0, 0.0), 0.6 * r, 0.3, 0.2), "core"))
        return layers
    aspect, angle = rng.uniform(0.75, 1.0), rng.uniform(0.0, np.pi)
    return [(ellipse(n, (0.0, 0.0), (r, r * aspect), angle, 0.1), "solid")]


def _targets(levels: np.ndarray, t2: bool, label: str, enhancing: bool) -> dict[str, float]:
    """Compartment intensities of a fully developed lesion under the subject's tone curve."""
    csf, gm, wm = levels
    if label != "glioma":
        t2_value = 0.5 * (gm + csf) if label == "pituitary" else 1.1 * gm
        return {"solid": t2_value if t2 else wm + (0.06 if label == "meningioma" else 0.03)}
    if t2:
        return {"oedema": 0.5 * (gm + csf), "solid": 0.4 * gm + 0.6 * csf, "core": 1.05 * csf}
    return {"oedema": 0.85 * gm, "solid": wm + 0.12 if enhancing else 0.85 * gm, "core": 1.2 * csf}


def _paint(rng: np.random.Generator, img: np.ndarray, lesion: Lesion, levels: np.ndarray,
           t2: bool, severity: float) -> np.ndarray:
    """Blend the lesion into ``img`` (in place); returns its mask."""
    size = img.shape[0]
    cy, cx, h, r0, c0 = _box(lesion, size, REACH[lesion.label])
    n = 2 * h + 1
    r = lesion.radius * (size - 1) / 2 / h
    win = (slice(r0, cy + h + 1), slice(c0, cx + h + 1))
    crop = (slice(r0 - (cy - h), r0 - (cy - h) + img[win].shape[0]),
            slice(c0 - (cx - h), c0 - (cx - h) + img[win].shape[1]))
    contrast = 0.3 + 0.7 * severity
    ref = levels[2] if lesion.label == "glioma" else levels[1]
    targets = _targets(levels, t2, lesion.label, rng.random() < 0.2 + 0.8 * severity)
    grain = 0.12 if lesion.label == "glioma" else 0.05
    texture = 1.0 + grain * smooth_noise(rng, (n, n), max(1.0, h / 8))
    patch, mask = img[win], np.zeros(img.shape, bool)
    inside = np.clip(patch / (0.5 * levels.min()), 0.0, 1.0) if lesion.label == "glioma" else 1.0
    for alpha, part in _shapes(rng, lesion, n, r, severity):
        alpha = alpha[crop] * inside
        if part == "oedema":
            value = patch + 0.8 * contrast * (targets[part] - patch)
        else:
            value = (ref + contrast * (targets[part] - ref)) * texture[crop]
        patch += alpha * (value - patch)
        mask[win] |= alpha > 0.5
    return mask


def _acquire(rng: np.random.Generator, img: np.ndarray) -> np.ndarray:
    """Bias field, gamma, gain and Rician noise (float32 throughout for speed)."""
    bias = _upsample(bias_field(rng, 6, rng.uniform(0.05, 0.25)), img.shape[0]).astype(np.float32)
    gamma, gain = np.float32(rng.uniform(0.8, 1.3)), np.float32(rng.uniform(0.65, 1.05))
    img = np.maximum(img * bias, 0.0) ** gamma * gain
    sigma = np.float32(rng.uniform(0.01, 0.045))
    noise = rng.standard_normal((2, *img.shape), dtype=np.float32) * sigma
    return np.sqrt((img + noise[0]) ** 2 + noise[1] ** 2)


def sample(rng: np.random.Generator, size: int, label: str, severity: float) -> tuple[np.ndarray, np.ndarray]:
    """(image uint8 (size, size) grayscale, mask bool (size, size)); the mask is all False for notumor.

    severity in [0, 1]: 0 = subtle, 1 = obvious lesion.
    """
    if label not in CLASSES:
        raise ValueError(f"unknown brain label {label!r}; expected one of {CLASSES}")
    severity = float(np.clip(severity, 0.0, 1.0))
    slab = _slab()
    level = _level(rng, slab, label)
    src, levels, t2 = _tone(rng, slab.t1[level], slab.soft[level])
    pose = _pose(rng)
    disp = np.stack([_upsample(0.03 * smooth_noise(rng, (6, 6), 1.0), size) for _ in range(2)])
    gy, gx = (g.copy() for g in grid(size))
    lesion = None
    if label != NORMAL:
        lesion = _place(rng, slab, level, label, severity, pose, disp, size)
        _mass_effect(gy, gx, lesion, size)
    zoom, rot, shift = pose
    q = np.stack([gy + disp[0] - shift[0], gx + disp[1] - shift[1]])
    coords = np.tensordot(rot, q, axes=1) * (FOV / (2 * zoom)) + (FOV - 1) / 2
    img = map_coordinates(src, coords, order=1, mode="constant")
    mask = np.zeros((size, size), bool) if lesion is None else _paint(rng, img, lesion, levels, t2, severity)
    return to_uint8(_acquire(rng, img)), mask
