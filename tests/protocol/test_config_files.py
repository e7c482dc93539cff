"""Config files a careless or hostile user might hand over: an alias bomb, a binary file, a
huge value. Each is refused with one short line, in bounded time and memory."""

from __future__ import annotations

import time
import tracemalloc

import pytest

from absgrad.protocol.config import (
    MAX_YAML_VALUES,
    ConfigError,
    load_config_file,
    make_config,
)


def _alias_bomb(levels: int = 9, width: int = 9) -> str:
    """About 1 KB of YAML whose aliases expand to ``width ** levels`` strings."""
    lines = [f"l0: &l0 [{', '.join(['x'] * width)}]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]")
    lines.append(f"maps: *l{levels - 1}")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_in_bounded_time_and_memory(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(_alias_bomb())
    assert path.stat().st_size < 1500  # 9 ** 9 = 387 million values once expanded
    tracemalloc.start()
    t0 = time.perf_counter()
    with pytest.raises(ConfigError) as err:
        load_config_file(path)
    seconds = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    message = str(err.value)
    assert "aliases expand to more than" in message and str(MAX_YAML_VALUES) in message
    assert len(message) < 400 and "\n" not in message
    assert peak < 20 * 2**20, f"peak {peak / 2**20:.1f} MiB while refusing the file"
    assert seconds < 5


def test_aliases_within_the_bound_still_load(tmp_path):
    path = tmp_path / "anchors.yaml"
    path.write_text("case: synthetic\nmetrics: &m [rcap, dauc]\nextra_maps: {}\n")
    assert make_config(load_config_file(path)).metrics == ("rcap", "dauc")


def test_a_recursive_alias_is_refused(tmp_path):
    path = tmp_path / "loop.yaml"
    path.write_text("case: synthetic\nmaps: &a [gag-85, *a]\n")
    with pytest.raises(ConfigError, match="recursive alias"):
        load_config_file(path)


def test_a_bad_value_is_echoed_as_a_short_excerpt():
    huge = [["gag-85"] * 1000] * 1000  # a million strings, as a shared-alias YAML would give
    with pytest.raises(ConfigError) as err:
        make_config({"case": "synthetic", "maps": huge})
    assert len(str(err.value)) < 400
    assert "config field 'maps'" in str(err.value)


def test_a_binary_config_file_is_refused_in_one_line(tmp_path):
    path = tmp_path / "weights.yaml"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ConfigError, match="not a text file"):
        load_config_file(path)
