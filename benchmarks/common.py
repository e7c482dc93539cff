"""Shared set-up for the benchmark scripts: model, images, timing."""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch

SHARED_SAMPLE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "imagenet-sample"


def add_common_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--case", default="imagenet-sample", help="case whose model and images are used")
    p.add_argument(
        "--data",
        default=str(SHARED_SAMPLE),
        type=lambda v: v or None,
        help="data folder of the case ('' for cases without one, e.g. synthetic)",
    )
    p.add_argument("--weights", default=None, help="weights file of the case's model")
    p.add_argument("--images", type=int, default=4, help="number of images")
    p.add_argument("--repeats", type=int, default=3, help="repeats; the best time is kept")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")


def load(args: argparse.Namespace):
    """(case, model, x (K, C, H, W) normalised, y (K,)) for the first ``--images`` images."""
    from absgrad.cases import get_case
    from absgrad.utils.allocator import tune_allocator

    tune_allocator()  # as the protocol runner does; both sides of a comparison share it
    case = get_case(args.case, data=args.data, weights=args.weights)
    model = case.build_model(args.device)
    samples = [case.samples()[i] for i in range(args.images)]
    pixels = torch.stack([s.image for s in samples]).to(args.device)
    y = torch.tensor([s.label for s in samples], device=args.device)
    return case, model, case.normalize(pixels), y


def best_time(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    """Best wall time of ``repeats`` calls (the device is synchronised), and the last result."""
    best, out = float("inf"), None
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t = time.perf_counter()
        out = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return best, out


def machine() -> str:
    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return f"{platform.node()} {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, {dev}, torch {torch.__version__}"
