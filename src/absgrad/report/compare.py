"""Two runs side by side: each map and metric they share, and the difference B - A with its
interval (paired over the images both runs scored, unpaired when they share none)."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from absgrad.errors import AbsgradError
from absgrad.names import METRICS
from absgrad.protocol.store import atomic_write_bytes
from absgrad.report.results import Results, load_results
from absgrad.report.stats import (
    LEVEL,
    N_RESAMPLES,
    Interval,
    bootstrap_ci,
    paired_test,
    unpaired_diff,
)

#: Fewest shared images for a paired comparison.
MIN_PAIRED = 2


@dataclass(frozen=True)
class CompareCell:
    """One map and metric in both runs: their values and ``B - A``."""

    label: str
    title: str
    metric: str
    a: Interval
    b: Interval
    diff: Interval
    paired: bool
    p_value: float | None  # paired sign-flip test (two-sided); None when unpaired


@dataclass
class Comparison:
    """What :func:`compare_results` found; ``cells`` in map order, then metric order."""

    name_a: str
    name_b: str
    cells: list[CompareCell]
    only_a: list[str] = field(default_factory=list)
    only_b: list[str] = field(default_factory=list)
    n_common: int = 0
    n_resamples: int = N_RESAMPLES
    level: float = LEVEL

    @property
    def metrics(self) -> list[str]:
        return list(dict.fromkeys(c.metric for c in self.cells))


def _ci(values: np.ndarray, n_resamples: int, seed: int) -> Interval:
    ci = bootstrap_ci(values, n_resamples=n_resamples, seed=seed)
    assert isinstance(ci, Interval)
    return ci


def compare_results(
    a: Results,
    b: Results,
    *,
    names: tuple[str, str] = ("A", "B"),
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
) -> Comparison:
    """Compare every map and metric two runs share.

    When the runs share at least two image ids, each value and the difference use those images
    only (paired resampling, sign-flip p-value); otherwise each run's own images (unpaired).
    """
    labels = [lb for lb in a.labels if lb in b.per_image]
    if not labels:
        raise AbsgradError(
            f"runs {names[0]!r} and {names[1]!r} share no map "
            f"({', '.join(a.labels[:5])} vs {', '.join(b.labels[:5])})"
        )
    metrics = [m for m in METRICS if m in a.metrics and m in b.metrics]
    cells = []
    common_all: set[str] = set()
    for lb in labels:
        title = str(a.spec(lb).get("title") or lb)
        for m in metrics:
            va, vb = a.scores(lb, m), b.scores(lb, m)
            if va is None or vb is None or va.size == 0 or vb.size == 0:
                continue
            ia, ib = a.image_ids[lb], b.image_ids[lb]
            where_b = {i: k for k, i in enumerate(ib)}
            common = [(k, where_b[i]) for k, i in enumerate(ia) if i in where_b]
            p: float | None = None
            if len(common) >= MIN_PAIRED:
                common_all.update(ia[k] for k, _ in common)
                va, vb = va[[k for k, _ in common]], vb[[j for _, j in common]]
                t = paired_test(vb, va, n_resamples=n_resamples, seed=seed)
                diff, p = t.diff, t.p_value
            else:
                diff = unpaired_diff(vb, va, n_resamples=n_resamples, seed=seed)
            cell = CompareCell(
                lb,
                title,
                m,
                _ci(va, n_resamples, seed),
                _ci(vb, n_resamples, seed),
                diff,
                p is not None,
                p,
            )
            cells.append(cell)
    return Comparison(
        names[0],
        names[1],
        cells,
        only_a=[lb for lb in a.labels if lb not in b.per_image],
        only_b=[lb for lb in b.labels if lb not in a.per_image],
        n_common=len(common_all),
        n_resamples=n_resamples,
    )


def _fmt(ci: Interval, d: int = 4) -> str:
    return f"{ci.value:.{d}f} [{ci.lo:.{d}f}, {ci.hi:.{d}f}]"


def _p(p: float | None) -> str:
    if p is None:
        return "—"
    return f"{p:.2g}" if p >= 0.001 else f"{p:.1e}"


def _header(c: Comparison) -> list[str]:
    mode = (
        f"paired over the {c.n_common} images both runs scored"
        if c.n_common
        else "unpaired (the runs share no image)"
    )
    lines = [
        f"A = {c.name_a}; B = {c.name_b}. Differences B - A, {mode}; "
        f"{c.level:.0%} percentile bootstrap intervals ({c.n_resamples} resamples); "
        "p: two-sided paired sign-flip test. * marks an interval that excludes 0."
    ]
    if c.only_a:
        lines.append(f"Only in A: {', '.join(c.only_a)}.")
    if c.only_b:
        lines.append(f"Only in B: {', '.join(c.only_b)}.")
    return lines


def comparison_markdown(c: Comparison) -> str:
    """One Markdown table per metric: map, A, B, B - A, p."""
    out = ["# absgrad compare", ""] + [f"_{x}_" for x in _header(c)] + [""]
    for m in c.metrics:
        md = METRICS[m]
        out += [
            f"**{md.title} {md.arrow}**",
            "",
            "| Map | A | B | B - A | p |",
            "|---|---:|---:|---:|---:|",
        ]
        for cell in (x for x in c.cells if x.metric == m):
            star = "*" if cell.diff.excludes(0.0) else ""
            out.append(
                f"| {cell.title} | {_fmt(cell.a)} | {_fmt(cell.b)} | "
                f"{_fmt(cell.diff)}{star} | {_p(cell.p_value)} |"
            )
        out.append("")
    return "\n".join(out)


CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}
.note{color:#555}.better{color:#070}.worse{color:#a00}
"""


def comparison_html(c: Comparison) -> str:
    """A self-contained page with the same tables; significant differences coloured by whether
    B is better (green) or worse (red) in the metric's direction."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>absgrad compare</title>',
        f"<style>{CSS}</style></head><body><h1>absgrad compare</h1>",
    ]
    parts += [f'<p class="note">{html.escape(x)}</p>' for x in _header(c)]
    for m in c.metrics:
        md = METRICS[m]
        parts.append(
            f'<table id="compare-{m}"><caption>{html.escape(md.title)} {md.arrow}</caption>'
            "<tr><th>Map</th><th>A</th><th>B</th><th>B - A</th><th>p</th></tr>"
        )
        for cell in (x for x in c.cells if x.metric == m):
            cls = ""
            if cell.diff.excludes(0.0):
                cls = "better" if (cell.diff.value > 0) == md.higher_is_better else "worse"
            parts.append(
                f"<tr><td>{html.escape(cell.title)}</td><td>{_fmt(cell.a)}</td>"
                f'<td>{_fmt(cell.b)}</td><td class="{cls}">{_fmt(cell.diff)}</td>'
                f"<td>{_p(cell.p_value)}</td></tr>"
            )
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def compare_runs(
    run_a: str | Path, run_b: str | Path, out: str | Path | None = None, *, seed: int = 0
) -> tuple[Comparison, dict[str, Path]]:
    """Compare two run folders; with ``out``, write ``compare.md`` and ``compare.html`` there."""
    a, b = load_results(run_a), load_results(run_b)
    c = compare_results(a, b, names=(str(run_a), str(run_b)), seed=seed)
    files: dict[str, Path] = {}
    if out is not None:
        folder = Path(out)
        files["compare.md"] = folder / "compare.md"
        files["compare.html"] = folder / "compare.html"
        atomic_write_bytes(files["compare.md"], comparison_markdown(c).encode())
        atomic_write_bytes(files["compare.html"], comparison_html(c).encode())
    return c, files
