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
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from absgrad.protocol.executors import get_executor
from absgrad.protocol.plan import Unit, UnitResult
from absgrad.protocol.ray_executor import RayExecutor
from support.cli_errors import assert_user_error, user_error

try:
    import ray
except ImportError:  # the tests that need Ray skip; the one about a missing Ray still runs
    ray = None
needs_ray = pytest.mark.skipif(
    ray is None, reason="needs the ray extra: pip install 'absgrad[ray]'"
)

# -- a tiny worker: no model, just enough to see which process ran what -----------------------
_PROCESS: dict[str, int] = {"calls": 0}


def tiny_worker(delay: float, fail_on: str | None, unit: Unit) -> UnitResult:
    """Returns the unit's value, the process id, and how many units this process has run."""
    _PROCESS["calls"] += 1  # per-process state, like the worker's cached case and model
    if unit.id == fail_on:
        raise ValueError(f"bad input in {unit.id}")
    time.sleep(delay)
    value = float(sum(unit.indices) * 1000 + unit.seed)
    return UnitResult(
        unit=unit,
        scores={"tiny": {"value": value, "pid": os.getpid(), "calls": _PROCESS["calls"]}},
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
                Unit(
                    f"b{b:05d}-{g}",
                    b,
                    g,
                    idx,
                    tuple(f"img{i}" for i in idx),
                    (g,),
                    (),
                    10 + b,
                    False,
                    gi == 0,
                )
            )
    return units


def expected_value(unit: Unit) -> float:
    return float(sum(unit.indices) * 1000 + unit.seed)


@pytest.fixture(scope="module")
def ray_local() -> Iterator[None]:
    """One local Ray instance (2 CPUs) shared by this module's tests; executors reuse it."""
    if ray is None:
        pytest.skip("needs the ray extra: pip install 'absgrad[ray]'")
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


def collect(
    executor: RayExecutor, units: list[Unit], worker: Callable[[Unit], UnitResult]
) -> list[UnitResult]:
    results: list[UnitResult] = []
    executor.run(units, worker, results.append)
    return results


# -- the Executor contract ----------------------------------------------------------------------
def test_every_unit_once_on_long_lived_workers(ray_local: None) -> None:
    units = make_units(6)
    ex = RayExecutor(workers=2, max_in_flight=3)
    results: list[UnitResult] = []
    in_flight: list[int] = []

    def on_result(result: UnitResult) -> None:
        results.append(result)
        in_flight.append(sum(len(s.in_flight) for s in ex.slots))

    ex.run(units + units[:3], partial(tiny_worker, 0.05, None), on_result)  # duplicates given
    assert max(in_flight) <= 3 and in_flight[0] >= 1  # units kept flowing, never over the bound
    ids = [r.unit.id for r in results]
    assert sorted(ids) == sorted(u.id for u in units)  # each once, none lost
    for r in results:
        assert r.scores["tiny"]["value"] == expected_value(r.unit)
    pids = {r.scores["tiny"]["pid"] for r in results}
    assert pids <= set(ex.worker_pids()) and len(pids) == 2 and os.getpid() not in pids
    # per-process state is set up once per worker and reused by all its units (an actor pool)
    calls: dict[int, list[int]] = {}
    for r in results:
        calls.setdefault(r.scores["tiny"]["pid"], []).append(r.scores["tiny"]["calls"])
    # each worker process kept its state from unit to unit: 1, 2, 3, ... in arrival order
    assert all(c == list(range(1, len(c) + 1)) for c in calls.values()), calls
    assert ray.is_initialized()  # a Ray session it did not start is left running


