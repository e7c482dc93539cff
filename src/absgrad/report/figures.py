"""Figures of a run (matplotlib, no display needed), each saved as PNG and SVG.

* ``maps``: a few images x Table 2's methods, maps drawn over the photo (see ``overlay``);
* ``ablation``: Table 1's metrics against p, with 95% intervals, on axes from 0;
* ``curves``: mean deletion / insertion curves, one style per map (colour = method,
  dashes = reversed), each legend entry with its area and interval;
* ``rcap_bars``: RCAP's mean ``hit * prob`` per percentile, with intervals.

Intervals are the tables' 95% percentile-bootstrap intervals over images
(:func:`absgrad.report.stats.bootstrap_ci`, same resamples).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from absgrad.names import METRICS
from absgrad.protocol.catalogue import ABLATION_P, TABLE2, gag_label
from absgrad.protocol.plan import unit_id
from absgrad.protocol.store import RunStore
from absgrad.report.overlay import colour_bar, overlay
from absgrad.report.results import Results
from absgrad.report.stats import Interval, bootstrap_ci

DPI = 100

#: Colours of the paper's methods (colour-blind-safe, Okabe-Ito first); other bases take the
#: extra colours in order of appearance.
METHOD_COLORS = {
    "gag": "#D55E00",
    "gradcam": "#4D4D4D",
    "vargrad": "#E69F00",
    "sg": "#0072B2",
    "ig": "#009E73",
    "gb": "#CC79A7",
    "guidedig": "#56B4E9",
    "blurig": "#882255",
    "vg": "#999933",
}
EXTRA_COLORS = ("#44AA99", "#AA4499", "#661100", "#6699CC", "#117733", "#332288", "#DDCC77")
#: Line styles within one method: the map itself solid, reversed dashed, variants after.
REVERSED_STYLE = (0, (5, 2))
VARIANT_STYLES = ((0, (1, 1.5)), (0, (6, 1.5, 1, 1.5)), (0, (3, 1, 1, 1, 1, 1)), (0, (9, 3)))
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


# -- intervals -------------------------------------------------------------------------------
def value_interval(res: Results, label: str, metric: str) -> Interval | None:
    """The table value's bootstrap interval (the same resamples as the tables'), or None."""
    v = res.scores(label, metric)
    if v is None or v.size == 0:
        return None
    out = bootstrap_ci(v)
    assert isinstance(out, Interval)
    return out


def fmt_interval(ci: Interval | None, decimals: int = 3) -> str:
    """``[lo, hi]`` of an interval; a single image has none."""
    if ci is None or ci.n < 2:
        return "[no interval: 1 image]"
    return f"[{ci.lo:.{decimals}f}, {ci.hi:.{decimals}f}]"


# -- styles ----------------------------------------------------------------------------------
def map_base(label: str, maps: Mapping[str, Any]) -> str:
    """The paper's method a map belongs to (``sg`` for ``sg-pos`` and ``sg-r``)."""
    spec = maps.get(label) or {}
    if spec.get("base"):
        return str(spec["base"])
    if spec.get("reverse_of"):
        return map_base(str(spec["reverse_of"]), maps)
    return str(spec.get("method") or label)


def is_reversed(label: str, maps: Mapping[str, Any]) -> bool:
    return bool((maps.get(label) or {}).get("reverse_of"))


