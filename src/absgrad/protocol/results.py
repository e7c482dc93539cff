"""Stored unit records -> per-map, per-image arrays and the dataset-level metrics of the tables.

Dataset level: RCAP and the mask metrics are means over images; DAUC and IAUC are the areas
of the mean deletion/insertion curve over images (SPEC §3.2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from absgrad.protocol.store import RunStore


@dataclass
class Results:
    """Per-image scores of each map, in plan order, and the run's metadata."""

    meta: dict[str, Any]
    metrics: tuple[str, ...]
    per_image: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    image_ids: dict[str, list[str]] = field(default_factory=dict)
    done_units: int = 0
    unit_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        return [lb for lb in self.meta.get("maps", {}) if lb in self.per_image]

    @property
    def complete(self) -> bool:
        return self.done_units >= int(self.meta.get("n_units", 0))

    def spec(self, label: str) -> dict[str, Any]:
        """The stored declaration of map ``label`` (see :class:`absgrad.protocol.paper.MapSpec`)."""
        return dict(self.meta.get("maps", {}).get(label) or {})

    def is_reversed(self, label: str) -> bool:
        """Whether map ``label`` is a reversed map (Proposition 1's superscript R)."""
        return self.spec(label).get("reverse_of") is not None

    def n_images(self, label: str) -> int:
        return len(self.image_ids.get(label, []))

    def value(self, label: str, metric: str) -> float | None:
        """The dataset-level value of ``metric`` for map ``label`` (None if not computed)."""
        d = self.per_image.get(label)
        if d is None:
            return None
        if metric in ("dauc", "iauc"):
            curve = d.get("deletion" if metric == "dauc" else "insertion")
            if curve is None or metric not in d:
                return None
            from absgrad.metrics import auc

            return float(auc(torch.from_numpy(curve.mean(axis=0))))
        if metric not in d:
            return None
        return float(np.mean(d[metric]))

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
        cfg = self.meta["config"]
        lb, step = cfg["rcap_lower_bound"], cfg["rcap_interval"]
        out, k = [], 0
        while (p := round(lb + k * step, 10)) < 1:
            out.append(p)
            k += 1
        return out


def load_results(out: str | Path) -> Results:
    """Read a run directory (complete or not) into :class:`Results`."""
    store = RunStore(out)
    meta = store.read_meta()
    res = Results(meta=meta, metrics=tuple(meta.get("metrics", ())))
    parts: dict[str, dict[str, list[np.ndarray]]] = {}
    for rec in store.records():
        res.done_units += 1
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
