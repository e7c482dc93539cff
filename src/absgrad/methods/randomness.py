"""Per-image random generators, so that a map never depends on the batch it was computed in.

Every random draw of a method (noise, random baselines, reversal shuffles) is taken image by
image from that image's generator. Give one generator per image (``generator=[g_1, ..., g_B]``)
or one seed per image (``seeds=[s_1, ..., s_B]``) and each image's map is the same whatever the
batch size, chunk size, executor or device split. A single ``generator`` is shared by the
images in batch order (convenient for one call; the draws then depend on the batch).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import torch
from torch import Tensor

from absgrad.errors import AbsgradError

GeneratorArg = torch.Generator | Sequence[torch.Generator] | None
SeedsArg = Sequence[int] | Tensor | None


def image_seed(seed: int, key: str) -> int:
    """A stable 63-bit seed from a run seed and a key (an image id, a map label), the same in
    every process and on every machine."""
    digest = hashlib.blake2b(f"{int(seed)}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


def image_generators(
    batch: int, generator: GeneratorArg = None, seeds: SeedsArg = None
) -> list | None:
    """One CPU generator per image (or ``None``: the global generator), checked.

    ``generator``: one ``torch.Generator`` (shared, in batch order) or a sequence of ``batch``
    generators. ``seeds``: ``batch`` integers, each seeding a fresh generator. Not both.
    """
    if generator is not None and seeds is not None:
        raise AbsgradError("give generator= or seeds=, not both")
    if seeds is not None:
        vals = seeds.tolist() if isinstance(seeds, Tensor) else list(seeds)
        if len(vals) != batch or not all(
            isinstance(s, int) and not isinstance(s, bool) for s in vals
        ):
            raise AbsgradError(f"seeds must be {batch} integers (one per image), got {seeds!r}")
        return [torch.Generator().manual_seed(s) for s in vals]
    if generator is None:
        return None
    if isinstance(generator, torch.Generator):
        return [generator] * batch
    gens = list(generator)
    if len(gens) != batch or not all(isinstance(g, torch.Generator) for g in gens):
        raise AbsgradError(
            f"generator must be a torch.Generator or {batch} of them (one per image), got {generator!r}"
        )
    return gens


def draw(
    kind: str, batch: int, shape: tuple[int, ...], gens: list | None, dtype: torch.dtype
) -> Tensor:
    """``(batch, *shape)`` draws (``randn`` or ``rand``), image ``b`` from ``gens[b]`` (``None``:
    the global generator). Drawn on the CPU so that a seed gives the same numbers on every device."""
    fn = torch.randn if kind == "randn" else torch.rand
    per_image = gens if gens is not None else [None] * batch
    return torch.stack([fn(shape, generator=g, dtype=dtype) for g in per_image])


__all__ = ["GeneratorArg", "SeedsArg", "draw", "image_generators", "image_seed"]
