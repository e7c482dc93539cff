"""The interface of the perturbation metrics: what a batch of maps turns into before and after
the model's forward passes.

A perturbation (RCAP's recovered images, the deletion/insertion images) builds, from validated
inputs ``x (B, C, H, W)`` and maps ``m (B, H, W)``, a :class:`PerturbedBatch`: its images go
through the model (any number of batches share one :class:`absgrad.metrics.forward.
ForwardQueue`), and the target probabilities of those images give the batch's result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from torch import Tensor

from absgrad.utils.normalization import Normalization


@dataclass(frozen=True)
class PerturbContext:
    """What every perturbation of a batch of images may need.

    ``percentiles``: RCAP's ``P`` recovered fractions; ``steps``: points per deletion/insertion
    curve; ``base``: the insertion start image ``(B, C, H, W)`` (:func:`absgrad.metrics.
    blurred` of the inputs); ``clean_probs``/``blurred_probs`` ``(B,)``: target probabilities at
    ``r = 0`` when already known (those forward passes are then skipped).
    """

    normalization: Normalization
    percentiles: tuple[float, ...] = ()
    steps: int = 10
    base: Tensor | None = None
    clean_probs: Tensor | None = None
    blurred_probs: Tensor | None = None


class PerturbedResult(Protocol):
    """A perturbation's result for a batch of maps."""

    def details(self) -> dict[str, Tensor]:
        """Per-image terms stored next to the scores (curves, per-percentile terms), ``(B, ...)``."""
        ...


class PerturbedBatch(Protocol):
    """A batch's perturbed images, ``images (B*per_image, C, H, W)`` image-major."""

    images: Tensor

    @property
    def per_image(self) -> int: ...

    def result(self, probs: Tensor) -> Any:
        """The result, given the target probability of each image ``(B*per_image,)``."""
        ...


@dataclass(frozen=True)
class Perturbation:
    """A way of perturbing images by a map, shared by the metrics that read its probabilities.

    ``build(x, m, ordered, context)``: the :class:`PerturbedBatch` of validated inputs, maps
    and the maps' sorted values. ``nonnegative_maps``: the maps are read as a mass (must be
    >= 0).
    """

    key: str
    description: str
    build: Callable[[Tensor, Tensor, Tensor, PerturbContext], PerturbedBatch]
    nonnegative_maps: bool = False
