"""Guided IG: each image alone (one image per model call) vs the batch stepping together.

Three runs of absgrad's Guided IG sampler in this process, on the same ``--images``:

- ``alone``: every image by itself with ``batch_size`` 1 (one image per model call: what Guided
  IG did before its images stepped together); timed.
- ``batched``: all images at once, model calls of ``--batch-size`` images (default: all); timed.
- ``split``: the images in two batches of other sizes (a third and the rest), the same call
  size (short calls padded): the same work cut otherwise, so it must give the same maps.

Prints the speedup ``alone / batched`` and how far the per-image results move: the number of
rounds each image took (a flipped ``gamma > 1`` decision changes it) and the largest
difference of the [0, 1] maps. A difference far above float rounding means that a threshold
decision (which features a round moves) flipped.

    python benchmarks/guided_ig.py --images 8 --batch-size 4 --repeats 1   # Lite0, photos
    python benchmarks/guided_ig.py --case synthetic --data '' --images 16
"""

from __future__ import annotations

import argparse

import torch

from absgrad.methods.aggregators import SampleStats, aggregate
from absgrad.methods.samplers import GradContext, GuidedPathSampler
from absgrad.utils.maps import to_map


def attribution(model, x, y, steps: int, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Guided IG's mean attribution ``(B, C, H, W)`` and the rounds per image ``(B,)``."""
    stats = SampleStats(["raw"])
    GuidedPathSampler(n_samples=steps).run(GradContext(model, x, y, "logit", batch_size), stats)
    return aggregate(stats, "raw", "mean"), stats.count.long()


def _moved(a: torch.Tensor, b: torch.Tensor) -> tuple[float, int, int]:
    """Largest [0, 1] map difference and the images moving by more than 1e-6 and 1e-4."""
    d = (to_map(a) - to_map(b)).flatten(1).abs().max(dim=1).values
    return float(d.max()), int((d > 1e-6).sum()), int((d > 1e-4).sum())


def main() -> None:
    from common import add_common_args, best_time, load, machine

    p = argparse.ArgumentParser(description=__doc__)
    add_common_args(p)
    p.add_argument("--steps", type=int, default=20, help="Guided IG steps (the paper: 20)")
    p.add_argument("--batch-size", type=int, default=None, help="images per model call")
    args = p.parse_args()
    print(f"machine: {machine()}")
    case, model, x, y = load(args)
    model.requires_grad_(False)
    n = x.shape[0]
    bs = args.batch_size or n

    def alone():
        parts = [attribution(model, x[i : i + 1], y[i : i + 1], args.steps, 1) for i in range(n)]
        return torch.cat([a for a, _ in parts]), torch.cat([c for _, c in parts])

    def split():
        k = max(1, n // 3)
        parts = [attribution(model, x[s], y[s], args.steps, bs) for s in (slice(0, k), slice(k, n))]
        return torch.cat([a for a, _ in parts]), torch.cat([c for _, c in parts])

    t_alone, (a_alone, r_alone) = best_time(alone, args.repeats)
    t_batch, (a_batch, r_batch) = best_time(
        lambda: attribution(model, x, y, args.steps, bs), args.repeats
    )
    a_split, r_split = split()
    print(f"case {args.case}, {n} images {tuple(x.shape[1:])}, {args.steps} steps, {args.device}")
    print(f"alone    {t_alone:8.2f} s  ({n} x a batch of 1)")
    print(f"batched  {t_batch:8.2f} s  (model calls of {bs} images)")
    print(f"speedup = alone / batched = {t_alone / t_batch:.2f}")
    print(f"rounds per image, batched: {r_batch.tolist()}")
    for name, a, r in (("split", a_split, r_split), ("alone", a_alone, r_alone)):
        worst, over6, over4 = _moved(a, a_batch)
        print(
            f"{name} vs batched: images with another number of rounds: {int((r != r_batch).sum())}"
            f"; largest map difference: {worst:.2e}; images moving by more than 1e-6: {over6}, "
            f"more than 1e-4: {over4}"
        )


if __name__ == "__main__":
    main()
