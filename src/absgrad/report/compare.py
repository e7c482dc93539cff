"""Two runs side by side: each map and metric they share, and the difference B - A with its
interval (paired over the images both runs scored, unpaired when they share none).

A comparison first says what differs between the runs' set-ups (case, model, weights,
preprocessing, data, images): a B - A table is only read right when one knows what B changed.
Runs of different models are not compared unless asked (``across_models=True``, CLI
``--across-models``), and an image id is paired only when both runs read the same file.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
from absgrad.utils.files import output_errors

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


@dataclass(frozen=True)
class SetupDifference:
    """One aspect of the runs' set-ups that differs: what, and its value in A and in B."""

    what: str
    a: str
    b: str


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
    differences: list[SetupDifference] = field(default_factory=list)
    setup: dict[str, str] = field(default_factory=dict)  # A's set-up (what both share)
    n_unpaired_ids: int = 0  # ids in both runs whose files differ (not paired)

    @property
    def metrics(self) -> list[str]:
        return list(dict.fromkeys(c.metric for c in self.cells))


#: The set-up aspects that decide the model; runs differing in one are compared only on request.
MODEL_ASPECTS = ("case", "model", "weights")


def run_setup(meta: dict[str, Any]) -> dict[str, str]:
    """What a run was made of, from its ``run.json``: case, model, weights, preprocessing, data
    and images, each as a short text (``"?"`` where the run does not record it)."""
    cfg = meta.get("config") or {}
    case = meta.get("case") or {}
    if not cfg and not case:
        return {}
    name = str(case.get("name") or cfg.get("case") or "?")
    model = cfg.get("model") or f"{name}'s model ({case.get('model') or '?'})"
    if cfg.get("model_sha"):
        model += f" [source {cfg['model_sha']}]"
    if cfg.get("weights_sha"):
        weights = f"{Path(str(cfg.get('weights'))).name} (sha256 {cfg['weights_sha']})"
    else:
        weights = str(cfg.get("weights") or "the case's default")
    size = case.get("image_size") or "?"
    norm = case.get("normalization") or "?"
    folder = case.get("folder") or {}
    prep = f"{size[0]}x{size[1]}" if isinstance(size, list) and len(size) == 2 else str(size)
    if folder.get("resize") is not None:
        prep += f", resize {folder['resize']}"
    prep += f", mean/std {norm}"
    data = meta.get("data") or {}
    ids = (meta.get("images") or {}).get("ids") or []
    return {
        "case": name,
        "model": str(model),
        "weights": weights,
        "preprocessing": prep,
        "data": f"{case.get('data') or 'built-in'} (digest {data.get('digest', '?')})",
        "images": f"{len(ids)} images",
    }


def setup_differences(a: dict[str, Any], b: dict[str, Any]) -> list[SetupDifference]:
    """The aspects of :func:`run_setup` in which two runs' metadata differ."""
    sa, sb = run_setup(a), run_setup(b)
    out = [SetupDifference(k, sa[k], sb[k]) for k in sa if k in sb and sa[k] != sb[k]]
    ids_a = set((a.get("images") or {}).get("ids") or [])
    ids_b = set((b.get("images") or {}).get("ids") or [])
    if ids_a != ids_b and not any(d.what == "images" for d in out):
        out.append(SetupDifference("images", f"{len(ids_a)} images", f"{len(ids_b)} images"))
    return out


