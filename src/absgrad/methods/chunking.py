"""How sample evaluations are grouped into model batches of at most ``batch_size`` images."""

from __future__ import annotations

from collections.abc import Iterator


def unit_groups(n_units: int, batch: int, batch_size: int) -> Iterator[range]:
    """Consecutive groups of sample indices; each group times the batch fills about one chunk."""
    k = max(1, batch_size // batch)
    for start in range(0, n_units, k):
        yield range(start, min(start + k, n_units))


def image_slices(batch: int, batch_size: int) -> list[slice]:
    """Slices of the image batch: the whole batch, or pieces of ``batch_size`` when it is larger."""
    if batch <= batch_size:
        return [slice(0, batch)]
    return [slice(i, min(i + batch_size, batch)) for i in range(0, batch, batch_size)]
