"""``absgrad explain``: the flags to :func:`absgrad.explanation.explain_file`, the result saved."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from absgrad.cli.errors import UserError
from absgrad.cli.flags import flag_name
from absgrad.errors import ArgumentError


def parse_params(items: list[str]) -> dict[str, Any]:
    """``["n_samples=50", "spread=0.2"]`` -> ``{"n_samples": 50, "spread": 0.2}`` (YAML values)."""
    import yaml

    out = {}
    for item in items:
        if "=" not in item:
            raise UserError(f"--param expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip()] = yaml.safe_load(v)
    return out


def cmd_explain(args: argparse.Namespace) -> int:
    from absgrad.explanation import explain_file, overlay_path, save_explanation
    from absgrad.protocol.config import check_device
    from absgrad.utils.devices import describe_device
    from absgrad.utils.files import check_writable

    try:
        out = args.out if args.out is not None else "."  # IMAGE-METHOD.png in this folder
        png = overlay_path(out, args.image, args.method)  # a bad --out fails before any work
        check_writable(png.parent, "the map into")
        args.device = check_device("--device", args.device)  # auto: the best device here
        print(f"device: {describe_device(args.device)}", file=sys.stderr)
        result = explain_file(
            args.image,
            model=args.model,
            method=args.method,
            weights=args.weights,
            data=args.data,
            target=args.target,
            layer=args.layer,
            params=parse_params(args.param),
            seed=args.seed,
            device=args.device,
            classes=args.classes,
            size=args.size,
            resize=args.resize,
            norm=args.norm,
        )
        png, npy = save_explanation(result, out)
    except ArgumentError as e:  # name our flags, not the function's arguments
        raise UserError(e.render(lambda key: flag_name("explain", key))) from None
    print(f"class {result.label} (probability {result.probability:.3f}); map: {png} and {npy}")
    return 0
