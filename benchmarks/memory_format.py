"""The channels-last option: protocol time and what it costs in accuracy, side by side.

Runs absgrad's protocol (Tables 1-3) on K images with the model in the default (contiguous)
memory format and in channels-last, best of ``--repeats`` each, and prints the time ratio,
how far every stored score moves (per image and per table cell: the mean over images), and
channels-last's own pass-count floor.

    python benchmarks/memory_format.py --images 2
"""

from __future__ import annotations

from collections import defaultdict

import torch
from protocol_common import pass_costs, protocol_args, protocol_config, run_absgrad

METRICS = ("rcap", "dauc", "iauc")


def score_moves(a: dict, b: dict) -> dict[str, tuple[float, float, float]]:
    """Per metric: max |difference| per image, mean |difference| per image, max |difference|
    of a map's mean over images (a table cell)."""
    per_image: dict[str, list[float]] = defaultdict(list)
    cells: dict[str, dict[str, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    for key, scores in a.items():
        for m in METRICS:
            for va, vb in zip(scores[m], b[key][m], strict=True):
                per_image[m].append(abs(va - vb))
                cells[m][key[1]].append((va, vb))
    out = {}
    for m in METRICS:
        cell = max(
            abs(sum(v[0] for v in vals) / len(vals) - sum(v[1] for v in vals) / len(vals))
            for vals in cells[m].values()
        )
        out[m] = (max(per_image[m]), sum(per_image[m]) / len(per_image[m]), cell)
    return out


def main() -> None:
    args, case = protocol_args(__doc__)
    plain, fast = protocol_config(args), protocol_config(args, channels_last=True)
    best = {"contiguous": float("inf"), "channels_last": float("inf")}
    for r in range(args.repeats):
        t_plain, s_plain, _ = run_absgrad(plain, case=case)
        t_fast, s_fast, ctx = run_absgrad(fast, counter=r == 0, case=case)
        if r == 0:
            counts = (ctx.counter.grad_images, ctx.counter.fwd_images)
        best["contiguous"] = min(best["contiguous"], t_plain)
        best["channels_last"] = min(best["channels_last"], t_fast)
        print(f"repeat {r + 1}: contiguous {t_plain:.1f} s, channels-last {t_fast:.1f} s")
    print(f"case {plain.case}, {args.images} images, {len(ctx.specs)} maps")
    print(f"contiguous     {best['contiguous']:7.1f} s")
    print(f"channels-last  {best['channels_last']:7.1f} s")
    print(
        f"speedup = contiguous / channels-last = {best['contiguous'] / best['channels_last']:.2f}"
    )
    print("\nscore moves (channels-last - contiguous), absolute:")
    print("metric  max per image  mean per image  max per table cell (mean over images)")
    for m, (mx, mean, cell) in score_moves(s_plain, s_fast).items():
        print(f"{m:6s}  {mx:13.2e}  {mean:14.2e}  {cell:.2e}")
    sample = ctx.case.samples()[0].image
    costs = pass_costs(ctx.model, tuple(sample.shape), args.device, args.repeats)
    fb, fw = min(costs["fwd_bwd"].values()), min(costs["fwd"].values())
    floor = counts[0] * fb + counts[1] * fw
    print(
        f"\nchannels-last per-image cost: forward+backward {fb * 1e3:.1f} ms, forward {fw * 1e3:.1f} ms"
    )
    print(
        f"channels-last floor = {floor:.1f} s; channels-last / its floor = {best['channels_last'] / floor:.2f}"
    )
    convs = [q for q in ctx.model.parameters() if q.dim() == 4]
    assert all(q.is_contiguous(memory_format=torch.channels_last) for q in convs), (
        "the channels-last run did not use a channels-last model"
    )


if __name__ == "__main__":
    main()
