"""What the protocol benchmarks share: a config, a counting model wrapper, the absgrad run,
the per-method baseline, and the per-pass costs of the model."""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
from common import best_time, fmt_cost
from torch import nn

from absgrad.protocol.config import make_config
from absgrad.protocol.runner import run_protocol
from absgrad.protocol.store import RunStore
from absgrad.protocol.worker import build_context
from absgrad.utils.determinism import kept, set_deterministic


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


class PassCounter:
    """Counts images through a model (a forward pre-hook, so module names stay as they are):
    with autograd (forward+backward) and without (forward only)."""

    def __init__(self, model: nn.Module) -> None:
        self.grad_images = 0
        self.fwd_images = 0
        model.register_forward_pre_hook(self._count)

    def _count(self, _module: nn.Module, args: tuple) -> None:
        if torch.compiler.is_compiling():  # a compiled engine's trace: not a pass
            return
        x = args[0]
        if torch.is_grad_enabled() and x.requires_grad:
            self.grad_images += x.shape[0]
        else:
            self.fwd_images += x.shape[0]


def add_protocol_args(p: argparse.ArgumentParser) -> None:
    """The runner's chunk sizes: the config's defaults on a CPU; on a GPU 16 images per unit
    and the forward chunk measured (``auto``)."""
    gpu = torch.cuda.is_available()
    p.add_argument(
        "--batch-size",
        type=int,
        default=16 if gpu else 4,
        help="images per unit and gradient chunk",
    )
    p.add_argument(
        "--eval-batch-size",
        type=lambda v: v if v == "auto" else int(v),
        default="auto" if gpu else 16,
        help="perturbed images per forward pass, or auto",
    )
    p.add_argument(
        "--grad-batch-size",
        type=lambda v: v if v == "auto" else int(v),
        default="auto",
        help="images per gradient pass, or auto (the runner's default: --batch-size on a CPU, "
        "measured on a GPU)",
    )
    p.add_argument(
        "--engine",
        choices=("eager", "compile", "onnx", "cudagraph"),
        default="eager",
        help="the runner's forward engine (floor.py: also time the runner with it against the "
        "eager floor)",
    )
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32", help="engine precision")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: torch's); 1 keeps a shared machine's load from stalling "
        "every op on its thread pool, for steadier ratios",
    )
    p.add_argument(
        "--deterministic",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the run option 'deterministic' (default on), for the runner and the baseline alike",
    )


def protocol_args(description: str | None, extra=None) -> tuple[argparse.Namespace, object]:
    """Parse the common and runner arguments of a protocol benchmark (and ``extra(parser)``'s),
    print the machine; returns (args, the case to run on)."""
    from common import add_common_args, bench_case, machine

    p = argparse.ArgumentParser(description=description)
    add_common_args(p)
    add_protocol_args(p)
    if extra is not None:
        extra(p)
    args = p.parse_args()
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    print(f"machine: {machine()}")
    return args, bench_case(args)


def protocol_config(args: argparse.Namespace, **extra):
    return make_config(
        {
            "case": args.case,
            "data": args.data,
            "weights": args.weights,
            "limit": args.images,
            "device": args.device,
            "batch_size": args.batch_size,
            "eval_batch_size": args.eval_batch_size,
            "grad_batch_size": args.grad_batch_size,
            "tables": [1, 2, 3],
            "save_maps": False,
            "select": False,  # the first K images: selection would time the selection pass too
            "engine": "eager",  # the plain PyTorch runner unless a script asks for another
            "deterministic": args.deterministic,
            **extra,
        }
    )


def run_absgrad(config, counter: bool = False, case=None, ctx=None):
    """Run the protocol into a fresh directory; returns (seconds, scores by (unit, label), ctx).

    With ``counter``, ``ctx.counter`` holds the :class:`PassCounter` of the run; ``case``
    replaces the config's case (see ``common.bench_case``). ``ctx``: reuse a context (and its
    compiled engine) from an earlier run; its cached batches are dropped first, so the run
    recomputes everything."""
    if ctx is None:
        ctx = build_context(config, case=case)
    else:
        ctx.batches.clear()
        ctx.stats.update(dict.fromkeys(ctx.stats, 0))
    if counter:
        ctx.counter = PassCounter(ctx.model)
    with tempfile.TemporaryDirectory() as out:
        sync()
        t = time.perf_counter()
        run_protocol(config, out, quiet=True, context=ctx)
        sync()
        dt = time.perf_counter() - t
        scores = {}
        for rec in RunStore(out).records():
            for label, s in rec["scores"].items():
                scores[(tuple(rec["image_ids"]), label)] = s
    return dt, scores, ctx


