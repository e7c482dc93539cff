"""The paper's protocol (SPEC §5): plan, run, store and report Tables 1-3 on a case.

``run_protocol(config, out)`` computes every unit (image batch x sampler group) not yet stored
in ``out``; ``build_report(out)`` writes the tables, figures and ``report.html``.
"""

from absgrad.protocol.config import ConfigError, RunConfig, load_config_file, make_config
from absgrad.protocol.executors import (
    EXECUTORS,
    Executor,
    LocalExecutor,
    get_executor,
    register_executor,
)
from absgrad.protocol.paper import MapSpec, paper_maps
from absgrad.protocol.plan import Group, Unit, group_specs, make_plan, resolve_specs
from absgrad.protocol.report import build_report
from absgrad.protocol.results import Results, load_results
from absgrad.protocol.runner import run_protocol
from absgrad.protocol.store import RunDirError, RunStore
from absgrad.protocol.worker import UnitResult, WorkerContext, build_context, run_unit

__all__ = [
    "EXECUTORS",
    "ConfigError",
    "Executor",
    "Group",
    "LocalExecutor",
    "MapSpec",
    "Results",
    "RunConfig",
    "RunDirError",
    "RunStore",
    "Unit",
    "UnitResult",
    "WorkerContext",
    "build_context",
    "build_report",
    "get_executor",
    "group_specs",
    "load_config_file",
    "load_results",
    "make_config",
    "make_plan",
    "paper_maps",
    "register_executor",
    "resolve_specs",
    "run_protocol",
    "run_unit",
]
