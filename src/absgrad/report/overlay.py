"""Saliency maps drawn over their photo: percentile clipping, a perceptual colormap, blending.

The same rendering serves the report's map figure, its per-image gallery and ``absgrad explain``
(:func:`overlay_figure`), so a map looks the same everywhere: values are clipped to the map's own ``lo``-``hi`` percentiles (default
1st-99th), stretched to [0, 1], coloured with a perceptually uniform colormap (default
``inferno``) and alpha-blended over the de-normalised photo.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.colorbar import Colorbar
    from matplotlib.figure import Figure

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


def ordinal(x: float) -> str:
    """``1`` -> ``1st``, ``99`` -> ``99th``, ``2.5`` -> ``2.5th``."""
    if float(x).is_integer():
        n = int(x)
        suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
        return f"{n}{suffix}"
    return f"{x:g}th"


def colour_bar(
    fig: Figure, *, cmap: str = CMAP, clip: tuple[float, float] = CLIP, **where: Any
) -> Colorbar:
    """The overlays' colour bar on ``fig``: ``cmap`` from the ``clip`` percentiles' low to high.

    ``where`` places it (``fig.colorbar``'s ``ax=``/``cax=``/``fraction=``...).
    """
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    bar = fig.colorbar(ScalarMappable(Normalize(0, 1), cmap=cmap), **where)
    bar.set_ticks([0, 1], labels=[f"{ordinal(clip[0])} pct", f"{ordinal(clip[1])} pct"])
    return bar


def overlay_figure(photo: np.ndarray, smap: np.ndarray, title: str) -> Figure:
    """The photo ``(H, W, 3)`` uint8 and ``smap`` ``(h, w)`` drawn over it, side by side,
    with the colour bar; the overlay panel is titled ``title``."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.6, 4))
    a, b = fig.subplots(1, 2)
    a.imshow(photo)
    a.set_title("image")
    b.imshow(overlay(photo, smap))
    b.set_title(title)
    for ax in (a, b):
        ax.axis("off")
    colour_bar(fig, ax=b, fraction=0.046)
    return fig
