"""The report's building blocks: overlays, bootstrap intervals, line styles, figures, gallery."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from matplotlib import colormaps

from absgrad.protocol.catalogue import ABLATION_P, TABLE2, gag_label
from absgrad.protocol.store import RunStore, atomic_write_json
from absgrad.report.figures import (
    ablation_curves,
    auc_curves,
    fmt_interval,
    line_styles,
    rcap_bars,
    value_interval,
)
from absgrad.report.gallery import write_gallery
from absgrad.report.overlay import clip_normalise, ordinal, overlay
from absgrad.report.results import load_results
from absgrad.report.tables import build_tables


# -- overlays --------------------------------------------------------------------------------
def test_clip_normalise_matches_a_direct_percentile_stretch():
    rng = np.random.default_rng(0)
    m = rng.gamma(2.0, size=(40, 30)).astype(np.float32)
    m[0, 0] = 1e6  # an outlier that must not squash the rest
    lo, hi = np.percentile(m, 1), np.percentile(m, 99)
    want = np.minimum(np.maximum((m - lo) / (hi - lo), 0), 1)
    got = clip_normalise(m)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert got.max() == 1.0 and (got == 1.0).mean() <= 0.02
    assert np.all(clip_normalise(np.full((5, 5), 3.0)) == 0)


def test_overlay_is_an_alpha_blend_of_the_photo_and_the_colormap():
    rng = np.random.default_rng(1)
    photo = rng.integers(0, 256, size=(16, 12, 3), dtype=np.uint8)
    smap = rng.random((16, 12))
    norm = clip_normalise(smap)
    heat = colormaps["viridis"](norm)[..., :3] * 255
    for alpha in (0.0, 0.4, 1.0):
        want = (1 - alpha) * photo + alpha * heat
        got = overlay(photo, smap, cmap="viridis", alpha=alpha).astype(float)
        # the colormap is looked up in 256 levels: at most one level's colour step apart
        assert np.abs(got - want).max() <= 4.0, alpha
    assert np.array_equal(overlay(photo, smap, alpha=0.0), photo)


def test_overlay_resizes_a_smaller_map_and_rejects_bad_input():
    photo = np.zeros((32, 32, 3), dtype=np.uint8)
    small = np.zeros((8, 8))
    small[:4] = 1.0  # top half salient
    out = overlay(photo, small, cmap="gray", alpha=1.0, clip=(0, 100))
    assert out.shape == (32, 32, 3)
    assert out[:12].mean() > 200 and out[20:].mean() < 50
    with pytest.raises(ValueError, match="uint8"):
        overlay(photo.astype(float), small)
    with pytest.raises(ValueError, match="alpha"):
        overlay(photo, small, alpha=1.5)
    with pytest.raises(ValueError, match="NaN"):
        overlay(photo, np.full((8, 8), np.nan))


def test_ordinal():
    assert [ordinal(x) for x in (1, 2, 3, 11, 12, 22, 99, 2.5)] == [
        "1st", "2nd", "3rd", "11th", "12th", "22nd", "99th", "2.5th"
    ]  # fmt: skip


# -- styles ----------------------------------------------------------------------------------
MAPS = {
    "gradcam": {"method": "gradcam"},
    "gag-85": {"method": "gag"},
    "vargrad": {"method": "vargrad"},
    "vg": {"method": "vg"},
    **{b: {"method": b} for b in ("sg", "ig", "gb", "guidedig", "blurig")},
    **{f"{b}-r": {"reverse_of": b} for b in ("sg", "ig", "gb", "guidedig", "blurig")},
    "sg-pos": {"method": "sg"},
    "sg-neg": {"method": "sg"},
    **{gag_label(p): {"method": "gag"} for p in ABLATION_P},
    "mine": {"method": "mymethod"},
}


def _key(style):
    return (style["color"], str(style["linestyle"]), style["marker"])


def test_table2_lines_all_differ_colour_by_method_dashes_by_reversal():
    labels = [lb for _, lb in TABLE2.rows]
    styles = line_styles(labels, MAPS)
    assert len({_key(s) for s in styles.values()}) == len(labels) == 14
    for base in ("sg", "ig", "gb", "guidedig", "blurig"):
        orig, rev = styles[base], styles[f"{base}-r"]
        assert orig["color"] == rev["color"]
        assert orig["linestyle"] == "-" and rev["linestyle"] != "-"
    # methods differ by colour alone (no colour reused across the 9 methods)
    originals = [lb for lb in labels if not lb.endswith("-r")]
    assert len({styles[lb]["color"] for lb in originals}) == 9


def test_every_map_of_a_run_gets_its_own_style():
    styles = line_styles(list(MAPS), MAPS)
    assert len({_key(s) for s in styles.values()}) == len(MAPS)
    assert styles["sg-pos"]["color"] == styles["sg"]["color"]
    assert styles["mine"]["color"] not in {styles[b]["color"] for b in ("sg", "ig", "gag-85")}


# -- a small fake run on disk ----------------------------------------------------------------
LABELS = ["sg", "sg-r", *[gag_label(p) for p in ABLATION_P]]


def fake_run(root, n_images=45, batch_size=4, save_maps=True, size=12, seed=0):
    """A run folder with ``n_images`` images, the maps ``LABELS`` and RCAP/DAUC/IAUC scores."""
    rng = np.random.default_rng(seed)
    store = RunStore(root)
    ids = [f"img-{i:03d}" for i in range(n_images)]
    groups = [{"name": "sg", "labels": [lb for lb in LABELS if lb != "sg-r"], "derived": ["sg-r"]}]
    maps_meta = {lb: {"label": lb, "title": lb.upper(), "method": "sg"} for lb in LABELS}
    maps_meta["sg-r"] = {"label": "sg-r", "title": "SG^R", "reverse_of": "sg"}
    for lb in LABELS:
        if lb.startswith("gag"):
            maps_meta[lb]["method"] = "gag"
    n_units = 0
    for b, start in enumerate(range(0, n_images, batch_size)):
        bid = ids[start : start + batch_size]
        k = len(bid)
        imgs = rng.integers(0, 256, size=(k, size, size, 3), dtype=np.uint8)
        np.savez_compressed(_mk(root / "images" / f"b{b:05d}.npz"), images=imgs)
        keep = save_maps is True or start + k <= save_maps
        if keep:
            arrays = {lb: rng.random((k, size, size)).astype(np.float16) for lb in LABELS}
            np.savez_compressed(_mk(root / "maps" / f"b{b:05d}-sg.npz"), **arrays)
        scores = {}
        for lb in LABELS:
            dele = np.sort(rng.random((k, 10)), axis=1)[:, ::-1]
            ins = np.sort(rng.random((k, 10)), axis=1)
            scores[lb] = {
                "rcap": rng.random(k).tolist(),
                "rcap_hit": rng.random((k, 5)).tolist(),
                "rcap_prob": rng.random((k, 5)).tolist(),
                "rcap_valid": np.ones((k, 5)).tolist(),
                "deletion": dele.tolist(),
                "insertion": ins.tolist(),
                "dauc": [0.0] * k,
                "iauc": [0.0] * k,
            }
        atomic_write_json(
            root / "units" / f"b{b:05d}-sg.json",
            {
                "unit": {"id": f"b{b:05d}-sg", "batch": b},
                "image_ids": bid,
                "clean_prob": rng.random(k).tolist(),
                "blurred_prob": rng.random(k).tolist(),
                "targets": [int(t) for t in rng.integers(0, 1000, k)],
                "scores": scores,
                "timing": {"total": 1.0},
            },
        )
        n_units += 1
    store.write_meta(
        {
            "config": {
                "batch_size": batch_size,
                "save_maps": save_maps,
                "case": "fake",
                "rcap_lower_bound": 0.5,
                "rcap_interval": 0.1,
            },
            "case": {"name": "fake", "num_classes": 1000},
            "images": {"ids": ids, "indices": list(range(n_images)), "candidates": 2 * n_images},
            "maps": maps_meta,
            "groups": groups,
            "metrics": ["rcap", "dauc", "iauc"],
            "n_units": n_units,
        }
    )
    return root


def _mk(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def test_figure_intervals_are_the_tables_intervals(tmp_path):
    res = load_results(fake_run(tmp_path / "run", n_images=9))
    rows = {r.key: r for t in build_tables(res, (1,)) for r in t.rows}
    for m in ("rcap", "dauc", "iauc"):
        ci = value_interval(res, "gag-85", m)
        table = rows["gag-85"].ci[m]
        assert (ci.lo, ci.hi, ci.value) == (table.lo, table.hi, table.value)
        assert ci.lo <= res.value("gag-85", m) <= ci.hi and ci.lo < ci.hi
        assert fmt_interval(ci) == f"[{ci.lo:.3f}, {ci.hi:.3f}]"
    assert value_interval(res, "gag-85", "lc_dice") is None


def test_figures_are_written_as_png_and_svg_on_honest_axes(tmp_path):
    res = load_results(fake_run(tmp_path / "run", n_images=9))
    out = tmp_path / "fig"
    paper = {gag_label(p): {"rcap": 0.3 + p / 10} for p in ABLATION_P}
    for fn, name in (
        (lambda p: ablation_curves(res, p, paper), "ablation.png"),
        (lambda p: auc_curves(res, p), "curves.png"),
        (lambda p: rcap_bars(res, p), "bars.png"),
    ):
        path = fn(out / name)
        assert path is not None and path.is_file() and path.stat().st_size > 5000
        svg = path.with_suffix(".svg").read_text()
        assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    svg = (out / "ablation.svg").read_text()
    assert "paper" in svg and "95% CI" in svg and "range over p" in svg


def test_gallery_pages_cover_every_image_and_say_how_many(tmp_path):
    root = fake_run(tmp_path / "run", n_images=45, save_maps=12)
    res = load_results(root)
    g = write_gallery(res, RunStore(root), root / "gallery", page_size=20)
    assert g is not None and len(g.pages) == 3 and g.n_images == 45 and g.n_with_maps == 12
    texts = [p.read_text() for p in g.pages]
    assert "Images 1-20 of 45" in texts[0] and "Images 41-45 of 45" in texts[2]
    assert "Maps are stored for 12 of 45 images (save_maps: 12)" in texts[0]
    # every image appears exactly once over the pages, with its class and probability
    ids = [m for t in texts for m in re.findall(r'<section class="image" id="img-(\d+)"', t)]
    assert ids == [f"{i:05d}" for i in range(1, 46)]
    rec = json.loads((root / "units" / "b00000-sg.json").read_text())
    assert f"class {rec['targets'][0]} (" in texts[0]
    assert f"p(class) = {rec['clean_prob'][0]:.3f}" in texts[0]
    # every map tile of the first images exists, is lazy and named in the page
    srcs = re.findall(r'<img loading="lazy" src="([^"]+)"', texts[0])
    assert len(srcs) == 20 + 12 * len(LABELS)
    assert all((root / "gallery" / s).is_file() for s in srcs)
    # navigation: page 2 links to pages 1 and 3 and back to the report
    assert 'href="page-001.html"' in texts[1] and 'href="page-003.html"' in texts[1]
    assert 'href="../report.html"' in texts[1]
    index = g.index.read_text()
    assert index.count("<tr><td><a href=") == 45 and "45 of 45 images of the run" in index
    # no single page carries the images inline
    assert all(len(t) < 200_000 for t in texts) and "base64" not in texts[0]


def test_gallery_reuses_its_tiles_unless_the_drawing_settings_change(tmp_path, monkeypatch):
    from absgrad.report import gallery

    root = fake_run(tmp_path / "run", n_images=5)
    res, store = load_results(root), RunStore(root)
    first = write_gallery(res, store, root / "gallery")
    assert first.drawn == first.tiles == 5 * (1 + len(LABELS))
    tile = root / "gallery" / "tiles" / "00000" / "sg.jpg"
    before = tile.read_bytes()
    again = write_gallery(res, store, root / "gallery")
    assert again.drawn == 0 and again.tiles == first.tiles
    assert [p.read_text() for p in again.pages] == [p.read_text() for p in first.pages]
    monkeypatch.setitem(gallery.TILE_SETTINGS, "alpha", 0.9)
    monkeypatch.setattr(gallery, "overlay", lambda p, m: overlay(p, m, alpha=0.9))
    redrawn = write_gallery(res, store, root / "gallery")
    assert redrawn.drawn == first.tiles and tile.read_bytes() != before


def test_gallery_class_names_come_from_the_run_not_from_the_head_size():
    """The names a run recorded (the user's, or the model's for its own indices); a model
    spec's run from before they were recorded shows none, even with 1000 outputs (its labels
    may be the user's classes: "class 0 (tench)" on a folder of ants was the bug)."""
    from absgrad.report.gallery import class_name

    recorded = {"case": {"name": "folder", "num_classes": 1000, "class_names": {"0": "ant"}}}
    assert class_name(recorded, 0) == "ant" and class_name(recorded, 1) is None
    none = {"case": {"name": "folder", "num_classes": 1000, "class_names": {}}}
    assert class_name(none, 0) is None
    old_folder = {"case": {"name": "folder", "num_classes": 1000}}
    assert class_name(old_folder, 0) is None
    old_builtin = {"case": {"name": "imagenet-s", "num_classes": 1000}}
    assert class_name(old_builtin, 0) == "tench"
