"""Tables, figures and one self-contained ``report.html`` from a run directory."""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from absgrad.errors import AbsgradError
from absgrad.names import METRICS
from absgrad.protocol.store import RunDirError, RunStore, atomic_write_bytes
from absgrad.report.claims import (
    Claim,
    Ranking,
    check_claims,
    claims_markdown,
    rank_pairs,
    ranking_markdown,
)
from absgrad.report.figures import make_figures
from absgrad.report.gallery import Gallery, write_gallery
from absgrad.report.render import to_csv, to_html, to_latex, to_markdown
from absgrad.report.results import Results, load_results, write_scores
from absgrad.report.tables import Table, build_tables, paper_case_name, paper_numbers
from absgrad.utils.files import output_errors

FIGURE_TITLES = {
    "maps": "Saliency maps over their photo (images x Table 2's methods)",
    "ablation": "Table 1's metrics of GAG-p against p, with 95% intervals",
    "curves": "Deletion and insertion curves (mean over images)",
    "rcap_bars": "RCAP: mean hit x prob per percentile, with 95% intervals",
}


@dataclass
class Report:
    """What :func:`build_report` wrote."""

    html: Path
    tables: list[Table]
    files: dict[str, Path] = field(default_factory=dict)
    claims: list[Claim] = field(default_factory=list)
    complete: bool = True
    gallery: Gallery | None = None


def resolve_compare(case: str, compare: str | bool | None) -> str | None:
    """The paper's case name to compare with: ``True`` = the run's own case, ``None`` = the
    run's own case when the paper has numbers for it, ``False`` = none."""
    if compare is False:
        return None
    if compare is None:
        return paper_case_name(case)
    name = case if compare is True else str(compare)
    found = paper_case_name(name)
    if found is None:
        cases = ", ".join(paper_numbers()["cases"])
        raise AbsgradError(
            f"the paper has no numbers for case {name!r}; --compare-paper takes one of {cases}"
        )
    return found


def _write(path: Path, text: str) -> Path:
    atomic_write_bytes(path, text.encode())
    return path


def _ground_truth_fact(res: Results) -> list[tuple[str, str]]:
    """How many images the mask metrics leave out for want of ground truth (an empty mask)."""
    mask_metrics = [k for k in res.metrics if METRICS[k].needs_mask]
    n = max((res.n_missing(k) for k in mask_metrics), default=0)
    if not n:
        return []
    titles = ", ".join(METRICS[k].title for k in mask_metrics)
    return [("ground truth", f"{n} image(s) with an empty mask left out of {titles}")]


def _unreadable(files: list[str]) -> str:
    """The note on image files the run skipped because they cannot be read."""
    if not files:
        return ""
    shown = ", ".join(Path(f).name for f in files[:3]) + (" ..." if len(files) > 3 else "")
    return f"; {len(files)} unreadable image file(s) skipped: {shown}"


def _facts(res: Results) -> list[tuple[str, str]]:
    m = res.meta
    cfg = m["config"]
    sessions = m.get("sessions", [])
    wall = sum(s.get("wall_s", 0.0) for s in sessions)
    last = sessions[-1] if sessions else {}
    facts = [
        (
            "case",
            f"{m['case']['name']} (model {m['case']['model']}, {m['case']['image_size'][0]} px)",
        ),
        (
            "images",
            f"{len(m['images']['ids'])} of {m['images']['candidates']} "
            f"(selection: {'on' if cfg['select'] else 'off'}, limit {cfg['limit']})"
            + _unreadable(m["images"].get("unreadable", [])),
        ),
        (
            "maps / metrics",
            f"{len(m['maps'])} maps in {len(m['groups'])} sampler groups; "
            f"{', '.join(m['metrics'])}",
        ),
        (
            "settings",
            f"n_samples {cfg['n_samples']}, spread {cfg['spread']}, "
            f"IG {cfg['ig_trials']} x {cfg['ig_steps']}, p {cfg['percentile']}, "
            f"RCAP from {cfg['rcap_lower_bound']} by {cfg['rcap_interval']}, "
            f"AUC steps {cfg['auc_steps']}",
        ),
        ("seed", str(cfg["seed"])),
        *_ground_truth_fact(res),
        (
            "units",
            f"{res.done_units} of {m['n_units']} stored"
            + ("" if res.complete else " (PARTIAL RUN)"),
        ),
        ("wall time", f"{wall:.1f} s over {len(sessions)} session(s)"),
        ("unit time", ", ".join(f"{k} {v:.1f} s" for k, v in res.unit_seconds.items())),
        ("device", str(last.get("device", "?"))),
        ("versions", ", ".join(f"{k} {v}" for k, v in last.get("versions", {}).items())),
        ("config hash", m["config_hash"]),
    ]
    return facts


