"""The ``isic`` case (paper case 2): ISIC 2018-2020 dermoscopy, an EfficientNet-B4, 9 classes.

Layout of ``data`` (the SIIM-ISIC style used by the 2020 winning solution)::

    train.csv             columns image_name, diagnosis (or a 9-class target), optional fold
    train/<image_name>.jpg   (or jpeg/train/<image_name>.jpg, or <image_name>.jpg beside the CSV)

Diagnoses of the 2018-2020 challenges map onto the 9 classes ``DIAGNOSES`` (sorted: AK, BCC,
BKL, DF, MEL, NV, SCC, VASC, unknown): 2020 names such as "nevus" -> NV, "seborrheic keratosis",
"lichenoid keratosis", "solar lentigo", "lentigo NOS" -> BKL, "cafe-au-lait macule" and "atypical
melanocytic proliferation" -> unknown; 2018/2019 codes (NV, MEL, ..., HAM10000's akiec, bkl, ...)
map to themselves. Images are resized to 448 x 448, ImageNet mean/std.

The model is a user checkpoint: a ``tf_efficientnet_b4`` backbone under ``enet.`` and a linear
9-class head ``myfc`` (see ``absgrad.models.builtin.isic_model``).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from absgrad.cases.base import (
    Case,
    CaseDataset,
    Record,
    Sample,
)
from absgrad.cases.io import LabelTableError, read_label_table
from absgrad.errors import AbsgradError, MissingFileError
from absgrad.models.builtin import isic_model
from absgrad.models.preprocess import Preprocess
from absgrad.utils.files import require_dir, require_file

DIAGNOSES = ("AK", "BCC", "BKL", "DF", "MEL", "NV", "SCC", "VASC", "unknown")
_ALIASES = {
    "nevus": "NV",
    "melanoma": "MEL",
    "seborrheic keratosis": "BKL",
    "lichenoid keratosis": "BKL",
    "solar lentigo": "BKL",
    "lentigo nos": "BKL",
    "benign keratosis": "BKL",
    "cafe-au-lait macule": "unknown",
    "atypical melanocytic proliferation": "unknown",
    "actinic keratosis": "AK",
    "akiec": "AK",
    "basal cell carcinoma": "BCC",
    "dermatofibroma": "DF",
    "squamous cell carcinoma": "SCC",
    "vascular lesion": "VASC",
}
SOURCE = (
    "the SIIM-ISIC Melanoma Classification data (ISIC 2020) plus the ISIC 2018/2019 training "
    "images, e.g. the resized 'jpeg-melanoma' / 'jpeg-isic2019' sets with their train.csv"
)
EXPECTED = "train.csv (image_name, diagnosis[, fold]) and train/<image_name>.jpg"


def diagnosis_index(name: str) -> int:
    """Index in ``DIAGNOSES`` of a diagnosis name or code (case-insensitive)."""
    key = name.strip()
    upper = {d.upper(): i for i, d in enumerate(DIAGNOSES)}
    if key.upper() in upper:
        return upper[key.upper()]
    alias = _ALIASES.get(key.lower())
    if alias is None:
        raise AbsgradError(
            f"unknown ISIC diagnosis {name!r}: expected one of {list(DIAGNOSES)} or a 2018-2020 "
            f"challenge name such as {sorted(_ALIASES)[:6]}..."
        )
    return DIAGNOSES.index(alias)


class IsicCase(Case):
    """ISIC 2018-2020 images + a user EfficientNet-B4 checkpoint with a 9-class head, 448 px.

    ``csv_name``: the label file inside ``data``; ``fold``: keep only rows of these fold(s);
    ``arch``: the timm backbone (default ``tf_efficientnet_b4``).
    """

    name = "isic"
    num_classes = len(DIAGNOSES)
    preprocess = Preprocess(size=(448, 448), resize="stretch")  # ImageNet mean/std
    gradcam_layer = "enet.blocks.6"
    has_masks = False
    reversal = {
        "sg": (0.02, 0.30),
        "ig": (0.01, 0.10),
        "guidedig": (0.02, 0.30),
        "blurig": (0.02, 0.30),
        "gb": (0.005, 0.10),
    }

    def __init__(
        self,
        *,
        data: str | Path | None = None,
        weights: str | Path | None = None,
        csv_name: str = "train.csv",
        fold: int | list[int] | None = None,
        arch: str = "tf_efficientnet_b4",
    ) -> None:
        super().__init__(data=data, weights=weights)
        self.root = require_dir(self.data, "ISIC folder", EXPECTED, SOURCE)
        self.csv_path = require_file(self.root / csv_name, "ISIC label file", EXPECTED, SOURCE)
        for cand in (self.root / "train", self.root / "jpeg" / "train", self.root):
            if cand.is_dir():
                self.image_dir = cand
                break
        self.folds = None if fold is None else ({fold} if isinstance(fold, int) else set(fold))
        self.arch = arch

    def data_id(self) -> str:
        return f"{self.csv_path.resolve()}:folds={sorted(self.folds) if self.folds else 'all'}"

    def class_names(self) -> list[str] | None:
        return list(DIAGNOSES)

    def build_model(self, device: str | torch.device = "cpu") -> nn.Module:
        if self.weights is None:
            raise MissingFileError(
                "the isic case needs a checkpoint: pass weights=PATH to a state dict with "
                "enet.* (tf_efficientnet_b4) and myfc.* (9-class head) keys. Source: your own "
                "training run, e.g. the public SIIM-ISIC 2020 1st-place solution's 9-class models"
            )
        return isic_model(self.weights, device, arch=self.arch, num_classes=self.num_classes)

    def _rows(self) -> list[tuple[str, int]]:
        table = read_label_table(
            self.csv_path, required=("image_name",), key="image_name", files_in=self.image_dir
        )
        cols = table.columns
        if not ({"diagnosis", "target"} & set(cols)):
            raise LabelTableError(
                f"{self.csv_path} needs the columns image_name and diagnosis (or a 9-class "
                f"target); it has {cols}"
            )
        if self.folds is not None and "fold" not in cols:
            raise LabelTableError(
                f"fold={sorted(self.folds)} given but {self.csv_path} has no fold column"
            )
        rows = list(table.numbered())
        if self.folds is not None:
            folds = table.int_column("fold", -(2**31), 2**31)
            rows = [lr for lr, f in zip(rows, folds, strict=True) if f in self.folds]
        out = []
        if "diagnosis" in cols:
            for line, r in rows:
                try:
                    out.append((r["image_name"], diagnosis_index(r["diagnosis"])))
                except ValueError as e:
                    raise LabelTableError(
                        f"{self.csv_path}, row {line}, image {r['image_name']}: {e}"
                    ) from e
        else:
            all_targets = dict(zip(table.lines, table.int_column("target", 0, 2**31), strict=True))
            targets = [all_targets[line] for line, _ in rows]
            if targets and max(targets) <= 1:
                raise LabelTableError(
                    f"{self.csv_path} has no diagnosis column and its target is binary (melanoma or "
                    f"not); the isic case needs the 9 diagnosis classes {list(DIAGNOSES)}"
                )
            for (line, _), t in zip(rows, targets, strict=True):
                if not 0 <= t < len(DIAGNOSES):
                    raise LabelTableError(
                        f"{self.csv_path}, row {line}: target {t} is not in [0, {len(DIAGNOSES)})"
                    )
            out = [(r["image_name"], t) for (_, r), t in zip(rows, targets, strict=True)]
        return out

    def _build_dataset(self) -> CaseDataset:
        records = []
        for name, label in self._rows():
            path = self.image_dir / name
            if path.suffix.lower() not in (".jpg", ".jpeg", ".png"):
                path = path.with_name(name + ".jpg")
            records.append(Record(Path(name).stem, path, label))

        def load(r: Record) -> Sample:
            return Sample(r.id, self.load_image(r.path), r.label)

        return CaseDataset(records, load)