def run_baseline(config, ctx):
    """Every map of the same tables computed separately (no sampler sharing, each metric call
    computing its own clean and blurred predictions), with the same library functions.

    Returns (seconds, scores by (image ids, label)).
    """
    from absgrad.protocol.runner import select_images

    indices, ids, _ = select_images(config, ctx)
    with kept():  # the runner's switches (the 'deterministic' option), restored afterwards
        set_deterministic(config.deterministic)
        return _baseline_loop(config, ctx, indices, ids)


def _baseline_loop(config, ctx, indices, ids):
    from absgrad.methods import explain, reverse
    from absgrad.methods.randomness import image_seed
    from absgrad.protocol.scoring import score_maps

    samples = ctx.case.samples()
    scores = {}
    t = time.perf_counter()
    for start in range(0, len(indices), config.batch_size):
        items = [samples[i] for i in indices[start : start + config.batch_size]]
        x = ctx.case.normalize(torch.stack([s.image for s in items])).to(ctx.device)
        y = torch.tensor([s.label for s in items], device=ctx.device)
        masks = torch.stack([s.mask for s in items]).to(ctx.device) if ctx.case.has_masks else None
        key = tuple(ids[start : start + config.batch_size])
        seeds = [image_seed(config.seed, i) for i in key]
        for label, spec in ctx.specs.items():
            src = ctx.specs[spec.reverse_of] if spec.derived else spec
            m = explain(ctx.model, x, y, src.method, seeds=seeds, **dict(src.params))
            if spec.derived:
                remain, mis = spec.reversal
                shuffles = [image_seed(s, label) for s in seeds]
                m = reverse(m.cpu(), remain=remain, mis=mis, seeds=shuffles).to(ctx.device)
            scores[(key, label)] = score_maps(
                ctx.model, x, y, m, ctx.metrics, ctx.eval, masks=masks
            )
    sync()
    return time.perf_counter() - t, scores


def max_score_difference(a: dict, b: dict) -> float:
    """Largest absolute difference between two score collections (same keys required)."""
    if set(a) != set(b):
        raise AssertionError(f"different (images, map) pairs: {sorted(set(a) ^ set(b))[:5]}")
    worst = 0.0
    for k in a:
        for metric, va in a[k].items():
            ta, tb = (
                torch.tensor(va, dtype=torch.float64),
                torch.tensor(b[k][metric], dtype=torch.float64),
            )
            worst = max(worst, float((ta - tb).abs().max()))
    return worst


def pass_costs(
    model: nn.Module, shape: tuple[int, ...], device: str, repeats: int
) -> dict[str, dict[int, float]]:
    """Best seconds per image of a forward+backward pass and of a forward pass, per chunk size."""
    out: dict[str, dict[int, float]] = {"fwd_bwd": {}, "fwd": {}}
    for p in model.parameters():
        p.requires_grad_(False)
    gpu = torch.device(device).type == "cuda"
    for bs in (1, 2, 4, 8, 16, 32, 64) if gpu else (1, 2, 4, 8, 16):
        x = torch.randn(bs, *shape, device=device)

        def fb(x=x):
            xi = x.clone().requires_grad_(True)
            torch.autograd.grad(model(xi)[:, 0].sum(), xi)

        fb()
        out["fwd_bwd"][bs] = best_time(lambda fb=fb: [fb() for _ in range(3)], repeats)[0] / (
            3 * bs
        )
    for bs in (4, 8, 16, 32, 64, 128, 256, 512) if gpu else (4, 8, 16, 32, 64):
        x = torch.randn(bs, *shape, device=device)
        with torch.inference_mode():
            model(x)
            out["fwd"][bs] = best_time(lambda x=x: [model(x) for _ in range(3)], repeats)[0] / (
                3 * bs
            )
    return out


def print_pass_costs(costs: dict[str, dict[int, float]]) -> None:
    """Print :func:`pass_costs`' per-image costs, one line per pass kind."""
    for kind, label in (("fwd_bwd", "forward+backward"), ("fwd", "forward")):
        sizes = ", ".join(f"bs {b}: {fmt_cost(v)}" for b, v in costs[kind].items())
        print(f"per-image cost, {(label + ':'):<18}{sizes}")
