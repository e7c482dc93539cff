"""report.html and its gallery render in headless Chromium: tables, figures (PNG + SVG), the
paged gallery with every overlay decoded, intervals; a screenshot."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from support.paper import PAPER_MAPS

pytestmark = pytest.mark.slow

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
]


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("headless Chromium not installed (Debian: apt-get install chromium)")


def _browser(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    """Run headless Chromium; one retry with a fresh profile if it exits non-zero (it does,
    rarely, on a machine under load), so the assertion sees the second attempt's error."""
    for attempt in range(2):
        cmd = [_chromium(), *FLAGS, f"--user-data-dir={profile}-{attempt}", *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if proc.returncode == 0:
            break
    return proc


def _dom(url: str, profile: Path) -> str:
    """The page's DOM after its load event (both pages set data-images-loaded during it)."""
    proc = _browser(["--virtual-time-budget=10000", "--dump-dom", url], profile)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def _loaded(dom: str) -> tuple[int, int]:
    found = re.search(r'data-images-loaded="(\d+)/(\d+)"', dom)
    assert found, "the page's load check did not run"
    return int(found.group(1)), int(found.group(2))


def test_report_renders_in_headless_chromium(synthetic_run, tmp_path):
    page = (synthetic_run / "report.html").resolve()
    html = page.read_text()
    assert "http://" not in html and "https://" not in html  # no external assets
    dom = _dom(page.as_uri(), tmp_path / "profile")
    for n in (1, 2, 3):
        assert f'id="table{n}"' in dom
    assert dom.count("<tr") > 9 + 14 + 5
    # every number of Tables 1 and 2 carries its interval (7 metrics on the synthetic case)
    assert dom.count('<span class="ci"') >= (9 + 14) * 7
    # the claims' verdicts and Table 2's RCAP ranking with its intervals
    assert dom.count("<tr><td>") >= 4 and 'id="ranking"' in dom
    ranking = dom[dom.index('id="ranking"') :].split("</table>")[0]
    assert len(re.findall(r"<td>\[\d\.\d{4}, \d\.\d{4}\]</td>", ranking)) == 9
    ok, total = _loaded(dom)
    assert total == 4 and ok == total, f"{ok} of {total} figures decoded"
    # every figure links its SVG, which exists beside the PNG
    svgs = re.findall(r'<a class="svg" href="([^"]+)"', dom)
    assert len(svgs) == 4
    for rel in svgs:
        text = (synthetic_run / rel).read_text()
        assert "<svg" in text and "</svg>" in text
    # the map figure and the gallery say how many images they show
    assert "4 of 4 images" in dom
    assert re.search(r'<a href="gallery/index.html">Gallery</a>: 4 of 4 images', dom)

    shot = tmp_path / "report.png"
    proc = _browser(
        ["--window-size=1280,2400", f"--screenshot={shot}", page.as_uri()], tmp_path / "profile2"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert shot.is_file() and shot.stat().st_size > 20_000


def test_gallery_renders_every_overlay_in_headless_chromium(synthetic_run, tmp_path):
    gallery = (synthetic_run / "gallery").resolve()
    pages = sorted(gallery.glob("page-*.html"))
    assert pages, "no gallery pages written"
    # #check makes the page load its lazy images and open its folded maps
    dom = _dom(pages[0].as_uri() + "#check", tmp_path / "profile")
    ok, total = _loaded(dom)
    n_maps = len(list((gallery / "tiles" / "00000").glob("*.jpg"))) - 1
    assert n_maps == PAPER_MAPS  # the e2e run computes every map of the paper
    assert total == 4 * (1 + n_maps) and ok == total, f"{ok} of {total} tiles decoded"
    assert "Images 1-4 of 4" in dom
    assert len(re.findall(r'<section class="image"', dom)) == 4
    # each image names its class (index and the case's name) and probability; each tile its score
    assert len(re.findall(r"class \d+ \([^()<]+\), p\(class\) = [01]\.\d{3}", dom)) == 4
    assert len(re.findall(r"RCAP \d\.\d{3}<", dom)) == 4 * n_maps
    index = _dom((gallery / "index.html").as_uri(), tmp_path / "profile2")
    assert index.count('href="page-001.html#img-') == 4
