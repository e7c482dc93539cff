"""Run protocol units on Ray (``absgrad run ... --executor ray``): a local Ray instance or a cluster.

Units go to a pool of Ray actors. An actor is one long-lived worker process, so the case and its
model are loaded once per worker (``absgrad.protocol.worker`` caches them per process) and reused
for every unit the actor runs; units of one image batch are preferably sent to the same actor,
which then computes the batch's clean predictions once. Results come back to the driver, which
stores them through ``on_result`` (the same store, ``absgrad report`` and resume as the local
executor), or are written by the workers themselves to a shared ``write_dir``.

Fault tolerance: a worker process that dies loses only its in-flight units; Ray restarts the
actor and retries them (``max_restarts`` / ``max_task_retries``), and a unit lost with a worker
that cannot be restarted is resubmitted to a fresh actor, up to ``retries`` times. Every unit's
result is handed to ``on_result`` exactly once. Ray is imported only when the executor is built,
so the rest of absgrad works without it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

from absgrad.errors import AbsgradError
from absgrad.names import WEIGHT_WORDS
from absgrad.protocol.executors import Executor, Worker, register_executor
from absgrad.protocol.plan import Unit, UnitResult

log = logging.getLogger("absgrad.protocol")

INSTALL_HINT = "pip install 'absgrad[ray]'"


class RayUnavailableError(AbsgradError):
    """``--executor ray`` was asked for but Ray cannot be imported or reached."""


def import_ray() -> ModuleType:
    """The ``ray`` module, or :class:`RayUnavailableError` naming the extra to install."""
    try:
        import ray
    except ImportError as e:
        raise RayUnavailableError(
            f"--executor ray needs Ray, which is not installed here ({e}); "
            f"install the extra with: {INSTALL_HINT}"
        ) from None
    return ray


class UnitRunner:
    """The body of a Ray actor: runs units with ``worker`` in one long-lived process.

    Per-process caches (the case, the model on its device, recent batches) live in the worker
    module, so they survive from one unit to the next.
    """

    def __init__(self, worker: Worker, threads: int | None, write_dir: str | None) -> None:
        if threads:
            import torch

            torch.set_num_threads(threads)
        self.worker = worker
        self.write_dir = write_dir

    def pid(self) -> int:
        """This worker's process id."""
        return os.getpid()

    def run(self, unit: Unit) -> UnitResult:
        """Compute ``unit``; with ``write_dir``, store it here and return it without arrays."""
        result = self.worker(unit)
        if self.write_dir is not None:
            from absgrad.protocol.store import RunStore

            RunStore(self.write_dir).write(result)
            result = dataclasses.replace(result, maps=None, images=None)
        return result


@dataclasses.dataclass
class _Slot:
    """One actor of the pool and what the driver has sent it."""

    actor: Any
    pid: int | None = None
    last_batch: int | None = None
    in_flight: dict[Any, Unit] = dataclasses.field(default_factory=dict)  # ObjectRef -> unit


