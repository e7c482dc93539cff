"""Render built tables (:class:`absgrad.report.tables.Table`) as CSV, Markdown, LaTeX, HTML."""

from __future__ import annotations

import csv
import html
import io
from typing import Any

from absgrad.report.stats import Interval
from absgrad.report.tables import Table

PLUS_MINUS = {"md": " ± ", "latex": " $\\pm$ ", "html": " ± "}


def _fmt(v: float | None, decimals: int) -> str:
    return "—" if v is None else f"{v:.{decimals}f}"


def interval_suffix(ci: Interval, decimals: int, style: str = "md") -> str:
    """`` ± 0.0300``: the half-width of an interval (HTML: its exact bounds as a tooltip)."""
    half = f"{ci.half_width:.{decimals}f}"
    if style == "html":
        bounds = f"{ci.level:.0%} CI [{ci.lo:.{decimals}f}, {ci.hi:.{decimals}f}], n = {ci.n}"
        return f'<span class="ci" title="{bounds}"> ± {half}</span>'
    return f"{PLUS_MINUS[style]}{half}"


def format_interval(ci: Interval | None, decimals: int, style: str = "md") -> str:
    """``0.3610 ± 0.0300``: an estimate and the half-width of its interval (``—`` if none)."""
    return "—" if ci is None else _fmt(ci.value, decimals) + interval_suffix(ci, decimals, style)


def _header(t: Table, style: str) -> list[str]:
    head = ["Method" if t.number != 3 else "Variant"]
    for m in t.columns:
        name = m.latex if style == "latex" else m.title
        head.append(
            f"{name} {m.arrow}"
            if style != "latex"
            else f"{name}$\\{'uparrow' if m.higher_is_better else 'downarrow'}$"
        )
        if m.key in t.paper_keys:
            head.append(f"paper {m.title if style != 'latex' else name}")
    return head


def to_csv(t: Table) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    head = ["row", "label", "n_images"]
    for m in t.columns:
        head += [m.key, f"{m.key}_lo", f"{m.key}_hi"]
        if m.key in t.paper_keys:
            head.append(f"paper_{m.key}")
    w.writerow(head)
    for r in t.rows:
        line: list[Any] = [r.title, r.key, r.n_images]
        for m in t.columns:
            v, ci = r.values.get(m.key), r.ci.get(m.key)
            line.append("" if v is None else repr(float(v)))
            line += ["", ""] if ci is None else [repr(ci.lo), repr(ci.hi)]
            if m.key in t.paper_keys:
                pv = r.paper.get(m.key)
                line.append("" if pv is None else pv)
        w.writerow(line)
    return buf.getvalue()


def _cells(t: Table, style: str) -> list[list[str]]:
    best = {m.key: t.best(m) for m in t.columns}
    out = []
    for i, r in enumerate(t.rows):
        title = r.title
        if style == "latex":
            title = title.replace("^R", "$^R$")
        elif style == "html":
            title = html.escape(title).replace("^R", "<sup>R</sup>")
        line = [title]
        for m in t.columns:
            s = _fmt(r.values.get(m.key), t.decimals)
            if i in best[m.key]:
                s = {"md": f"**{s}**", "latex": f"\\textbf{{{s}}}", "html": f"<b>{s}</b>"}[style]
            if t.improves(r, m):
                s += {"md": "\\*", "latex": "$^*$", "html": "*"}[style]
            ci = r.ci.get(m.key)
            if ci is not None:
                s += interval_suffix(ci, t.decimals, style)
            line.append(s)
            if m.key in t.paper_keys:
                pv = r.paper.get(m.key)
                line.append("—" if pv is None else f"{pv:.{t.decimals}f}")
        out.append(line)
    return out


def _caption(t: Table) -> str:
    cap = f"Table {t.number}: {t.title}"
    if t.paper_case:
        cap += f" (paper's numbers: {t.paper_case})"
    return cap


def to_markdown(t: Table) -> str:
    head = _header(t, "md")
    lines = [
        f"**{_caption(t)}**",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|",
    ]
    lines += ["| " + " | ".join(c) + " |" for c in _cells(t, "md")]
    lines += [""] + [f"_{n}_" for n in t.notes]
    return "\n".join(lines) + "\n"


def to_latex(t: Table) -> str:
    head = _header(t, "latex")
    lines = [
        "\\begin{table}[t]",
        "\\centering",
        "\\begin{tabular}{l" + "r" * (len(head) - 1) + "}",
        "\\hline",
        " & ".join(head) + " \\\\",
        "\\hline",
    ]
    for i, c in enumerate(_cells(t, "latex")):
        if i in t.groups:
            lines.append("\\hline")
        lines.append(" & ".join(x.replace("—", "--") for x in c) + " \\\\")
    esc = _caption(t).replace("^R", "$^R$").replace("&", "\\&")
    lines += ["\\hline", "\\end{tabular}", f"\\caption{{{esc}}}", "\\end{table}"]
    return "\n".join(lines) + "\n"


def to_html(t: Table) -> str:
    head = _header(t, "html")
    parts = [
        f'<table class="results" id="table{t.number}">',
        f"<caption>{html.escape(_caption(t))}</caption>",
        "<thead><tr>",
    ]
    parts += [f"<th>{html.escape(h)}</th>" for h in head]
    parts.append("</tr></thead><tbody>")
    for i, c in enumerate(_cells(t, "html")):
        cls = ' class="group"' if i in t.groups else ""
        parts.append(f"<tr{cls}>" + "".join(f"<td>{x}</td>" for x in c) + "</tr>")
    parts.append("</tbody></table>")
    parts += [f'<p class="note">{html.escape(n)}</p>' for n in t.notes]
    return "\n".join(parts)
