"""Gradient processing of the paper's Table 3: raw, pos (+), neg (-), abs (A)."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

PROCESSINGS: dict[str, Callable[[Tensor], Tensor]] = {
    "raw": lambda a: a,
    "pos": lambda a: a.clamp(min=0),
    "neg": lambda a: a.clamp(max=0),
    "abs": lambda a: a.abs(),
}


def check_processing(name: str) -> str:
    if name not in PROCESSINGS:
        raise ValueError(f"unknown processing {name!r}; choose one of {tuple(PROCESSINGS)}")
    return name