# Marks the page once every figure has decoded (headless checks read data-images-loaded).
LOAD_CHECK = """<script>
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  document.body.setAttribute("data-images-loaded", ok + "/" + imgs.length);
});
</script>"""

CSS = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}
caption{font-weight:bold;text-align:left;padding:4px 0}
tr.group td{border-top:3px double #666}
.note{color:#555;font-size:90%;margin:0 0 1.5em}
img{max-width:100%;border:1px solid #eee}
.facts td,#claims td,#claims th,#ranking td:nth-child(2){text-align:left}
.refuted{color:#a00}.confirmed{color:#070}.inconclusive{color:#a60}.not-tested{color:#777}
.ci{color:#666;font-size:85%}
"""


def _status(c: Claim) -> str:
    """CSS class of a claim's verdict: confirmed, refuted, inconclusive or not-tested."""
    status = c.status or c.verdict.split(" (")[0]
    return status.replace(" ", "-")


def _ranking_html(r: Ranking, tables: list[Table]) -> str:
    """Table 2's pairwise ranking: each method's mean [interval] and whom it beats."""
    titles = {row.key: row.title for t in tables for row in t.rows}
    m = METRICS[r.metric]
    n = min(ci.n for ci in r.means.values())
    out = [
        f'<table id="ranking"><caption>Ranking on {html.escape(m.title)} {m.arrow}: paired '
        f"sign-flip tests of every two methods, Holm-adjusted over {len(r.pairs)} pairs "
        f"(level {r.alpha:g}), n = {n} images</caption>",
        f"<tr><th>Rank</th><th>Method</th><th>{html.escape(m.title)}</th>"
        "<th>95% interval</th><th>Significantly better than</th></tr>",
    ]
    for i, lb in enumerate(r.order, start=1):
        ci = r.means[lb]
        beats = ", ".join(html.escape(titles.get(x, x)) for x in r.beats(lb)) or "—"
        title = html.escape(titles.get(lb, lb)).replace("^R", "<sup>R</sup>")
        out.append(
            f"<tr><td>{i}</td><td>{title}</td><td>{ci.value:.4f}</td>"
            f"<td>[{ci.lo:.4f}, {ci.hi:.4f}]</td><td>{beats}</td></tr>"
        )
    out.append("</table>")
    return "\n".join(out)


#: Figures of photos embed as JPEG (the PNG of the map figure is ~1.5 MB; its file stays PNG).
PHOTO_FIGURES = ("maps",)


def _data_uri(name: str, path: Path) -> str:
    if name not in PHOTO_FIGURES:
        return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()
    import io

    from PIL import Image

    buf = io.BytesIO()
    with Image.open(path) as im:
        im.convert("RGB").save(buf, format="JPEG", quality=88)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def _figure_html(name: str, path: Path, caption: str) -> str:
    title = FIGURE_TITLES.get(name, name)
    svg = path.with_suffix(".svg")
    links = f'<a href="figures/{path.name}">PNG</a>'
    if svg.is_file():
        links += f' · <a class="svg" href="figures/{svg.name}">SVG</a>'
    return (
        f'<figure><img id="fig-{name}" alt="{html.escape(title)}" '
        f'src="{_data_uri(name, path)}">'
        f"<figcaption>{html.escape(title)}{caption} ({links})</figcaption></figure>"
    )


def _gallery_html(res: Results, gallery: Gallery | None, shown: int) -> str:
    total = len(res.meta["images"]["ids"])
    if gallery is None:
        return '<p class="note">No images are stored for this run: no gallery.</p>'
    pages = len(gallery.pages)
    return (
        '<p id="gallery">'
        f'<a href="gallery/index.html">Gallery</a>: {gallery.n_images} of {total} images, '
        f"each with its class, probability and every map, on {pages} page(s) "
        f'(<a href="gallery/page-001.html">first page</a>); maps stored for '
        f"{gallery.n_with_maps} of {gallery.n_images} images. The figure below shows "
        f"{shown} of {total} images.</p>"
    )


def render_html(
    res: Results,
    tables: list[Table],
    figures: dict[str, Path],
    claims: list[Claim],
    gallery: Gallery | None = None,
    shown: int = 0,
    ranking: Ranking | None = None,
) -> str:
    """The report page: facts, tables, claims, the gallery's link and the figures (embedded as
    data URIs, with their PNG and SVG files linked)."""
    case = res.meta["case"]["name"]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>absgrad report: {html.escape(case)}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>absgrad protocol report: {html.escape(case)}</h1>",
    ]
    if not res.complete:
        parts.append(
            '<p class="refuted"><b>Partial run:</b> not every unit is stored; '
            "numbers cover the stored images only.</p>"
        )
    parts.append('<h2>Run</h2><table class="facts">')
    parts += [
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in _facts(res)
    ]
    parts.append("</table>")
    parts.append("<h2>Tables</h2>")
    parts += [to_html(t) for t in tables]
    parts.append(
        "<h2>The paper's claims on this run</h2>"
        '<table id="claims"><tr><th>Claim</th><th>Verdict</th><th>Evidence</th></tr>'
    )
    parts += [
        f"<tr><td>{html.escape(c.claim)}</td>"
        f'<td class="{_status(c)}">{html.escape(c.verdict)}</td>'
        f"<td>{html.escape(c.evidence)}</td></tr>"
        for c in claims
    ]
    parts.append("</table>")
    if ranking is not None:
        parts.append(_ranking_html(ranking, tables))
    parts.append("<h2>Images and maps</h2>")
    parts.append(_gallery_html(res, gallery, shown))
    total = len(res.meta["images"]["ids"])
    for name, path in figures.items():
        cap = f": {shown} of {total} images" if name == "maps" else ""
        if name == "maps":
            parts.append(_figure_html(name, path, cap))
            parts.append("<h2>Figures</h2>")
        else:
            parts.append(_figure_html(name, path, cap))
    parts.append(LOAD_CHECK)
    parts.append("</body></html>")
    return "\n".join(parts)


def build_report(
    out: str | Path,
    *,
    compare: str | bool | None = None,
    tables: tuple[int, ...] | None = None,
    results: Results | None = None,
) -> Report:
    """Write tables/, figures/, claims.md and report.html into the run folder ``out``; a
    folder that cannot be written (no permission, a full disk) is an ``OutputError``."""
    out = Path(out)
    with output_errors(out, "the report into"):
        return _build_report(out, compare, tables, results)


def _build_report(
    out: Path,
    compare: str | bool | None,
    tables: tuple[int, ...] | None,
    results: Results | None,
) -> Report:
    res = results or load_results(out)
    computed = tuple(res.meta["config"].get("tables", (1, 2, 3)))
    numbers = tables or computed
    if not set(numbers) <= set(computed):  # never overwrite the report with empty tables
        raise RunDirError(
            f"tables {', '.join(map(str, numbers))} asked, but the run in {out} computed tables "
            f"{', '.join(map(str, computed))}"
        )
    paper_case = resolve_compare(res.meta["config"]["case"], compare)
    built = build_tables(res, numbers, paper_case)
    files: dict[str, Path] = {}
    md_all = []
    for t in built:
        stem = out / "tables" / f"table{t.number}"
        files[f"table{t.number}.csv"] = _write(stem.with_suffix(".csv"), to_csv(t))
        files[f"table{t.number}.md"] = _write(stem.with_suffix(".md"), to_markdown(t))
        files[f"table{t.number}.tex"] = _write(stem.with_suffix(".tex"), to_latex(t))
        md_all.append(to_markdown(t))
    files["tables.md"] = _write(out / "tables" / "tables.md", "\n".join(md_all))
    files.update(write_scores(res, out))
    claims = check_claims(res)
    ranking = rank_pairs(res)
    titles = {lb: title for t in built for title, lb in ((r.title, r.key) for r in t.rows)}
    claims_md = claims_markdown(claims)
    if ranking is not None:
        claims_md += "\n" + ranking_markdown(ranking, titles)
    files["claims.md"] = _write(out / "claims.md", claims_md)
    store = RunStore(out)
    paper = _paper_table1(paper_case) if 1 in numbers else None
    figs, shown = make_figures(res, store, out / "figures", paper)
    files.update({f"figure:{k}": v for k, v in figs.items()})
    gallery = write_gallery(res, store, out / "gallery")
    if gallery is not None:
        files["gallery"] = gallery.index
    page = out / "report.html"
    _write(page, render_html(res, built, figs, claims, gallery, shown, ranking))
    summary: dict[str, Any] = {
        "tables": {t.number: {r.key: r.values for r in t.rows} for t in built},
        "intervals": {
            t.number: {r.key: {m: [ci.lo, ci.hi] for m, ci in r.ci.items()} for r in t.rows}
            for t in built
        },
        "claims": [
            {"claim": c.claim, "status": c.status, "p_value": c.p_value, "n_images": c.n_images}
            for c in claims
        ],
    }
    files["summary.json"] = _write(out / "summary.json", json.dumps(summary, indent=1))
    return Report(page, built, files, claims, res.complete, gallery)


def _paper_table1(case: str | None) -> dict[str, dict[str, float]] | None:
    """The paper's Table 1 for ``case`` as ``{label: {metric: value}}``."""
    if case is None:
        return None
    rows = paper_numbers()["tables"].get("1", {})
    return {lb: dict(v[case]) for lb, v in rows.items() if case in v}
