"""Peak memory of GAG for N = 10, 50, 200 samples: it must stay flat.

Each N runs in a fresh process; on CPU the peak resident set size grows only if samples were
kept; on CUDA ``torch.cuda.max_memory_allocated`` is reported too.

    python benchmarks/memory.py --images 2
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from common import add_common_args, load, machine


def child(args: argparse.Namespace) -> None:
    import resource

    import torch

    from absgrad.methods import attribute

    _, model, x, y = load(args)
    attribute(model, x, y, "gag", n_samples=2, batch_size=args.batch_size)  # warm up
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    attribute(model, x, y, "gag", n_samples=args.n, batch_size=args.batch_size)
    out = {
        "rss_growth_mib": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024,
        "rss_peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if torch.cuda.is_available():
        out["cuda_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    print(json.dumps(out))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    add_common_args(p)
    p.add_argument("--n", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--batch-size", type=int, default=4)
    args = p.parse_args()
    if args.n is not None:
        return child(args)
    print(f"machine: {machine()}")
    stack_mib = None
    for n in (10, 50, 200):
        cmd = [
            sys.executable,
            __file__,
            "--n",
            str(n),
            "--images",
            str(args.images),
            "--case",
            args.case,
            "--data",
            args.data or "",
            "--device",
            args.device,
            "--batch-size",
            str(args.batch_size),
        ]
        if args.weights:
            cmd += ["--weights", args.weights]
        res = json.loads(
            subprocess.run(cmd, capture_output=True, text=True, check=True)
            .stdout.strip()
            .splitlines()[-1]
        )
        if stack_mib is None:
            _, _, x, _ = load(args)
            stack_mib = x.numel() * 4 / 2**20
        extra = f", cuda peak {res['cuda_peak_mib']:.0f} MiB" if "cuda_peak_mib" in res else ""
        print(
            f"N = {n:3d}: peak RSS {res['rss_peak_mib']:.0f} MiB (growth after warm-up {res['rss_growth_mib']:.1f} MiB){extra}; "
            f"a stack of N gradients would need {n * stack_mib:.0f} MiB"
        )


if __name__ == "__main__":
    main()
