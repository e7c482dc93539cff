"""Gradient processing of the paper's Table 3: raw, pos (+), neg (-), abs (A).

Where processing applies (the rule every sampler follows): ``p`` is applied to each gradient
*before* it is multiplied by its path term, and ``p``'s sample part (``SAMPLE_PART``) to each
whole sample *after* the path term. Only ``abs`` has a sample part (``|.|`` again), so IG-A's
sample is ``|(x - b) * mean_k |g_k||``; for samplers without a path term it changes nothing.
The sample part belongs to the sums alone: a variance guide is over the samples before it
(:mod:`absgrad.methods.aggregators`).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from absgrad import names

PROCESSINGS: dict[str, Callable[[Tensor], Tensor]] = {
    "raw": lambda a: a,
    "pos": lambda a: a.clamp(min=0),
    "neg": lambda a: a.clamp(max=0),
    "abs": lambda a: a.abs(),
}

#: What each processing does to a whole sample after its path term (None: nothing).
SAMPLE_PART: dict[str, Callable[[Tensor], Tensor] | None] = {
    "raw": None,
    "pos": None,
    "neg": None,
    "abs": lambda a: a.abs(),
}


def finish_sample(processing: str, sample: Tensor) -> Tensor:
    """A sample ``path term * p(g)`` with ``p``'s sample part applied (``|.|`` for ``abs``)."""
    part = SAMPLE_PART[processing]
    return sample if part is None else part(sample)


def check_processing(name: str) -> str:
    if name not in names.PROCESSINGS:
        raise ValueError(f"unknown processing {name!r}; choose one of {names.PROCESSINGS}")
    return name
