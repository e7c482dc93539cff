"""The protocol runner: plan the units, skip the stored ones, run the rest, record everything."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib.metadata
import logging
import os
import platform
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tqdm import tqdm

from absgrad.errors import AbsgradError
from absgrad.models.fingerprint import fingerprint_changes, model_fingerprint
from absgrad.progress import RunProgress
from absgrad.protocol.config import RunConfig, check_device
from absgrad.protocol.executors import Executor, LocalExecutor
from absgrad.protocol.plan import Unit, UnitResult, group_specs, make_plan
from absgrad.protocol.store import RunDirError, RunStore, UnitWriter
from absgrad.protocol.worker import (
    WorkerContext,
    get_context,
    resolve_weights,
    run_unit,
    set_context,
)
from absgrad.utils import determinism
from absgrad.utils.determinism import set_deterministic
from absgrad.utils.devices import describe_device
from absgrad.utils.files import check_writable, output_errors

log = logging.getLogger("absgrad.protocol")
LOG_FILE = "absgrad.log"


class _TqdmHandler(logging.Handler):
    """Console log lines that do not break progress bars (per-unit lines go to the file only)."""

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "file_only", False):
            return
        tqdm.write(self.format(record), file=sys.stderr)


class _LogFile(logging.FileHandler):
    """The run's log file. A line that cannot be written (a full disk) is lost without the
    traceback logging prints by default: the run's own next write reports the disk."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        pass


@contextlib.contextmanager
def run_logging(out: Path, quiet: bool) -> Iterator[None]:
    """Log to ``out/absgrad.log`` (always) and to the console (unless ``quiet``)."""
    out.mkdir(parents=True, exist_ok=True)
    handlers: list[logging.Handler] = [_LogFile(out / LOG_FILE)]
    handlers[0].setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    if not quiet:
        console = _TqdmHandler()
        console.setFormatter(logging.Formatter("%(message)s"))
        handlers.append(console)
    old_level = log.level
    log.setLevel(logging.INFO)
    for h in handlers:
        log.addHandler(h)
    try:
        yield
    finally:
        for h in handlers:
            log.removeHandler(h)
            h.close()
        log.setLevel(old_level)


def _say(quiet: bool, message: str) -> None:
    """A console line before the run's log file exists."""
    if not quiet:
        tqdm.write(message, file=sys.stderr)


def versions() -> dict[str, str]:
    """Library versions recorded with a run."""
    import numpy
    import torch

    import absgrad

    out = {
        "absgrad": absgrad.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
    }
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        # the installed version, without importing timm (which imports torchvision and
        # torch._dynamo: seconds of start-up for a run whose model needs neither)
        out["timm"] = importlib.metadata.version("timm")
    return out


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def select_images(
    config: RunConfig, ctx: WorkerContext, progress: bool = False
) -> tuple[list[int], list[str], int]:
    """The run's images: the case's samples passing the selection rule, cut to ``limit``
    (``progress``: a progress bar for the selection pass). An image file that cannot be read
    is skipped with a warning, with or without selection (``samples().unreadable`` lists them).
    """
    from absgrad.cases import select
    from absgrad.cases.select import readable

    samples = ctx.case.samples()
    total = len(samples)
    if config.select:
        indices = select(
            ctx.case,
            ctx.model,
            threshold=config.threshold,
            batch_size=ctx.eval.batch_size,
            device=ctx.device,
            progress=progress,
        )
    else:  # every image is decoded once, so that one that cannot be is skipped here too
        indices = readable(ctx.case, config.limit)
    if config.limit is not None:
        indices = indices[: config.limit]
    if not indices:
        raise AbsgradError(
            f"no image of case {config.case!r} passes the selection rule "
            f"(threshold {ctx.case.threshold if config.threshold is None else config.threshold}); "
            "lower 'threshold' or set 'select: false'"
        )
    ids = list(samples.ids) if hasattr(samples, "ids") else [samples[i].id for i in range(total)]
    return indices, [ids[i] for i in indices], total


