"""Score each distinct perturbed image once.

RCAP and the deletion/insertion curves build every perturbed image from the input ``x``, a
kind of perturbation and a selection ``map > threshold``. Many of these images are the same
image built twice:

* two maps with the same values (e.g. guided backprop with the "both" hook and the vanilla
  gradient are equal by construction; Table 3's GB rows reuse the GB map);
* two thresholds of one map that select the same pixels (ties, e.g. the zeros of a
  rectified map or of Grad-CAM);
* selections of nothing or of everything, which give back the clean image (deletion of
  nothing, insertion or recovery of everything), the blurred image (insertion of nothing), an
  all-black or all-zero image (recovery of nothing, deletion of everything).

:class:`ProbCache` keys every perturbed image by what defines it (target class, a digest of
the input image, the kind, a digest of the map's values and the threshold value, or one of the
special images above) and keeps the target probability of each key. :class:`DedupQueue` puts
only unseen images through the forward queue. A cache shared by the units of one image batch
(the protocol worker keeps one per batch) also skips maps that another unit scored already.
Only forward passes are saved: every score equals the one computed without the cache up to
the float noise of a different forward chunk.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Sequence
from typing import Any

import torch
from torch import Tensor

from absgrad.metrics.forward import ForwardQueue
from absgrad.metrics.grid import curve_positions, fraction_positions
from absgrad.metrics.thresholds import thresholds


def _digests(t: Tensor) -> list[bytes]:
    """A digest of the values of each row of ``t (N, ...)`` (``-0.0`` and ``0.0`` count as
    equal): one copy of all rows to the host, then SHA-256 of each row's bytes (hardware-
    accelerated on current x86 and ARM CPUs), 16 bytes kept. The ``+ 0.0`` that turns -0.0
    into 0.0 runs in numpy: one thread, no wait for torch's thread pool on a busy machine."""
    a = t.detach().reshape(t.shape[0], -1).cpu().numpy() + 0.0
    return [hashlib.sha256(row).digest()[:16] for row in a]


def _version(t: Tensor) -> int | None:
    """The tensor's in-place version counter (None for an inference tensor: it has none)."""
    try:
        return t._version
    except RuntimeError:
        return None


class _LastDigests:
    """The per-image digests of the last tensor hashed, reused while that tensor is unchanged
    (the same object at the same version)."""

    def __init__(self) -> None:
        self._last: tuple[Tensor, int, list[bytes]] | None = None

    def get(self, t: Tensor) -> list[bytes]:
        version, last = _version(t), self._last
        if last is not None and version is not None and last[0] is t and last[1] == version:
            return last[2]
        digests = _digests(t)
        self._last = None if version is None else (t, version, digests)
        return digests


class ProbCache:
    """Target probabilities of perturbed images by key (see the module docstring).

    ``stats``: ``requested`` images asked for and ``computed`` images run through the model.
    """

    def __init__(self) -> None:
        self.known: dict[Hashable, float] = {}
        self.stats = {"requested": 0, "computed": 0}
        self._inputs = _LastDigests()

    def image_keys(self, x: Tensor, target: Tensor) -> list[tuple[int, bytes]]:
        """``(target, digest)`` of each image of ``x (B, C, H, W)``. The digests of the last
        ``x`` are kept: the calls of the units of one batch (the same tensor, unchanged since)
        hash its images once."""
        digests = self._inputs.get(x)
        return [(int(t), d) for d, t in zip(digests, target.tolist(), strict=True)]

    def seed(
        self, images: Sequence[tuple[int, bytes]], clean: Tensor | None, blurred: Tensor | None
    ) -> None:
        """Record known probabilities ``(B,)`` of the clean and blurred images."""
        for name, probs in (("clean", clean), ("blurred", blurred)):
            if probs is not None:
                for key, p in zip(images, probs.tolist(), strict=True):
                    self.known.setdefault((name, *key), float(p))


