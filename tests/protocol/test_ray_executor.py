"""The Ray executor: the Executor contract on a local Ray instance, worker deaths, missing Ray,
and protocol runs on the synthetic case that match the local executor's results exactly."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from absgrad.protocol.executors import get_executor
from absgrad.protocol.plan import Unit
from absgrad.protocol.worker import UnitResult

ray = pytest.importorskip("ray", reason="needs the ray extra: pip install 'absgrad[ray]'")

from absgrad.protocol.ray_executor import RayExecutor  # noqa: E402

# -- a tiny worker: no model, just enough to see which process ran what -----------------------
_PROCESS: dict[str, int] = {"setups": 0, "calls": 0}


def tiny_worker(delay: float, fail_on: str | None, unit: Unit) -> UnitResult:
    """Returns the unit's value, the process id, and how often this process 'loaded a model'."""
    if _PROCESS["calls"] == 0:
        _PROCESS["setups"] += 1  # per-process state, like the worker's cached case and model
    _PROCESS["calls"] += 1
    if unit.id == fail_on:
        raise ValueError(f"bad input in {unit.id}")
    time.sleep(delay)
    value = float(sum(unit.indices) * 1000 + unit.seed)
    return UnitResult(
        unit=unit,
        scores={"tiny": {"value": value, "pid": os.getpid(), "setups": _PROCESS["setups"]}},
        clean_prob=[0.5] * len(unit.indices),
        blurred_prob=[0.25] * len(unit.indices),
        timing={"total": delay},
    )


def make_units(n_batches: int, groups: Sequence[str] = ("sg", "ig")) -> list[Unit]:
    units = []
    for b in range(n_batches):
        idx = (2 * b, 2 * b + 1)
        for gi, g in enumerate(groups):
            units.append(
                Unit(f"b{b:05d}-{g}", b, g, idx, tuple(f"img{i}" for i in idx), (g,), (), 10 + b, False, gi == 0)
            )
    return units


def expected_value(unit: Unit) -> float:
    return float(sum(unit.indices) * 1000 + unit.seed)


@pytest.fixture(scope="module")
def ray_local() -> Iterator[None]:
    """One local Ray instance (2 CPUs) shared by this module's tests; executors reuse it."""
    temp = tempfile.mkdtemp(prefix="absray")  # short: Ray's socket paths must stay short
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        _temp_dir=temp,
    )
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers can't import tests
    try:
        yield
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)


def collect(executor: RayExecutor, units: list[Unit], worker: Callable[[Unit], UnitResult]) -> list[UnitResult]:
    results: list[UnitResult] = []
    executor.run(units, worker, results.append)
    return results


# -- the Executor contract ----------------------------------------------------------------------
def test_every_unit_once_on_long_lived_workers(ray_local: None) -> None:
    units = make_units(6)
    ex = RayExecutor(workers=2)
    results = collect(ex, units + units[:3], partial(tiny_worker, 0.05, None))  # duplicates given
    ids = [r.unit.id for r in results]
    assert sorted(ids) == sorted(u.id for u in units)  # each once, none lost
    for r in results:
        assert r.scores["tiny"]["value"] == expected_value(r.unit)
    pids = {r.scores["tiny"]["pid"] for r in results}
    assert pids <= set(ex.worker_pids()) and len(pids) == 2 and os.getpid() not in pids
    # per-process state is set up once per worker and reused by all its units (an actor pool)
    assert {r.scores["tiny"]["setups"] for r in results} == {1}
    assert ray.is_initialized()  # a Ray session it did not start is left running


def test_in_flight_units_are_bounded(ray_local: None) -> None:
    ex = RayExecutor(workers=2, max_in_flight=3)
    seen: list[int] = []

    def on_result(result: UnitResult) -> None:
        seen.append(sum(len(s.in_flight) for s in ex.slots))

    ex.run(make_units(5), partial(tiny_worker, 0.05, None), on_result)
    assert len(seen) == 10
    assert max(seen) <= 3 and seen[0] >= 1  # units kept flowing, never more than the bound


