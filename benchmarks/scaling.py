"""How the protocol's cost scales: with image size, with N, and with the number of maps.

Three sweeps of the protocol runner on the first K images (no selection), each printed as a
Markdown table. The passes are counted with ``PassCounter`` (a forward pre-hook on the model):
"fwd+bwd" images went through the model with autograd, "fwd" without.

1. Image size: each image is resized (bilinear, antialiased; masks nearest) from the case's
   input to ``--sizes`` px by a thin case wrapper; the model is unchanged (global pooling, so
   any size works). Tables 1-3 at N = 20.
2. N: ``n_samples`` of the noise and path samplers (SG/VarGrad/GAG, Guided IG, BlurIG) at
   ``--samples``, the case's own size, tables ``--n-tables`` (default all, 1-3).
3. Number of maps: ``tables`` = each of ``--table-sets`` at N = 20 and the case's own size.

The run that all three sweeps share (the case's size, N = 20, Tables 1-3) is run once and
reused. Before the sweeps, one untimed run (1 image at most 64 px, N = 2, Tables 1-3) takes every
code path once, so the first timed run does not pay for first calls. Progress goes to stderr.
Seconds are wall time of ``run_protocol`` (best of ``--repeats``; the model load is not timed).

    python benchmarks/scaling.py --images 2
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from common import ResizedCase, add_common_args, bench_case, machine
from protocol_common import PassCounter, add_protocol_args, protocol_config, run_absgrad

from absgrad.protocol.config import make_config

DEFAULT_N = 20
ALL_TABLES = (1, 2, 3)
WARMUP_PX = 64


def run_counted(config, case) -> tuple[float, PassCounter, int]:
    """One protocol run on ``case``: (seconds, its PassCounter, number of maps)."""
    dt, _, ctx = run_absgrad(config, counter=True, case=case)
    return dt, ctx.counter, len(ctx.specs)


def variant(base, **overrides):
    """``base`` with some fields changed, validated like any config."""
    return make_config(base.to_dict(), overrides)


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def int_list(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_common_args(p)
    p.set_defaults(images=2, repeats=1)
    add_protocol_args(p)
    p.add_argument(
        "--sizes",
        type=int_list,
        default=[160, 224, 320],
        help="image sides in px, e.g. 160,224,320",
    )
    p.add_argument(
        "--samples",
        type=int_list,
        default=[10, 20, 40],
        help="values of N (n_samples), e.g. 10,20,40",
    )
    p.add_argument(
        "--n-tables",
        type=int_list,
        default=list(ALL_TABLES),
        help="tables of the N sweep (e.g. 1 for the fast version)",
    )
    p.add_argument(
        "--table-sets",
        nargs="+",
        type=int_list,
        default=[[1], [2], [3], [1, 2, 3]],
        help="table sets of the maps sweep, e.g. 1 2 3 1,2,3",
    )
    p.add_argument(
        "--only",
        nargs="+",
        choices=("size", "samples", "maps"),
        default=("size", "samples", "maps"),
        help="which sweeps to run",
    )
    args = p.parse_args()
    k = args.images
    base = variant(protocol_config(args), n_samples=DEFAULT_N, tables=list(ALL_TABLES))
    print(f"machine: {machine()}")
    print(
        f"case {base.case}, {k} image(s), batch size {base.batch_size}, eval batch size "
        f"{base.eval_batch_size}, device {base.device}, best of {args.repeats} run(s)"
    )

    case = bench_case(args)
    native = case.image_size[0]
    warm = min(native, WARMUP_PX)
    run_counted(  # warm-up, untimed: every method and metric once, on a small image
        variant(base, limit=1, n_samples=2), case if warm == native else ResizedCase(case, warm)
    )

    runs: dict[tuple[int, int, tuple[int, ...]], tuple[float, int, int, int]] = {}

    def measure(size: int, n: int, tables: Sequence[int]):
        """(seconds, fwd+bwd images, fwd images, maps), run once per distinct setting."""
        key = (size, n, tuple(sorted(tables)))
        if key not in runs:
            config = variant(base, n_samples=n, tables=list(key[2]))
            sized = case if size == native else ResizedCase(case, size)
            best = float("inf")
            for _ in range(args.repeats):
                dt, counter, n_maps = run_counted(config, sized)
                best = min(best, dt)
            runs[key] = (best, counter.grad_images, counter.fwd_images, n_maps)
            print(
                f"ran {size} px, N = {n}, tables {','.join(map(str, key[2]))}: {best:.1f} s",
                file=sys.stderr,
                flush=True,
            )
        return runs[key]

    if "size" in args.only:
        results = {s: measure(s, DEFAULT_N, ALL_TABLES) for s in args.sizes}
        ref = native if native in results else args.sizes[0]
        print(
            f"\nImage size: Tables 1-3 ({results[ref][3]} maps), N = {DEFAULT_N}, {k} image(s) resized "
            f"from {native} px; time relative to {ref} px, pixels relative to {ref} px."
        )
        rows = []
        for s, (t, g, f, _) in results.items():
            rows.append(
                [
                    f"{s}",
                    f"{t / k:.2f}",
                    f"{g / k:.0f}",
                    f"{f / k:.0f}",
                    f"{(s / ref) ** 2:.2f}",
                    f"{t / results[ref][0]:.2f}",
                ]
            )
        print(table(["px", "s/image", "fwd+bwd/image", "fwd/image", "pixels x", "time x"], rows))

    if "samples" in args.only:
        results = {n: measure(native, n, args.n_tables) for n in args.samples}
        which = (
            "Tables 1-3"
            if tuple(sorted(args.n_tables)) == ALL_TABLES
            else f"Table(s) {','.join(map(str, args.n_tables))}"
        )
        n_maps = next(iter(results.values()))[3]
        print(
            f"\nN (n_samples of the noise and path samplers): {which} ({n_maps} maps), "
            f"{native} px, {k} image(s)."
        )
        rows = [
            [f"{n}", f"{g / k:.0f}", f"{f / k:.0f}", f"{t / k:.2f}"]
            for n, (t, g, f, _) in results.items()
        ]
        print(table(["N", "fwd+bwd/image", "fwd/image", "s/image"], rows))

    if "maps" in args.only:
        results = {tuple(sorted(ts)): measure(native, DEFAULT_N, ts) for ts in args.table_sets}
        print(
            f"\nNumber of maps: each table set alone, N = {DEFAULT_N}, {native} px, {k} image(s)."
        )
        rows = [
            [
                ",".join(map(str, ts)),
                f"{m}",
                f"{g / k:.0f}",
                f"{f / k:.0f}",
                f"{t / k:.2f}",
                f"{t / k / m:.3f}",
            ]
            for ts, (t, g, f, m) in results.items()
        ]
        print(
            table(["tables", "maps", "fwd+bwd/image", "fwd/image", "s/image", "s/map/image"], rows)
        )

    shared = (native, DEFAULT_N, ALL_TABLES)
    if shared in runs:
        print(
            f"\n({native} px, N = {DEFAULT_N}, Tables 1-3 was run once and appears in every table that lists it.)"
        )


if __name__ == "__main__":
    main()