class DedupQueue:
    """A :class:`ForwardQueue` that runs each distinct key once (also across calls sharing
    ``cache``). :meth:`put` returns the rows' indices into :meth:`probs`."""

    def __init__(
        self,
        model: Any,
        batch_size: int,
        x: Tensor,
        target: Tensor,
        *,
        cache: ProbCache | None = None,
        normalization: Any = None,
        clean_probs: Tensor | None = None,
        blurred_probs: Tensor | None = None,
    ) -> None:
        self.queue = ForwardQueue(model, batch_size)
        self.cache = cache if cache is not None else ProbCache()
        self.images = self.cache.image_keys(x, target)
        self.black = (repr(normalization), tuple(x.shape[1:]))
        self.shape = tuple(x.shape[1:])
        self.device = x.device
        self.cache.seed(self.images, clean_probs, blurred_probs)
        self._maps = _LastDigests()  # RCAP's and the curves' keys of one map: hashed once
        self._rows: list[Hashable] = []  # key of each output row
        self._new: dict[Hashable, int] = {}  # key -> its row in the forward queue
        self._out: Tensor | None = None

    # -- keys --------------------------------------------------------------------------------
    def _selection(self, m: Tensor, ordered: Tensor, positions: list[int]) -> list[list[Any]]:
        """Per image and position: "none", "all" or ``(map digest, threshold)``."""
        thr = thresholds(m, positions, ordered=ordered).tolist()
        lo, hi = ordered[:, 0].tolist(), ordered[:, -1].tolist()
        digests: list[bytes] | None = None  # of every map of the batch, once one is needed
        out = []
        for i in range(m.shape[0]):
            row: list[Any] = []
            for v in thr[i]:
                if v >= hi[i]:
                    row.append("none")
                elif v < lo[i]:
                    row.append("all")
                else:
                    if digests is None:
                        digests = self._maps.get(m)
                    row.append((digests[i], v))
            out.append(row)
        return out

    def rcap_keys(self, m: Tensor, ordered: Tensor, percentiles: Sequence[float]) -> list[Hashable]:
        """Keys of RCAP's recovered images (image-major, as ``rcap_inputs`` builds them)."""
        h, w = m.shape[1:]
        sel = self._selection(m, ordered, fraction_positions(h * w, percentiles))
        keys: list[Hashable] = []
        for (t, xd), row in zip(self.images, sel, strict=True):
            for s in row:
                if s == "all":
                    keys.append(("clean", t, xd))
                elif s == "none":
                    keys.append(("black", t, self.black))
                else:
                    keys.append(("rcap", t, xd, self.black, *s))
        return keys

    def curve_keys(
        self, m: Tensor, ordered: Tensor, steps: int, first_del: int, first_ins: int
    ) -> list[Hashable]:
        """Keys of the deletion then insertion images per image (as ``curve_inputs`` builds
        them, leaving out the first ``first_del``/``first_ins`` steps)."""
        h, w = m.shape[1:]
        sel = self._selection(m, ordered, curve_positions(h * w, steps))
        keys: list[Hashable] = []
        for (t, xd), row in zip(self.images, sel, strict=True):
            for s in row[first_del:]:
                keys.append(
                    ("clean", t, xd)
                    if s == "none"
                    else ("zeros", t, self.shape)
                    if s == "all"
                    else ("del", t, xd, *s)
                )
            for s in row[first_ins:]:
                keys.append(
                    ("blurred", t, xd)
                    if s == "none"
                    else ("clean", t, xd)
                    if s == "all"
                    else ("ins", t, xd, *s)
                )
        return keys

    def keys(self, m: Tensor, ordered: Tensor, context: Any, batch: Any) -> list[Hashable] | None:
        """Keys of a perturbation's batch (RCAP's recovered images, the deletion/insertion
        images); ``None`` for a perturbation this module does not know (all its images are
        scored)."""
        from absgrad.metrics.curves import CurveInputs
        from absgrad.metrics.recover import RCAPInputs

        if isinstance(batch, RCAPInputs):
            return self.rcap_keys(m, ordered, context.percentiles)
        if isinstance(batch, CurveInputs):
            return self.curve_keys(
                m, ordered, batch.steps, batch.steps - batch.n_del, batch.steps - batch.n_ins
            )
        return None

    # -- queue -------------------------------------------------------------------------------
    def put(
        self, images: Tensor, targets: Tensor, keys: Sequence[Hashable] | None = None
    ) -> Tensor:
        """Queue the rows of ``images`` whose key is not known yet (``keys=None``: all rows);
        returns the indices of all rows in :meth:`probs`."""
        if keys is None:
            keys = [object() for _ in range(images.shape[0])]
        if len(keys) != images.shape[0]:
            raise ValueError(f"{len(keys)} keys for {images.shape[0]} images")
        start = len(self._rows)
        todo = []
        for j, key in enumerate(keys):
            if key not in self.cache.known and key not in self._new:
                self._new[key] = -1
                todo.append(j)
        self.cache.stats["requested"] += len(keys)
        self.cache.stats["computed"] += len(todo)
        if todo:
            if len(todo) == images.shape[0]:
                rows = self.queue.put(images, targets)
            else:
                idx = torch.tensor(todo, device=images.device)
                rows = self.queue.put(
                    images.index_select(0, idx), targets.index_select(0, idx.to(targets.device))
                )
            for j, r in zip(todo, range(rows.start, rows.stop), strict=True):
                self._new[keys[j]] = r
        self._rows.extend(keys)
        return torch.arange(start, len(self._rows))

    def probs(self) -> Tensor:
        """Target probability of every row put so far (runs what is pending)."""
        computed = self.queue.probs()
        values = computed.tolist()  # one copy to the host (and one sync on a GPU)
        for key, r in self._new.items():
            self.cache.known[key] = values[r]
        self._new.clear()
        known = self.cache.known
        dtype = computed.dtype if computed.numel() else torch.float32
        return torch.tensor([known[k] for k in self._rows], dtype=dtype, device=self.device)