def test_batches_stay_on_one_worker_when_nothing_fails(ray_local: None) -> None:
    units = make_units(4, groups=("a", "b", "c"))
    results = collect(RayExecutor(workers=2, max_in_flight=2), units, partial(tiny_worker, 0.05, None))
    by_batch: dict[int, set[int]] = {}
    for r in results:
        by_batch.setdefault(r.unit.batch, set()).add(r.scores["tiny"]["pid"])
    # one unit in flight per worker: a worker finishes its batch before taking another
    assert all(len(p) == 1 for p in by_batch.values()), by_batch


def test_worker_exception_is_raised_with_the_unit_named(ray_local: None) -> None:
    units = make_units(3)
    with pytest.raises(ValueError, match="bad input in b00001-sg") as info:
        collect(RayExecutor(workers=2), units, partial(tiny_worker, 0.05, "b00001-sg"))
    assert any("b00001-sg" in n and "Ray worker" in n for n in getattr(info.value, "__notes__", []))


def test_killed_worker_loses_nothing(ray_local: None) -> None:
    units = make_units(6)
    ex = RayExecutor(workers=2, max_in_flight=4, retries=2)
    results: list[UnitResult] = []
    killed: list[int] = []

    def on_result(result: UnitResult) -> None:
        results.append(result)
        if not killed:
            victim = next(s for s in ex.slots if s.in_flight)  # a worker with units in flight
            assert victim.pid is not None
            os.kill(victim.pid, signal.SIGKILL)
            killed.append(victim.pid)

    ex.run(units, partial(tiny_worker, 0.3, None), on_result)
    assert killed
    assert sorted(r.unit.id for r in results) == sorted(u.id for u in units)
    assert all(r.scores["tiny"]["value"] == expected_value(r.unit) for r in results)
    pids = Counter(r.scores["tiny"]["pid"] for r in results)
    assert len(pids) >= 2 and sum(pids.values()) == len(units)


def test_worker_that_cannot_be_restarted_fails_clearly(ray_local: None) -> None:
    ex = RayExecutor(workers=2, max_in_flight=2, retries=0)

    def on_result(result: UnitResult) -> None:
        victim = next((s for s in ex.slots if s.in_flight), None)
        if victim is not None and victim.pid is not None:
            os.kill(victim.pid, signal.SIGKILL)
            victim.pid = None  # kill only once per worker

    with pytest.raises(RuntimeError, match=r"unit b\d+-\w+ was lost with its Ray worker"):
        ex.run(make_units(4), partial(tiny_worker, 0.3, None), on_result)


def test_bad_options_are_named() -> None:
    with pytest.raises(ValueError, match="--workers"):
        RayExecutor(workers=0)
    with pytest.raises(ValueError, match="--gpus-per-worker"):
        RayExecutor(gpus_per_worker=-1)


def test_gpus_asked_but_none_in_the_cluster(ray_local: None) -> None:
    with pytest.raises(ValueError, match=r"--gpus-per-worker 1 asked but the Ray cluster has 0 GPU"):
        collect(RayExecutor(gpus_per_worker=1), make_units(1), partial(tiny_worker, 0.0, None))


def test_registered_as_ray_executor() -> None:
    ex = get_executor("ray", workers=3)
    assert isinstance(ex, RayExecutor) and ex.describe()["workers"] == 3


# -- Ray not installed ------------------------------------------------------------------------
def test_missing_ray_names_the_extra(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "sys.modules['ray'] = None\n"  # what a missing package looks like to `import ray`
        "from absgrad.protocol.executors import get_executor\n"
        "import absgrad.protocol.ray_executor\n"
        "get_executor('ray')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "RayUnavailableError" in proc.stderr
    assert "pip install 'absgrad[ray]'" in proc.stderr


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def _unit_scores(root: Path) -> dict[str, dict]:
    return {p.stem: _read_json(p)["scores"] for p in sorted((root / "units").glob("*.json"))}


def _assert_same_maps(a: Path, b: Path) -> None:
    names = sorted(p.name for p in (a / "maps").glob("*.npz"))
    assert names and names == sorted(p.name for p in (b / "maps").glob("*.npz"))
    for name in names:
        with np.load(a / "maps" / name) as za, np.load(b / "maps" / name) as zb:
            assert za.files == zb.files
            for k in za.files:
                np.testing.assert_array_equal(za[k], zb[k])