def class_names(case: Any, indices: list[int]) -> dict[str, str]:
    """``{label: name}`` of the labels of the images ``indices``, where the case names its
    classes (the user's names, or the model's where the labels are its output indices)."""
    names = case.class_names() if hasattr(case, "class_names") else None
    if not names:
        return {}
    records = getattr(case.samples(), "records", None)
    labels = sorted({records[i].label for i in indices}) if records else range(len(names))
    return {str(y): str(names[y]) for y in labels if 0 <= y < len(names)}


def _case_facts(ctx: WorkerContext, indices: list[int]) -> dict[str, Any]:
    c = ctx.case
    return {
        "name": c.name,
        "num_classes": c.num_classes,
        "image_size": list(c.image_size),
        "normalization": [list(v) for v in c.normalization],
        "has_masks": c.has_masks,
        "gradcam_layer": c.gradcam_layer,
        "reversal": {k: list(v) for k, v in c.reversal.items()},
        "model": type(ctx.model).__name__,
        "data": str(c.data) if getattr(c, "data", None) else None,
        "weights": str(c.weights) if getattr(c, "weights", None) else None,
        **({"folder": c.describe()} if hasattr(c, "describe") else {}),
        "class_names": class_names(c, indices),
    }


def plan_run(
    config: RunConfig, ctx: WorkerContext, meta: dict[str, Any] | None, progress: bool = False
) -> tuple[list[Unit], dict[str, Any]]:
    """The units of the run and its metadata (reusing a resumed run's image selection)."""
    if meta is not None:
        indices, ids, total = (
            meta["images"]["indices"],
            meta["images"]["ids"],
            meta["images"]["candidates"],
        )
        unreadable = meta["images"].get("unreadable", [])
    else:
        indices, ids, total = select_images(config, ctx, progress)
        # a case's own sequence of samples (not a CaseDataset) may keep no such list
        unreadable = list(getattr(ctx.case.samples(), "unreadable", []))
    groups = group_specs(ctx.specs)
    units = make_plan(config, groups, indices, ids)
    new_meta = {
        "config": config.to_dict(),
        "config_hashed": config.hash_dict(),
        "config_hash": config.config_hash(),
        "case": _case_facts(ctx, indices),
        "images": {
            "indices": indices,
            "ids": ids,
            "candidates": total,
            "unreadable": unreadable,
        },
        "maps": {lb: s.as_dict() for lb, s in ctx.specs.items()},
        "groups": [
            {"name": g.name, "labels": list(g.labels), "derived": list(g.derived)} for g in groups
        ],
        "metrics": list(ctx.metrics),
        "seed": config.seed,
        "batch_seeds": sorted({u.seed for u in units}),
        "n_units": len(units),
        "sessions": (meta or {}).get("sessions", []),
        "created": (meta or {}).get("created", _now()),
    }
    return units, new_meta


def _choose_engine(
    config: RunConfig, ctx: WorkerContext, todo: list[Unit]
) -> tuple[RunConfig, str]:
    """Resolve ``engine: auto`` by the device and the number of images left to compute; every
    worker gets the resolved engine (it is not part of the hash: scores agree to 1e-5)."""
    from absgrad.inference.engine import engine_costs, resolve_engine

    built: dict[str, Any] = {}  # the engines timed, kept so that the chosen one is set up once

    def measure(kinds: tuple[str, ...]) -> dict[str, float]:
        shape = tuple(ctx.case.samples()[0].image.shape)
        chunk = ctx.eval.batch_size
        costs = engine_costs(
            ctx.model, shape, ctx.device, chunk, kinds, precision=config.precision, built=built
        )
        shown = ", ".join(f"{k}: {v * 1e6:.0f} us" for k, v in costs.items())
        log.info("engine auto: forward cost per image at %d per chunk: %s", chunk, shown)
        return costs

    n_images = len({i for u in todo for i in u.indices})
    kind = resolve_engine(
        config.engine,
        n_images,
        device=str(ctx.device),
        precision=config.precision,
        measure=measure if todo else None,  # nothing left to compute: nothing to time
    )
    if kind != config.engine:
        config = dataclasses.replace(config, engine=kind)
        set_context(config, ctx)
    if kind in built:
        ctx.forward = built[kind]
    elif getattr(ctx.forward, "kind", None) != kind:
        ctx.use_engine(kind)
    return config, kind


