"""``absgrad list``: the names absgrad accepts, printed without importing torch (``models``:
once per installed timm/torchvision version, see :mod:`absgrad.models.catalog`)."""

from __future__ import annotations

import argparse

from absgrad import names
from absgrad.cli.errors import UserError


def cmd_list(args: argparse.Namespace) -> int:
    if args.pattern is not None and args.what != "models":
        raise UserError(f"a PATTERN applies to `absgrad list models`, not to {args.what}")
    if args.what == "models":
        from absgrad.models.catalog import model_lines

        print("\n".join(model_lines(args.pattern)))
    elif args.what == "methods":
        for name, title in names.METHODS.items():
            print(f"{name:10s} {title}")
    elif args.what == "metrics":
        for key, m in names.METRICS.items():
            print(f"{key:14s} {m.title} {m.arrow}{'  (needs masks)' if m.needs_mask else ''}")
    elif args.what == "maps":
        from absgrad.protocol.catalogue import PAPER_SAMPLING, REVERSED_BASES, paper_maps

        rev = dict.fromkeys(REVERSED_BASES, (0.07, 0.1))
        for label, s in paper_maps(PAPER_SAMPLING, rev).items():
            what = f"reversed {s.reverse_of}" if s.derived else f"{s.method} {dict(s.params)}"
            print(f"{label:12s} {s.title:12s} {what}")
    elif args.what == "cases":
        for name in names.CASES:
            print(name)
    else:
        from absgrad.protocol.config import shipped_configs

        for name in sorted(shipped_configs()):
            print(name)
    return 0
