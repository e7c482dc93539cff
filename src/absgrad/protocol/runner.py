"""The protocol runner: plan the units, skip the stored ones, run the rest, record everything."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import platform
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tqdm import tqdm

from absgrad.errors import AbsgradError
from absgrad.protocol.config import RunConfig
from absgrad.protocol.executors import Executor, LocalExecutor
from absgrad.protocol.plan import Unit, group_specs, make_plan
from absgrad.protocol.store import RunStore
from absgrad.protocol.worker import UnitResult, WorkerContext, get_context, run_unit, set_context

log = logging.getLogger("absgrad.protocol")
LOG_FILE = "absgrad.log"


class _TqdmHandler(logging.Handler):
    """Console log lines that do not break progress bars (per-unit lines go to the file only)."""

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "file_only", False):
            return
        tqdm.write(self.format(record), file=sys.stderr)


@contextlib.contextmanager
def run_logging(out: Path, quiet: bool) -> Iterator[None]:
    """Log to ``out/absgrad.log`` (always) and to the console (unless ``quiet``)."""
    out.mkdir(parents=True, exist_ok=True)
    handlers: list[logging.Handler] = [logging.FileHandler(out / LOG_FILE)]
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
    with contextlib.suppress(ImportError):
        import timm

        out["timm"] = timm.__version__
    return out


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def select_images(config: RunConfig, ctx: WorkerContext) -> tuple[list[int], list[str], int]:
    """The run's images: the case's samples passing the selection rule, cut to ``limit``."""
    from absgrad.cases import select

    samples = ctx.case.samples()
    total = len(samples)
    if config.select:
        indices = select(
            ctx.case,
            ctx.model,
            threshold=config.threshold,
            batch_size=ctx.eval.batch_size,
            device=ctx.device,
        )
    else:
        indices = list(range(total))
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


def _case_facts(ctx: WorkerContext) -> dict[str, Any]:
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
    }


def plan_run(
    config: RunConfig, ctx: WorkerContext, meta: dict[str, Any] | None
) -> tuple[list[Unit], dict[str, Any]]:
    """The units of the run and its metadata (reusing a resumed run's image selection)."""
    if meta is not None:
        indices, ids, total = (
            meta["images"]["indices"],
            meta["images"]["ids"],
            meta["images"]["candidates"],
        )
    else:
        indices, ids, total = select_images(config, ctx)
    groups = group_specs(ctx.specs)
    units = make_plan(config, groups, indices, ids)
    new_meta = {
        "config": config.to_dict(),
        "config_hashed": config.hash_dict(),
        "config_hash": config.config_hash(),
        "case": _case_facts(ctx),
        "images": {"indices": indices, "ids": ids, "candidates": total},
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

    Stored units are skipped; each finished unit is stored at once (atomically), so an
    interrupted run loses at most the units in flight. ``context`` overrides the worker
    context of this process (e.g. a wrapped model); it only affects in-process executors.
    """
    out = Path(out)
    store = RunStore(out)
    old = store.check(config, resume)
    executor = executor or LocalExecutor()
    started, t0 = _now(), time.perf_counter()
    # the case, model and plan first: a missing dataset or weights file creates nothing
    _say(quiet, f"loading case {config.case!r} and its model on {config.device}")
    ctx = context or get_context(config)
    auto_chunk = config.eval_batch_size == "auto"
    if auto_chunk:  # every worker uses the size measured here (it is not part of the hash)
        config = dataclasses.replace(config, eval_batch_size=ctx.eval.batch_size)
        _say(quiet, f"eval_batch_size auto: {ctx.eval.batch_size} images per forward pass")
    set_context(config, ctx)
    if old is None and config.select:
        _say(
            quiet,
            f"selecting images by the true-class probability rule "
            f"({len(ctx.case.samples())} candidates)",
        )
    units, meta = plan_run(config, ctx, old)
    with run_logging(out, quiet):
        log.info(
            "images: %d of %d candidates (%s)",
            len(meta["images"]["ids"]),
            meta["images"]["candidates"],
            "selection as stored" if old else ("selected" if config.select else "no selection"),
        )
        if auto_chunk:
            log.info("eval_batch_size auto: measured %d", ctx.eval.batch_size)
        removed = store.clean_temporaries()
        if removed:
            log.info("removed %d temporary file(s) left by an interrupted run", removed)
        done = store.done_ids()
        todo = [u for u in units if u.id not in done]
        skipped = len(units) - len(todo)
        session: dict[str, Any] = {
            "started": started,
            "executor": executor.describe(),
            "device": str(ctx.device),
            "eval_batch_size": ctx.eval.batch_size,
            "versions": versions(),
            "skipped_units": skipped,
            "computed_units": 0,
        }
        meta["sessions"].append(session)
        meta["status"] = "running"
        store.write_meta(meta)
        log.info(
            "%s run of case %s into %s: %d images, %d maps, %d sampler groups, %d units",
            "resuming" if old else "starting",
            config.case,
            out,
            len(meta["images"]["ids"]),
            len(ctx.specs),
            len(meta["groups"]),
            len(units),
        )
        if skipped:
            log.info("skipping %d stored unit(s); computing %d", skipped, len(todo))
        bar = tqdm(
            total=len(units),
            initial=skipped,
            unit="unit",
            desc="protocol",
            disable=quiet,
            dynamic_ncols=True,
        )
        timing = {"load": 0.0, "explain": 0.0, "metrics": 0.0}

        def on_result(result: UnitResult) -> None:
            store.write(result)
            session["computed_units"] += 1
            for k in timing:
                timing[k] += result.timing.get(k, 0.0)
            log.info(
                "computed unit %s (%.2fs)",
                result.unit.id,
                result.timing.get("total", 0.0),
                extra={"file_only": True},
            )
            bar.set_postfix_str(result.unit.id, refresh=False)
            bar.update(1)

        status = "complete"
        try:
            executor.run(todo, functools.partial(run_unit, config), on_result)
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        except BaseException:
            status = "failed"
            raise
        finally:
            bar.close()
            n_done = len(store.done_ids() & {u.id for u in units})
            if status == "complete" and n_done < len(units):
                status = "incomplete"
            session.update(
                finished=_now(),
                wall_s=round(time.perf_counter() - t0, 3),
                unit_seconds={k: round(v, 3) for k, v in timing.items()},
                status=status,
            )
            meta["status"] = status
            meta["done_units"] = n_done
            store.write_meta(meta)
            if status != "complete":
                log.warning(
                    "run %s: %d of %d units stored; rerun the same command to resume",
                    status,
                    n_done,
                    len(units),
                )
            else:
                log.info("all %d units stored (%.1fs this session)", len(units), session["wall_s"])
    return meta
