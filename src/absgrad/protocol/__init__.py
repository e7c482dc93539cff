"""The paper's protocol: plan, run and store Tables 1-3 on a case.

``run_protocol(config, out)`` computes every unit (image batch x sampler group) not yet stored
in ``out``. Reading a finished run (tables, figures, ``report.html``) is :mod:`absgrad.report`.

Names are imported on first use (``absgrad.protocol.run_protocol``), so that importing a light
submodule such as ``absgrad.protocol.config`` does not load torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from absgrad.utils.lazy import lazy_exports

#: public name -> the submodule that defines it
_EXPORTS = {
    "ConfigError": "config",
    "RunConfig": "config",
    "load_config_file": "config",
    "make_config": "config",
    "EXECUTORS": "executors",
    "Executor": "executors",
    "LocalExecutor": "executors",
    "get_executor": "executors",
    "register_executor": "executors",
    "MapSpec": "catalogue",
    "paper_maps": "catalogue",
    "Group": "plan",
    "Unit": "plan",
    "group_specs": "plan",
    "make_plan": "plan",
    "resolve_specs": "plan",
    "run_protocol": "runner",
    "RunDirError": "store",
    "RunStore": "store",
    "UnitResult": "plan",
    "WorkerContext": "worker",
    "build_context": "worker",
    "run_unit": "worker",
}

__all__ = [
    "EXECUTORS",
    "ConfigError",
    "Executor",
    "Group",
    "LocalExecutor",
    "MapSpec",
    "RunConfig",
    "RunDirError",
    "RunStore",
    "Unit",
    "UnitResult",
    "WorkerContext",
    "build_context",
    "get_executor",
    "group_specs",
    "load_config_file",
    "make_config",
    "make_plan",
    "paper_maps",
    "register_executor",
    "resolve_specs",
    "run_protocol",
    "run_unit",
]


__getattr__, __dir__ = lazy_exports(
    "absgrad.protocol", {k: f"absgrad.protocol.{m}" for k, m in _EXPORTS.items()}, globals()
)


if TYPE_CHECKING:  # pragma: no cover
    from absgrad.protocol.catalogue import MapSpec, paper_maps
    from absgrad.protocol.config import ConfigError, RunConfig, load_config_file, make_config
    from absgrad.protocol.executors import (
        EXECUTORS,
        Executor,
        LocalExecutor,
        get_executor,
        register_executor,
    )
    from absgrad.protocol.plan import Group, Unit, UnitResult, group_specs, make_plan, resolve_specs
    from absgrad.protocol.runner import run_protocol
    from absgrad.protocol.store import RunDirError, RunStore
    from absgrad.protocol.worker import WorkerContext, build_context, run_unit
