"""A saliency map of one image file: :func:`explain_file`, and :func:`save_explanation` to write it.

What ``absgrad explain`` does, from Python::

    import absgrad
    e = absgrad.explain_file("photo.jpg", model="timm:resnet18", weights="r18.pth",
                             method="gradcam")
    print(e.label, e.probability, e.map.shape)   # class index and name, its probability, (H, W)
    absgrad.save_explanation(e, "cam.png")       # the overlay PNG, and the map as cam.npy

The model is a built-in case's (``model="demo"``, ``"imagenet-sample"``...) or a model spec
(``timm:NAME``, ``torchvision:NAME``, ``hf:ORG/NAME``, ``package.module:factory``) with its
``weights`` (a file, ``"pretrained"``: the default, or ``"random"``), its preprocessing
(``size``, ``resize``, ``norm``) and class names (``classes``; else the model's own). The image is read with the case's
preprocessing, so the map is the one :func:`absgrad.explain` gives for the same pixels.
"""

from __future__ import annotations

import operator
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from absgrad.cases import CASES, Case, get_case
from absgrad.errors import AbsgradError, ArgumentError, MissingFileError, excerpt
from absgrad.methods import explain
from absgrad.methods.registry import get_method, resolve_params
from absgrad.metrics.forward import chunk_probs
from absgrad.names import WEIGHT_WORDS
from absgrad.utils.files import output_errors

#: Files :func:`save_explanation` writes the overlay as (matplotlib picks the format).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".pdf", ".svg")


@dataclass(frozen=True)
class Explanation:
    """The map of one image file and what it was computed from."""

    image: Path  # the image file
    method: str  # as given (any case: "GradCAM")
    map: Tensor  # (H, W) in [0, 1], on the CPU
    pixels: Tensor  # (3, H, W) in [0, 1]: the photo as the model saw it, before normalisation
    target: int  # the class explained
    probability: float  # the model's softmax probability of ``target``
    class_name: str | None  # ``target``'s name, where the case knows class names
    case: Case  # the case whose model and preprocessing were used

    @property
    def label(self) -> str:
        """``"1 bee"`` (class index and name), or ``"1"`` without class names."""
        return f"{self.target} {self.class_name}" if self.class_name else str(self.target)


def explain_file(
    image: str | Path,
    *,
    model: str = "demo",
    method: str = "gag",
    weights: str | Path | None = None,
    data: str | Path | None = None,
    target: int | None = None,
    layer: str | None = None,
    params: Mapping[str, Any] | None = None,
    seed: int = 0,
    device: str = "auto",
    classes: str | None = None,
    size: str | int | None = None,
    resize: str | int | None = None,
    norm: str | None = None,
) -> Explanation:
    """The ``method`` map of ``image`` for ``target`` (default: the predicted class).

    ``model`` is a built-in case name (its model, ``weights`` and ``data`` folder where it
    needs them) or a model spec; ``classes``/``size``/``resize``/``norm`` apply to a model spec
    only. ``layer`` is Grad-CAM's (default: the case's, else the default-layer rule);
    ``params`` are the method's (``{"n_samples": 50}``); ``seed`` seeds the sampler.

    Bad input raises an :class:`~absgrad.errors.AbsgradError` naming it, before the model
    is built where it can: a missing file, an unknown method, model or parameter, a layer for
    another method, options that do not apply, a target out of range.
    """
    from absgrad.protocol.config import check_device

    src = Path(image)
    if not src.is_file():
        raise MissingFileError(f"image file not found: {src}")
    params = dict(params or {})
    resolve_params(get_method(method), params)  # an unknown method or parameter fails here
    if layer is not None and method.lower() != "gradcam":
        raise ArgumentError(
            f"{{layer}} applies to {{method}} gradcam, not to {method!r}", "layer", "method"
        )
    device = check_device("device", device)  # auto: CUDA, else MPS, else the CPU
    case = _case(
        model, weights, data, classes=classes, size=size, resize=resize, norm=norm, layer=layer
    )
    net = case.build_model(device)
    pixels = case.load_image(src)  # the pixels `run` scores for this file
    x = case.normalize(pixels[None]).to(device)
    with torch.inference_mode():
        probs = chunk_probs(net, x)[0]  # NaN or infinite logits are refused here
    target = int(probs.argmax()) if target is None else _class_index(target, probs.shape[0])
    layer = layer or case.gradcam_layer or None
    if method.lower() == "gradcam" and layer is not None:
        params.setdefault("layer", layer)
    gen = torch.Generator().manual_seed(seed)
    smap = explain(net, x, target, method, generator=gen, **params)[0].cpu()
    names = case.class_names()
    return Explanation(
        image=src,
        method=method,
        map=smap,
        pixels=pixels,
        target=target,
        probability=float(probs[target]),
        class_name=str(names[target]) if names and target < len(names) else None,
        case=case,
    )


