"""Executors run work units. The local executor runs them here, one after another; others
(e.g. a Ray executor) register with :func:`register_executor` and get the same contract."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

from absgrad.errors import AbsgradError
from absgrad.protocol.plan import Unit, UnitResult

Worker = Callable[[Unit], UnitResult]


class Executor(ABC):
    """Runs ``worker(unit)`` for every unit and hands each result to ``on_result`` as it comes.

    ``worker`` is picklable (``functools.partial(run_unit, config)``), so it can be shipped to
    other processes; ``on_result`` runs in the calling process (it stores the result). Results
    may arrive in any order. An executor must let ``KeyboardInterrupt`` through after stopping.
    """

    name = "executor"

    @abstractmethod
    def run(
        self, units: Sequence[Unit], worker: Worker, on_result: Callable[[UnitResult], None]
    ) -> None:
        """Compute every unit and pass each result to ``on_result``."""

    def describe(self) -> dict[str, Any]:
        """Facts recorded in run.json."""
        return {"name": self.name}


class LocalExecutor(Executor):
    """Runs units in this process, in plan order (so a batch's clean predictions are reused)."""

    name = "local"

    def run(
        self, units: Sequence[Unit], worker: Worker, on_result: Callable[[UnitResult], None]
    ) -> None:
        for unit in units:
            on_result(worker(unit))


EXECUTORS: dict[str, Callable[..., Executor]] = {"local": LocalExecutor}


def register_executor(name: str, factory: Callable[..., Executor]) -> None:
    """Make ``--executor NAME`` available; ``factory(**options)`` builds the executor."""
    EXECUTORS[name] = factory


def get_executor(name: str, **options: Any) -> Executor:
    if name not in EXECUTORS:
        raise AbsgradError(f"unknown executor {name!r}; choose one of {', '.join(EXECUTORS)}")
    return EXECUTORS[name](**options)
