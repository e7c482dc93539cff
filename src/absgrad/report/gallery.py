"""The report's per-image gallery: every image of a run with its class, probability and maps.

Written as ``gallery/index.html`` (one line per image, linking to its page) and
``gallery/page-NNN.html`` (``page_size`` images a page), with each photo and map overlay a
small JPEG under ``gallery/tiles/`` that the pages load lazily, so a run of hundreds of
images stays quick to browse.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from absgrad.names import METRICS
from absgrad.protocol.catalogue import TABLE2
from absgrad.protocol.store import RunStore, atomic_write_bytes
from absgrad.report.figures import stored_maps
from absgrad.report.overlay import ALPHA, CLIP, CMAP, ordinal, overlay
from absgrad.report.results import Results

PAGE_SIZE = 20
TILE_MAX = 160  # longest side of a stored tile, px
TILE_SHOW = 128  # displayed size, px
QUALITY = 82  # JPEG quality of the tiles
#: Everything a tile's pixels depend on besides the stored photo and map: tiles drawn with the
#: same settings are reused when the report is rebuilt (stored maps never change).
TILE_SETTINGS = {
    "format": 1,
    "cmap": CMAP,
    "alpha": ALPHA,
    "clip": list(CLIP),
    "max": TILE_MAX,
    "quality": QUALITY,
}


@dataclass
class Gallery:
    """What :func:`write_gallery` wrote."""

    index: Path
    pages: list[Path]
    n_images: int
    n_with_maps: int
    tiles: int = 0
    drawn: int = 0  # tiles drawn now (the others were reused from an earlier report)
    labels: list[str] = field(default_factory=list)


@lru_cache(maxsize=1)
def _imagenet_names() -> tuple[str, ...] | None:
    try:
        from timm.data import ImageNetInfo

        info = ImageNetInfo("imagenet-1k")
        return tuple(info.index_to_description(i).split(",")[0] for i in range(1000))
    except Exception:  # noqa: BLE001  (names are a convenience; the index is always shown)
        return None


def class_name(meta: Mapping[str, Any], target: int) -> str | None:
    """The name of class ``target`` the run recorded (``case.class_names``: the user's names,
    or the model's where the labels are its output indices), None when it has none.

    Runs from before class names were recorded: ImageNet's names for the built-in 1000-class
    cases, none for a model spec's run (its labels may be the user's own classes)."""
    case = meta.get("case", {})
    recorded = case.get("class_names")
    if isinstance(recorded, Mapping):
        name = recorded.get(str(target))
        return str(name) if name is not None else None
    if case.get("name") != "folder" and int(case.get("num_classes", 0)) == 1000:
        names = _imagenet_names()
        if names is not None and 0 <= target < 1000:
            return names[target]
    return None


def image_facts(store: RunStore) -> dict[str, dict[str, Any]]:
    """``{image id: {"prob": clean target probability, "target": class or None}}``."""
    out: dict[str, dict[str, Any]] = {}
    for rec in store.records():
        targets = rec.get("targets") or [None] * len(rec["image_ids"])
        for i, img_id in enumerate(rec["image_ids"]):
            if img_id not in out:
                out[img_id] = {"prob": float(rec["clean_prob"][i]), "target": targets[i]}
    return out


def gallery_labels(res: Results) -> tuple[list[str], list[str]]:
    """Maps in gallery order: ``(Table 2's, every other map of the run)``."""
    maps = list(res.meta.get("maps", {}))
    first = [lb for _, lb in TABLE2.rows if lb in maps]
    return first, [lb for lb in maps if lb not in first]


def _titles(res: Results) -> dict[str, str]:
    t = {lb: str(s.get("title", lb)) for lb, s in res.meta.get("maps", {}).items()}
    return {lb: v.replace("^R", "ᴿ") for lb, v in t.items()}


def _jpeg(pixels: np.ndarray, path: Path) -> None:
    from PIL import Image

    img = Image.fromarray(pixels)
    if max(img.size) > TILE_MAX:
        img.thumbnail((TILE_MAX, TILE_MAX), Image.LANCZOS)
    # tiles are redrawn from the stored maps on every report: whole files (temporary name,
    # then os.replace) but no fsync, which would cost more than drawing them
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    img.save(tmp, format="JPEG", quality=QUALITY)
    os.replace(tmp, path)


def colorbar_css(cmap: str = CMAP, stops: int = 11) -> str:
    """A CSS gradient of ``cmap`` blended with mid-grey as in the overlays (the legend)."""
    from matplotlib import colormaps

    cols = colormaps[cmap](np.linspace(0, 1, stops))[:, :3] * 255
    cols = ALPHA * cols + (1 - ALPHA) * 128
    return ",".join(f"rgb({r:.0f},{g:.0f},{b:.0f})" for r, g, b in cols)


CSS = """
body{font-family:system-ui,sans-serif;margin:1em auto;max-width:1320px;color:#222;padding:0 1em}
nav{margin:.6em 0;line-height:2}
nav a,nav b{padding:2px 7px;border:1px solid #ccc;border-radius:3px;text-decoration:none}
nav b{background:#333;color:#fff}
section.image{border-top:1px solid #ddd;padding:.4em 0}
section.image h3{font-size:100%;margin:.3em 0}
.tiles{display:flex;flex-wrap:wrap;gap:6px}
figure{margin:0;width:TILEpx;text-align:center;font-size:11px}
figure img{width:TILEpx;height:TILEpx;object-fit:cover;display:block;background:#f3f3f3}
figure.photo figcaption{font-weight:bold}
details summary{cursor:pointer;margin:.4em 0;color:#036}
.bar{display:inline-block;width:220px;height:12px;vertical-align:middle;border:1px solid #999;
 background:linear-gradient(to right,GRADIENT)}
.note{color:#555;font-size:90%}
table.index td,table.index th{padding:2px 8px;border-bottom:1px solid #eee;text-align:left}
"""


# With #check (headless tests), loads every lazy image and opens every <details> while the page
# is still parsing, so the load event waits for all of them; at load, marks the body with how
# many images decoded. No timer or promise: the mark is set before the load event ends.
CHECK = """<script>
(function () {
  var imgs = Array.prototype.slice.call(document.images);
  if (location.hash === "#check") {
    document.querySelectorAll("details").forEach(function (d) { d.open = true; });
    imgs.forEach(function (i) { i.loading = "eager"; });
  }
  window.addEventListener("load", function () {
    var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
    document.body.setAttribute("data-images-loaded", ok + "/" + imgs.length);
  });
})();
</script>"""


def _css() -> str:
    return CSS.replace("TILE", str(TILE_SHOW)).replace("GRADIENT", colorbar_css())


def _head(title: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_css()}</style></head><body>"
    )


