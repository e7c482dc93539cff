"""Progress bars: the selection pass and the whole run show images, rates and an ETA."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from absgrad.progress import RunProgress, rate_text
from absgrad.protocol import make_config
from absgrad.protocol.runner import run_protocol


def test_rate_text_switches_to_seconds_per_image_below_one():
    assert rate_text(10, 4) == "2.50 img/s"
    assert rate_text(2, 25) == "12.5 s/img"
    assert rate_text(0, 3) == "- img/s"


def test_run_progress_counts_images_across_sampler_groups(capsys):
    units = [SimpleNamespace(id=f"b{b}-g{g}", indices=(0, 1)) for b in range(2) for g in range(3)]
    bar = RunProgress(units, 0, n_groups=3, n_images=4, disable=False)
    for u in units[:3]:
        bar.update(u)
    assert bar.images == pytest.approx(2.0)  # one batch of 2 images, all 3 groups done
    assert "2/4 images" in str(bar.bar)
    bar.close()


def test_a_run_shows_the_selection_and_protocol_bars(tmp_path, capsys):
    config = make_config(
        {
            "case": "synthetic",
            "limit": 2,
            "batch_size": 2,
            "maps": ["vg"],
            "metrics": ["rcap"],
            "engine": "eager",
        }
    )
    run_protocol(config, tmp_path / "run", quiet=False)
    err = capsys.readouterr().err
    assert re.search(r"selection: 100%.*\d+/\d+ .*img/s", err), err[-2000:]
    assert re.search(r"protocol: 100%.*1/1 .*(img/s|s/img), 2/2 images", err), err[-2000:]