class RayExecutor(Executor):
    """Runs units on Ray actors; see the module docstring.

    Args:
        address: ``None`` starts a local Ray instance (shut down after the run); ``"auto"`` or
            ``"ray://HOST:PORT"`` (or a ``HOST:PORT`` GCS address) joins a running cluster.
            When Ray is already initialised in this process, that instance is used as it is.
        workers: actors to start; default: the local instance's CPU count, or as many as the
            cluster's GPUs (with ``gpus_per_worker``) or CPUs can host.
        gpus_per_worker: ``num_gpus`` of each actor (fractions share a GPU); use ``--device cuda``.
        cpus_per_worker: ``num_cpus`` of each actor, also its torch thread count.
        max_in_flight: units sent but not returned, over all workers (default: 2 per worker).
        retries: how often Ray restarts a dead worker and retries its units, and how often the
            driver resubmits a unit whose worker could not be restarted.
        write_dir: workers store results there themselves (a filesystem shared with the driver:
            pass the run's output directory); the driver then only records them.
        startup_timeout: seconds to wait for the workers to start before giving up.
        init_options: extra ``ray.init`` keyword arguments (e.g. ``_temp_dir``, ``runtime_env``).
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        workers: int | None = None,
        gpus_per_worker: float = 0.0,
        cpus_per_worker: float = 1.0,
        max_in_flight: int | None = None,
        retries: int = 3,
        write_dir: str | os.PathLike[str] | None = None,
        startup_timeout: float = 300.0,
        init_options: dict[str, Any] | None = None,
    ) -> None:
        self._ray = import_ray()
        if workers is not None and workers < 1:
            raise AbsgradError(f"--workers must be at least 1, got {workers}")
        if gpus_per_worker < 0:
            raise AbsgradError(f"--gpus-per-worker must be >= 0, got {gpus_per_worker}")
        if cpus_per_worker <= 0:
            raise AbsgradError(f"cpus_per_worker must be > 0, got {cpus_per_worker}")
        if max_in_flight is not None and max_in_flight < 1:
            raise AbsgradError(f"max_in_flight must be at least 1, got {max_in_flight}")
        if retries < 0:
            raise AbsgradError(f"retries must be >= 0, got {retries}")
        self.address = address
        self.workers = workers
        self.gpus_per_worker = float(gpus_per_worker)
        self.cpus_per_worker = float(cpus_per_worker)
        self.max_in_flight = max_in_flight
        self.retries = retries
        self.write_dir = os.fspath(write_dir) if write_dir is not None else None
        self.startup_timeout = startup_timeout
        self.init_options = dict(init_options or {})
        self.poll_s = 0.5
        self.slots: list[_Slot] = []
        self.stats: dict[str, int] = {}

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ray": self._ray.__version__,
            "address": self.address or "local",
            "workers": self.workers,
            "gpus_per_worker": self.gpus_per_worker,
            "cpus_per_worker": self.cpus_per_worker,
            "write_dir": self.write_dir,
        }

    def worker_pids(self) -> list[int | None]:
        """Process ids of the pool's workers as last seen (tests kill one to check recovery)."""
        return [s.pid for s in self.slots]

    # -- Ray session ----------------------------------------------------------------------
    def _connect(self) -> bool:
        """Initialise Ray unless it already is; True when this call started it."""
        ray = self._ray
        if ray.is_initialized():
            return False
        opts: dict[str, Any] = {"include_dashboard": False, "configure_logging": False}
        opts.update(self.init_options)
        if self.address is None:
            n = self.workers or os.cpu_count() or 1
            opts.setdefault("num_cpus", max(1, round(n * self.cpus_per_worker)))
            ray.init(address="local", **opts)
        else:
            try:
                ray.init(address=self.address, **opts)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise RayUnavailableError(
                    f"cannot connect to the Ray cluster at --address {self.address}: {e} "
                    "(is `ray start --head` running there?)"
                ) from None
        return True

    def _pool_size(self, n_units: int) -> int:
        resources = self._ray.cluster_resources()
        gpus, cpus = resources.get("GPU", 0.0), resources.get("CPU", 0.0)
        if self.gpus_per_worker > gpus:
            raise RayUnavailableError(
                f"--gpus-per-worker {self.gpus_per_worker:g} asked but the Ray cluster has "
                f"{gpus:g} GPU(s); resources: {resources}"
            )
        if self.cpus_per_worker > cpus:
            raise RayUnavailableError(
                f"each worker needs {self.cpus_per_worker:g} CPU(s) but the Ray cluster has {cpus:g}"
            )
        if self.workers is not None:
            n = self.workers
        elif self.gpus_per_worker > 0:
            n = int(gpus // self.gpus_per_worker)
        else:
            n = int(cpus // self.cpus_per_worker)
        return max(1, min(n, n_units))

    def _new_actor(self, worker: Worker) -> Any:
        cls = self._ray.remote(UnitRunner).options(
            num_cpus=self.cpus_per_worker,
            num_gpus=self.gpus_per_worker,
            max_restarts=self.retries,
            max_task_retries=self.retries,
        )
        threads = max(1, int(self.cpus_per_worker))
        return cls.remote(worker, threads, self.write_dir)

    def _await_pids(self, slots: Sequence[_Slot]) -> None:
        ray = self._ray
        refs = [s.actor.pid.remote() for s in slots]
        try:
            pids = ray.get(refs, timeout=self.startup_timeout)
        except ray.exceptions.GetTimeoutError:
            raise RayUnavailableError(
                f"Ray workers did not start within {self.startup_timeout:g} s (each asks for "
                f"{self.cpus_per_worker:g} CPU, {self.gpus_per_worker:g} GPU; cluster: "
                f"{ray.cluster_resources()})"
            ) from None
        for s, pid in zip(slots, pids, strict=True):
            s.pid = pid

    # -- scheduling -----------------------------------------------------------------------
    @staticmethod
    def _take(
        pending: OrderedDict[int, deque[Unit]], slot: _Slot, claimed: set[int | None]
    ) -> Unit:
        """Next unit for ``slot``: its current batch first, then a batch nobody works on."""
        batch = slot.last_batch
        if batch not in pending:
            batch = next((b for b in pending if b not in claimed), next(iter(pending)))
        queue = pending[batch]
        unit = queue.popleft()
        if not queue:
            del pending[batch]
        slot.last_batch = batch
        return unit

    def run(
        self, units: Sequence[Unit], worker: Worker, on_result: Callable[[UnitResult], None]
    ) -> None:
        ray = self._ray
        unique: dict[str, Unit] = {}
        for u in units:
            unique.setdefault(u.id, u)
        if not unique:
            return
        pending: OrderedDict[int, deque[Unit]] = OrderedDict()
        for u in unique.values():
            pending.setdefault(u.batch, deque()).append(u)
        if self.address is not None:
            _warn_relative_paths(worker)
        owned = self._connect()
        self.slots = []
        self.stats = {
            "units": len(unique),
            "resubmitted": 0,
            "replaced_workers": 0,
            "duplicates": 0,
        }
        try:
            n = self._pool_size(len(unique))
            self.slots = [_Slot(self._new_actor(worker)) for _ in range(n)]
            self._await_pids(self.slots)
            limit = self.max_in_flight or 2 * n
            per_worker = -(-limit // n)
            log.info("ray: %d worker(s), up to %d unit(s) in flight", n, limit)
            done: set[str] = set()
            lost: dict[str, int] = {}
            refs: dict[Any, tuple[_Slot, Any, Unit]] = {}  # ObjectRef -> (slot, actor, unit)

            def fill() -> None:
                for slot in self.slots:
                    while pending and len(slot.in_flight) < per_worker and len(refs) < limit:
                        claimed = {
                            s.last_batch for s in self.slots if s is not slot and s.in_flight
                        }
                        unit = self._take(pending, slot, claimed - {None})
                        ref = slot.actor.run.remote(unit)
                        slot.in_flight[ref] = unit
                        refs[ref] = (slot, slot.actor, unit)

            fill()
            while refs:
                ready, _ = ray.wait(list(refs), num_returns=1, timeout=self.poll_s)
                for ref in ready:
                    slot, actor, unit = refs.pop(ref)
                    slot.in_flight.pop(ref, None)
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayTaskError as e:
                        raise _worker_error(e, unit) from None
                    except ray.exceptions.RayActorError as e:
                        self._lost(unit, e, lost, pending)
                        if slot.actor is actor:
                            self._replace(slot, worker)
                        continue
                    except ray.exceptions.ObjectLostError as e:  # its node went away
                        self._lost(unit, e, lost, pending)
                        continue
                    if unit.id in done:
                        self.stats["duplicates"] += 1
                        continue
                    done.add(unit.id)
                    self._check_written(unit)
                    on_result(result)
                fill()
        finally:
            for slot in self.slots:
                self._kill(slot.actor)
            if owned:
                ray.shutdown()

    def _kill(self, actor: Any) -> None:
        try:
            self._ray.kill(actor, no_restart=True)
        except Exception:  # already dead or unreachable: nothing to stop
            pass

    def _lost(
        self,
        unit: Unit,
        error: Exception,
        lost: dict[str, int],
        pending: OrderedDict[int, deque[Unit]],
    ) -> None:
        """A unit died with its worker after Ray's own retries: queue it again, at the front."""
        lost[unit.id] = lost.get(unit.id, 0) + 1
        if lost[unit.id] > self.retries:
            raise RuntimeError(
                f"unit {unit.id} was lost with its Ray worker {lost[unit.id]} times (the worker "
                f"process keeps dying on it: out of memory?); last error: {error}"
            ) from None
        log.warning(
            "ray: unit %s lost with its worker (%s); resubmitting it", unit.id, type(error).__name__
        )
        self.stats["resubmitted"] += 1
        pending.setdefault(unit.batch, deque()).appendleft(unit)
        pending.move_to_end(unit.batch, last=False)

    def _replace(self, slot: _Slot, worker: Worker) -> None:
        """Swap a worker Ray could not restart for a fresh one (its other units fail and requeue)."""
        self._kill(slot.actor)
        slot.actor = self._new_actor(worker)
        slot.pid = None
        slot.last_batch = None
        slot.in_flight.clear()
        self.stats["replaced_workers"] += 1
        self._await_pids([slot])

    def _check_written(self, unit: Unit) -> None:
        if self.write_dir is None:
            return
        from absgrad.protocol.store import RunStore

        if not RunStore(self.write_dir).has(unit.id):
            raise RuntimeError(
                f"a Ray worker stored unit {unit.id} under {self.write_dir}, but the driver does "
                "not see it there: write_dir must be a filesystem shared by the driver and workers"
            )


def _warn_relative_paths(worker: Worker) -> None:
    """Cluster workers do not share the driver's working directory: warn on relative paths."""
    for arg in getattr(worker, "args", ()):
        for field in ("data", "weights"):
            value = getattr(arg, field, None)
            if value in WEIGHT_WORDS:  # published or random weights, not a path
                continue
            if isinstance(value, str) and not os.path.isabs(os.path.expanduser(value)):
                log.warning(
                    "ray: %s path %r is relative; workers on other nodes resolve it from their own "
                    "working directory (give an absolute path that exists on every node)",
                    field,
                    value,
                )


def _worker_error(error: Exception, unit: Unit) -> BaseException:
    """The exception raised by ``worker`` on a Ray worker, with the unit named."""
    cause = getattr(error, "cause", None)
    if isinstance(cause, Exception):
        cause.add_note(f"(raised on a Ray worker while computing unit {unit.id})")
        return cause
    return RuntimeError(f"unit {unit.id} failed on a Ray worker: {error}")


register_executor("ray", RayExecutor)
