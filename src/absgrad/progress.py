"""Progress of a protocol run: one bar over all units with the ETA, units and images per second."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from tqdm import tqdm


def rate_text(images: float, seconds: float) -> str:
    """``"2.50 img/s"``, or ``"12.3 s/img"`` below one image per second."""
    if images <= 0 or seconds <= 0:
        return "- img/s"
    rate = images / seconds
    return f"{rate:.2f} img/s" if rate >= 1 else f"{seconds / images:.1f} s/img"


class RunProgress:
    """A tqdm bar over a run's units (tqdm gives units per second and the ETA) whose postfix
    adds images per second and images done. A unit is one image batch x one sampler group, so
    it counts as ``len(unit.indices) / n_groups`` images."""

    def __init__(
        self, units: Sequence[Any], skipped: int, n_groups: int, n_images: int, *, disable: bool
    ) -> None:
        self.n_groups = max(1, n_groups)
        self.n_images = n_images
        self.images = 0.0  # images computed in this session (the rate's numerator)
        self.t0 = time.perf_counter()
        self.bar = tqdm(
            total=len(units),
            initial=skipped,
            unit="unit",
            desc="protocol",
            disable=disable,
            dynamic_ncols=True,
        )

    def update(self, unit: Any) -> None:
        """One more unit done."""
        self.images += len(unit.indices) / self.n_groups
        done = self.bar.n + 1
        images_done = min(self.n_images, round(done / max(1, self.bar.total) * self.n_images))
        self.bar.set_postfix_str(
            f"{rate_text(self.images, time.perf_counter() - self.t0)}, "
            f"{images_done}/{self.n_images} images, {unit.id}",
            refresh=False,
        )
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()
