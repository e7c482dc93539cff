"""``absgrad report`` and ``absgrad compare``: read finished runs (no torch)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def cmd_report(args: argparse.Namespace) -> int:
    from absgrad.report.build import build_report

    report = build_report(
        args.dir, compare=args.compare_paper, tables=tuple(args.tables) if args.tables else None
    )
    print((Path(args.dir) / "tables" / "tables.md").read_text())
    print((Path(args.dir) / "claims.md").read_text())
    if not report.complete:
        print("note: the run is partial; the tables cover the stored units only", file=sys.stderr)
    print(f"report: {report.html.resolve()}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from absgrad.report.compare import compare_runs, comparison_markdown

    comparison, files = compare_runs(
        args.run_a, args.run_b, args.out, across_models=args.across_models
    )
    print(comparison_markdown(comparison))
    for path in files.values():
        print(f"wrote {path}")
    return 0