def data_changes(old: dict[str, Any], new: dict[str, Any], ids: list[str]) -> list[str]:
    """What differs between two data fingerprints, for the run's images ``ids`` and overall."""
    before, now = old.get("images", {}), new.get("images", {})
    out = []
    for i in ids:
        if i not in now:
            out.append(f"image {i} is gone")
        elif i in before and before[i][0] != now[i][0]:
            out.append(f"image {i}: label {before[i][0]} -> {now[i][0]}")
        elif i in before and before[i][1:] != now[i][1:]:
            out.append(f"image {i}: file replaced or edited (size/mtime)")
    if old.get("n_images") != new.get("n_images"):
        out.append(f"the case lists {new.get('n_images')} images, was {old.get('n_images')}")
    if not out:
        out.append("images outside this run's selection changed (the selection may differ)")
    return out


class RunSession:
    """One session of a run: the folder's lock, the log, run.json's bookkeeping and status.

    Entering takes the lock, checks the folder (config and data fingerprint), plans the units,
    recomputes nothing but discards damaged units (with a warning naming the file), and marks
    the run "running". Leaving records the session's end and the run's status (complete,
    incomplete, interrupted, failed) and releases the lock. A SIGINT stops the run within about
    a second even while the main thread is inside a long tensor operation.
    """

    def __init__(
        self,
        config: RunConfig,
        store: RunStore,
        ctx: WorkerContext,
        *,
        resume: bool | None,
        executor: Executor,
        quiet: bool,
        started: str,
        t0: float,
        auto_chunk: bool = False,
    ) -> None:
        self.config, self.store, self.ctx = config, store, ctx
        self.auto_chunk = auto_chunk
        self.resume, self.executor, self.quiet = resume, executor, quiet
        self.started, self.t0 = started, t0
        self.units: list[Unit] = []
        self.todo: list[Unit] = []
        self.meta: dict[str, Any] = {}
        self.session: dict[str, Any] = {}
        self.timing = {"load": 0.0, "explain": 0.0, "metrics": 0.0}
        self.writer: UnitWriter | None = None
        self._final = threading.Lock()
        self._finished = False
        self._stack = contextlib.ExitStack()

    # -- entering ---------------------------------------------------------------------------
    def __enter__(self) -> RunSession:
        stack = self._stack
        try:
            stack.enter_context(self.store.lock())
            old = self.store.check(self.config, self.resume)  # again, now that we hold the lock
            fingerprint = self.ctx.case.data_fingerprint()
            model = model_fingerprint(self.ctx.model)
            if old is not None:
                self._check_data(old, fingerprint)
                self._check_model(old, model)
            self.units, self.meta = plan_run(self.config, self.ctx, old, progress=not self.quiet)
            self.meta["model"] = model
            ids = self.meta["images"]["ids"]
            self.meta["data"] = {
                "digest": fingerprint["digest"],
                "n_images": fingerprint["n_images"],
                "images": {i: fingerprint["images"][i] for i in ids if i in fingerprint["images"]},
            }
            stack.enter_context(run_logging(self.store.root, self.quiet))
            self._start(old)
            stack.enter_context(prompt_interrupt(self._on_stuck_interrupt))
            self.writer = UnitWriter(self.store, self._stored)  # closed by finish()
        except BaseException:
            stack.close()
            if not self.store.meta_path.is_file():  # leave no trace of a run that never began
                self.store.lock_path.unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    self.store.root.rmdir()
            raise
        return self

    def _check_data(self, old: dict[str, Any], fingerprint: dict[str, Any]) -> None:
        stored = old.get("data")
        if stored is None or stored.get("digest") == fingerprint["digest"]:
            return  # a run from before data fingerprints, or unchanged data
        changes = data_changes(stored, fingerprint, old["images"]["ids"])
        shown = "; ".join(changes[:5]) + (
            f"; ... ({len(changes)} in all)" if len(changes) > 5 else ""
        )
        raise RunDirError(
            f"the data of the run in {self.store.root} changed since it started: {shown}. "
            "Its stored units were scored on the old data; nothing was overwritten. Start a new "
            "run (another --out) to use the new data, or restore the old files to resume."
        )

    def _check_model(self, old: dict[str, Any], model: dict[str, Any]) -> None:
        """Refuse to resume with a model whose parameters or buffers differ from the stored
        units' (a factory edited, or loading other weights itself)."""
        stored = old.get("model")
        if not stored:
            return  # a run from before model fingerprints
        changed = fingerprint_changes(stored, model)
        if not changed:
            return
        shown = ", ".join(changed[:6]) + (
            f", ... ({len(changed)} in all)" if len(changed) > 6 else ""
        )
        raise RunDirError(
            f"the model of the run in {self.store.root} changed since it started: its "
            f"parameters differ in {shown} (fingerprint {stored.get('digest')} -> "
            f"{model.get('digest')}; {self.config.model or self.config.case}). Its stored units "
            "were scored with the old model; nothing was overwritten. Start a new run (another "
            "--out) for the new model, or restore the old one to resume."
        )

    def _start(self, old: dict[str, Any] | None) -> None:
        store, meta, config = self.store, self.meta, self.config
        log.info(
            "images: %d of %d candidates (%s)",
            len(meta["images"]["ids"]),
            meta["images"]["candidates"],
            "selection as stored" if old else ("selected" if config.select else "no selection"),
        )
        if meta["images"]["unreadable"]:
            log.warning(
                "%d image file(s) cannot be read and are skipped (run.json: images.unreadable)",
                len(meta["images"]["unreadable"]),
            )
        if self.auto_chunk:
            log.info("eval_batch_size auto: measured %d", self.ctx.eval.batch_size)
        removed = store.clean_temporaries()
        if removed:
            log.info("removed %d temporary file(s) left by an interrupted run", removed)
        for s in meta["sessions"]:
            if "finished" not in s:
                s["status"] = "killed"  # its process ended without recording its end
        unit_ids = {u.id for u in self.units}
        for uid, problem in store.damaged_units(unit_ids).items():
            warnings.warn(f"{problem}: recomputing unit {uid}", stacklevel=3)
            log.warning("%s: recomputing unit %s", problem, uid)
            store.discard(uid)
        done = store.done_ids()
        self.todo = [u for u in self.units if u.id not in done]
        skipped = len(self.units) - len(self.todo)
        self.config, engine = _choose_engine(config, self.ctx, self.todo)
        log.info("engine: %s (%s)", engine, self.config.precision)
        log.info(
            "device: %s; deterministic kernels: %s",
            describe_device(self.ctx.device),
            "on" if config.deterministic else "off",
        )
        self.session = {
            "started": self.started,
            "executor": self.executor.describe(),
            "device": str(self.ctx.device),
            "deterministic": config.deterministic,
            "eval_batch_size": self.ctx.eval.batch_size,
            "engine": engine,
            "versions": versions(),
            "skipped_units": skipped,
            "computed_units": 0,
        }
        meta["sessions"].append(self.session)
        meta["status"] = "running"
        store.write_meta(meta)
        log.info(
            "%s run of case %s into %s: %d images, %d maps, %d sampler groups, %d units",
            "resuming" if old else "starting",
            config.case,
            store.root,
            len(meta["images"]["ids"]),
            len(self.ctx.specs),
            len(meta["groups"]),
            len(self.units),
        )
        if skipped:
            log.info("skipping %d stored unit(s); computing %d", skipped, len(self.todo))

    # -- while running ------------------------------------------------------------------------
    def record(self, result: UnitResult) -> None:
        """Hand a finished unit to the writer thread, which stores it (atomically) and counts
        it; an error of an earlier unit's writing raises here."""
        if self.writer is None:
            raise RuntimeError("record() outside the session's 'with' block")
        try:
            self.writer.submit(result)
        except Exception as e:
            log.error("storing a unit failed: %s: %s", type(e).__name__, e)
            raise

    def _stored(self, result: UnitResult) -> None:
        """Count a stored unit (on the writer thread)."""
        self.session["computed_units"] += 1
        for k in self.timing:
            self.timing[k] += result.timing.get(k, 0.0)
        log.info(
            "computed unit %s (%.2fs)",
            result.unit.id,
            result.timing.get("total", 0.0),
            extra={"file_only": True},
        )

    # -- leaving ----------------------------------------------------------------------------
    def finish(self, status: str) -> None:
        """Store every computed unit, then record the session's end and the run's status (once,
        whichever thread comes first). A failure to store a unit makes a complete run
        "failed" and raises after the status is recorded; when the run ends for another
        reason it is logged (the other reason propagates)."""
        with self._final:
            if self._finished:
                return
            self._finished = True
            error = None
            try:
                if self.writer is not None:
                    self.writer.close()
            except Exception as e:  # noqa: BLE001 - recorded, then raised or logged below
                log.error("storing a unit failed: %s: %s", type(e).__name__, e)
                if status == "complete":  # nothing else went wrong: this error ends the run
                    error, status = e, "failed"
            n_done = len(self.store.done_ids() & {u.id for u in self.units})
            if status == "complete" and n_done < len(self.units):
                status = "incomplete"
            self.session.update(
                finished=_now(),
                wall_s=round(time.perf_counter() - self.t0, 3),
                unit_seconds={k: round(v, 3) for k, v in self.timing.items()},
                status=status,
            )
            self.meta["status"] = status
            self.meta["done_units"] = n_done
            self.store.write_meta(self.meta)
            if status != "complete":
                log.warning(
                    "run %s: %d of %d units stored; rerun the same command to resume",
                    status,
                    n_done,
                    len(self.units),
                )
            else:
                n, wall = len(self.units), self.session["wall_s"]
                log.info("all %d units stored (%.1fs this session)", n, wall)
            if error is not None:
                raise error

    def _on_stuck_interrupt(self) -> None:
        """SIGINT while the main thread is stuck in a long operation: record and leave now."""
        self.finish("interrupted")
        print(
            "absgrad: interrupted; stored units are kept, run the same command to resume",
            file=sys.stderr,
            flush=True,
        )

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        try:
            if kind is None:
                self.finish("complete")
            else:
                self.finish("interrupted" if issubclass(kind, KeyboardInterrupt) else "failed")
        finally:
            self._stack.close()


