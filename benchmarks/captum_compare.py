"""absgrad vs Captum on the same work: SG and VarGrad (20 samples) and IG (same steps).

Prints the best time of each side over several repeats, the ratio captum / absgrad, and checks
that the maps agree where the methods coincide (same noise, same baseline and rule).

    python benchmarks/captum_compare.py --images 4
"""

from __future__ import annotations

import argparse

import torch
from captum.attr import IntegratedGradients, NoiseTunnel, Saliency
from common import add_common_args, best_time, load, machine

from absgrad.methods import attribute, explain_many


def captum_noise(x: torch.Tensor, stdev: float, n: int, partition: int, seed: int) -> torch.Tensor:
    """The noise Captum's NoiseTunnel draws after ``torch.manual_seed(seed)``, as ``(N, B, ...)``."""
    torch.manual_seed(seed)
    parts = []
    for _ in range(n // partition):
        size = (x.shape[0] * partition, *x.shape[1:])
        noise = torch.normal(0, torch.full(size, stdev, device=x.device))
        parts.append(noise.view(x.shape[0], partition, *x.shape[1:]).transpose(0, 1))
    return torch.cat(parts)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    add_common_args(p)
    p.add_argument("--samples", type=int, default=20)
    p.add_argument("--ig-steps", type=int, default=20)
    args = p.parse_args()
    case, model, x, y = load(args)
    n = args.samples
    stdev = float(0.15 * (x.max() - x.min()))
    print(f"machine: {machine()}\ncase {case.name}, {len(x)} images {tuple(x.shape[1:])}, N = {n}")
    attribute(model, x, y, "vg")  # warm-up (allocator, kernels)

    # --- Captum: NoiseTunnel(Saliency) at its best nt_samples_batch_size; SG and VarGrad are two runs
    nt = NoiseTunnel(Saliency(model))
    cap_best, cap_bs = float("inf"), None
    for bs in [d for d in (1, 2, 4, 5, 10, 20) if n % d == 0]:
        t, _ = best_time(
            lambda bs=bs: nt.attribute(
                x,
                target=y,
                nt_type="smoothgrad",
                nt_samples=n,
                stdevs=stdev,
                nt_samples_batch_size=bs,
                abs=False,
            ),
            args.repeats,
        )
        print(f"  captum NoiseTunnel smoothgrad, nt_samples_batch_size={bs}: {t:.2f} s")
        if t < cap_best:
            cap_best, cap_bs = t, bs
    t_var, _ = best_time(
        lambda: nt.attribute(
            x,
            target=y,
            nt_type="vargrad",
            nt_samples=n,
            stdevs=stdev,
            nt_samples_batch_size=cap_bs,
            abs=False,
        ),
        args.repeats,
    )
    cap_sg_var = cap_best + t_var

    # --- absgrad: best chunk size; SG and VarGrad from one sampler run
    ours_best, ours_bs = float("inf"), None
    for bs in (2, 4, 8, 16, 20, 40):
        t, _ = best_time(
            lambda bs=bs: attribute(model, x, y, "sg", n_samples=n, batch_size=bs), args.repeats
        )
        print(f"  absgrad sg, batch_size={bs}: {t:.2f} s")
        if t < ours_best:
            ours_best, ours_bs = t, bs
    reqs = {
        "SG": ("sg", {"n_samples": n, "batch_size": ours_bs}),
        "VarGrad": ("vargrad", {"n_samples": n, "batch_size": ours_bs}),
    }
    ours_sg_var, _ = best_time(lambda: explain_many(model, x, y, reqs, seed=0), args.repeats)

    # --- equality where the methods coincide: Captum's own noise fed to absgrad
    noise = captum_noise(x, stdev, n, cap_bs, seed=123)
    torch.manual_seed(123)
    cap_sg = nt.attribute(
        x,
        target=y,
        nt_type="smoothgrad",
        nt_samples=n,
        stdevs=stdev,
        nt_samples_batch_size=cap_bs,
        abs=False,
    )
    our_sg = attribute(model, x, y, "sg", n_samples=n, noise=noise, batch_size=ours_bs)
    sg_diff = float((cap_sg - our_sg).abs().max() / cap_sg.abs().max())

    # --- IG: fixed zero baseline, same steps, trapezoid rule (Captum's weights are (n-1)/n of ours)
    base = torch.zeros_like(x)
    ig = IntegratedGradients(model)
    cap_ig_t, cap_ig = best_time(
        lambda: ig.attribute(
            x,
            baselines=base,
            target=y,
            n_steps=args.ig_steps,
            method="riemann_trapezoid",
            internal_batch_size=len(x) * 4,
        ),
        args.repeats,
    )
    our_ig_t, our_ig = best_time(
        lambda: attribute(
            model,
            x,
            y,
            "ig",
            baselines=base,
            n_samples=1,
            steps=args.ig_steps,
            rule="trapezoid",
            batch_size=ours_bs,
        ),
        args.repeats,
    )
    ig_diff = float(
        (cap_ig - our_ig * (args.ig_steps - 1) / args.ig_steps).abs().max() / cap_ig.abs().max()
    )

    print("\nwork                      captum (s)  absgrad (s)  captum/absgrad  max rel diff")
    print(
        f"SG, N={n:<3}                {cap_best:10.2f}  {ours_best:11.2f}  {cap_best / ours_best:14.2f}  {sg_diff:.1e}"
    )
    print(
        f"SG + VarGrad, N={n:<3}       {cap_sg_var:10.2f}  {ours_sg_var:11.2f}  {cap_sg_var / ours_sg_var:14.2f}"
    )
    print(
        f"IG, {args.ig_steps} steps              {cap_ig_t:10.2f}  {our_ig_t:11.2f}  {cap_ig_t / our_ig_t:14.2f}  {ig_diff:.1e}"
    )


if __name__ == "__main__":
    main()
