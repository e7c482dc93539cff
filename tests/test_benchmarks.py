"""Every benchmark script runs end to end (synthetic case, tiny settings) and checks its outputs.

The timings of these runs mean nothing; the real runs and their numbers are in
docs/performance.md. What is asserted: the scripts run, count the passes the protocol needs,
and find the outputs they compare equal.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from support.paper import PAPER_MAPS

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _load_bench_module(name: str) -> ModuleType:
    """``benchmarks/NAME.py`` as a module (the benchmarks are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: the stages benchmarks/overhead.py prints, in order
STAGES = _load_bench_module("stages").STAGES
TINY = ["--case", "synthetic", "--data", "", "--images", "2", "--repeats", "1", "--device", "cpu"]


def bench(script: str, *extra: str, python: str = sys.executable) -> str:
    """Run ``benchmarks/SCRIPT`` on the tiny settings with ``python`` (this repository's
    ``src`` first on its path); returns its output."""
    # aot_eager: the compiled engine's path without generating code (fast); the real
    # compiler is checked in tests/inference/test_engine.py
    path = os.pathsep.join(
        p for p in (str(BENCH.parent / "src"), os.environ.get("PYTHONPATH")) if p
    )
    env = {**os.environ, "ABSGRAD_COMPILE_BACKEND": "aot_eager", "PYTHONPATH": path}
    proc = subprocess.run(
        [python, str(BENCH / script), *TINY, *extra],
        cwd=BENCH,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def number(pattern: str, text: str) -> float:
    m = re.search(pattern, text)
    assert m, f"{pattern!r} not in output:\n{text}"
    return float(m.group(1))


def assert_ratio(ratio: float, num: float, den: float, step: float = 0.05) -> None:
    """``ratio`` (printed to 2 decimals) is ``num / den`` for some values that print as the
    given ``num`` and ``den`` (rounded to ``step``)."""
    assert den > 0 and num > 0, (num, den)
    lo = (num - step) / (den + step) - 0.005
    hi = (num + step) / max(den - step, 1e-9) + 0.005
    assert lo <= ratio <= hi, (ratio, num, den)


#: a cost as the scripts print it (``common.fmt_cost``): "123 µs", "12.3 ms" or "1.23 s"
COST = r"(\S+ (?:µs|ms|s))"
UNITS = {"µs": 1e-6, "ms": 1e-3, "s": 1.0}


def seconds(cost: str) -> float:
    value, unit = cost.split()
    return float(value) * UNITS[unit]


def floor_terms(out: str) -> tuple[float, float, float, float, float]:
    """(forward+backward images, their cost, forward images, their cost, floor seconds) of a
    printed ``floor = N x COST [(bs B)] + M x COST [(bs B)] = S s`` line."""
    bs = r"(?: \(bs \d+\))?"
    m = re.search(rf"floor = (\d+) x {COST}{bs} \+ (\d+) x {COST}{bs} = (\S+) s", out)
    assert m, out
    n_fb, fb, n_f, fw, floor = m.groups()
    return float(n_fb), seconds(fb), float(n_f), seconds(fw), float(floor)


def printed_cost_error(n_fb: float, n_f: float) -> float:
    """How far ``n_fb * fb + n_f * fw`` can move when costs print to 3 digits (below 1 ms:
    whole µs, 0.5 µs rounding; else 0.05 ms)."""
    return (n_fb + n_f) * 5e-5


def test_protocol_benchmark_finds_equal_scores():
    out = bench("protocol.py")
    assert number(r"max \|score difference\| = (\S+)", out) < 1e-5
    assert_ratio(
        number(r"speedup = baseline / absgrad = (\S+)", out),
        number(r"(?m)^baseline +(\S+) s", out),
        number(r"(?m)^absgrad +(\S+) s", out),
    )


def test_floor_benchmark_counts_the_protocol_passes():
    # --batch-size 2: the 2 images fill their unit (Guided IG's gradient calls carry batch_size
    # images: in calls of 4 it would also count 20 padded passes per image)
    out = bench("floor.py", "--engine", "onnx", "--batch-size", "2")
    # 989 perturbed images per image are asked for; the GB "both" map equals VG (23 images)
    assert "perturbed images per image: 989 asked, 966 run" in out, out
    assert "passes per image: 76 forward+backward, 968 forward" in out  # + clean and blurred
    n_fb, fb, n_f, fw, floor = floor_terms(out)
    per_image = re.search(r"passes per image: (\d+) forward\+backward, (\d+) forward", out)
    assert per_image and (n_fb, n_f) == tuple(2.0 * float(v) for v in per_image.groups())
    assert floor == pytest.approx(n_fb * fb + n_f * fw, abs=0.005 + printed_cost_error(n_fb, n_f))
    assert_ratio(number(r"absgrad / floor = (\S+)", out), number(r"absgrad = (\S+) s", out), floor)
    assert number(r"absgrad onnx / eager floor = (\S+)", out) > 0


def test_overhead_benchmark_breaks_the_run_down():
    # --batch-size 2: the 2 images fill their unit (no padded Guided IG calls in the counts)
    out = bench("overhead.py", "--batch-size", "2")
    # the engine counts the forward images: the same numbers as floor.py's model hook
    assert "passes: 152 forward+backward (76 per image), 1936 forward (968 per image" in out
    n_fb, fb, n_f, fw, floor = floor_terms(out)
    assert (n_fb, n_f) == (152, 1936)
    assert floor == pytest.approx(n_fb * fb + n_f * fw, abs=0.005 + printed_cost_error(n_fb, n_f))
    assert_ratio(
        number(r"runner / floor = (\S+)", out), number(r"runner = (\S+) s", out), floor, 0.005
    )
    rows = dict(re.findall(r"(?m)^([A-Za-z/ ]+?) +(\d+\.\d\d) +\d+%", out))
    assert list(rows) == [*STAGES, "total"], out
    stages = {k: float(v) for k, v in rows.items()}
    # the exclusive seconds add up to the instrumented run's time (each printed to 0.01 s)
    assert sum(stages[s] for s in STAGES) == pytest.approx(stages["total"], abs=0.006 * len(STAGES))
    assert all(stages[s] > 0 for s in ("gradient passes", "forward passes"))
    # the maps are compressed and written on the writer thread; the main thread only hands over
    assert number(r"off the main thread: store writes (\S+) s", out) > 0
    chunks = number(r"in (\d+) chunks\)", out)
    assert number(r"(?m)^forward passes +\S+ +\S+ +(\d+)", out) == chunks
    # on the main thread, one hand-over to the writer thread per unit (1 image batch x the 10
    # sampler groups of Tables 1-3) and the writer's close at the end
    assert number(r"(?m)^store writes +\S+ +\S+ +(\d+)", out) == 10 + 1


def test_engine_benchmark_finds_equal_scores():
    out = bench("engine.py", "--precision", "bf16", "--engines", "onnx,compile")
    for kind in ("onnx", "compile"):
        assert number(rf"max \|score difference\| {kind} = (\S+)", out) < 1e-5
        assert_ratio(
            number(rf"speedup = eager / {kind} = (\S+)", out),
            number(r"(?m)^eager +(\S+) s", out),
            number(rf"(?m)^{kind} +(\S+) s", out),
        )
    moves = re.findall(r"(rcap|dauc|iauc) (\S+e[-+]\d+)", out.split("bf16 score moves")[1])
    assert [m[0] for m in moves] == ["rcap", "dauc", "iauc"]


def quantus_python() -> str | None:
    """A Python with Quantus: this one, or $ABSGRAD_QUANTUS_PYTHON."""
    probe = "import quantus"
    for exe in (sys.executable, os.environ.get("ABSGRAD_QUANTUS_PYTHON")):
        if exe and subprocess.run([exe, "-c", probe], capture_output=True).returncode == 0:
            return exe
    return None


def test_quantus_pixel_flipping_equals_our_deletion_curve():
    exe = quantus_python()
    if exe is None:
        pytest.skip("Quantus is not installed (set ABSGRAD_QUANTUS_PYTHON to a Python that has it)")
    out = bench("quantus_compare.py", "--steps", "8", python=exe)
    assert number(r"max \|curve difference\| = (\S+)", out) < 1e-5
    assert number(r"ratio = quantus / absgrad per perturbed image = (\S+)", out) > 0


def test_captum_benchmark_maps_agree():
    out = bench("captum_compare.py", "--samples", "4", "--ig-steps", "4")
    rows = re.findall(r"^(SG|IG), .*\s(\S+e[-+]\d+)$", out, flags=re.M)
    assert [r[0] for r in rows] == ["SG", "IG"]
    assert all(float(r[1]) < 1e-5 for r in rows)


def test_memory_benchmark_reports_three_sizes():
    out = bench("memory.py")
    peaks = [float(v) for v in re.findall(r"N = +\d+: peak RSS (\d+) MiB", out)]
    assert len(peaks) == 3 and max(peaks) < 2 * min(peaks)


def test_memory_format_benchmark_reports_score_moves():
    out = bench("memory_format.py")
    moves = re.findall(r"^(rcap|dauc|iauc) +(\S+) +(\S+) +(\S+)$", out, flags=re.M)
    assert [m[0] for m in moves] == ["rcap", "dauc", "iauc"]
    assert all(0 <= float(v) < 0.5 for m in moves for v in m[1:])
    assert_ratio(
        number(r"speedup = contiguous / channels-last = (\S+)", out),
        number(r"(?m)^contiguous +(\S+) s", out),
        number(r"(?m)^channels-last +(\S+) s", out),
    )
    assert_ratio(
        number(r"channels-last / its floor = (\S+)", out),
        number(r"(?m)^channels-last +(\S+) s", out),
        number(r"channels-last floor = (\S+) s", out),
    )


def test_scaling_benchmark_tables():
    # --batch-size 2: the 2 images fill their unit (no padded Guided IG calls in the counts)
    out = bench(
        "scaling.py", "--sizes", "24,32", "--samples", "4,8", "--table-sets", "1", "1,2,3",
        "--batch-size", "2",
    )  # fmt: skip
    # all three tables: every map of the paper, 76 forward+backward and 968 forward passes per image
    row = f"| 1,2,3 | {PAPER_MAPS} | 76 | 968 |"
    assert "| 24 |" in out and row in out.replace("  ", " ")


def test_another_architecture_on_the_case_photos():
    out = bench("floor.py", "--arch", "resnet18", "--size", "64", "--images", "1")
    # one image in a unit of 4: Guided IG's 20 gradient calls carry 4 images (3 padded)
    assert "passes per image: 136 forward+backward, " in out
    assert "perturbed images per image: 989 asked" in out
    assert "runner chunks: 4 images per unit, 4 per gradient pass, 16 per forward pass" in out


def test_guided_ig_benchmark_finds_the_same_paths():
    out = bench("guided_ig.py", "--steps", "4")
    for other in ("split", "alone"):
        assert f"{other} vs batched: images with another number of rounds: 0;" in out
        assert number(rf"{other} vs batched: .* largest map difference: (\S+);", out) < 1e-5
    assert_ratio(
        number(r"speedup = alone / batched = (\S+)", out),
        number(r"(?m)^alone +(\S+) s", out),
        number(r"(?m)^batched +(\S+) s", out),
        step=0.005,
    )


def test_score_diff_compares_two_runs(tmp_path):
    base = ["run", "--case", "synthetic", "--methods", "sg", "--metrics", "rcap", "--limit", "2"]
    base += ["--quiet", "--no-report", "--n-samples", "3", "--device", "cpu"]
    runs = {
        "a": [],
        "b": ["--batch-size", "1"],  # another cut of the same work: the same scores
        "c": ["--seed", "1"],  # other noise: other scores
    }
    env = dict(os.environ)  # with the test's private ABSGRAD_CACHE
    for name, extra in runs.items():
        cmd = [sys.executable, "-m", "absgrad.cli", *base, *extra, "--out", str(tmp_path / name)]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]

    def diff(other: str) -> tuple[int, str]:
        cmd = [sys.executable, str(BENCH / "score_diff.py"), str(tmp_path / "a")]
        cmd += [str(tmp_path / other), "--limit", "1e-5"]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        return proc.returncode, proc.stdout

    code, out = diff("b")
    assert code == 0 and "2 images, 1 maps" in out
    assert number(r"max \|score difference\| = (\S+)", out) < 1e-5
    code, out = diff("c")
    assert code == 1 and number(r"max \|score difference\| = (\S+)", out) > 1e-3
    assert re.search(r"(?m)^rcap +max \S+ +\(sg ", out)
