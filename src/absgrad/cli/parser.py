"""The ``absgrad`` parser: its commands (name, help, handler) and their arguments (``flags``)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from absgrad.cli.explain import cmd_explain
from absgrad.cli.flags import add_flags
from absgrad.cli.listing import cmd_list
from absgrad.cli.report import cmd_compare, cmd_report
from absgrad.cli.run import cmd_demo, cmd_run

#: command -> (one-line help, handler returning the exit status), in ``--help`` order
COMMANDS: dict[str, tuple[str, Callable[[argparse.Namespace], int]]] = {
    "demo": (
        "the whole protocol on the built-in demo case (a few minutes on a CPU)",
        cmd_demo,
    ),
    "run": ("the protocol on any case, or from a --config file", cmd_run),
    "explain": ("a saliency map of one image: overlay PNG and .npy", cmd_explain),
    "report": ("rebuild tables, figures and report.html from a run directory", cmd_report),
    "compare": (
        "two runs side by side: every shared map and metric, B - A with its interval",
        cmd_compare,
    ),
    "list": (
        "list cases, methods, maps, metrics, shipped configs or models with published weights",
        cmd_list,
    ),
}

DESCRIPTION = (
    "Gradient saliency maps (Guided AbsoluteGrad) and their evaluation: run the paper's "
    "protocol (Tables 1-3) on a case and get tables, figures and an HTML report."
)
EPILOG = """\
Examples:
  absgrad demo
  absgrad run --case synthetic --limit 8 --out runs/syn
  absgrad run --config imagenet-s --data ~/ImageNet-S --weights rn50.pth --out runs/ins
  absgrad run --data photos/ --model timm:resnet18 --out runs/mine      (published weights)
  absgrad run --data photos/ --model timm:resnet18 --weights r18.pth --out runs/mine
  absgrad list models resnet
  absgrad report runs/syn --compare-paper imagenet-s
  absgrad compare runs/syn runs/syn-50 --out runs/compare
  absgrad explain photo.jpg --method gag --out map.png
See docs/protocol.md."""


def build_parser() -> argparse.ArgumentParser:
    """The ``absgrad`` parser; each command's namespace carries its handler as ``func``."""
    from absgrad import __version__

    parser = argparse.ArgumentParser(
        prog="absgrad",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"absgrad {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_text, handler) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        add_flags(p, name)
        p.set_defaults(func=handler)
    return parser