def _nav(page: int, n_pages: int) -> str:
    def link(p: int, text: str) -> str:
        return f'<a href="page-{p:03d}.html">{text}</a>'

    parts = ['<nav><a href="../report.html">report</a> <a href="index.html">index</a> ']
    if page > 1:
        parts.append(link(page - 1, "« prev"))
    window = sorted({1, n_pages, *range(max(1, page - 3), min(n_pages, page + 3) + 1)})
    last = 0
    for p in window:
        if p - last > 1:
            parts.append("…")
        parts.append(f"<b>{p}</b>" if p == page else link(p, str(p)))
        last = p
    if page < n_pages:
        parts.append(link(page + 1, "next »"))
    return " ".join(parts) + "</nav>"


def _score_line(res: Results, label: str, row: int | None) -> tuple[str, str]:
    """(first metric's per-image value for the caption, every metric for the tooltip)."""
    if row is None:
        return "", ""
    d = res.per_image.get(label, {})
    order = sorted(res.metrics, key=lambda m: m != "rcap")  # RCAP first: the paper's metric
    vals = [(METRICS[m].title, float(d[m][row])) for m in order if m in d and m in METRICS]
    if not vals:
        return "", ""

    def shown(v: float, decimals: int) -> str:  # NaN: no ground truth for a mask metric
        return "n/a (empty mask)" if np.isnan(v) else f"{v:.{decimals}f}"

    short = f"{vals[0][0]} {shown(vals[0][1], 3)}"
    return short, "; ".join(f"{k} {shown(v, 4)}" for k, v in vals)


def _class_text(meta: Mapping[str, Any], facts: Mapping[str, Any]) -> str:
    target = facts.get("target")
    prob = facts.get("prob")
    parts = []
    if target is not None:
        name = class_name(meta, int(target))
        parts.append(f"class {target}" + (f" ({name})" if name else ""))
    if prob is not None:
        parts.append(f"p(class) = {prob:.3f}")
    return ", ".join(parts)


def _tile(src: str, alt: str, caption: str, tip: str = "", cls: str = "") -> str:
    """One lazily loaded picture with its caption (``caption`` is HTML, the rest text)."""
    title = f' title="{html.escape(tip)}"' if tip else ""
    return (
        f'<figure{cls}><img loading="lazy" src="{html.escape(src)}" alt="{html.escape(alt)}" '
        f'width="{TILE_SHOW}" height="{TILE_SHOW}"{title}><figcaption>{caption}</figcaption>'
        "</figure>"
    )


def _map_tiles(
    res: Results,
    entry: Mapping[str, Any],
    labels: list[str],
    titles: Mapping[str, str],
    rows: Mapping[str, Mapping[str, int]],
) -> list[str]:
    """The tiles of the maps ``labels`` stored for one image, captioned with their score."""
    out = []
    for lb in labels:
        if lb not in entry["maps"]:
            continue
        short, tip = _score_line(res, lb, rows[lb].get(entry["id"]))
        out.append(
            _tile(
                f"{entry['dir']}/{lb}.jpg",
                f"{titles[lb]} on {entry['id']}",
                f"{html.escape(titles[lb])}<br>{html.escape(short)}",
                tip,
            )
        )
    return out


