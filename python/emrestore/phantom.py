"""A synthetic serial-section EM volume: the package's own data for the demo and the tests.

Cells are a 3-D partition with smooth, curved boundaries (nearest seed in a smoothly warped space);
membranes are dark bands 2-4 px thick along the boundaries; mitochondria are dark ellipsoids with
cristae; vesicles are small dark rings; the cytoplasm has a granular texture. Sections are cut every
``z_step`` in-plane pixels (ssTEM: 50 nm sections at 4-5 nm pixels), so neighbouring sections share
structure without being copies, and each section gets its own brightness/contrast drift and noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree


@dataclass
class Phantom:
    raw: np.ndarray  # [Z, H, W] uint8 sections
    labels: np.ndarray  # [Z, H, W] uint32 cell ids (1..n), membranes included in their cell
    membrane: np.ndarray  # [Z, H, W] bool, the dark boundary bands


def _smooth_noise(rng, shape, sigma, amplitude=1.0):
    """Gaussian-filtered white noise scaled to unit standard deviation times amplitude."""
    field = ndimage.gaussian_filter(
        rng.standard_normal(shape).astype(np.float32), sigma, mode="wrap"
    )
    return field * (amplitude / (field.std() + 1e-12))


def _interp_matrix(n_out: int, n_in: int) -> np.ndarray:
    """[n_out, n_in] linear interpolation from n_in samples spanning the n_out output pixels."""
    pos = np.linspace(0, n_in - 1, n_out)
    lo = np.minimum(pos.astype(int), n_in - 2)
    frac = (pos - lo).astype(np.float32)
    m = np.zeros((n_out, n_in), np.float32)
    m[np.arange(n_out), lo] = 1 - frac
    m[np.arange(n_out), lo + 1] = frac
    return m


def make_phantom(
    shape: tuple[int, int, int] = (32, 512, 512),
    *,
    seed: int | np.random.Generator | None = 0,
    cell_diameter: float = 110.0,
    z_step: float = 18.0,
    membrane_width: tuple[float, float] = (2.0, 4.0),
    mitochondria_per_cell: float = 0.8,
    vesicle_clusters: float = 3.0,
    noise: float = 0.06,
    drift: float = 0.06,
) -> Phantom:
    """Renders a phantom ssEM stack.

    Args:
        shape: (sections, height, width).
        seed: seed or numpy Generator; the same seed gives the same stack.
        cell_diameter: typical cell (neurite) diameter in pixels.
        z_step: section thickness in in-plane pixels; larger means less similar neighbours (the
            default gives an adjacent-section correlation of about 0.2-0.35, as real ssTEM).
        membrane_width: range of membrane thickness in pixels.
        mitochondria_per_cell: mean number of mitochondria per cell.
        vesicle_clusters: mean number of synaptic-vesicle clusters per 512 x 512 section.
        noise: standard deviation of the imaging noise (intensity in [0, 1]).
        drift: standard deviation of the per-section brightness and contrast drift.
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    nz, h, w = (int(s) for s in shape)
    if nz < 1 or h < 8 or w < 8:
        raise ValueError(f"phantom shape must be at least (1, 8, 8); got {shape}")
    depth = nz * z_step

    # Cell seeds fill the volume (with a margin so cells continue past the border).
    margin = cell_diameter
    volume = (depth + 2 * margin) * (h + 2 * margin) * (w + 2 * margin)
    n_cells = max(2, int(volume / cell_diameter**3 * 1.9))
    seeds = np.empty((n_cells, 3))
    seeds[:, 0] = rng.uniform(-margin, depth + margin, n_cells)
    seeds[:, 1] = rng.uniform(-margin, h + margin, n_cells)
    seeds[:, 2] = rng.uniform(-margin, w + margin, n_cells)
    tree = cKDTree(seeds)

    # Smooth warp of space (coarse grid, interpolated) makes the Voronoi boundaries curved. Smooth
    # fields are drawn coarse and interpolated with matrices (two small matrix products a section).
    coarse = (max(2, nz // 2 + 2), h // 32 + 3, w // 32 + 3)
    warp_amp = 0.22 * cell_diameter
    warps = np.stack([_smooth_noise(rng, coarse, 1.0, warp_amp) for _ in range(3)])
    up_y, up_x = _interp_matrix(h, coarse[1]), _interp_matrix(w, coarse[2])
    fine_y, fine_x = _interp_matrix(h, h // 4 + 2), _interp_matrix(w, w // 4 + 2)

    def upsample(field, my=up_y, mx=up_x):
        return my @ field @ mx.T

    zs = np.arange(nz) * z_step
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    raw = np.empty((nz, h, w), np.uint8)
    labels = np.empty((nz, h, w), np.uint32)
    membrane = np.empty((nz, h, w), bool)

    # Per-cell attributes: cytoplasm brightness, mitochondria (centre, radii, axis).
    cell_tone = rng.normal(0.72, 0.04, n_cells)
    mitos = []
    for cell in range(n_cells):
        for _ in range(rng.poisson(mitochondria_per_cell)):
            centre = seeds[cell] + rng.normal(0, 0.12 * cell_diameter, 3)
            # Elongated along the neurite (here z), 0.1-0.3 um across at ~4 nm per pixel.
            radii = np.array([rng.uniform(25, 70), rng.uniform(14, 30), rng.uniform(9, 16)])
            angle = rng.uniform(0, np.pi)
            mitos.append((centre, radii, angle))

    for k, z in enumerate(zs):
        cz = z / max(depth, 1) * (coarse[0] - 1)
        z0 = min(int(cz), coarse[0] - 2)
        slab = warps[:, z0] * (1 - (cz - z0)) + warps[:, z0 + 1] * (cz - z0)  # [3, cy, cx]
        pos = np.stack([np.full_like(ys, z), ys, xs], -1)
        for axis in range(3):
            pos[..., axis] += upsample(slab[axis])
        dist, idx = tree.query(pos.reshape(-1, 3), k=2, workers=-1)
        cell = idx[:, 0].reshape(h, w)
        gap = (dist[:, 1] - dist[:, 0]).reshape(h, w) / 2  # distance to the boundary
        width = np.interp(upsample(_smooth_noise(rng, coarse[1:], 0.8)), [-2, 2], membrane_width)
        on_membrane = gap < width / 2

        img = cell_tone[cell].astype(np.float32)
        img += _smooth_noise(rng, (h, w), 1.2, 0.05)  # granular cytoplasm
        img += upsample(_smooth_noise(rng, (h // 4 + 2, w // 4 + 2), 1.5, 0.025), fine_y, fine_x)
        # Membranes: dark with soft edges.
        img -= 0.45 * np.exp(-0.5 * (gap / (width / 2.5)) ** 2)

        # Mitochondria cut by this section: dark ellipses with brighter cristae stripes.
        for centre, radii, angle in mitos:
            dz = (z - centre[0]) / radii[0]
            if abs(dz) >= 1:
                continue
            scale = np.sqrt(1 - dz**2)
            a, b = radii[1] * scale, radii[2] * scale
            y0, x0 = centre[1], centre[2]
            r = int(a + 3)
            ylo, yhi = max(int(y0) - r, 0), min(int(y0) + r + 1, h)
            xlo, xhi = max(int(x0) - r, 0), min(int(x0) + r + 1, w)
            if ylo >= yhi or xlo >= xhi:
                continue
            yy, xx = ys[ylo:yhi, xlo:xhi] - y0, xs[ylo:yhi, xlo:xhi] - x0
            u = xx * np.cos(angle) + yy * np.sin(angle)
            v = -xx * np.sin(angle) + yy * np.cos(angle)
            inside = (u / a) ** 2 + (v / b) ** 2
            body = np.clip(1.5 - inside * 1.5, 0, 1) * (inside < 1.3)
            cristae = 0.5 + 0.5 * np.cos(u * 2 * np.pi / 7.0)
            img[ylo:yhi, xlo:xhi] -= body * (0.38 + 0.14 * cristae)

        # Vesicles: rings of ~10 px in clusters of a few dozen.
        n_clusters = rng.poisson(vesicle_clusters * h * w / 512**2)
        if n_clusters:
            ring = np.zeros((h, w), np.float32)
            for cy, cx in zip(rng.uniform(0, h, n_clusters), rng.uniform(0, w, n_clusters)):
                n_ves = rng.integers(15, 45)
                iy = np.clip((cy + rng.normal(0, 18, n_ves)).astype(int), 0, h - 1)
                ix = np.clip((cx + rng.normal(0, 18, n_ves)).astype(int), 0, w - 1)
                ring[iy, ix] = 1.0
            ring = ndimage.gaussian_filter(ring, 2.2) - ndimage.gaussian_filter(ring, 1.2)
            img += ring * (0.35 / (np.abs(ring).max() + 1e-12))

        # Section-to-section brightness/contrast drift, blur of the optics, shot-like noise.
        img = ndimage.gaussian_filter(img, 0.7)
        gain, offset = 1 + rng.normal(0, drift), rng.normal(0, drift / 2)
        img = (img - 0.6) * gain + 0.6 + offset + rng.normal(0, noise, (h, w)).astype(np.float32)
        raw[k] = np.clip(img * 255, 0, 255).astype(np.uint8)
        labels[k] = cell + 1
        membrane[k] = on_membrane
    return Phantom(raw=raw, labels=labels, membrane=membrane)


def adjacent_ncc(stack: np.ndarray) -> np.ndarray:
    """Normalised cross-correlation of each section with the next ([Z-1] values)."""
    s = stack.astype(np.float64).reshape(len(stack), -1)
    s = (s - s.mean(1, keepdims=True)) / (s.std(1, keepdims=True) + 1e-12)
    return (s[:-1] * s[1:]).mean(1)