def overlay_path(out: str | Path, image: str | Path, method: str) -> Path:
    """Where :func:`save_explanation` writes: ``out`` if it names an image file, or
    ``out/<image stem>-<method>.png`` if it is a folder (existing, or written with a trailing /)."""
    path = Path(out)
    if path.is_dir() or str(out).endswith(("/", os.sep)):
        return path / f"{Path(image).stem}-{method}.png"
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise ArgumentError(
            f"{{out}} {path}: give a file name ending in {', '.join(IMAGE_SUFFIXES)}, or an "
            "existing folder (or one written with a trailing /) to write into",
            "out",
        )
    return path


def save_explanation(explanation: Explanation, out: str | Path) -> tuple[Path, Path]:
    """Write the photo with the map over it (``out``: see :func:`overlay_path`) and the map
    as ``.npy`` beside it; returns both paths."""
    import numpy as np

    from absgrad.report.overlay import overlay_figure

    e = explanation
    path = overlay_path(out, e.image, e.method)
    npy = path.with_suffix(".npy")
    with output_errors(path, "the map"):
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(npy, e.map.numpy())
        photo = (e.pixels.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
        title = f"{e.method} (class {e.label}, p={e.probability:.2f})"
        figure = overlay_figure(photo, e.map.float().numpy(), title)
        figure.savefig(path, dpi=100, bbox_inches="tight")
    return path, npy


def _class_index(target: Any, n_classes: int) -> int:
    try:
        target = operator.index(target)
    except TypeError:
        raise ArgumentError(
            f"{{target}} must be a class index, got {excerpt(target)}", "target"
        ) from None
    if not 0 <= target < n_classes:
        raise ArgumentError(
            f"{{target}} {target} is out of range for a model with {n_classes} classes", "target"
        )
    return target


def _case(model: str, weights: str | Path | None, data: str | Path | None, **own: Any) -> Case:
    """The case whose model and preprocessing are used: a built-in one, or a model spec's."""
    if model in CASES and model != "folder":
        given = [k for k, v in own.items() if v is not None and k != "layer"]
        if given:
            raise ArgumentError(
                ", ".join("{" + k + "}" for k in given)
                + f" apply to a model spec, not to case {model!r}",
                *given,
            )
        if isinstance(weights, str) and weights.strip().lower() in WEIGHT_WORDS:
            raise ArgumentError(
                f"{{weights}} {weights!r} applies to a model spec; case {model!r} takes a "
                "weights file",
                "weights",
            )
        return get_case(model, data=data, weights=weights)
    if ":" not in model:
        raise AbsgradError(
            f"unknown model {model!r}: give a model spec (timm:NAME, torchvision:NAME, "
            f"hf:ORG/NAME, package.module:factory) or a case name ({', '.join(c for c in CASES if c != 'folder')})"
        )
    kw = {k: v for k, v in own.items() if v is not None}
    return get_case("folder", data=None, weights=weights, model=model, **kw)
