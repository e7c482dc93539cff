"""The runner's overhead: runner / pass-count floor, and where the runner's time goes.

Runs the whole protocol (Tables 1-3, maps saved as the CLI saves them) with ``--engine``
(eager by default), counts the images it sends through the model with and without autograd,
measures the model's best eager per-image cost of each kind over chunk sizes in the same
process, and prints ``runner / floor`` (``floor = n_fwd_bwd * best_fwd_bwd + n_fwd *
best_fwd``, the eager floor whatever the engine). Instrumented runs (the best of
``--repeats``) give the exclusive seconds per stage (``stages.STAGES``: gradient passes,
sampler arithmetic, perturbation building, dedupe, forward passes, store writes,
Python/other), with the per-image cost of the gradient and forward passes inside the run
against the floor's. Runner, floor and instrumented runs alternate, so the ratio compares
measurements taken side by side.

    python benchmarks/overhead.py --case synthetic --data '' --images 8 --repeats 3
    python benchmarks/overhead.py --images 4 --repeats 2 --engine onnx
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
from stages import STAGES, StageTimer, instrument_runner


def counted_run(config, case):
    """A first run (the warm-up: allocator, ONNX export or compile) that counts the passes;
    returns (ctx, forward+backward images, forward images, forward chunks)."""
    _, _, ctx = run_absgrad(config, counter=True, case=case)
    stats = ctx.forward.stats  # forward passes: the engine's count (ONNX Runtime included)
    return ctx, ctx.counter.grad_images, stats["images"], stats["chunks"]


def main() -> None:
    args, case = protocol_args(__doc__)
    config = protocol_config(args, engine=args.engine, precision=args.precision, save_maps=True)
    ctx, n_fb, n_f, chunks = counted_run(config, case)
    shape = tuple(case.samples()[0].image.shape)
    sync = str(ctx.device).startswith("cuda")
    # runner, floor and instrumented runs interleaved, best of each: a load spike on a shared
    # machine hits one repeat of all three rather than one side of the ratio
    times, costs, timer, instrumented = [], None, None, float("inf")
    for _ in range(args.repeats):
        times.append(run_absgrad(config, ctx=ctx)[0])
        c = pass_costs(ctx.model, shape, args.device, 1)
        costs = (
            c
            if costs is None
            else {k: {b: min(v, c[k][b]) for b, v in costs[k].items()} for k in costs}
        )
        t_stage = StageTimer(sync=sync)
        with instrument_runner(t_stage):
            t = run_absgrad(config, ctx=ctx)[0]
        if t < instrumented:
            timer, instrumented = t_stage, t
    best = min(times)
    bs_fb, fb = min(costs["fwd_bwd"].items(), key=lambda kv: kv[1])
    bs_f, fw = min(costs["fwd"].items(), key=lambda kv: kv[1])
    floor = n_fb * fb + n_f * fw
    k = args.images
    engine = ctx.forward.kind
    print(
        f"case {config.case}, {k} images, {len(ctx.specs)} maps, engine {engine} "
        f"({config.precision}), {config.batch_size} images per unit, "
        f"{ctx.config.grad_batch_size} per gradient pass, {ctx.eval.batch_size} per forward pass"
    )
    print(
        f"passes: {n_fb} forward+backward ({n_fb / k:.0f} per image), {n_f} forward "
        f"({n_f / k:.0f} per image, in {chunks} chunks)"
    )
    print_pass_costs(costs)
    print(
        f"floor = {n_fb} x {fmt_cost(fb)} (bs {bs_fb}) + {n_f} x {fmt_cost(fw)} (bs {bs_f}) "
        f"= {floor:.2f} s"
    )
    print(f"runner = {best:.2f} s (best of {', '.join(f'{t:.2f}' for t in times)})")
    label = "runner / floor" if engine == "eager" else f"runner {engine} / eager floor"
    print(f"{label} = {best / floor:.2f}")
    print_stages(timer, instrumented, n_fb, n_f, fb, fw)


def print_stages(timer: StageTimer, total: float, n_fb: int, n_f: int, fb: float, fw: float):
    """The breakdown of the instrumented run (main thread; other threads after it)."""
    main = timer.thread_seconds("main")
    main["Python/other"] = max(total - sum(main.values()), 0.0)
    per_image = {"gradient passes": (n_fb, fb), "forward passes": (n_f, fw)}
    print()
    print(
        f"where the time goes: the best instrumented run ({total:.2f} s), exclusive seconds "
        "per stage on the main thread"
    )
    print(
        f"{'stage':<24}{'seconds':>9}{'share':>7}{'calls':>7}{'per call':>10}   per image vs floor"
    )
    for stage in STAGES:
        s = main.get(stage, 0.0)
        calls = timer.calls.get(("main", stage), 0)
        per_call = fmt_cost(s / calls) if calls else "-"
        shown = calls or "-"
        line = f"{stage:<24}{s:>9.2f}{100 * s / total:>6.0f}%{shown:>7}{per_call:>10}"
        if stage in per_image:
            n, best = per_image[stage]
            line += (
                f"   {fmt_cost(s / max(n, 1))} vs {fmt_cost(best)}: {s / max(n * best, 1e-12):.2f}x"
            )
        print(line)
    print(f"{'total':<24}{total:>9.2f}{100:>6.0f}%")
    for stage, s in sorted(timer.other_threads().items()):
        print(f"off the main thread: {stage} {s:.2f} s (overlapped with the main thread's work)")


if __name__ == "__main__":
    main()
