"""The whole protocol (Tables 1-3): absgrad's runner vs a per-method baseline, same outputs.

The baseline computes every map of the same tables separately with the same library functions
(no sampler sharing; each metric call computes its own clean/blurred predictions, with the
eager model). Both run in this process, best of ``--repeats``; the scores are checked equal;
prints ``speedup``. ``--engine`` sets the runner's forward engine (eager by default).

    python benchmarks/protocol.py --images 4
"""

from __future__ import annotations

from protocol_common import (
    max_score_difference,
    protocol_args,
    protocol_config,
    run_absgrad,
    run_baseline,
)


def main() -> None:
    args, case = protocol_args(__doc__)
    config = protocol_config(args, engine=args.engine)
    best_a = best_b = float("inf")
    for r in range(args.repeats):
        ta, scores_a, ctx = run_absgrad(config, case=case)
        tb, scores_b = run_baseline(config, ctx)
        best_a, best_b = min(best_a, ta), min(best_b, tb)
        print(f"repeat {r + 1}: absgrad {ta:.1f} s, per-method baseline {tb:.1f} s")
    diff = max_score_difference(scores_a, scores_b)
    n_img = len({k[0] for k in scores_a})
    print(
        f"case {config.case}, {args.images} images ({n_img} batches), {len(ctx.specs)} maps, metrics {', '.join(ctx.metrics)}"
    )
    print(f"absgrad  {best_a:8.1f} s  ({best_a / args.images:.1f} s/image)")
    print(f"baseline {best_b:8.1f} s  ({best_b / args.images:.1f} s/image)")
    print(f"max |score difference| = {diff:.2e}")
    print(f"speedup = baseline / absgrad = {best_b / best_a:.2f}")


if __name__ == "__main__":
    main()