@contextlib.contextmanager
def prompt_interrupt(on_stuck: Callable[[], None], grace: float = 1.0) -> Iterator[None]:
    """Make SIGINT stop the process within ``grace`` seconds, even inside a long C operation.

    Python runs its SIGINT handler (``KeyboardInterrupt``) only when the main thread returns
    to the interpreter, which a long tensor operation can delay for many seconds. A watcher
    thread wakes on the signal itself (``signal.set_wakeup_fd``); when the main thread has not
    left this block ``grace`` seconds later, it calls ``on_stuck`` and ends the process with
    status 130. ``on_stuck`` stores the computed units first; every stored unit is complete
    (units are written atomically).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    r, w = os.pipe()
    os.set_blocking(w, False)
    try:
        previous = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
    except ValueError:  # pragma: no cover - not the main interpreter
        os.close(r)
        os.close(w)
        yield
        return
    left = threading.Event()

    def watch() -> None:
        while True:
            try:
                data = os.read(r, 64)
            except OSError:
                return
            if left.is_set() or not data:
                return
            if signal.SIGINT in data and not left.wait(grace):
                on_stuck()
                os._exit(130)

    watcher = threading.Thread(target=watch, name="absgrad-interrupt", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        left.set()
        signal.set_wakeup_fd(previous)
        with contextlib.suppress(OSError):
            os.write(w, b"\0")
        watcher.join(timeout=5)
        os.close(r)
        os.close(w)


def execute(session: RunSession, executor: Executor) -> None:
    """Compute the session's units that are not stored yet, storing each as it finishes."""
    meta = session.meta
    bar = RunProgress(
        session.units,
        len(session.units) - len(session.todo),
        len(meta["groups"]),
        len(meta["images"]["ids"]),
        disable=session.quiet,
    )

    def on_result(result: UnitResult) -> None:
        session.record(result)
        bar.update(result.unit)

    try:
        executor.run(session.todo, functools.partial(run_unit, session.config), on_result)
    finally:
        bar.close()


