"""Shared set-up for the benchmark scripts: model, images, timing."""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from absgrad.cases import Sample
from absgrad.cases.base import IMAGENET_MEAN, IMAGENET_STD, Case

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
    p.add_argument(
        "--device",
        default="auto",
        type=_device,
        help="auto (default: CUDA, else MPS, else CPU), cpu, cuda, cuda:N or mps",
    )
    p.add_argument(
        "--arch",
        choices=sorted(ARCHS),
        default=None,
        help="time this torchvision architecture on the case's photos instead of the case's "
        "model (random weights unless --weights; timing does not depend on them)",
    )
    p.add_argument("--size", type=int, default=None, help="resize the photos to SIZE px")


def _device(name: str) -> str:
    """The device ``--device`` names here (``auto``: the best one), printed by ``machine``."""
    from absgrad.protocol.config import check_device

    return check_device("--device", name)


def bench_case(args: argparse.Namespace):
    """The case of ``--case`` (with ``--arch``/``--size`` applied) for the benchmarks."""
    from absgrad.cases import get_case

    if args.arch is None:
        case = get_case(args.case, data=args.data, weights=args.weights)
        return case if args.size is None else ResizedCase(case, args.size)
    case = get_case(args.case, data=args.data)
    return ArchCase(case, args.arch, args.size or 256, args.weights)


def load(args: argparse.Namespace):
    """(case, model, x (K, C, H, W) normalised, y (K,)) for the first ``--images`` images."""
    from absgrad.inference.allocator import tune_allocator

    tune_allocator()  # as the protocol runner does; both sides of a comparison share it
    case = bench_case(args)
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


def fmt_cost(seconds: float) -> str:
    """A per-pass or per-image cost: microseconds below a millisecond, else milliseconds (one
    decimal) below a second, else seconds."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1.0:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def machine() -> str:
    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return f"{platform.node()} {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, {dev}, torch {torch.__version__}"


class ResizedSamples(Sequence):
    """A case's samples resized to ``size`` x ``size`` on access (ids and labels unchanged)."""

    def __init__(self, samples: Sequence[Sample], size: int) -> None:
        self.base, self.size = samples, size

    @property
    def ids(self) -> list[str]:
        return list(self.base.ids) if hasattr(self.base, "ids") else [s.id for s in self.base]

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> Sample:  # type: ignore[override]
        s = self.base[index]
        hw = (self.size, self.size)
        image = F.interpolate(s.image[None], size=hw, mode="bilinear", antialias=True)[0]
        mask = None
        if s.mask is not None:
            mask = F.interpolate(s.mask[None, None].float(), size=hw, mode="nearest")[0, 0] > 0.5
        return Sample(s.id, image.clamp(0, 1), s.label, mask)


class ResizedCase:
    """A case whose samples come at ``size`` px; every other attribute is the wrapped case's."""

    def __init__(self, case, size: int) -> None:
        self._case = case
        self.image_size = (size, size)
        self._resized = ResizedSamples(case.samples(), size)

    def samples(self) -> ResizedSamples:
        return self._resized

    def __getattr__(self, name: str):
        return getattr(self._case, name)


#: Architectures for ``--arch``: torchvision constructor and Grad-CAM layer.
ARCHS = {"resnet50": ("resnet50", "layer4"), "resnet18": ("resnet18", "layer4")}


class ArchCase(ResizedCase):
    """The case's photos at ``size`` px with another model: a torchvision architecture with
    ImageNet normalisation, random weights unless ``weights`` (a state dict) is given."""

    normalization = (IMAGENET_MEAN, IMAGENET_STD)
    normalize = Case.normalize  # the case's own normalisation, with this class's mean and std
    denormalize = Case.denormalize

    def __init__(self, case, arch: str, size: int, weights: str | None = None) -> None:
        super().__init__(case, size)
        self.arch, self.weights_file = arch, weights
        self.gradcam_layer = ARCHS[arch][1]

    def build_model(self, device="cpu"):
        import torchvision.models as tvm

        torch.manual_seed(0)
        model = getattr(tvm, ARCHS[self.arch][0])(weights=None)
        if self.weights_file:
            model.load_state_dict(
                torch.load(self.weights_file, map_location="cpu", weights_only=True)
            )
        return model.to(device).eval()
