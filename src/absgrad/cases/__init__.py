"""Cases: a dataset, a model, its preprocessing, the Grad-CAM layer and (maybe) masks, by name.

=================  =========================================================  ==========
name               data / model                                               masks
=================  =========================================================  ==========
demo               skimage.data photos / EfficientNet-Lite0 (built in)        drawn here
synthetic          generated shapes in noise / small CNN (shipped weights)    exact
imagenet-sample    ``data=`` ImageNet sample folder / EfficientNet-Lite0      none
imagenet-s         ``data=`` ImageNet-S validation / ResNet-50 (``weights=``) ImageNet-S
isic               ``data=`` SIIM-ISIC CSV + JPEGs / EfficientNet-B4 (``weights=``)  none
places365          ``data=`` Places365 val / DenseNet-161 (``weights=``)       none
folder             ``data=`` your images / ``model=`` spec (``weights=``)       ``masks=``
=================  =========================================================  ==========

Quick use::

    from absgrad.cases import get_case, select
    case = get_case("demo")
    model = case.build_model()
    keep = select(case, model)          # indices whose true-class probability > case.threshold
    sample = case.samples()[keep[0]]    # Sample(id, image (3, H, W) in [0, 1], label, mask)
    x = case.normalize(sample.image[None])
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from absgrad.cases.base import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    PAPER_REVERSAL,
    Case,
    CaseDataset,
    Sample,
    UnreadableImageError,
)
from absgrad.cases.demo import DemoCase
from absgrad.cases.folder import FolderCase
from absgrad.cases.imagenet_s import ImageNetSCase
from absgrad.cases.imagenet_sample import ImageNetSampleCase
from absgrad.cases.isic import IsicCase
from absgrad.cases.places365 import Places365Case
from absgrad.cases.select import default_cache_dir, score_case, select, true_class_probs
from absgrad.cases.synthetic import SyntheticCase, synthetic_model, train_synthetic_model
from absgrad.errors import AbsgradError

CASES: dict[str, type[Case]] = {
    c.name: c
    for c in (
        DemoCase, SyntheticCase, ImageNetSampleCase, ImageNetSCase, IsicCase, Places365Case,
        FolderCase,
    )
}  # fmt: skip


def get_case(
    name: str, *, data: str | Path | None = None, weights: str | Path | None = None, **kw: Any
) -> Case:
    """Build the case ``name`` (see ``CASES``) on local ``data`` and ``weights`` paths.

    Extra keyword arguments go to the case class (e.g. ``n``/``seed`` for synthetic, ``fold``
    for isic, ``model``/``masks``/``size``/``norm`` for folder). An unknown name is a
    ``ValueError`` listing the known ones.
    """
    cls = CASES.get(name)
    if cls is None:
        raise AbsgradError(f"unknown case {name!r}; known cases: {', '.join(CASES)}")
    return cls(data=data, weights=weights, **kw)


__all__ = [
    "CASES",
    "Case",
    "CaseDataset",
    "FolderCase",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PAPER_REVERSAL",
    "Sample",
    "UnreadableImageError",
    "default_cache_dir",
    "get_case",
    "score_case",
    "select",
    "synthetic_model",
    "train_synthetic_model",
    "true_class_probs",
]
