"""absgrad's protocol time vs the pass-count floor of eager PyTorch.

Counts the forward+backward and forward-only images the protocol sends through the model,
measures the model's best per-image cost of each kind (eager PyTorch) over a range of chunk
sizes in the same process, and prints ``absgrad / floor`` where ``floor = n_fwd_bwd *
best_fwd_bwd + n_fwd * best_fwd``. With ``--engine onnx`` or ``compile`` it also times the
runner with that engine (its set-up excluded: the ONNX export or the compile happens in a
first run) and prints it against the same eager floor.

    python benchmarks/floor.py --images 4 [--engine onnx|compile]
"""

from __future__ import annotations

from common import fmt_cost
from protocol_common import (
    pass_costs,
    print_pass_costs,
    protocol_args,
    protocol_config,
    run_absgrad,
)


def main() -> None:
    args, case = protocol_args(__doc__)
    engine = args.engine
    config = protocol_config(args)
    best = float("inf")
    for _ in range(args.repeats):
        t, _, ctx = run_absgrad(config, counter=True, case=case)
        best = min(best, t)
        counts = (ctx.counter.grad_images, ctx.counter.fwd_images)
        asked, run = ctx.stats.get("perturbed_asked", 0), ctx.stats.get("perturbed_run", 0)
    model = ctx.model
    sample = ctx.case.samples()[0].image
    costs = pass_costs(model, tuple(sample.shape), args.device, args.repeats)
    fb = min(costs["fwd_bwd"].values())
    fw = min(costs["fwd"].values())
    print_pass_costs(costs)
    print(
        f"runner chunks: {config.batch_size} images per unit, {ctx.config.grad_batch_size} per "
        f"gradient pass, {ctx.eval.batch_size} per forward pass"
    )
    n_fb, n_f = counts
    floor = n_fb * fb + n_f * fw
    print(
        f"passes per image: {n_fb / args.images:.0f} forward+backward, {n_f / args.images:.0f} forward"
    )
    print(
        f"perturbed images per image: {asked / args.images:.0f} asked, {run / args.images:.0f} run (each distinct image once)"
    )
    print(f"floor = {n_fb} x {fmt_cost(fb)} + {n_f} x {fmt_cost(fw)} = {floor:.2f} s")
    print(f"absgrad = {best:.2f} s")
    print(f"absgrad / floor = {best / floor:.2f}")
    if engine != "eager":
        cconfig = protocol_config(args, engine=engine, precision=args.precision)
        first, _, cctx = run_absgrad(cconfig, case=case)
        compile_s = cctx.forward.stats["compile_s"]
        cbest = min(run_absgrad(cconfig, ctx=cctx)[0] for _ in range(args.repeats))
        print(
            f"{engine} engine: first run {first:.1f} s (set-up {compile_s:.1f} s), best later run {cbest:.1f} s"
        )
        print(f"absgrad {engine} = {cbest:.1f} s")
        print(f"absgrad {engine} / eager floor = {cbest / floor:.2f}")


if __name__ == "__main__":
    main()
