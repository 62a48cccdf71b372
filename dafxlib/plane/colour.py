"""Domain colouring: settings shown as colours (hue and brightness) over the plane."""

from __future__ import annotations

import colorsys

import numpy as np

from .fit import LatentPlane


def domain_colors(plane: LatentPlane, points=None) -> np.ndarray:
    """HSV colour-wheel colours (n, 3) RGB: hue = angle around the settings' centre,
    saturation = distance from it (relative to the farthest setting), value = 0.95."""
    pts = plane.points if points is None else np.atleast_2d(np.asarray(points, dtype=np.float64))
    d = pts - plane.center
    rmax = np.linalg.norm(plane.points - plane.center, axis=1).max() + 1e-12
    hue = (np.arctan2(d[:, 1], d[:, 0]) / (2 * np.pi)) % 1.0
    sat = np.clip(np.linalg.norm(d, axis=1) / rmax, 0, 1) * 0.85 + 0.15
    return np.array([colorsys.hsv_to_rgb(h, s, 0.95) for h, s in zip(hue, sat)])


def domain_image(plane: LatentPlane, res: int = 128) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """An RGBA image (res, res, 4) of the colour wheel over the bounding box (transparent
    outside the support) and its extent (x0, x1, y0, y1) for ``imshow(origin='lower')``."""
    g = plane.dense_grid(res, inside_only=False)
    rgb = domain_colors(plane, g)
    alpha = plane.inside(g).astype(float)
    img = np.concatenate([rgb, alpha[:, None]], 1).reshape(res, res, 4)
    lo, hi = plane.lo, plane.hi
    return img, (lo[0], hi[0], lo[1], hi[1])