def run_protocol(
    config: RunConfig,
    out: str | Path,
    *,
    resume: bool | None = None,
    executor: Executor | None = None,
    quiet: bool = False,
    context: WorkerContext | None = None,
) -> dict[str, Any]:
    """Run (or resume) the protocol of ``config`` into ``out``; return the final run.json content.

    Stored units are skipped; each finished unit is stored (atomically, by a background
    writer thread, while the next units compute), so a killed run loses at most the units in
    flight and the one or two waiting to be written; Ctrl-C loses only the units in flight.
    ``context`` overrides the worker context of this process (e.g. a wrapped model); it only
    affects in-process executors.
    A second run into the same folder while one is running is refused (the folder's lock).
    """
    if not str(out).strip():  # Path("") would be the current folder
        raise RunDirError("the run folder's name is empty: name the folder to write the run into")
    out = Path(out)
    # the one place an OSError of writing into the run folder becomes a one-line error
    with output_errors(out, "the run folder", full_hint=FULL_DISK_HINT):
        check_writable(out, "the run folder")  # before loading anything
        return _run_protocol(config, out, resume, executor, quiet, context)


#: What to do after a full disk stopped a run.
FULL_DISK_HINT = (
    "; free some space and run the same command again: the units stored so far are kept"
)


def _run_protocol(
    config: RunConfig,
    out: Path,
    resume: bool | None,
    executor: Executor | None,
    quiet: bool,
    context: WorkerContext | None,
) -> dict[str, Any]:
    store = RunStore(out)
    # published weights fetched and identified (part of the hash) before anything is written
    config = resolve_weights(config)
    store.check(config, resume)  # refuse early, before loading anything
    executor = executor or LocalExecutor()
    started, t0 = _now(), time.perf_counter()
    # the device once, here: 'auto' becomes this machine's best device, and every worker
    # (local, another process, Ray) gets that device in its config
    if context is None:
        device = check_device("device", config.device)
    else:
        device = str(context.device) if config.device == "auto" else config.device
    shown = describe_device(device) + (" (device auto)" if config.device == "auto" else "")
    config = dataclasses.replace(config, device=device)
    # the case, model and plan first: a missing dataset or weights file creates nothing
    _say(quiet, f"loading case {config.case!r} and its model on {shown}")
    with determinism.kept():  # the caller's switches come back after the run
        set_deterministic(config.deterministic)
        return _run(config, store, resume, executor, quiet, context, started, t0)


