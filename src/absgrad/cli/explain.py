"""``absgrad explain``: a saliency map of one image, saved as an overlay PNG and a .npy."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from absgrad.cli.errors import UserError


def _parse_params(items: list[str]) -> dict[str, Any]:
    import yaml

    out = {}
    for item in items:
        if "=" not in item:
            raise UserError(f"--param expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip()] = yaml.safe_load(v)
    return out


def _explain_case(args: argparse.Namespace) -> Any:
    """The case whose model and preprocessing ``explain`` uses: a built-in one or a model spec."""
    from absgrad.cases import CASES, get_case

    own = {k: getattr(args, k) for k in ("classes", "size", "resize", "norm", "layer")}
    if args.model in CASES and args.model != "folder":
        given = [f"--{k}" for k, v in own.items() if v is not None and k != "layer"]
        if given:
            raise UserError(f"{', '.join(given)} apply to a model spec, not to case {args.model!r}")
        return get_case(args.model, data=args.data, weights=args.weights)
    if ":" not in args.model:
        raise UserError(
            f"unknown model {args.model!r}: give a model spec (timm:NAME, torchvision:NAME, "
            f"package.module:factory) or a case name ({', '.join(c for c in CASES if c != 'folder')})"
        )
    kw = {k: v for k, v in own.items() if v is not None}
    return get_case("folder", data=None, weights=args.weights, model=args.model, **kw)


def cmd_explain(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from absgrad.methods import explain
    from absgrad.protocol.config import check_device

    src = Path(args.image)
    if not src.is_file():
        raise UserError(f"image file not found: {src}")
    check_device("--device", args.device)
    out = _explain_out(Path(args.out), src, args.method)
    case = _explain_case(args)
    model = case.build_model(args.device)
    if hasattr(case, "load_image"):
        pixels = case.load_image(src)
    else:
        pixels = _load_image(src, case.image_size)
    x = case.normalize(pixels[None]).to(args.device)
    with torch.inference_mode():
        probs = model(x).softmax(dim=1)[0]
    target = int(probs.argmax()) if args.target is None else args.target
    if not 0 <= target < probs.shape[0]:
        raise UserError(
            f"--target {target} is out of range for a model with {probs.shape[0]} classes"
        )
    params = _parse_params(args.param)
    layer = args.layer or case.gradcam_layer or None
    if args.layer is not None and args.method.lower() != "gradcam":
        raise UserError(f"--layer applies to --method gradcam, not to {args.method!r}")
    if args.method.lower() == "gradcam" and layer is not None:
        params.setdefault("layer", layer)
    gen = torch.Generator().manual_seed(args.seed)
    smap = explain(model, x, target, args.method, generator=gen, **params)[0].cpu()
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out.with_suffix(".npy"), smap.numpy())
    names = getattr(case, "classes", None)
    label = f"{target} {names[target]}" if names and target < len(names) else str(target)
    _save_overlay(pixels, smap, out, f"{args.method} (class {label}, p={float(probs[target]):.2f})")
    print(
        f"class {label} (probability {float(probs[target]):.3f}); "
        f"map: {out} and {out.with_suffix('.npy')}"
    )
    return 0


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".pdf", ".svg")


def _explain_out(out: Path, image: Path, method: str) -> Path:
    """``--out``: an image file (``.png``, ...), or a folder that receives ``<image>-<method>.png``."""
    if out.is_dir() or str(out).endswith(("/", os.sep)):
        return out / f"{image.stem}-{method}.png"
    if out.suffix.lower() not in IMAGE_SUFFIXES:
        raise UserError(
            f"--out {out}: give a file name ending in {', '.join(IMAGE_SUFFIXES)}, or an "
            "existing folder (or one written with a trailing /) to write into"
        )
    return out


def _load_image(path: Path, size: tuple[int, int]):
    import numpy as np
    import torch
    from PIL import Image

    from absgrad.cases.io import read_rgb_image

    im = read_rgb_image(path)
    w, h = im.size
    s = max(size) / min(w, h)
    im = im.resize((max(size[1], round(w * s)), max(size[0], round(h * s))), Image.BILINEAR)
    left, top = (im.size[0] - size[1]) // 2, (im.size[1] - size[0]) // 2
    im = im.crop((left, top, left + size[1], top + size[0]))
    return torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1).float() / 255.0


def _save_overlay(pixels, smap, out: Path, title: str) -> None:
    """The photo and the map drawn over it as the report does (percentile-clipped, inferno)."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    from absgrad.report.figures import ordinal
    from absgrad.report.overlay import CLIP, CMAP, overlay

    photo = (pixels.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    fig = Figure(figsize=(8.6, 4))
    a, b = fig.subplots(1, 2)
    a.imshow(photo)
    a.set_title("image")
    b.imshow(overlay(photo, smap.float().numpy()))
    b.set_title(title)
    for ax in (a, b):
        ax.axis("off")
    bar = fig.colorbar(ScalarMappable(Normalize(0, 1), cmap=CMAP), ax=b, fraction=0.046)
    bar.set_ticks([0, 1], labels=[f"{ordinal(CLIP[0])} pct", f"{ordinal(CLIP[1])} pct"])
    fig.savefig(out, dpi=100, bbox_inches="tight")