def write_gallery(
    res: Results, store: RunStore, folder: Path, page_size: int = PAGE_SIZE
) -> Gallery | None:
    """Write the gallery of every image of the run into ``folder``; None if no image is stored."""
    if page_size < 1:
        raise ValueError(f"page_size must be at least 1, got {page_size}")
    first, rest = gallery_labels(res)
    labels = first + rest
    titles = _titles(res)
    facts = image_facts(store)
    rows = {lb: {i: k for k, i in enumerate(res.image_ids.get(lb, []))} for lb in labels}
    entries: list[dict[str, Any]] = []
    stamp = folder / "tiles" / "settings.json"
    reuse = stamp.is_file() and json.loads(stamp.read_text()) == TILE_SETTINGS
    stamp.unlink(missing_ok=True)  # rewritten once every tile is drawn with these settings
    tiles = drawn = 0

    def draw(path: Path, pixels: Callable[[], np.ndarray]) -> None:
        nonlocal tiles, drawn
        tiles += 1
        if not (reuse and path.is_file()):
            _jpeg(pixels(), path)
            drawn += 1

    for pos, img_id, photo, maps in stored_maps(res, store, labels):
        rel = f"tiles/{pos:05d}"
        draw(folder / rel / "photo.jpg", lambda photo=photo: photo)
        done = []
        for lb in labels:
            if lb in maps:
                draw(folder / rel / f"{lb}.jpg", lambda m=maps[lb], p=photo: overlay(p, m))
                done.append(lb)
        entries.append({"pos": pos, "id": img_id, "dir": rel, "maps": done})
    if entries:
        atomic_write_bytes(stamp, json.dumps(TILE_SETTINGS).encode())
    if not entries:
        return None
    n = len(entries)
    n_maps = sum(1 for e in entries if e["maps"])
    total = len(res.meta["images"]["ids"])
    n_pages = -(-n // page_size)
    save = res.meta["config"].get("save_maps", True)
    coverage = (
        f"Maps are stored for {n_maps} of {n} images"
        + ("" if n_maps == n else f" (save_maps: {save}); the others show the photo only")
        + "."
    )
    legend = (
        f'<p class="note">Overlays: each map clipped to its own {ordinal(CLIP[0])}-{ordinal(CLIP[1])} '
        f"percentile, colormap {CMAP}, blended at alpha {ALPHA} over the photo: low "
        f'<span class="bar"></span> high. Caption: the map\'s per-image score (hover for '
        "all metrics).</p>"
    )
    pages: list[Path] = []
    index_rows = []
    for p in range(1, n_pages + 1):
        chunk = entries[(p - 1) * page_size : p * page_size]
        lo, hi = chunk[0]["pos"] + 1, chunk[-1]["pos"] + 1
        body = [
            _head(f"absgrad gallery {p}/{n_pages}: {res.meta['case']['name']}"),
            f"<h1>Gallery: {html.escape(res.meta['case']['name'])}, page {p} of {n_pages}</h1>",
            f'<p id="count">Images {lo}-{hi} of {n} shown in this gallery '
            f"({n} of {total} images of the run). {coverage}</p>",
            legend,
            _nav(p, n_pages),
        ]
        for e in chunk:
            f = facts.get(e["id"], {})
            cls = _class_text(res.meta, f)
            anchor = f"img-{e['pos'] + 1:05d}"
            index_rows.append(
                f'<tr><td><a href="page-{p:03d}.html#{anchor}">{e["pos"] + 1}</a></td>'
                f"<td>{html.escape(e['id'])}</td><td>{html.escape(cls)}</td></tr>"
            )
            body.append(
                f'<section class="image" id="{anchor}"><h3>#{e["pos"] + 1} '
                f"{html.escape(e['id'])}: {html.escape(cls)}</h3>"
            )
            photo = _tile(f"{e['dir']}/photo.jpg", e["id"], "photo", "", ' class="photo"')
            more = _map_tiles(res, e, rest, titles, rows)
            main = _map_tiles(res, e, first, titles, rows)
            body.append('<div class="tiles">' + photo + "".join(main) + "</div>")
            if more:
                body.append(
                    f"<details><summary>{len(more)} more maps (Table 1's GAG-p, Table 3's "
                    'variants, extra maps)</summary><div class="tiles">'
                    + "".join(more)
                    + "</div></details>"
                )
            if not e["maps"]:
                body.append('<p class="note">No maps stored for this image.</p>')
            body.append("</section>")
        body += [_nav(p, n_pages), CHECK, "</body></html>"]
        path = folder / f"page-{p:03d}.html"
        atomic_write_bytes(path, "\n".join(body).encode())
        pages.append(path)
    index = [
        _head(f"absgrad gallery: {res.meta['case']['name']}"),
        f"<h1>Gallery index: {html.escape(res.meta['case']['name'])}</h1>",
        f'<p id="count">{n} of {total} images of the run, on {n_pages} page(s) of '
        f"{page_size}. {coverage}</p>",
        _nav(0, n_pages).replace('<a href="index.html">index</a>', "<b>index</b>"),
        '<table class="index"><tr><th>#</th><th>image</th><th>class</th></tr>',
        *index_rows,
        "</table>",
        CHECK,
        "</body></html>",
    ]
    index_path = folder / "index.html"
    atomic_write_bytes(index_path, "\n".join(index).encode())
    return Gallery(index_path, pages, n, n_maps, tiles, drawn, labels)
