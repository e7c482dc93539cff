"""The absgrad torchmetrics Metrics on a fixed batch of images, in one process or split over
the ranks of a ``torch.distributed`` (gloo, CPU) group.

:func:`scenario_data` draws the images, maps and masks; :func:`shards` says which images each
rank scores, in which batches; :func:`score` runs every Metric over a list of batches and
returns the computed results. :func:`run_rank` is the ``torch.multiprocessing.spawn`` target.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

N_IMAGES = 7
SIZE = 12
CLASSES = 4
#: how the images are cut over two ranks: name -> (rank 0 batches, rank 1 batches) of indices
SPLITS: dict[str, tuple[list[list[int]], list[list[int]]]] = {
    # DistributedSampler's interleaving, with image 0 repeated so both ranks hold 4 images
    "interleaved-padded": ([[0, 2], [4, 6]], [[1, 3, 5], [0]]),
    # uneven contiguous halves, batches of different sizes
    "uneven": ([[0], [1, 2]], [[3, 4, 5, 6]]),
    # rank 1 sees no image at all
    "one-rank-empty": ([[0, 1, 2, 3, 4, 5, 6]], []),
}


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6, CLASSES),
    ).eval()


def scenario_data() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    maps = torch.rand(N_IMAGES, SIZE, SIZE, generator=g)
    return {
        "images": torch.randn(N_IMAGES, 3, SIZE, SIZE, generator=g),
        "targets": torch.randint(0, CLASSES, (N_IMAGES,), generator=g),
        "maps": maps,
        "masks": torch.rand(N_IMAGES, SIZE, SIZE, generator=g) > 0.6,
    }


def metrics() -> dict[str, Any]:
    """One Metric per absgrad metric (few perturbation steps: the test must stay quick)."""
    from absgrad.metrics.torchmetrics import (
        DAUC,
        IAUC,
        MAE,
        RCAP,
        LcDice,
        MAESqrtPaper,
        PointingGame,
    )
    from absgrad.utils.normalization import SYMMETRIC

    return {
        "rcap": RCAP(SYMMETRIC, batch_size=8, n_resamples=500),
        "dauc": DAUC(steps=4, batch_size=8, n_resamples=500),
        "iauc": IAUC(SYMMETRIC, steps=4, n_resamples=500),
        "lc_dice": LcDice(n_resamples=500),
        "mae": MAE(n_resamples=500),
        "mae_sqrt": MAESqrtPaper(n_resamples=500),
        "pointing_game": PointingGame(n_resamples=500),
    }


def score(batches: list[list[int]], *, with_ids: bool) -> dict[str, dict[str, torch.Tensor]]:
    """Every Metric updated with ``batches`` (lists of image indices), then computed."""
    model, data, out = tiny_model(), scenario_data(), {}
    for key, metric in metrics().items():
        for idx in batches:
            metric.update(
                model,
                data["images"][idx],
                data["targets"][idx],
                data["maps"][idx],
                data["masks"][idx],
                ids=idx if with_ids else None,
            )
        out[key] = {k: v.clone() for k, v in metric.compute().items()}
    return out


def run_rank(rank: int, world: int, store: str, out_dir: str) -> None:
    """Score each split's share of this rank under gloo; save ``{split: {ids: results}}``."""
    import warnings

    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        results = {}
        for name, shares in SPLITS.items():
            for with_ids in (False, True):
                with warnings.catch_warnings():  # the empty rank: compute before update
                    warnings.simplefilter("ignore", UserWarning)
                    results[(name, with_ids)] = score(shares[rank], with_ids=with_ids)
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()
