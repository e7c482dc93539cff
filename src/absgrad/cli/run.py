"""``absgrad run`` and ``absgrad demo``: a protocol run, then its report."""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path
from typing import Any

from absgrad.cli.errors import UserError
from absgrad.cli.flags import RAY, config_overrides, flags_of


def executor_options(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """Options of ``--executor ray`` (which this registers) from its flags (the ``RAY`` group
    of the flag table); other executors take none."""
    given = {
        f.key: f.names[0]
        for f in flags_of("run")
        if f.group == RAY and getattr(args, f.key, None) not in (None, False)
    }
    opts = {k: getattr(args, k) for k in given if k != "worker_writes"}
    if "worker_writes" in given:  # the workers write into --out themselves
        opts["write_dir"] = out
    if getattr(args, "executor", "local") == "ray":
        import absgrad.protocol.ray_executor  # noqa: F401  (registers --executor ray)
    elif given:
        raise UserError(f"{', '.join(given.values())} only apply with --executor ray")
    return opts


def default_out(config: Any) -> Path:
    """The output folder without ``--out``: ``./absgrad-<case>``; with your own model
    ``./absgrad-<model>`` and, for weights other than the published ones, ``-random`` or
    ``-<weights file stem>``, so that runs of different models or weights in one working
    folder do not meet in one output folder (``hf:/path/vit`` -> ``absgrad-hf-vit``)."""
    if config.case != "folder" or not config.model:
        return Path(f"absgrad-{config.case}")
    kind, sep, name = str(config.model).partition(":")
    if sep and kind == "hf" and name.startswith(("/", ".", "~")):
        name = Path(name).name  # a local Hugging Face folder: its own name
    parts = [kind, name] if sep else [kind]
    weights = config.weights
    if weights not in (None, "pretrained"):
        parts.append(weights if weights == "random" else Path(str(weights)).stem)
    slug = re.sub(r"[^A-Za-z0-9._]+", "-", "-".join(parts)).strip("-.")[:80]
    return Path(f"absgrad-{slug or 'folder'}")


def run_and_report(args: argparse.Namespace, raw: dict[str, Any]) -> int:
    """Run the config ``raw`` overridden by ``args.command``'s flags; report unless told not to."""
    from absgrad.protocol.config import make_config
    from absgrad.protocol.executors import get_executor
    from absgrad.protocol.runner import run_protocol
    from absgrad.report.build import build_report, resolve_compare

    config = make_config(raw, config_overrides(args, args.command))
    if args.compare_paper is not None:
        resolve_compare(config.case, args.compare_paper)  # fail early on a bad name
    out = Path(args.out) if args.out else default_out(config)
    executor = get_executor(getattr(args, "executor", "local"), **executor_options(args, out))
    t0 = time.perf_counter()
    meta = run_protocol(config, out, resume=args.resume, executor=executor, quiet=args.quiet)
    wall = time.perf_counter() - t0
    if not args.no_report:
        report = build_report(out, compare=args.compare_paper)
        if not args.quiet:
            print((out / "tables" / "tables.md").read_text())
            print((out / "claims.md").read_text())
        print(f"report: {report.html.resolve()}")
    print(
        f"run {meta['status']}: {meta['done_units']} of {meta['n_units']} units "
        f"in {out} ({wall:.1f} s)"
    )
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from absgrad.protocol.config import load_config_file

    if args.config is None and args.case is None and args.model is None:
        raise UserError("give --case NAME, --config FILE, or --data DIR --model SPEC")
    raw = load_config_file(args.config) if args.config else {}
    return run_and_report(args, raw)


def cmd_demo(args: argparse.Namespace) -> int:
    from absgrad.protocol.config import load_config_file

    return run_and_report(args, load_config_file("demo"))