def _same_file(meta_a: dict[str, Any], meta_b: dict[str, Any]) -> Callable[[str], bool]:
    """Whether an image id names the same file in both runs (label, size, modification time of
    their data fingerprints); ids a run does not fingerprint count as the same."""
    fa = (meta_a.get("data") or {}).get("images") or {}
    fb = (meta_b.get("data") or {}).get("images") or {}
    return lambda i: i not in fa or i not in fb or fa[i] == fb[i]


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
    across_models: bool = False,
) -> Comparison:
    """Compare every map and metric two runs share.

    When the runs share at least two images (the same id and, where the runs fingerprint their
    data, the same file), each value and the difference use those images only (paired
    resampling, sign-flip p-value); otherwise each run's own images (unpaired). Runs of
    different models (case, model spec or weights) raise :class:`AbsgradError` unless
    ``across_models``.
    """
    differences = setup_differences(a.meta, b.meta)
    model_diff = [d for d in differences if d.what in MODEL_ASPECTS]
    if model_diff and not across_models:
        what = "; ".join(f"{d.what}: {d.a} vs {d.b}" for d in model_diff)
        raise AbsgradError(
            f"runs {names[0]!r} and {names[1]!r} use different models ({what}): their maps "
            "and scores answer different questions; pass across_models=True (absgrad compare "
            "--across-models) to set them side by side anyway"
        )
    same_file = _same_file(a.meta, b.meta)
    labels = [lb for lb in a.labels if lb in b.per_image]
    if not labels:
        raise AbsgradError(
            f"runs {names[0]!r} and {names[1]!r} share no map "
            f"({', '.join(a.labels[:5])} vs {', '.join(b.labels[:5])})"
        )
    metrics = [m for m in METRICS if m in a.metrics and m in b.metrics]
    cells = []
    common_all: set[str] = set()
    unpaired_ids: set[str] = set()
    for lb in labels:
        title = str(a.spec(lb).get("title") or lb)
        for m in metrics:
            got_a, got_b = a.scored(lb, m), b.scored(lb, m)
            if got_a is None or got_b is None or got_a[1].size == 0 or got_b[1].size == 0:
                continue
            (ia, va), (ib, vb) = got_a, got_b
            where_b = {i: k for k, i in enumerate(ib)}
            unpaired_ids.update(i for i in ia if i in where_b and not same_file(i))
            common = [(k, where_b[i]) for k, i in enumerate(ia) if i in where_b and same_file(i)]
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
        differences=differences,
        setup=run_setup(a.meta),
        n_unpaired_ids=len(unpaired_ids),
    )


def _fmt(ci: Interval, d: int = 4) -> str:
    return f"{ci.value:.{d}f} [{ci.lo:.{d}f}, {ci.hi:.{d}f}]"


def _p(p: float | None) -> str:
    if p is None:
        return "—"
    return f"{p:.2g}" if p >= 0.001 else f"{p:.1e}"


def _setup_lines(c: Comparison) -> list[str]:
    """What differs between the runs (first), or what they share."""
    if c.differences:
        parts = [f"{d.what}: A {d.a}, B {d.b}" for d in c.differences]
        lines = ["Set-ups differ: " + "; ".join(parts) + "."]
        if any(d.what in MODEL_ASPECTS for d in c.differences):
            lines.append("Different models: compared on request (--across-models).")
    elif c.setup:
        lines = ["Same set-up: " + "; ".join(f"{k} {v}" for k, v in c.setup.items()) + "."]
    else:
        lines = []
    if c.n_unpaired_ids:
        lines.append(
            f"{c.n_unpaired_ids} image id(s) appear in both runs but name different files: "
            "not paired."
        )
    return lines


def _header(c: Comparison) -> list[str]:
    mode = (
        f"paired over the {c.n_common} images both runs scored"
        if c.n_common
        else "unpaired (the runs share no image)"
    )
    lines = _setup_lines(c) + [
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
    run_a: str | Path,
    run_b: str | Path,
    out: str | Path | None = None,
    *,
    seed: int = 0,
    across_models: bool = False,
) -> tuple[Comparison, dict[str, Path]]:
    """Compare two run folders; with ``out``, write ``compare.md`` and ``compare.html`` there."""
    if out is not None and Path(out).exists() and not Path(out).is_dir():
        raise AbsgradError(
            f"--out {out} is a file; compare writes compare.md and compare.html into a folder"
        )
    a, b = load_results(run_a), load_results(run_b)
    c = compare_results(
        a, b, names=(str(run_a), str(run_b)), seed=seed, across_models=across_models
    )
    files: dict[str, Path] = {}
    if out is not None:
        folder = Path(out)
        files["compare.md"] = folder / "compare.md"
        files["compare.html"] = folder / "compare.html"
        with output_errors(folder, "the comparison into"):
            atomic_write_bytes(files["compare.md"], comparison_markdown(c).encode())
            atomic_write_bytes(files["compare.html"], comparison_html(c).encode())
    return c, files
