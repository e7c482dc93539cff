"""Tables, figures and one self-contained ``report.html`` from a run directory."""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from absgrad.errors import AbsgradError
from absgrad.protocol.claims import (
    Claim,
    check_claims,
    claims_markdown,
    rank_pairs,
    ranking_markdown,
)
from absgrad.protocol.figures import make_figures
from absgrad.protocol.render import to_csv, to_html, to_latex, to_markdown
from absgrad.protocol.results import Results, load_results, write_scores
from absgrad.protocol.store import RunDirError, RunStore, atomic_write_bytes
from absgrad.protocol.tabulate import Table, build_tables, paper_case_name, paper_numbers

FIGURE_TITLES = {
    "maps": "Saliency maps (images x methods)",
    "ablation": "RCAP, DAUC and IAUC of GAG-p against p",
    "curves": "Deletion and insertion curves (mean over images)",
    "rcap_bars": "RCAP: mean hit x prob per percentile",
}


@dataclass
class Report:
    """What :func:`build_report` wrote."""

    html: Path
    tables: list[Table]
    files: dict[str, Path] = field(default_factory=dict)
    claims: list[Claim] = field(default_factory=list)
    complete: bool = True


def resolve_compare(case: str, compare: str | bool | None) -> str | None:
    """The paper's case name to compare with: ``True`` = the run's own case."""
    if compare is None or compare is False:
        return None
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
            f"(selection: {'on' if cfg['select'] else 'off'}, limit {cfg['limit']})",
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
.facts td,#claims td{text-align:left}
.refuted{color:#a00}.confirmed{color:#070}
"""


def render_html(
    res: Results, tables: list[Table], figures: dict[str, Path], claims: list[Claim]
) -> str:
    """The report page: facts, tables, claims and figures (embedded as data URIs)."""
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
        f'<tr><td>{html.escape(c.claim)}</td><td class="{c.verdict.split()[0]}">{c.verdict}</td>'
        f"<td>{html.escape(c.evidence)}</td></tr>"
        for c in claims
    ]
    parts.append("</table><h2>Figures</h2>")
    for name, path in figures.items():
        data = base64.b64encode(path.read_bytes()).decode()
        title = FIGURE_TITLES.get(name, name)
        parts.append(
            f'<figure><img id="fig-{name}" alt="{html.escape(title)}" '
            f'src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(title)}</figcaption></figure>"
        )
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
    """Write tables/, figures/, claims.md and report.html into the run folder ``out``."""
    out = Path(out)
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
    figs = make_figures(res, RunStore(out), out / "figures")
    files.update({f"figure:{k}": v for k, v in figs.items()})
    page = out / "report.html"
    _write(page, render_html(res, built, figs, claims))
    summary: dict[str, Any] = {
        "tables": {t.number: {r.key: r.values for r in t.rows} for t in built}
    }
    files["summary.json"] = _write(out / "summary.json", json.dumps(summary, indent=1))
    return Report(page, built, files, claims, res.complete)