def line_styles(labels: Iterable[str], maps: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """One distinct ``{color, linestyle, marker}`` per map: colour = method, dashes = reversed.

    Within a method its main map is solid, its reversed map dashed and any other variant gets
    a dotted/dash-dot pattern and its own marker; no two labels get the same style.
    """
    labels = list(labels)
    bases = {lb: map_base(lb, maps) for lb in labels}
    colors: dict[str, str] = {}
    main: dict[str, str] = {}
    for lb in labels:
        b = bases[lb]
        if b not in colors:
            n_extra = sum(c not in METHOD_COLORS for c in colors)
            colors[b] = METHOD_COLORS.get(b, EXTRA_COLORS[n_extra % len(EXTRA_COLORS)])
        if not is_reversed(lb, maps) and (lb == b or b not in main):
            main[b] = lb
    out: dict[str, dict[str, Any]] = {}
    variants: dict[str, int] = {}
    for lb in labels:
        b = bases[lb]
        if is_reversed(lb, maps):
            ls, k = REVERSED_STYLE, 1
        elif main.get(b) == lb:
            ls, k = "-", 0
        else:
            v = variants[b] = variants.get(b, -1) + 1
            ls, k = VARIANT_STYLES[v % len(VARIANT_STYLES)], v + 2
        style = {"color": colors[b], "linestyle": ls, "marker": MARKERS[k % len(MARKERS)]}
        # a colour shared by two bases (more bases than colours) still differs by its marker
        while style in out.values():
            k += 1
            style = {**style, "marker": MARKERS[k % len(MARKERS)]}
        out[lb] = style
    return out


def _tex(title: str) -> str:
    return title.replace("^R", "$^R$")


# -- saving ----------------------------------------------------------------------------------
def _save(fig: Figure, path: Path) -> Path:
    """Save ``fig`` as ``path`` (PNG) and beside it as SVG; returns the PNG's path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    fig.savefig(path.with_suffix(".svg"), bbox_inches="tight")
    return path


def _table2_labels(res: Results, reversed_too: bool = True) -> list[tuple[str, str]]:
    rows = [(t, lb) for t, lb in TABLE2.rows if lb in res.per_image]
    return rows if reversed_too else [(t, lb) for t, lb in rows if not res.is_reversed(lb)]


# -- the figures -----------------------------------------------------------------------------
def stored_maps(
    res: Results, store: RunStore, labels: list[str], max_images: int | None = None
) -> Iterable[tuple[int, str, np.ndarray, dict[str, np.ndarray]]]:
    """``(position, image id, photo (H, W, 3) uint8, {label: map (H, W)})`` in run order.

    Images whose maps were not stored (``save_maps``) come with the maps that exist (maybe none).
    """
    groups = {
        lb: g["name"] for g in res.meta.get("groups", []) for lb in (*g["labels"], *g["derived"])
    }
    ids = res.meta["images"]["ids"]
    bs = int(res.meta["config"].get("batch_size", 4))
    shown = 0
    for batch, start in enumerate(range(0, len(ids), bs)):
        imgs = store.load_images(batch)
        if imgs is None:
            continue
        loaded: dict[str, np.ndarray] = {}
        for name in dict.fromkeys(groups[lb] for lb in labels if lb in groups):
            for lb, m in store.load_maps(unit_id(batch, name)).items():
                if lb in labels:
                    loaded[lb] = m
        for i, img in enumerate(imgs):
            if max_images is not None and shown >= max_images:
                return
            yield start + i, ids[start + i], img, {lb: m[i] for lb, m in loaded.items()}
            shown += 1


def map_grid(
    res: Results, store: RunStore, path: Path, max_images: int = 4
) -> tuple[Path, int] | None:
    """The first ``max_images`` images with stored maps (rows) x Table 2's methods (columns),
    each map over its photo, with the colour bar; returns ``(path, images shown)``."""
    rows = _table2_labels(res) or [(lb, lb) for lb in res.labels]
    labels = [lb for _, lb in rows]
    picked = []
    for _, img_id, img, maps in stored_maps(res, store, labels):
        if all(lb in maps for lb in labels):
            picked.append((img_id, img, maps))
        if len(picked) == max_images:
            break
    if not picked:
        return None
    n_r, n_c = len(picked), len(rows) + 1
    fig = Figure(figsize=(1.25 * n_c + 0.9, 1.32 * n_r + 0.5))
    axes = fig.subplots(n_r, n_c, squeeze=False)
    for i, (img_id, img, maps) in enumerate(picked):
        axes[i][0].imshow(img)
        axes[i][0].set_ylabel(img_id if len(img_id) <= 18 else img_id[:17] + "…", fontsize=6)
        for j, (title, lb) in enumerate(rows, start=1):
            axes[i][j].imshow(overlay(img, maps[lb]))
            if i == 0:
                axes[i][j].set_title(_tex(title), fontsize=8)
        if i == 0:
            axes[i][0].set_title("image", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.subplots_adjust(wspace=0.04, hspace=0.04, right=0.93)
    cax = fig.add_axes((0.94, 0.15, 0.008 * 14 / max(n_c, 1) + 0.004, 0.7))
    colour_bar(fig, cax=cax).ax.tick_params(labelsize=6)
    return _save(fig, path), len(picked)


def ablation_curves(
    res: Results, path: Path, paper: Mapping[str, Any] | None = None
) -> Path | None:
    """Table 1's metrics of GAG-p against p with 95% intervals, on axes from 0 (so a flat
    metric looks flat), the paper's numbers beside ours when given (``{label: {metric: v}}``)."""
    ps = [p for p in ABLATION_P if gag_label(p) in res.per_image]
    metrics = [m for m in METRICS if m in res.metrics]
    if len(ps) < 2 or not metrics:
        return None
    x = [p * 100 for p in ps]
    ncol = min(len(metrics), 4)
    nrow = -(-len(metrics) // ncol)
    fig = Figure(figsize=(3.1 * ncol, 2.7 * nrow + 0.4))
    axes = list(fig.subplots(nrow, ncol, squeeze=False).flat)
    n = res.n_images(gag_label(ps[0]))
    for ax, m in zip(axes, metrics, strict=False):
        vals = np.array([res.value(gag_label(p), m) for p in ps], dtype=np.float64)
        ci = [value_interval(res, gag_label(p), m) for p in ps]
        lo = np.array([c.lo if c else np.nan for c in ci])
        hi = np.array([c.hi if c else np.nan for c in ci])
        ax.fill_between(x, lo, hi, color=METHOD_COLORS["gag"], alpha=0.2, lw=0, label="95% CI")
        ax.plot(x, vals, marker="o", color=METHOD_COLORS["gag"], label=f"this run (n = {n})")
        pv = [(paper or {}).get(gag_label(p), {}).get(m) for p in ps]
        if any(v is not None for v in pv):
            ax.plot(
                x,
                [np.nan if v is None else v for v in pv],
                marker="x",
                color="#555555",
                linestyle=(0, (4, 2)),
                label="paper",
            )
        top = np.nanmax([*hi, *vals, *[v for v in pv if v is not None]])
        ax.set_ylim(0, 1.0 if top <= 1.0 else top * 1.1)
        rel = (np.nanmax(vals) - np.nanmin(vals)) / max(abs(np.nanmean(vals)), 1e-12)
        ax.set_title(
            f"{METRICS[m].title} {METRICS[m].arrow}  (range over p: {rel:.1%})", fontsize=9
        )
        ax.set_xlabel("p (percentile of the variance guide, %)", fontsize=8)
        ax.set_xticks(x)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    handles, names = axes[0].get_legend_handles_labels()
    for ax in axes[len(metrics) :]:
        ax.axis("off")
    fig.suptitle("GAG-p ablation (axes from 0; shaded: 95% bootstrap interval over images)")
    fig.tight_layout()
    if len(metrics) < len(axes):  # the legend takes the first empty panel
        axes[len(metrics)].legend(handles, names, loc="center", fontsize=9, frameon=False)
    else:
        fig.legend(handles, names, loc="lower center", ncol=3, fontsize=8, frameon=False)
        fig.subplots_adjust(bottom=0.22 / nrow)
    return _save(fig, path)


def auc_curves(res: Results, path: Path) -> Path | None:
    """Mean deletion and insertion curves per Table 2 map; legends give each area with its
    95% interval. Colour = method, dashes = reversed map."""
    rows = [(t, lb) for t, lb in _table2_labels(res) if "deletion" in res.per_image[lb]]
    if not rows:
        return None
    styles = line_styles([lb for _, lb in rows], res.meta.get("maps", {}))
    fig = Figure(figsize=(12.5, 4.4))
    axes = fig.subplots(1, 2)
    for ax, key, metric, name in (
        (axes[0], "deletion", "dauc", "Deletion (DAUC ↓)"),
        (axes[1], "insertion", "iauc", "Insertion (IAUC ↑)"),
    ):
        for title, lb in rows:
            curve = res.mean_curve(lb, key)
            r = np.arange(len(curve)) / len(curve)
            v = res.value(lb, metric)
            ci = value_interval(res, lb, metric)
            lab = _tex(title) if v is None else f"{_tex(title)}  {v:.3f} {fmt_interval(ci)}"
            ax.plot(r, curve, markersize=3.5, linewidth=1.4, label=lab, **styles[lb])
        ax.set_xlabel("fraction of pixels r")
        ax.set_ylabel("target probability")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6.5, loc="center left", bbox_to_anchor=(1.01, 0.5), handlelength=3.2)
    fig.suptitle(
        f"Mean curves over {res.n_images(rows[0][1])} images; legend: area [95% interval]",
        fontsize=10,
    )
    fig.tight_layout()
    return _save(fig, path)


