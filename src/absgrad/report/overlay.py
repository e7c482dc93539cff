"""Saliency maps drawn over their photo: percentile clipping, a perceptual colormap, blending.

The same rendering serves the report's map figure and its per-image gallery, so a map looks
the same everywhere: values are clipped to the map's own ``lo``-``hi`` percentiles (default
1st-99th), stretched to [0, 1], coloured with a perceptually uniform colormap (default
``inferno``) and alpha-blended over the de-normalised photo.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

#: Defaults of every overlay the report draws.
CMAP = "inferno"
ALPHA = 0.6
CLIP = (1.0, 99.0)


def clip_normalise(smap: np.ndarray, clip: tuple[float, float] = CLIP) -> np.ndarray:
    """``(H, W)`` map -> ``(H, W)`` float32 in [0, 1]: clipped to its percentiles, stretched.

    A constant map (or one whose percentiles coincide) becomes all zeros.
    """
    a = np.asarray(smap, dtype=np.float32)
    if a.ndim != 2:
        raise ValueError(f"a saliency map must be (H, W), got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError("the saliency map holds NaN or infinite values")
    lo, hi = np.percentile(a, clip)
    if hi <= lo:
        return np.zeros_like(a)
    return np.clip((a - lo) / (hi - lo), 0.0, 1.0)


def _resize(smap: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    if smap.shape == hw:
        return smap
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(smap, dtype=np.float32))  # mode "F"
    return np.asarray(img.resize((hw[1], hw[0]), Image.BILINEAR), dtype=np.float32)


@lru_cache(maxsize=8)
def _lut(cmap: str) -> np.ndarray:
    from matplotlib import colormaps

    if cmap not in colormaps:
        raise ValueError(f"unknown matplotlib colormap {cmap!r}")
    return (colormaps[cmap](np.linspace(0, 1, 256))[:, :3] * 255).round().astype(np.uint8)


def colorize(norm: np.ndarray, cmap: str = CMAP) -> np.ndarray:
    """``(H, W)`` values in [0, 1] -> ``(H, W, 3)`` uint8 colours of ``cmap`` (256 levels)."""
    return _lut(cmap)[np.clip((norm * 255).round().astype(np.int64), 0, 255)]


def overlay(
    photo: np.ndarray,
    smap: np.ndarray,
    *,
    cmap: str = CMAP,
    alpha: float = ALPHA,
    clip: tuple[float, float] = CLIP,
) -> np.ndarray:
    """``photo`` ``(H, W, 3)`` uint8 with ``smap`` ``(h, w)`` blended over it -> ``(H, W, 3)``.

    ``out = (1 - alpha) * photo + alpha * cmap(clip_normalise(smap))``; a map of another size
    is resized (bilinear) to the photo's.
    """
    photo = np.asarray(photo)
    if photo.ndim != 3 or photo.shape[2] != 3 or photo.dtype != np.uint8:
        raise ValueError(f"photo must be (H, W, 3) uint8, got {photo.dtype} {photo.shape}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    norm = clip_normalise(_resize(np.asarray(smap, dtype=np.float32), photo.shape[:2]), clip)
    heat = colorize(norm, cmap).astype(np.float32)
    out = (1.0 - alpha) * photo.astype(np.float32) + alpha * heat
    return np.clip(out.round(), 0, 255).astype(np.uint8)
