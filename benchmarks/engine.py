"""The whole protocol (Tables 1-3) with the eager and the compiled forward engine.

Both runs use the same runner, images and chunk sizes; only the metrics' no-grad forward
passes differ (``engine: eager`` vs ``engine: compile``). The first compiled run includes the
one-off compile (its seconds are printed); later runs reuse the compiled engine, as every unit
after the first does in a long run. Prints the largest score difference and
``speedup = eager / compiled`` (compile excluded) and the speedup with the compile included.
``--precision bf16`` also times bf16 autocast and prints how far its scores move.

    python benchmarks/engine.py --images 4 --repeats 2
"""

from __future__ import annotations

from protocol_common import max_score_difference, protocol_args, protocol_config, run_absgrad


def score_moves(a: dict, b: dict) -> dict[str, float]:
    """Largest absolute difference per metric (rcap, dauc, iauc) between two score sets."""
    out: dict[str, float] = {}
    for k in a:
        for metric in ("rcap", "dauc", "iauc"):
            if metric in a[k]:
                d = max(abs(x - y) for x, y in zip(a[k][metric], b[k][metric], strict=True))
                out[metric] = max(out.get(metric, 0.0), d)
    return out


def main() -> None:
    args, case = protocol_args(__doc__)
    eager_cfg = protocol_config(args, engine="eager")
    comp_cfg = protocol_config(args, engine="compile")
    first, _, cctx = run_absgrad(comp_cfg, case=case)
    compile_s = cctx.forward.stats["compile_s"]
    if not cctx.forward.compiled:
        print("torch.compile failed here: the engine fell back to eager (see the warning)")
    te = tc = float("inf")
    ectx = None
    for r in range(args.repeats):
        t, scores_e, ectx = run_absgrad(eager_cfg, case=case, ctx=ectx)
        te = min(te, t)
        t2, scores_c, _ = run_absgrad(comp_cfg, ctx=cctx)
        tc = min(tc, t2)
        print(f"repeat {r + 1}: eager {t:.1f} s, compiled {t2:.1f} s")
    diff = max_score_difference(scores_e, scores_c)
    n = args.images
    print(f"case {comp_cfg.case}, {n} images, {len(cctx.specs)} maps, forward chunk {cctx.eval.batch_size}")
    print(f"compile: first compiled run {first:.1f} s, of which {compile_s:.1f} s in the first (compiling) call")
    print(f"eager     {te:8.1f} s  ({te / n:.2f} s/image)")
    print(f"compiled  {tc:8.1f} s  ({tc / n:.2f} s/image, compile excluded)")
    print(f"max |score difference| = {diff:.2e}")
    print(f"speedup = eager / compiled = {te / tc:.2f}")
    print(f"speedup with the compile included = {te / (tc + compile_s):.2f}")
    saved = (te - tc) / n
    if saved > 0:
        print(f"the compile is repaid after {compile_s / saved:.1f} images")
    if args.precision == "bf16":
        bf_cfg = protocol_config(args, engine="compile", precision="bf16")
        _, _, bctx = run_absgrad(bf_cfg, case=case)
        tb, scores_b, _ = run_absgrad(bf_cfg, ctx=bctx)
        print(f"compiled bf16 {tb:8.1f} s  (speedup vs eager fp32 {te / tb:.2f})")
        print("bf16 score moves (max |bf16 - fp32| per image): "
              + ", ".join(f"{k} {v:.2e}" for k, v in score_moves(scores_e, scores_b).items()))


if __name__ == "__main__":
    main()
