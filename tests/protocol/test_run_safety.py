"""A run's folder: data edits (selection cache and resume), damaged units, the lock, kill -9 and
SIGINT. Each test is one row of the reliability regression suite."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from absgrad.cli import main
from absgrad.protocol.store import RunStore
from support.cli_errors import user_error
from support.runs import cli, start_cli

TINY = ["--methods", "vg", "--metrics", "rcap", "--quiet", "--no-report"]


def _photo_folder(root: Path, labels: dict[str, int]) -> Path:
    root.mkdir()
    rng = np.random.default_rng(0)
    for name in labels:
        Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(root / name)
    _write_labels(root, labels)
    return root


def _write_labels(root: Path, labels: dict[str, int]) -> None:
    rows = "".join(f"{n},n0,{c},x\n" for n, c in labels.items())
    (root / "labels.csv").write_text("file,wnid,class_index,name\n" + rows)


# -- row 1: the selection cache sees an edited label file or a replaced image ----------------------
def test_selection_cache_follows_label_edits_and_replaced_images(tmp_path):
    from absgrad.cases import score_case
    from absgrad.cases.imagenet_sample import ImageNetSampleCase

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten(), torch.nn.Linear(48, 1000)
    ).eval()
    root = _photo_folder(tmp_path / "data", {"a.png": 1, "b.png": 2})
    cache = tmp_path / "sel"

    def probs() -> dict[str, float]:
        case = ImageNetSampleCase(data=root)
        return {k: p for k, (p, _) in score_case(case, model, cache_dir=cache).items()}

    def expected(name: str, label: int) -> float:
        case = ImageNetSampleCase(data=root)
        s = next(s for s in case.samples() if s.id == name)
        with torch.no_grad():
            return float(model(case.normalize(s.image[None])).softmax(1)[0, label])

    first = probs()
    assert first["a"] == pytest.approx(expected("a", 1), abs=1e-6)
    _write_labels(root, {"a.png": 7, "b.png": 2})  # the label of a changes
    second = probs()
    assert second["a"] == pytest.approx(expected("a", 7), abs=1e-6)
    assert second["a"] != pytest.approx(first["a"], abs=1e-9)
    Image.new("RGB", (40, 48), (250, 0, 0)).save(root / "b.png")  # b is replaced
    third = probs()
    assert third["b"] == pytest.approx(expected("b", 2), abs=1e-6)
    assert len(list(cache.glob("select-*.json"))) == 3


# -- row 2: a resume after a data edit is refused, saying what changed -----------------------------
@pytest.mark.slow
def test_resume_after_a_label_edit_is_refused_naming_the_image(tmp_path, capsys):
    root = _photo_folder(tmp_path / "data", {"a.png": 1, "b.png": 2, "c.png": 3})
    out = tmp_path / "run"
    argv = ["run", "--case", "imagenet-sample", "--data", str(root), "--no-select", *TINY]
    assert main([*argv, "--tables", "1", "--out", str(out)]) == 0
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "complete" and set(meta["data"]["images"]) == {"a", "b", "c"}
    before = {p.name: p.read_bytes() for p in (out / "units").iterdir()}
    _write_labels(root, {"a.png": 1, "b.png": 9, "c.png": 3})
    changed = ("changed since it started", "image b: label 2 -> 9")
    user_error(capsys, [*argv, "--tables", "1", "--out", str(out)], *changed)
    assert {p.name: p.read_bytes() for p in (out / "units").iterdir()} == before
    # a new run picks the edit up
    assert main([*argv, "--tables", "1", "--out", str(tmp_path / "new")]) == 0


# -- row 9: a damaged unit is recomputed with a warning; report names the file -------------------
@pytest.fixture
def small_run(tmp_path) -> Path:
    out = tmp_path / "run"
    assert main(["run", "--case", "synthetic", "--limit", "4", "--batch-size", "2",
                 "--tables", "1", *TINY, "--out", str(out)]) == 0  # fmt: skip
    return out


@pytest.mark.parametrize("damage", ["truncate_json", "truncate_npz", "edit_json"])
def test_damaged_unit_is_recomputed_with_a_warning_naming_the_file(small_run, damage, capsys):
    units = sorted((small_run / "units").glob("*.json"))
    good = {p.name: json.loads(p.read_text())["scores"] for p in units}
    victim = units[0]
    npz = small_run / "maps" / f"{victim.stem}.npz"
    if damage == "truncate_json":
        bad = victim
        victim.write_bytes(victim.read_bytes()[:40])
    elif damage == "truncate_npz":
        bad = npz
        npz.write_bytes(npz.read_bytes()[:100])
    else:
        bad = victim
        rec = json.loads(victim.read_text())
        key = next(iter(rec["scores"]))
        rec["scores"][key] = {k: 0.5 for k in rec["scores"][key]}  # altered by hand
        victim.write_text(json.dumps(rec))
    assert RunStore(small_run).damaged_units().keys() == {victim.stem}
    # the report refuses, naming the file
    user_error(capsys, ["report", str(small_run)], str(bad))
    # the same command recomputes that unit alone, with a warning naming the file
    with pytest.warns(UserWarning, match=str(bad).replace("\\", "\\\\")):
        assert main(["run", "--case", "synthetic", "--limit", "4", "--batch-size", "2",
                     "--tables", "1", *TINY, "--out", str(small_run)]) == 0  # fmt: skip
    log = (small_run / "absgrad.log").read_text()
    assert f"recomputing unit {victim.stem}" in log
    assert log.count("computed unit") == len(units) + 1
    now = {
        p.name: json.loads(p.read_text())["scores"] for p in (small_run / "units").glob("*.json")
    }
    assert now == good
    assert RunStore(small_run).damaged_units() == {}


def test_report_names_a_damaged_maps_file(small_run, capsys):
    from absgrad.protocol.store import DamagedFileError

    npz = next((small_run / "maps").glob("*.npz"))
    npz.write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(DamagedFileError, match=str(npz)):
        RunStore(small_run).load_maps(npz.stem)


# -- row 13: the lock, kill -9 and SIGINT ---------------------------------------------------------
def test_a_second_run_into_a_locked_folder_is_refused(small_run, capsys):
    store = RunStore(small_run)
    with store.lock():
        assert store.lock_holder() is not None
        argv = ["run", "--case", "synthetic", "--limit", "4", "--batch-size", "2",
                "--tables", "1", *TINY, "--out", str(small_run)]  # fmt: skip
        user_error(capsys, argv, "another absgrad run (pid", str(small_run))
        assert json.loads((small_run / "run.json").read_text())["status"] == "complete"
    assert store.lock_holder() is None


def _start(out: Path) -> subprocess.Popen:
    args = ["run", "--case", "synthetic", "--limit", "8", "--batch-size", "1", "--tables", "1",
            "--methods", "sg", "--n-samples", "30", "--metrics", "rcap", "--quiet", "--no-report"]  # fmt: skip
    return start_cli([*args, "--out", str(out)])


def _wait_units(proc: subprocess.Popen, out: Path, n: int) -> None:
    deadline = time.monotonic() + 300
    while len(list((out / "units").glob("*.json"))) < n:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the run stored no {n} units: {proc.communicate()[1][-2000:]}")
        time.sleep(0.02)


@pytest.mark.slow
def test_kill_9_leaves_a_status_that_reads_interrupted_and_sigint_stops_promptly(tmp_path):
    out = tmp_path / "run"
    proc = _start(out)
    _wait_units(proc, out, 2)
    assert RunStore(out).lock_holder() is not None  # the live run holds the folder
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert json.loads((out / "run.json").read_text())["status"] == "running"  # as written
    meta = RunStore(out).read_meta()  # ... but read as what it is
    assert meta["status"] == "interrupted" and "killed" in meta["status_note"]
    # resume, then Ctrl-C: the process ends promptly and keeps every stored unit
    proc = _start(out)
    n_before = len(list((out / "units").glob("*.json")))
    _wait_units(proc, out, n_before + 1)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    stop_s = time.monotonic() - t0
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted" in err
    assert stop_s < 10  # about 1 s on a quiet machine; the bound only catches a hang
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "interrupted"
    assert [s["status"] for s in meta["sessions"]] == ["killed", "interrupted"]
    stored = {p.name: p.read_bytes() for p in (out / "units").glob("*.json")}
    assert RunStore(out).damaged_units() == {}
    # the third session finishes the run without recomputing what was stored
    proc = cli(["run", "--case", "synthetic", "--limit", "8", "--batch-size", "1", "--tables",
                "1", "--methods", "sg", "--n-samples", "30", "--metrics", "rcap", "--quiet",
                "--no-report", "--out", str(out)])  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    after = {p.name: p.read_bytes() for p in (out / "units").glob("*.json")}
    assert {k: after[k] for k in stored} == stored
    assert RunStore(out).read_meta()["status"] == "complete"


# -- row 14: the background writer: its failure stops the run, Ctrl-C loses no computed unit -------
ARGV_4_UNITS = ["run", "--case", "synthetic", "--limit", "4", "--batch-size", "1", "--tables", "1",
                *TINY]  # fmt: skip


def test_a_unit_the_writer_cannot_store_stops_the_run_with_its_error(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    write, calls = RunStore.write, []

    def failing(self, result):
        calls.append(result.unit.id)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        write(self, result)

    monkeypatch.setattr(RunStore, "write", failing)
    # the writer thread's error ends the run as the main thread's would: one line, exit 2
    user_error(capsys, [*ARGV_4_UNITS, "--out", str(out)], "No space left on device")
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "failed" and meta["sessions"][-1]["status"] == "failed"
    assert len(calls) == 2  # nothing was written after the failure
    assert sorted(p.stem for p in (out / "units").glob("*.json")) == [calls[0]]
    assert RunStore(out).damaged_units() == {}
    assert "storing a unit failed: OSError" in (out / "absgrad.log").read_text()
    monkeypatch.setattr(RunStore, "write", write)  # the disk has room again: resume
    assert main([*ARGV_4_UNITS, "--out", str(out)]) == 0
    assert "skipping 1 stored unit(s)" in (out / "absgrad.log").read_text()
    assert len(list((out / "units").glob("*.json"))) == 4


def test_ctrl_c_stores_every_unit_computed_before_it(tmp_path, monkeypatch):
    from absgrad.protocol.config import make_config
    from absgrad.protocol.executors import Executor
    from absgrad.protocol.runner import run_protocol

    write = RunStore.write

    def slow(self, result):  # the writer lags behind the computation
        time.sleep(0.3)
        write(self, result)

    class InterruptedAfterThree(Executor):
        def run(self, units, worker, on_result):
            for unit in units[:3]:
                on_result(worker(unit))
            raise KeyboardInterrupt

    monkeypatch.setattr(RunStore, "write", slow)
    config = make_config({"case": "synthetic", "limit": 4, "batch_size": 1, "tables": [1],
                          "maps": ["vg"], "metrics": ["rcap"]})  # fmt: skip
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_protocol(config, out, quiet=True, executor=InterruptedAfterThree())
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "interrupted" and meta["done_units"] == 3
    assert len(list((out / "units").glob("*.json"))) == 3
    assert RunStore(out).damaged_units() == {}


# -- issue 23, item 10: the run folder cannot be written -------------------------------------------
SYNTHETIC = ["run", "--case", "synthetic", "--limit", "4", "--batch-size", "2", "--tables", "1"]


def test_a_full_disk_is_a_one_line_error_and_the_resume_is_identical(
    small_run, tmp_path, capsys, monkeypatch
):
    """The disk fills up while the second unit is written (simulated: every write after the
    fourth fails with ENOSPC, leaving half a temporary file as a real one would). The run stops
    with one line naming the folder and saying how to go on; after space is freed the same
    command completes with the scores and maps of an uninterrupted run. Before the fix the
    OSError came out as a traceback (exit 1)."""
    import errno

    from absgrad.protocol import store as store_module

    real = store_module.atomic_write_bytes
    left = {"writes": 4}  # run.json, then the first unit's maps, images and record

    def full_disk(path: Path, data: bytes) -> None:
        if left["writes"] == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
            store_module._tmp_name(path).write_bytes(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        left["writes"] -= 1
        real(path, data)

    out = tmp_path / "full"
    monkeypatch.setattr(store_module, "atomic_write_bytes", full_disk)
    user_error(
        capsys,
        [*SYNTHETIC, *TINY, "--out", str(out)],
        f"cannot write the run folder {out}: No space left on device",
        "run the same command again: the units stored so far are kept",
    )
    assert len(list((out / "units").glob("*.json"))) == 1
    monkeypatch.setattr(store_module, "atomic_write_bytes", real)  # space freed
    assert main([*SYNTHETIC, *TINY, "--out", str(out)]) == 0
    log = (out / "absgrad.log").read_text()
    assert "temporary file(s) left by an interrupted run" in log
    assert "skipping 1 stored unit(s)" in log
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    done, ref = RunStore(out), RunStore(small_run)
    assert done.read_meta()["status"] == "complete"
    units = sorted(ref.done_ids())
    assert sorted(done.done_ids()) == units
    for uid in units:
        assert done.read_record(uid)["scores"] == ref.read_record(uid)["scores"]
        a, b = done.load_maps(uid), ref.load_maps(uid)
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("fault", ["file_in_the_way", "name_too_long", "read_only"])
def test_an_unwritable_run_folder_is_a_one_line_error_before_any_work(
    tmp_path, capsys, monkeypatch, fault
):
    """``--out`` under a file, with a name longer than the file system allows, or in a folder
    the user may not write (simulated: the tests run as root, whom permissions do not stop) is
    refused at once with one line naming the folder; nothing is created. Before the fix each
    was a traceback (exit 1), the read-only one after the model had loaded."""
    import errno
    import tempfile

    from absgrad.utils import files

    if fault == "file_in_the_way":
        (tmp_path / "afile").write_text("")
        out, why = tmp_path / "afile" / "run", "a file is in the way"
    elif fault == "name_too_long":
        out, why = tmp_path / ("r" * 300), "File name too long"
    else:
        out, why = tmp_path / "ro" / "run", "Permission denied"
        (tmp_path / "ro").mkdir()

        def refused(*args, dir=None, **kw):  # noqa: A002 - TemporaryFile's name
            if Path(dir) == tmp_path / "ro":
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(dir))
            return tempfile.TemporaryFile(*args, dir=dir, **kw)

        monkeypatch.setattr(files.tempfile, "TemporaryFile", refused)
    before = sorted(tmp_path.rglob("*"))
    line = user_error(capsys, [*SYNTHETIC, *TINY, "--out", str(out)], "cannot write the run folder")
    assert why in line and "loading case" not in capsys.readouterr().err
    assert sorted(tmp_path.rglob("*")) == before


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes anyway")
def test_a_read_only_run_folder_is_a_one_line_error(tmp_path, capsys):
    """The real thing where permissions apply (not as root): a folder without write permission."""
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        user_error(capsys, [*SYNTHETIC, *TINY, "--out", str(ro / "run")], "Permission denied")
    finally:
        ro.chmod(0o755)
