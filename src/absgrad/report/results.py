"""Stored unit records -> per-map, per-image arrays and the dataset-level metrics of the tables.

Dataset level: every metric is the mean of its per-image scores; for DAUC and IAUC that equals
the area of the mean deletion/insertion curve over images, since the area is linear.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from absgrad.names import METRICS
from absgrad.protocol.store import RunStore, atomic_write_bytes


@dataclass
class Results:
    """Per-image scores of each map, in plan order, and the run's metadata."""

    meta: dict[str, Any]
    metrics: tuple[str, ...]
    per_image: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    image_ids: dict[str, list[str]] = field(default_factory=dict)
    targets: dict[str, int] = field(default_factory=dict)  # image id -> target class
    done_units: int = 0
    unit_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        return [lb for lb in self.meta.get("maps", {}) if lb in self.per_image]

    @property
    def complete(self) -> bool:
        return self.done_units >= int(self.meta.get("n_units", 0))

    def spec(self, label: str) -> dict[str, Any]:
        """The stored declaration of map ``label`` (see :class:`absgrad.protocol.catalogue.MapSpec`)."""
        return dict(self.meta.get("maps", {}).get(label) or {})

    def is_reversed(self, label: str) -> bool:
        """Whether map ``label`` is a reversed map (Proposition 1's superscript R)."""
        return self.spec(label).get("reverse_of") is not None

    def n_images(self, label: str) -> int:
        return len(self.image_ids.get(label, []))

    def scores(self, label: str, metric: str, *, keep_missing: bool = False) -> np.ndarray | None:
        """Per-image scores ``(n,)`` of ``metric`` for map ``label``, in ``image_ids[label]`` order
        (images without a score, e.g. no ground truth for a mask metric, left out unless
        ``keep_missing``: then NaN in their place; :meth:`scored` gives the ids that go with them).

        DAUC/IAUC are the areas of each image's deletion/insertion curve; the area is linear, so
        their mean is the area of the mean curve (the paper's dataset-level number).
        """
        d = self.per_image.get(label)
        if d is None or metric not in d:
            return None
        if metric in ("dauc", "iauc"):
            curve = d.get("deletion" if metric == "dauc" else "insertion")
            if curve is None:
                return None
            from absgrad.metrics.grid import trapezoid_area

            return trapezoid_area(np.asarray(curve))
        v = np.asarray(d[metric], dtype=np.float64)
        return v if keep_missing else v[~_missing(metric, v)]

    def scored(self, label: str, metric: str) -> tuple[list[str], np.ndarray] | None:
        """``(image ids, scores)`` of the images that have a score of ``metric`` for ``label``:
        an image without ground truth (an empty mask) has none for the mask metrics."""
        v = self.scores(label, metric, keep_missing=True)
        if v is None:
            return None
        keep = ~_missing(metric, v)
        return [i for i, k in zip(self.image_ids[label], keep, strict=True) if k], v[keep]

    def n_missing(self, metric: str) -> int:
        """How many images have no score of ``metric`` (no ground truth), in the first map."""
        for label in self.labels:
            v = self.scores(label, metric, keep_missing=True)
            if v is not None:
                return int(_missing(metric, v).sum())
        return 0

    def value(self, label: str, metric: str) -> float | None:
        """The dataset-level value of ``metric`` for map ``label`` (None if not computed)."""
        v = self.scores(label, metric)
        return None if v is None or v.size == 0 else float(np.mean(v))

    def paired(self, labels: Sequence[str], metric: str) -> tuple[list[str], np.ndarray] | None:
        """Scores of several maps on the images all of them have: ``(image ids, (n, k))``.

        None when a map lacks the metric or the maps share no image.
        """
        cols = []
        for lb in labels:
            got = self.scored(lb, metric)
            if got is None:
                return None
            cols.append(dict(zip(*got, strict=True)))
        ids = [i for i in self.image_ids[labels[0]] if all(i in c for c in cols)] if cols else []
        if not ids:
            return None
        return ids, np.array([[c[i] for c in cols] for i in ids], dtype=np.float64)

    def mean_curve(self, label: str, key: str) -> np.ndarray | None:
        d = self.per_image.get(label, {})
        return None if key not in d else d[key].mean(axis=0)

    def rcap_terms(self, label: str) -> np.ndarray | None:
        """Mean over images of ``hit * prob`` per RCAP percentile (invalid percentiles count 0)."""
        d = self.per_image.get(label, {})
        if "rcap_hit" not in d:
            return None
        terms = d["rcap_hit"] * d["rcap_prob"] * d.get("rcap_valid", np.ones_like(d["rcap_hit"]))
        return terms.mean(axis=0)

    def percentiles(self) -> list[float]:
        """The run's RCAP percentiles (:func:`absgrad.metrics.rcap_percentiles`)."""
        from absgrad.metrics.grid import rcap_percentiles

        cfg = self.meta["config"]
        return list(rcap_percentiles(cfg["rcap_lower_bound"], cfg["rcap_interval"]))


