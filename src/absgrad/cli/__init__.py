"""The ``absgrad`` command: ``demo``, ``run``, ``explain``, ``report``, ``compare`` and ``list``.

User errors (bad names, invalid configs, incompatible output directories, missing files) print
one line ``absgrad: error: ...`` and exit with status 2; set ``ABSGRAD_DEBUG=1`` for tracebacks.
An interrupted run exits with 130 and resumes when the same command is run again.

Every argument is a row of :data:`absgrad.cli.flags.FLAGS` (the parsers and a run's config
overrides are built from it); each command is a small module (``run``, ``explain``, ``report``,
``listing``) holding its handler.
"""

from __future__ import annotations

import os
import sys

from absgrad.cli.errors import UserError
from absgrad.cli.parser import build_parser
from absgrad.errors import AbsgradError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 2 user error, 130 interrupted)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        if getattr(args, "out", None) is not None and not args.out.strip():
            raise UserError("--out is empty: name the output folder (or file)")
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(
            "absgrad: interrupted; stored units are kept, run the same command to resume",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except AbsgradError as e:  # the user's input; anything else is a bug and shows as one
        if os.environ.get("ABSGRAD_DEBUG"):
            raise
        print(f"absgrad: error: {e}", file=sys.stderr)
        return EXIT_USAGE


def console_main() -> int:
    """The ``absgrad`` command: ``main``, leaving at once after an interrupt.

    After Ctrl-C every stored unit is complete and run.json is written; tearing down the
    interpreter (collecting the model's and the run's objects) can take many seconds on a busy
    machine, so the command ends the process right away with status 130.
    """
    code = main()
    if code == EXIT_INTERRUPTED:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


__all__ = ["EXIT_INTERRUPTED", "EXIT_USAGE", "UserError", "build_parser", "console_main", "main"]