def test_a_worker_keeps_to_its_batch_and_takes_batches_nobody_works_on() -> None:
    from collections import OrderedDict, deque

    from absgrad.protocol.ray_executor import _Slot

    pending: OrderedDict[int, deque[Unit]] = OrderedDict()
    for u in make_units(3, groups=("a", "b", "c")):
        pending.setdefault(u.batch, deque()).append(u)
    w0, w1 = _Slot(actor=None), _Slot(actor=None)
    take = RayExecutor._take
    assert take(pending, w0, set()).id == "b00000-a"
    assert take(pending, w1, {0}).id == "b00001-a"  # batch 0 is w0's: start another
    assert take(pending, w1, set()).id == "b00001-b"  # its own batch before an earlier one
    assert take(pending, w0, {1}).id == "b00000-b"
    assert take(pending, w0, {1}).id == "b00000-c"
    assert take(pending, w0, {1}).id == "b00002-a"  # its batch is done: the next unclaimed one
    assert take(pending, w0, {2}).id == "b00002-b"
    assert take(pending, w1, {2}).id == "b00001-c"
    assert take(pending, w1, {2}).id == "b00002-c"  # only claimed work left: help with it
    assert not pending


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
    lost: set[str] = set()

    def on_result(result: UnitResult) -> None:
        results.append(result)
        if not killed:
            # the worker that just returned this result: it has just started its next unit
            victim = next(s for s in ex.slots if s.pid == result.scores["tiny"]["pid"])
            assert victim.in_flight
            lost.update(u.id for u in victim.in_flight.values())
            os.kill(victim.pid, signal.SIGKILL)
            killed.append(victim.pid)

    ex.run(units, partial(tiny_worker, 0.3, None), on_result)
    assert killed and lost
    assert sorted(r.unit.id for r in results) == sorted(u.id for u in units)
    assert all(r.scores["tiny"]["value"] == expected_value(r.unit) for r in results)
    by_id = {r.unit.id: r.scores["tiny"]["pid"] for r in results}
    assert all(by_id[uid] != killed[0] for uid in lost)  # the lost units were computed again


def test_worker_that_cannot_be_restarted_fails_clearly(ray_local: None) -> None:
    ex = RayExecutor(workers=2, max_in_flight=2, retries=0)

    def on_result(result: UnitResult) -> None:
        victim = next((s for s in ex.slots if s.in_flight), None)
        if victim is not None and victim.pid is not None:
            os.kill(victim.pid, signal.SIGKILL)
            victim.pid = None  # kill only once per worker

    with pytest.raises(RuntimeError, match=r"unit b\d+-\w+ was lost with its Ray worker"):
        ex.run(make_units(4), partial(tiny_worker, 0.3, None), on_result)


@needs_ray
def test_bad_options_are_named() -> None:
    with pytest.raises(ValueError, match="--workers"):
        RayExecutor(workers=0)
    with pytest.raises(ValueError, match="--gpus-per-worker"):
        RayExecutor(gpus_per_worker=-1)


def test_gpus_asked_but_none_in_the_cluster(ray_local: None) -> None:
    with pytest.raises(
        ValueError, match=r"--gpus-per-worker 1 asked but the Ray cluster has 0 GPU"
    ):
        collect(RayExecutor(gpus_per_worker=1), make_units(1), partial(tiny_worker, 0.0, None))


@needs_ray
def test_registered_as_ray_executor() -> None:
    ex = get_executor("ray", workers=3)
    assert isinstance(ex, RayExecutor) and ex.describe()["workers"] == 3


def test_workers_can_write_results_themselves(ray_local: None, tmp_path: Path) -> None:
    from absgrad.protocol.store import RunStore

    def with_maps(unit: Unit) -> UnitResult:
        r = tiny_worker(0.0, None, unit)
        r.maps = {"tiny": np.full((2, 3, 3), unit.batch, dtype=np.float16)}
        return r

    units = make_units(3)
    results = collect(RayExecutor(workers=2, write_dir=tmp_path), units, with_maps)
    assert all(r.maps is None for r in results)  # arrays stayed on the workers...
    store = RunStore(tmp_path)
    assert store.done_ids() == {u.id for u in units}  # ...which stored every unit
    for u in units:
        assert (store.load_maps(u.id)["tiny"] == u.batch).all()


