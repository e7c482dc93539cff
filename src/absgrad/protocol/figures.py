"""Figures of a run (matplotlib, PNG, no display needed): map grid, RCAP/DAUC/IAUC vs p,
deletion/insertion curves per method, RCAP's per-percentile ``hit * prob`` bars."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from absgrad.protocol.paper import ABLATION_P, TABLE2, gag_label
from absgrad.protocol.plan import unit_id
from absgrad.protocol.results import Results
from absgrad.protocol.store import RunStore

DPI = 100


def _table2_labels(res: Results, reversed_too: bool = True) -> list[tuple[str, str]]:
    rows = [(t, lb) for t, lb in TABLE2.rows if lb in res.per_image]
    return rows if reversed_too else [(t, lb) for t, lb in rows if not res.is_reversed(lb)]


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


def map_grid(res: Results, store: RunStore, path: Path, max_images: int = 4) -> Path | None:
    """Images (rows) x Table 2 methods (columns), from the first stored batches."""
    groups = {
        lb: g["name"] for g in res.meta.get("groups", []) for lb in (*g["labels"], *g["derived"])
    }
    rows = _table2_labels(res) or [(lb, lb) for lb in res.labels]
    images: list[np.ndarray] = []
    maps: dict[str, list[np.ndarray]] = {lb: [] for _, lb in rows}
    batch = 0
    while len(images) < max_images and store.load_images(batch) is not None:
        imgs = store.load_images(batch)
        loaded = {
            lb: store.load_maps(unit_id(batch, groups[lb])).get(lb)
            for _, lb in rows
            if lb in groups
        }
        if any(v is None for v in loaded.values()):
            break
        take = min(len(imgs), max_images - len(images))
        images += list(imgs[:take])
        for lb, m in loaded.items():
            maps[lb] += list(m[:take])
        batch += 1
    if not images:
        return None
    cols = [(t, lb) for t, lb in rows if len(maps.get(lb, [])) == len(images)]
    n_r, n_c = len(images), len(cols) + 1
    fig = Figure(figsize=(1.3 * n_c, 1.4 * n_r + 0.3))
    axes = fig.subplots(n_r, n_c, squeeze=False)
    for i, img in enumerate(images):
        axes[i][0].imshow(img)
        for j, (title, lb) in enumerate(cols, start=1):
            axes[i][j].imshow(maps[lb][i], cmap="jet", vmin=0, vmax=1)
            if i == 0:
                axes[i][j].set_title(title.replace("^R", "$^R$"), fontsize=8)
        if i == 0:
            axes[i][0].set_title("image", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.subplots_adjust(wspace=0.04, hspace=0.04)
    return _save(fig, path)


def ablation_curves(res: Results, path: Path) -> Path | None:
    """RCAP, DAUC and IAUC of GAG-p against p (Table 1)."""
    ps = [p for p in ABLATION_P if gag_label(p) in res.per_image]
    metrics = [m for m in ("rcap", "dauc", "iauc") if m in res.metrics]
    if len(ps) < 2 or not metrics:
        return None
    fig = Figure(figsize=(3.2 * len(metrics), 2.8))
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, m in zip(axes, metrics, strict=True):
        ax.plot([p * 100 for p in ps], [res.value(gag_label(p), m) for p in ps], marker="o")
        ax.set_xlabel("p (percentile of the variance guide)")
        ax.set_title(f"{m.upper()} {'↑' if m != 'dauc' else '↓'}")
        ax.grid(alpha=0.3)
    fig.suptitle("GAG-p ablation")
    fig.tight_layout()
    return _save(fig, path)


def auc_curves(res: Results, path: Path) -> Path | None:
    """Mean deletion and insertion curves per Table 2 method (reversed maps dashed)."""
    rows = [(t, lb) for t, lb in _table2_labels(res) if "deletion" in res.per_image[lb]]
    if not rows:
        return None
    fig = Figure(figsize=(10, 3.6))
    axes = fig.subplots(1, 2)
    for ax, key, name in (
        (axes[0], "deletion", "Deletion (DAUC ↓)"),
        (axes[1], "insertion", "Insertion (IAUC ↑)"),
    ):
        for title, lb in rows:
            curve = res.mean_curve(lb, key)
            r = np.arange(len(curve)) / len(curve)
            ax.plot(
                r,
                curve,
                linestyle="--" if res.is_reversed(lb) else "-",
                label=title.replace("^R", "$^R$"),
            )
        ax.set_xlabel("fraction of pixels r")
        ax.set_ylabel("target probability")
        ax.set_title(name)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, ncol=2, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.tight_layout()
    return _save(fig, path)


def rcap_bars(res: Results, path: Path) -> Path | None:
    """Mean ``hit * prob`` per RCAP percentile, one bar per Table 2 method."""
    rows = [
        (t, lb)
        for t, lb in _table2_labels(res, reversed_too=False)
        if res.rcap_terms(lb) is not None
    ]
    if not rows:
        return None
    ps = res.percentiles()
    fig = Figure(figsize=(10, 3.6))
    ax = fig.subplots()
    width = 0.8 / len(rows)
    x = np.arange(len(ps))
    for k, (title, lb) in enumerate(rows):
        ax.bar(x + (k - (len(rows) - 1) / 2) * width, res.rcap_terms(lb), width, label=title)
    ax.set_xticks(x, [f"{p:.0%}" for p in ps])
    ax.set_xlabel("RCAP percentile p (pixels above the p-quantile recovered)")
    ax.set_ylabel("mean hit × prob")
    ax.set_title("RCAP per percentile")
    ax.legend(fontsize=7, ncol=1, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return _save(fig, path)


def make_figures(res: Results, store: RunStore, folder: Path) -> dict[str, Path]:
    """Write every figure that the run's results allow; returns ``{name: path}``."""
    made = {
        "maps": map_grid(res, store, folder / "maps.png"),
        "ablation": ablation_curves(res, folder / "ablation.png"),
        "curves": auc_curves(res, folder / "deletion_insertion.png"),
        "rcap_bars": rcap_bars(res, folder / "rcap_percentiles.png"),
    }
    return {k: v for k, v in made.items() if v is not None}