def _missing(metric: str, values: np.ndarray) -> np.ndarray:
    """Which scores are missing: a mask metric has none (stored as null) for an image without
    ground truth. Other metrics are never missing; a NaN there stays, for the checks to flag."""
    info = METRICS.get(metric)
    if info is None or not info.needs_mask:
        return np.zeros(values.shape, dtype=bool)
    return np.isnan(values)


def load_results(out: str | Path) -> Results:
    """Read a run directory (complete or not) into :class:`Results`."""
    store = RunStore(out)
    meta = store.read_meta()
    res = Results(meta=meta, metrics=tuple(meta.get("metrics", ())))
    parts: dict[str, dict[str, list[np.ndarray]]] = {}
    for rec in store.records():
        res.done_units += 1
        res.targets.update(zip(rec["image_ids"], rec.get("targets") or (), strict=False))
        for k, v in rec.get("timing", {}).items():
            res.unit_seconds[k] = res.unit_seconds.get(k, 0.0) + float(v)
        for label, scores in rec["scores"].items():
            res.image_ids.setdefault(label, []).extend(rec["image_ids"])
            slot = parts.setdefault(label, {})
            for key, values in scores.items():
                slot.setdefault(key, []).append(np.asarray(values, dtype=np.float64))
    for label, slot in parts.items():
        res.per_image[label] = {k: np.concatenate(v, axis=0) for k, v in slot.items()}
    return res


SCORE_COLUMNS = ("image_id", "label", "map", "metric", "value")


def score_rows(res: Results) -> list[tuple[str, int | None, str, str, float]]:
    """Every per-image score of a run: ``(image id, target class, map, metric, value)``.

    Maps in run order, then metrics in the run's order, then images in plan order.
    """
    rows = []
    for label in res.labels:
        for metric in res.metrics:
            got = res.scored(label, metric)
            if got is None:
                continue
            for image_id, x in zip(*got, strict=True):
                rows.append((image_id, res.targets.get(image_id), label, metric, float(x)))
    return rows


def write_scores(res: Results, folder: str | Path) -> dict[str, Path]:
    """``scores.csv`` (and ``scores.parquet`` when pyarrow is installed) in ``folder``."""
    import csv
    import importlib.util
    import io

    rows = score_rows(res)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(SCORE_COLUMNS)
    w.writerows((i, "" if t is None else t, m, k, repr(x)) for i, t, m, k, x in rows)
    folder = Path(folder)
    out = {"scores.csv": folder / "scores.csv"}
    atomic_write_bytes(out["scores.csv"], buf.getvalue().encode())
    if importlib.util.find_spec("pyarrow") is not None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        cols = list(zip(*rows, strict=True)) if rows else [()] * len(SCORE_COLUMNS)
        table = pa.table(
            {
                "image_id": pa.array(cols[0], pa.string()),
                "label": pa.array(cols[1], pa.int64()),
                "map": pa.array(cols[2], pa.string()),
                "metric": pa.array(cols[3], pa.string()),
                "value": pa.array(cols[4], pa.float64()),
            }
        )
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        out["scores.parquet"] = folder / "scores.parquet"
        atomic_write_bytes(out["scores.parquet"], sink.getvalue().to_pybytes())
    return out
