"""Where a protocol run's time goes: exclusive time per stage, measured by wrapping the
library functions that make up each stage.

:class:`StageTimer` keeps a stack per thread: a wrapped call charges its time to its own stage
minus the time of the wrapped calls inside it (a forward pass inside a dedupe call counts as a
forward pass, not as dedupe). :func:`instrument_runner` wraps the runner's stages for the
duration of a ``with`` block and restores every function afterwards. On a GPU the timer
synchronises the device at every stage boundary, so a stage is charged with its own kernels
(this slows the instrumented run down; time the runner without it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import torch

#: The stages, in the order they are printed; "Python/other" is what no wrapped call covers.
STAGES = (
    "loading images",
    "gradient passes",
    "sampler arithmetic",
    "perturbation building",
    "dedupe",
    "forward passes",
    "store writes",
    "Python/other",
)


class StageTimer:
    """Exclusive seconds and calls per (thread, stage)."""

    def __init__(self, sync: bool = False) -> None:
        self.sync = sync
        self.seconds: dict[tuple[str, str], float] = defaultdict(float)
        self.calls: Counter[tuple[str, str]] = Counter()
        self._local = threading.local()

    def _now(self) -> float:
        if self.sync:
            torch.cuda.synchronize()
        return time.perf_counter()

    def _stack(self) -> list[list[Any]]:
        if not hasattr(self._local, "stack"):
            self._local.stack = []
        return self._local.stack

    def _thread(self) -> str:
        t = threading.current_thread()
        return "main" if t is threading.main_thread() else t.name

    def wrap(self, fn: Callable[..., Any], stage: str) -> Callable[..., Any]:
        """``fn`` with its calls' exclusive time charged to ``stage``."""
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}")

        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            stack, now = self._stack(), self._now()
            if stack:  # the caller's stage stops here
                top = stack[-1]
                self.seconds[(self._thread(), top[0])] += now - top[1]
            stack.append([stage, now])
            self.calls[(self._thread(), stage)] += 1
            try:
                return fn(*args, **kwargs)
            finally:
                now = self._now()
                own, start = stack.pop()
                self.seconds[(self._thread(), own)] += now - start
                if stack:
                    stack[-1][1] = now

        return timed

    def thread_seconds(self, thread: str = "main") -> dict[str, float]:
        return {s: v for (t, s), v in self.seconds.items() if t == thread}

    def other_threads(self) -> dict[str, float]:
        """Seconds per stage spent on threads other than the main one (overlapped work)."""
        out: dict[str, float] = defaultdict(float)
        for (t, s), v in self.seconds.items():
            if t != "main":
                out[s] += v
        return dict(out)


@contextlib.contextmanager
def instrument_runner(timer: StageTimer) -> Iterator[None]:
    """Charge the runner's calls to :data:`STAGES` while the block runs."""
    import absgrad.methods
    import absgrad.methods.gradcam as gradcam
    import absgrad.metrics
    import absgrad.metrics.forward as forward
    import absgrad.metrics.inputs as inputs
    import absgrad.metrics.thresholds as thresholds
    from absgrad.methods.samplers import GradContext
    from absgrad.metrics.dedupe import DedupQueue
    from absgrad.metrics.registry import PERTURBATIONS
    from absgrad.protocol import store
    from absgrad.protocol.worker import WorkerContext

    def w(obj: Any, name: str, stage: str) -> Any:
        return mock.patch.object(obj, name, timer.wrap(getattr(obj, name), stage))

    targets = [
        w(WorkerContext, "batch", "loading images"),
        w(GradContext, "grad", "gradient passes"),
        w(gradcam, "gradcam", "gradient passes"),
        w(absgrad.methods, "explain_many", "sampler arithmetic"),
        w(absgrad.methods, "reverse", "sampler arithmetic"),
        w(absgrad.metrics, "blurred", "perturbation building"),
        w(inputs, "prepare", "perturbation building"),
        w(thresholds, "sorted_values", "perturbation building"),
        w(DedupQueue, "__init__", "dedupe"),
        w(DedupQueue, "keys", "dedupe"),
        w(DedupQueue, "put", "dedupe"),
        w(DedupQueue, "probs", "dedupe"),
        w(forward, "chunk_probs", "forward passes"),
        w(store.RunStore, "write", "store writes"),
        w(store.UnitWriter, "submit", "store writes"),  # the background writer
        w(store.UnitWriter, "close", "store writes"),
    ]
    built = {
        key: dataclasses.replace(p, build=timer.wrap(p.build, "perturbation building"))
        for key, p in PERTURBATIONS.items()
    }
    targets.append(mock.patch.dict(PERTURBATIONS, built))
    with contextlib.ExitStack() as stack:
        for patch in targets:
            stack.enter_context(patch)
        yield
