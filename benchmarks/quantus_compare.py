"""absgrad's deletion curve vs Quantus's pixel flipping on the same maps and model.

Quantus (``quantus.PixelFlipping``) and ``absgrad.metrics.deletion_insertion`` run on the same
photos, model and VG maps, with the conventions set to coincide. Quantus broadcasts a
``(1, H, W)`` map over the channels and flips ``C * H * W`` features in descending order, and
its step size must divide ``H * W``; with ``features_in_step = H * W / steps`` it flips the
value of one channel-feature at a time to 0 (normalised space, as absgrad's deletion), and
after ``3k`` of its steps (``C = 3``) exactly the top ``k * H * W / steps`` pixels are flipped
in all channels. So its points ``3k`` equal absgrad's deletion curve at ``r = k / steps``
(``k = 1 .. steps - 1``), computed with softmax probabilities, no normalisation and no absolute
value. The curves are checked equal; printed: the time per perturbed image of both (their
ratio), and the time per deletion curve (Quantus needs ``C * steps`` forward passes per curve,
absgrad ``2 * steps`` for the deletion and the insertion curve).

Quantus is not an absgrad dependency: run this with a Python that has it (``pip install
quantus``, e.g. in a separate virtual environment on top of absgrad's).

    python benchmarks/quantus_compare.py --images 4 --steps 14
"""

from __future__ import annotations

import argparse
import sys
import warnings

import numpy as np
import torch
from common import add_common_args, best_time, load, machine

import absgrad
from absgrad import metrics as M
from absgrad.inference.engine import Engine


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    add_common_args(p)
    p.add_argument("--steps", type=int, default=14, help="curve points (must divide H * W)")
    p.add_argument("--batch-size", type=int, default=64, help="absgrad's forward chunk")
    p.add_argument("--engine", choices=("eager", "compile", "onnx"), default="eager")
    args = p.parse_args()
    try:
        import quantus
    except ImportError:
        print("quantus is not installed in this Python; see the docstring", file=sys.stderr)
        return 2
    print(f"machine: {machine()}, quantus {quantus.__version__}")
    case, model, x, y = load(args)
    model.eval()
    b, c, h, w = x.shape
    if (h * w) % args.steps:
        print(f"--steps {args.steps} must divide H * W = {h * w}", file=sys.stderr)
        return 2
    maps = absgrad.explain(model, x, y, "vg")  # (B, H, W) in [0, 1]

    forward = Engine(model, args.engine, chunk=args.batch_size)
    ours = lambda: M.deletion_insertion(  # noqa: E731
        forward,
        x,
        y,
        maps,
        steps=args.steps,
        normalization=case.normalization,
        batch_size=args.batch_size,
    )
    ours()  # warm-up (and the compile, with --engine compile)
    t_ours, res = best_time(ours, args.repeats)

    metric = quantus.PixelFlipping(
        features_in_step=h * w // args.steps,
        perturb_baseline=0.0,
        normalise=False,
        abs=False,
        disable_warnings=True,
        display_progressbar=False,
    )
    xb, yb = x.cpu().numpy(), y.cpu().numpy()
    ab = maps[:, None].cpu().numpy()

    def theirs():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return metric(
                model=model,
                x_batch=xb,
                y_batch=yb,
                a_batch=ab,
                device=args.device,
                softmax=True,
                batch_size=b,
            )

    theirs()  # warm-up
    t_q, curves = best_time(theirs, args.repeats)
    q = torch.tensor(np.asarray(curves), dtype=torch.float64)  # (B, C * steps)
    a = res.deletion.double().cpu()  # (B, steps), r = 0 .. (steps-1)/steps
    if q.shape[1] != c * args.steps:
        print(f"quantus returned {q.shape[1]} points, expected {c * args.steps}", file=sys.stderr)
        return 1
    diff = float((a[:, 1:] - q[:, c - 1 :: c][:, : args.steps - 1]).abs().max())
    n_ours = b * 2 * args.steps  # deletion and insertion curves, r = 0 included
    n_q = b * c * args.steps
    per_ours, per_q = t_ours / n_ours, t_q / n_q
    print(
        f"{b} images, {h} x {w} px, VG maps, {args.steps} steps, absgrad engine {args.engine}, chunk {args.batch_size}"
    )
    print(
        f"quantus PixelFlipping      {t_q:7.2f} s for {n_q} perturbed images: {per_q * 1e3:6.1f} ms each"
    )
    print(
        f"absgrad deletion_insertion {t_ours:7.2f} s for {n_ours} perturbed images: {per_ours * 1e3:6.1f} ms each (deletion and insertion)"
    )
    print(f"max |curve difference| = {diff:.2e}")
    print(f"ratio = quantus / absgrad per perturbed image = {per_q / per_ours:.2f}")
    print(
        f"ratio per deletion curve (quantus {c * args.steps} passes, absgrad {2 * args.steps} for both curves) = {t_q / t_ours:.2f}"
    )
    with torch.inference_mode():
        xs = x[:1].expand(args.batch_size, -1, -1, -1).contiguous()
        forward(xs)
        t_f, _ = best_time(lambda: forward(xs), args.repeats)
    print(
        f"forward pass alone: {t_f / args.batch_size * 1e3:.1f} ms per image; "
        f"absgrad per perturbed image / forward = {per_ours / (t_f / args.batch_size):.2f}"
    )
    if diff > 1e-5:
        print("the curves differ: the conventions do not coincide here", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
