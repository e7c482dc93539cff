"""The metrics' fixed grids, torch-free: RCAP's percentiles, the sorted positions of a
fraction of the pixels, the deletion/insertion steps and the area under a curve.

Plain Python on numbers (and on NumPy arrays or tensors alike for :func:`trapezoid_area`), so
that reading a finished run (:mod:`absgrad.report`) needs no torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

from absgrad.errors import InputError, InputTypeError


def fraction_positions(n: int, fractions: Sequence[float]) -> list[int]:
    """Sorted positions ``floor(n * f) - 1`` for each fraction ``f`` (exact decimal arithmetic).

    ``f`` is read as the decimal it prints as (``0.7`` is 7/10, not the nearest double), so
    ``floor`` never drops a pixel through float round-off. A position of -1 means "below the
    minimum" (the whole image is selected).
    """
    return [math.floor(Fraction(repr(float(f))) * n) - 1 for f in fractions]


def curve_positions(n: int, steps: int) -> list[int]:
    """Sorted positions ``floor(n * (1 - k/steps)) - 1`` of the deletion/insertion steps
    ``k = 0 .. steps-1``, in exact integer arithmetic (``k = 0`` selects nothing)."""
    return [(n * (steps - k)) // steps - 1 for k in range(steps)]


def rcap_percentiles(lower_bound: float = 0.5, interval: float = 0.1) -> tuple[float, ...]:
    """``(lower_bound, lower_bound + interval, ...)`` below 1, rounded to 10 decimals."""
    for name, v in (("lower_bound", lower_bound), ("interval", interval)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise InputTypeError(f"{name} must be a finite number, got {v!r}")
    if not 0 <= lower_bound < 1:
        raise InputError(f"lower_bound={lower_bound} gives no percentile: it must lie in [0, 1)")
    if interval <= 0:
        raise InputError(f"interval={interval} gives no percentile list: it must be > 0")
    if interval < 1e-6:
        raise InputError(f"interval={interval} is too small (< 1e-6): too many percentiles")
    out: list[float] = []
    k = 0
    while (p := round(lower_bound + k * interval, 10)) < 1:
        out.append(p)
        k += 1
    return tuple(out)


def trapezoid_area(curve: Any) -> Any:
    """Trapezoid area of ``curve (..., steps)`` (NumPy array or tensor) with spacing ``1 / steps``.

    The paper's convention: the ``steps`` points are integrated against ``x = 1/steps ... 1``,
    so a curve stuck at 1 scores ``(steps - 1) / steps`` (0.9 for 10 points); one point: 0.
    """
    steps = curve.shape[-1]
    return (curve[..., 1:] + curve[..., :-1]).sum(-1) / (2.0 * steps)