# -- Ray not installed ------------------------------------------------------------------------
def test_missing_ray_names_the_extra(tmp_path: Path) -> None:
    out = tmp_path / "run"
    code = (
        "import sys\n"
        "sys.modules['ray'] = None\n"  # what a missing package looks like to `import ray`
        "from absgrad.cli import main\n"
        f"sys.exit(main(['run', '--case', 'synthetic', '--limit', '2', '--executor', 'ray', "
        f"'--out', {str(out)!r}]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    line = assert_user_error(proc.returncode, proc.stderr, "pip install 'absgrad[ray]'")
    assert line.startswith("absgrad: error: --executor ray needs Ray")
    assert not out.exists()  # refused before anything was written


def test_ray_options_without_ray_executor_are_refused(tmp_path: Path, capsys) -> None:
    argv = ["run", "--case", "synthetic", "--workers", "2", "--out", str(tmp_path / "r")]
    user_error(capsys, argv, "--workers")
    assert not (tmp_path / "r").exists()


# -- the protocol on the synthetic case -------------------------------------------------------
SYNTH = {"limit": 4, "batch_size": 2}  # 2 image batches x 10 sampler groups = 20 units
SYNTH_ARGS = ["--limit", "4", "--batch-size", "2", "--eval-batch-size", "64"]  # as synthetic.yaml


def synth_config():
    from absgrad.protocol.config import load_config_file, make_config

    return make_config(load_config_file("synthetic"), SYNTH)


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic run with the local executor: what every Ray run must reproduce."""
    import torch

    from absgrad.protocol.executors import LocalExecutor
    from absgrad.protocol.runner import run_protocol

    out = tmp_path_factory.mktemp("local") / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # fast on a busy 2-core machine; results do not depend on it
    try:
        meta = run_protocol(synth_config(), out, executor=LocalExecutor(), quiet=True)
    finally:
        torch.set_num_threads(threads)
    assert meta["status"] == "complete" and meta["n_units"] == 20
    return out


def assert_same_results(run: Path, reference: Path) -> None:
    scores, ref = _unit_scores(run), _unit_scores(reference)
    assert len(ref) == 20 and scores.keys() == ref.keys()
    for uid in ref:
        assert scores[uid] == ref[uid], uid  # every per-image score, exactly
    _assert_same_maps(run, reference)
    images = sorted(p.name for p in (reference / "images").glob("*.npz"))
    assert images == sorted(p.name for p in (run / "images").glob("*.npz"))
    meta = _read_json(run / "run.json")
    assert meta["status"] == "complete" and meta["done_units"] == 20
    computed = [
        ln.split("computed unit ")[1].split()[0]
        for ln in (run / "absgrad.log").read_text().splitlines()
        if "computed unit " in ln
    ]
    assert sorted(computed) == sorted(ref)  # each unit stored once: none twice, none lost


@needs_ray
def test_cli_ray_run_with_two_local_workers_matches_local_executor(
    local_run: Path, tmp_path: Path
) -> None:
    out = tmp_path / "ray"
    cmd = [sys.executable, "-m", "absgrad.cli", "run", "--case", "synthetic", *SYNTH_ARGS]
    cmd += ["--executor", "ray", "--workers", "2", "--quiet", "--no-report", "--out", str(out)]
    env = {**os.environ, "RAY_DISABLE_USAGE_STATS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_same_results(out, local_run)
    session = _read_json(out / "run.json")["sessions"][-1]
    assert session["executor"]["name"] == "ray" and session["executor"]["workers"] == 2
    assert session["executor"]["address"] == "local"


class HookedRayExecutor(RayExecutor):
    """A Ray executor that calls ``hook(self, result)`` after each stored result."""

    def __init__(self, hook: Callable[[RayExecutor, UnitResult], None], **options) -> None:
        super().__init__(**options)
        self.hook = hook

    def run(self, units, worker, on_result) -> None:  # type: ignore[override]
        def stored(result: UnitResult) -> None:
            on_result(result)
            self.hook(self, result)

        super().run(units, worker, stored)


def test_killed_worker_during_a_protocol_run(
    ray_local: None, local_run: Path, tmp_path: Path
) -> None:
    from absgrad.protocol.runner import run_protocol

    killed: list[int] = []

    def kill_once(ex: RayExecutor, result: UnitResult) -> None:
        if not killed:
            victim = next(s for s in ex.slots if s.in_flight)  # its units are being computed
            assert victim.pid is not None
            os.kill(victim.pid, signal.SIGKILL)
            killed.append(victim.pid)

    ex = HookedRayExecutor(kill_once, workers=2, retries=2)
    out = tmp_path / "ray"
    run_protocol(synth_config(), out, executor=ex, quiet=True)
    assert killed
    with pytest.raises(ProcessLookupError):
        os.kill(killed[0], 0)  # the worker really died
    assert_same_results(out, local_run)


def test_interrupted_driver_resumes_from_the_store(
    ray_local: None, local_run: Path, tmp_path: Path
) -> None:
    from absgrad.protocol.runner import run_protocol

    seen: list[str] = []

    def interrupt(ex: RayExecutor, result: UnitResult) -> None:
        # counted here, not as files: units are written by the session's writer thread, and
        # Ctrl-C stores every unit handed to it before the run ends
        seen.append(result.unit.id)
        if len(seen) == 3:
            raise KeyboardInterrupt  # Ctrl-C in the driver

    out = tmp_path / "ray"
    first = HookedRayExecutor(interrupt, workers=2)
    with pytest.raises(KeyboardInterrupt):
        run_protocol(synth_config(), out, executor=first, quiet=True)
    meta = _read_json(out / "run.json")
    assert meta["status"] == "interrupted" and meta["done_units"] == 3
    for slot in first.slots:  # the interrupted run's workers were stopped
        with pytest.raises(ray.exceptions.RayActorError):
            ray.get(slot.actor.pid.remote(), timeout=60)
    run_protocol(synth_config(), out, executor=RayExecutor(workers=2), quiet=True)
    session = _read_json(out / "run.json")["sessions"][-1]
    assert session["skipped_units"] == 3 and session["computed_units"] == 17  # nothing redone
    assert_same_results(out, local_run)


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


def _with_switches(worker: Callable[[Unit], UnitResult], unit: Unit) -> UnitResult:
    """Runs the unit, then notes this worker process's deterministic switches and pid."""
    from absgrad.utils.determinism import is_deterministic

    result = worker(unit)
    result.timing["switches_on"] = float(is_deterministic())
    result.timing["pid"] = float(os.getpid())
    return result


class SwitchProbe(RayExecutor):
    """A Ray executor whose workers report their switches with each result."""

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self.seen: list[dict[str, float]] = []

    def run(self, units, worker, on_result) -> None:  # type: ignore[override]
        def stored(result: UnitResult) -> None:
            self.seen.append(dict(result.timing))
            on_result(result)

        super().run(units, partial(_with_switches, worker), stored)


@needs_ray
def test_ray_workers_run_with_the_deterministic_switches(ray_local: None, tmp_path: Path) -> None:
    from absgrad.protocol.config import load_config_file, make_config
    from absgrad.protocol.runner import run_protocol
    from absgrad.utils.determinism import current

    config = make_config(load_config_file("synthetic"), {**SYNTH, "maps": ["vg"]})
    assert config.deterministic  # the default
    before = current()
    ex = SwitchProbe(workers=2)
    run_protocol(config, tmp_path / "ray", executor=ex, quiet=True)
    assert current() == before  # the driver's own switches are back
    assert ex.seen and os.getpid() not in {int(t["pid"]) for t in ex.seen}
    assert all(t["switches_on"] == 1.0 for t in ex.seen)  # set in every worker process