def _run(
    config: RunConfig,
    store: RunStore,
    resume: bool | None,
    executor: Executor,
    quiet: bool,
    context: WorkerContext | None,
    started: str,
    t0: float,
) -> dict[str, Any]:
    ctx = context or get_context(config)
    if context is None:
        ctx.case.refresh()  # a context kept from an earlier run re-reads the data files
    auto_chunk = config.eval_batch_size == "auto"
    if auto_chunk:  # every worker uses the size measured here (not hashed)
        config = dataclasses.replace(config, eval_batch_size=ctx.eval.batch_size)
        _say(quiet, f"eval_batch_size auto: {ctx.eval.batch_size} images per forward pass")
    if config.grad_batch_size == "auto":  # likewise the gradient chunk (the unit's batch on a CPU)
        config = dataclasses.replace(config, grad_batch_size=ctx.config.grad_batch_size)
    set_context(config, ctx)
    if config.select and not store.meta_path.is_file():
        _say(
            quiet,
            f"selecting images by the true-class probability rule "
            f"({len(ctx.case.samples())} candidates)",
        )
    session = RunSession(
        config,
        store,
        ctx,
        resume=resume,
        executor=executor,
        quiet=quiet,
        started=started,
        t0=t0,
        auto_chunk=auto_chunk,
    )
    with session:
        execute(session, executor)
    return session.meta
