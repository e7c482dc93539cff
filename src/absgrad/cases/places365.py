"""The ``places365`` case (paper case 3): Places365 validation, DenseNet-161, 224 center crop.

Layout of ``data``::

    val_256/Places365_val_00000001.jpg ...   the 36,500 validation photos (256 x 256)
    places365_val.txt                        "Places365_val_00000001.jpg 165" per line
    categories_places365.txt                 "/a/airfield 0" per line (365 lines)

(the two text files may also sit in ``filelist_places365-standard/``). Preprocessing: resize
the shorter side to 256, center-crop 224, ImageNet mean/std. The model is the CSAIL DenseNet-161
checkpoint ``densenet161_places365.pth.tar`` (keys renamed on load, see ``absgrad.models.builtin``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from absgrad.cases.base import (
    Case,
    CaseDataset,
    Record,
    Sample,
)
from absgrad.cases.io import SeenFiles
from absgrad.errors import AbsgradError, MissingFileError
from absgrad.models.builtin import PLACES_FILE, PLACES_URL, densenet161_places365
from absgrad.models.preprocess import Preprocess
from absgrad.utils.files import require_dir

SOURCE = "the Places365-Standard release (http://places2.csail.mit.edu/download.html)"
EXPECTED = "val_256/*.jpg, places365_val.txt and categories_places365.txt"
VAL_LIST = "places365_val.txt"
CATEGORIES = "categories_places365.txt"


def _find_list(root: Path, name: str) -> Path:
    for cand in (root / name, root / "filelist_places365-standard" / name):
        if cand.is_file():
            return cand
    raise MissingFileError(
        f"Places365 file {name} not found in {root} (nor in its filelist_places365-standard/). "
        f"Expected: {EXPECTED}. Source: {SOURCE}"
    )


def read_categories(path: Path) -> list[str]:
    """Category names in index order from ``categories_places365.txt`` ("/a/airfield 0")."""
    names: dict[int, str] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            raise AbsgradError(f"{path}, line {n}: expected '<category> <index>', got {line!r}")
        names[int(parts[1])] = parts[0]
    if sorted(names) != list(range(len(names))):
        raise AbsgradError(f"{path}: category indices are not 0..{len(names) - 1}")
    return [names[i] for i in range(len(names))]


def read_val_list(path: Path, num_classes: int, image_dir: Path) -> list[tuple[str, int]]:
    """``(file name, label)`` pairs from ``places365_val.txt`` (file names in ``image_dir``; one
    file listed twice, also under two names, is an error naming both lines)."""
    out = []
    seen = SeenFiles(path, image_dir, unit="line")
    for n, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit() or not int(parts[1]) < num_classes:
            raise AbsgradError(
                f"{path}, line {n}: expected '<file>.jpg <label in 0..{num_classes - 1}>', got {line!r}"
            )
        seen.add(parts[0], n, "file")
        out.append((parts[0], int(parts[1])))
    return out


class Places365Case(Case):
    """Places365 validation + the CSAIL DenseNet-161 (365 classes), 224 center crop.

    ``arch``: build another torchvision-layout DenseNet instead of DenseNet-161 (tests).
    """

    name = "places365"
    num_classes = 365
    preprocess = Preprocess(size=(224, 224), resize=256)  # ImageNet mean/std
    gradcam_layer = "features.denseblock4"
    has_masks = False

    def __init__(
        self,
        *,
        data: str | Path | None = None,
        weights: str | Path | None = None,
        arch: Callable[[], nn.Module] | None = None,
    ) -> None:
        super().__init__(data=data, weights=weights)
        self.root = require_dir(self.data, "Places365 folder", EXPECTED, SOURCE)
        self.image_dir = require_dir(
            self.root / "val_256", "Places365 val_256 folder", EXPECTED, SOURCE
        )
        self.categories = read_categories(_find_list(self.root, CATEGORIES))
        if len(self.categories) != self.num_classes:
            raise AbsgradError(
                f"{CATEGORIES} lists {len(self.categories)} categories, Places365 has {self.num_classes}"
            )
        self.val_list = _find_list(self.root, VAL_LIST)
        self.arch = arch

    def class_names(self) -> list[str] | None:
        """The categories without their letter folder (``/a/airfield`` -> ``airfield``)."""
        return [c.split("/", 2)[-1] if c.startswith("/") else c for c in self.categories]

    def build_model(self, device: str | torch.device = "cpu") -> nn.Module:
        if self.weights is None:
            raise MissingFileError(
                f"the places365 case needs weights=PATH to {PLACES_FILE} (DenseNet-161 trained on "
                f"Places365). Source: the Places365 CNN release, {PLACES_URL}"
            )
        return densenet161_places365(self.weights, device, arch=self.arch)

    def _build_dataset(self) -> CaseDataset:
        records = [
            Record(Path(f).stem, self.image_dir / f, label)
            for f, label in read_val_list(self.val_list, self.num_classes, self.image_dir)
        ]

        def load(r: Record) -> Sample:
            return Sample(r.id, self.load_image(r.path), r.label)

        return CaseDataset(records, load)
