"""The whole protocol (Tables 1-3) with the eager engine and each fast forward engine.

All runs use the same runner, images and chunk sizes; only the metrics' no-grad forward
passes differ (``engine: eager`` vs ``onnx`` and ``compile``). The first run of a fast engine
includes its one-off set-up (the ONNX export and its check, or the compile; its seconds are
printed); later runs reuse it, as every unit after the first does in a long run. Eager and
fast runs alternate, best of ``--repeats``. Prints, per fast engine, the largest score
difference, ``speedup = eager / ENGINE`` (set-up excluded) and the speedup with the set-up
included. ``--precision bf16`` also times compiled bf16 autocast and prints how far its
scores move.

    python benchmarks/engine.py --images 4 --repeats 2 [--engines onnx,compile]
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
    args, case = protocol_args(__doc__, extra=add_engines_arg)
    eager_cfg = protocol_config(args, engine="eager")
    fast = {}
    for kind in args.engines:
        cfg = protocol_config(args, engine=kind)
        first, _, ctx = run_absgrad(cfg, case=case)
        if not ctx.forward.compiled:
            print(f"{kind} failed here: the engine fell back to eager (see the warning)")
        fast[kind] = {
            "cfg": cfg,
            "ctx": ctx,
            "first": first,
            "setup": ctx.forward.stats["compile_s"],
            "t": float("inf"),
        }
    te = float("inf")
    ectx = None
    for r in range(args.repeats):
        t, scores_e, ectx = run_absgrad(eager_cfg, case=case, ctx=ectx)
        te = min(te, t)
        line = [f"eager {t:.1f} s"]
        for kind, f in fast.items():
            t2, f["scores"], _ = run_absgrad(f["cfg"], ctx=f["ctx"])
            f["t"] = min(f["t"], t2)
            line.append(f"{kind} {t2:.1f} s")
        print(f"repeat {r + 1}: " + ", ".join(line))
    n = args.images
    print(
        f"case {eager_cfg.case}, {n} images, {len(ectx.specs)} maps, forward chunk {ectx.eval.batch_size}"
    )
    print(f"eager     {te:8.1f} s  ({te / n:.2f} s/image)")
    for kind, f in fast.items():
        tc, setup = f["t"], f["setup"]
        print(f"{kind:<9} {tc:8.1f} s  ({tc / n:.2f} s/image, set-up excluded)")
        print(
            f"{kind} set-up: first run {f['first']:.1f} s, of which {setup:.1f} s set-up ({SETUP[kind]})"
        )
        print(f"max |score difference| {kind} = {max_score_difference(scores_e, f['scores']):.2e}")
        print(f"speedup = eager / {kind} = {te / tc:.2f}")
        print(f"speedup with the {kind} set-up included = {te / (tc + setup):.2f}")
        saved = (te - tc) / n
        if saved > 0:
            print(f"the {kind} set-up is repaid after {setup / saved:.1f} images")
    if args.precision == "bf16":
        bf_cfg = protocol_config(args, engine="compile", precision="bf16")
        _, _, bctx = run_absgrad(bf_cfg, case=case)
        tb, scores_b, _ = run_absgrad(bf_cfg, ctx=bctx)
        print(f"compiled bf16 {tb:8.1f} s  (speedup vs eager fp32 {te / tb:.2f})")
        print(
            "bf16 score moves (max |bf16 - fp32| per image): "
            + ", ".join(f"{k} {v:.2e}" for k, v in score_moves(scores_e, scores_b).items())
        )


SETUP = {
    "onnx": "export and check",
    "cudagraph": "capture and check",
    "compile": "the first, compiling call",
}


def add_engines_arg(p) -> None:
    import torch

    default = "compile" if torch.cuda.is_available() else "onnx,compile"
    p.add_argument(
        "--engines",
        type=lambda v: [k for k in v.split(",") if k],
        default=default.split(","),
        help=f"fast engines to time against eager, comma-separated (default {default}; onnx runs on a CPU)",
    )


if __name__ == "__main__":
    main()
