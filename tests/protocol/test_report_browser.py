"""report.html renders in headless Chromium: tables present, every figure decoded, screenshot."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

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
    cmd = [_chromium(), *FLAGS, f"--user-data-dir={profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_report_renders_in_headless_chromium(synthetic_run, tmp_path):
    page = (synthetic_run / "report.html").resolve()
    html = page.read_text()
    assert "http://" not in html and "https://" not in html  # no external assets
    proc = _browser(
        ["--virtual-time-budget=5000", "--dump-dom", page.as_uri()], tmp_path / "profile"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    for n in (1, 2, 3):
        assert f'id="table{n}"' in dom
    assert dom.count("<tr") > 9 + 14 + 5
    loaded = re.search(r'data-images-loaded="(\d+)/(\d+)"', dom)
    assert loaded, "the page's load check did not run"
    ok, total = int(loaded.group(1)), int(loaded.group(2))
    assert total == 4 and ok == total, f"{ok} of {total} figures decoded"

    shot = tmp_path / "report.png"
    proc = _browser(
        ["--window-size=1280,2400", f"--screenshot={shot}", page.as_uri()], tmp_path / "profile2"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert shot.is_file() and shot.stat().st_size > 20_000