def rcap_bars(res: Results, path: Path) -> Path | None:
    """Mean ``hit * prob`` per RCAP percentile, one bar per Table 2 method, 95% intervals."""
    rows = [
        (t, lb)
        for t, lb in _table2_labels(res, reversed_too=False)
        if res.rcap_terms(lb) is not None
    ]
    if not rows:
        return None
    styles = line_styles([lb for _, lb in rows], res.meta.get("maps", {}))
    ps = res.percentiles()
    fig = Figure(figsize=(11, 3.8))
    ax = fig.subplots()
    width = 0.8 / len(rows)
    x = np.arange(len(ps))
    for k, (title, lb) in enumerate(rows):
        d = res.per_image[lb]
        terms = d["rcap_hit"] * d["rcap_prob"] * d.get("rcap_valid", np.ones_like(d["rcap_hit"]))
        cis = bootstrap_ci(terms)
        assert isinstance(cis, list)
        mean = np.array([c.value for c in cis])
        err = np.array([[c.value - c.lo for c in cis], [c.hi - c.value for c in cis]])
        ax.bar(
            x + (k - (len(rows) - 1) / 2) * width,
            mean,
            width,
            yerr=err,
            error_kw={"elinewidth": 0.7, "capsize": 1.5},
            label=_tex(title),
            color=styles[lb]["color"],
        )
    ax.set_xticks(x, [f"{p:.0%}" for p in ps])
    ax.set_xlabel("RCAP percentile p (pixels above the p-quantile recovered)")
    ax.set_ylabel("mean hit × prob")
    ax.set_ylim(0, 1)
    ax.set_title("RCAP per percentile (error bars: 95% bootstrap interval over images)")
    ax.legend(fontsize=7, ncol=1, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return _save(fig, path)


def make_figures(
    res: Results, store: RunStore, folder: Path, paper: Mapping[str, Any] | None = None
) -> tuple[dict[str, Path], int]:
    """Write every figure the run's results allow (PNG + SVG).

    Returns ``({name: png path}, images shown in the maps figure)``.

    ``paper``: the paper's Table 1 numbers ``{label: {metric: value}}`` to draw beside ours.
    """
    grid = map_grid(res, store, folder / "maps.png")
    made = {
        "maps": grid[0] if grid else None,
        "ablation": ablation_curves(res, folder / "ablation.png", paper),
        "curves": auc_curves(res, folder / "deletion_insertion.png"),
        "rcap_bars": rcap_bars(res, folder / "rcap_percentiles.png"),
    }
    return {k: v for k, v in made.items() if v is not None}, grid[1] if grid else 0
