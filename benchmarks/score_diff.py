"""How far two runs of the same config differ, image by image (e.g. a GPU run and a CPU run).

Reads the stored per-image scores of both runs (the images and maps they share) and prints,
per metric, the largest absolute difference and the maps where it is largest, then the
largest difference over all metrics. ``--limit X`` exits with status 1 when it exceeds X.

    python benchmarks/score_diff.py RUN_GPU RUN_CPU --limit 1e-4
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from absgrad.protocol.store import RunStore


def per_image_scores(run: str) -> dict[tuple[str, str, str], np.ndarray]:
    """``{(image id, map label, metric): score values}`` of a stored run."""
    out = {}
    for rec in RunStore(run).records():
        for label, metrics in rec["scores"].items():
            for metric, values in metrics.items():
                for image_id, v in zip(rec["image_ids"], values, strict=True):
                    out[(image_id, label, metric)] = np.asarray(v, dtype=np.float64)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("run_a")
    p.add_argument("run_b")
    p.add_argument("--limit", type=float, default=None, help="fail above this difference")
    p.add_argument("--top", type=int, default=3, help="maps shown per metric")
    args = p.parse_args()
    a, b = per_image_scores(args.run_a), per_image_scores(args.run_b)
    shared = sorted(set(a) & set(b))
    if not shared:
        print("the runs share no (image, map, metric) score")
        return 1
    images = len({k[0] for k in shared})
    print(f"{len(shared)} shared scores: {images} images, {len({k[1] for k in shared})} maps")
    by_metric: dict[str, dict[str, float]] = {}
    for k in shared:
        d = float(np.abs(a[k] - b[k]).max())
        worst = by_metric.setdefault(k[2], {})
        worst[k[1]] = max(worst.get(k[1], 0.0), d)
    overall = 0.0
    for metric, maps in sorted(by_metric.items()):
        ranked = sorted(maps.items(), key=lambda kv: -kv[1])
        overall = max(overall, ranked[0][1])
        shown = ", ".join(f"{lb} {d:.1e}" for lb, d in ranked[: args.top])
        print(f"{metric:14s} max {ranked[0][1]:.2e}  ({shown})")
    print(f"max |score difference| = {overall:.2e}")
    if args.limit is not None and overall > args.limit:
        print(f"above the limit {args.limit:.0e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
