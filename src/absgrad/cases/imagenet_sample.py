"""The ``imagenet-sample`` case (tests and benchmarks): real ImageNet photos with Lite0, no masks.

Layout of ``data`` (e.g. ``../shared/data/imagenet-sample``): the JPEG photos and ``labels.csv``
with the columns ``file,wnid,class_index,name`` (``class_index``: the ImageNet-1k index).
Preprocessing: resize the shorter side to 256, center-crop 224, inputs in [-1, 1].
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from absgrad.cases.base import (
    SYMMETRIC,
    Case,
    CaseDataset,
    Record,
    Sample,
)
from absgrad.cases.io import LabelTable, read_label_table
from absgrad.models.builtin import lite0_model
from absgrad.models.preprocess import Preprocess
from absgrad.utils.files import require_dir, require_file

LABELS_FILE = "labels.csv"
COLUMNS = ("file", "wnid", "class_index", "name")


def read_labels_csv(path: Path) -> LabelTable:
    """Rows of ``labels.csv``; a missing column, short row or a file listed twice (also under
    two names: ``a.jpg``, ``./a.jpg``) names file and row."""
    return read_label_table(
        path, required=("file", "class_index"), key="file", files_in=path.parent
    )


class ImageNetSampleCase(Case):
    """The ImageNet sample photos + EfficientNet-Lite0 (224 px, mean = std = 0.5), no masks."""

    name = "imagenet-sample"
    num_classes = 1000
    preprocess = Preprocess(size=(224, 224), resize=256, mean=SYMMETRIC[0], std=SYMMETRIC[1])
    gradcam_layer = "blocks.6"
    has_masks = False

    def __init__(
        self, *, data: str | Path | None = None, weights: str | Path | None = None
    ) -> None:
        super().__init__(data=data, weights=weights)
        self.root = require_dir(
            self.data,
            "imagenet-sample folder",
            f"a folder of ImageNet JPEGs with {LABELS_FILE} ({','.join(COLUMNS)})",
            "../shared/data/imagenet-sample beside the project checkout",
        )
        self.labels_path = require_file(
            self.root / LABELS_FILE,
            "imagenet-sample label file",
            f"CSV with header {','.join(COLUMNS)}",
            "the imagenet-sample folder",
        )

    def class_names(self) -> list[str] | None:
        from absgrad.cases.imagenet_s import imagenet_names

        return list(imagenet_names())

    def build_model(self, device: str | torch.device = "cpu") -> nn.Module:
        return lite0_model(self.weights, device)

    def _build_dataset(self) -> CaseDataset:
        table = read_labels_csv(self.labels_path)
        labels = table.int_column("class_index", 0, self.num_classes)
        records = [
            Record(Path(row["file"]).stem, self.root / row["file"], label)
            for row, label in zip(table, labels, strict=True)
        ]

        def load(r: Record) -> Sample:
            return Sample(r.id, self.load_image(r.path), r.label, None)

        return CaseDataset(records, load)
