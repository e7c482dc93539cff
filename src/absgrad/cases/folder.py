"""The generic ``folder`` case: your images, your classifier (a model spec), optional masks.

Data layouts (``data``):

- **class folders** (ImageFolder): ``DIR/<class>/<image>``, images in subfolders of a class
  folder included (``DIR/<class>/sub/x.jpg``, id ``<class>/sub/x``), in the order of
  torchvision's ``ImageFolder``. Class indices come from a class table (``classes=FILE``, else
  ``classes.txt`` / ``classes.json`` / ``classes.csv`` / ``labels.csv`` in ``DIR``), else from
  the folder names: integers are the indices themselves, ImageNet wnids (``n01440764``) are
  ImageNet-1k indices when the model has 1000 outputs, any other names are indexed in sorted
  order.
- **a label table** (used before class folders when ``DIR/labels.csv`` has a file column, or
  rows ``image file,label``): a CSV with a header holding a file column (``file``, ``path``,
  ``filename`` or ``image``) and a label column (``label``, ``class_index``, ``target``,
  ``class``, ``index`` or ``y``), or two columns ``file,label`` without header. A label column
  holds class indices (integers) or class names (of the class table, else indexed in sorted
  order), not both (:func:`table_labels`). Give it as ``data=table.csv``, as
  ``labels=table.csv`` (image paths relative to ``data``), or put it in ``DIR`` as
  ``labels.csv``.

One image listed twice (a table naming one file two ways, ``a.jpg`` and ``./a.jpg``; a link to
another image) or two images with one id (``x.jpg`` and ``x.png``) is an error naming both.

Class tables: ``.txt`` one name per line (line number = index); ``.json`` a list of names,
``{name: index}``, ``{index: name}`` or ``{index: [wnid, name]}``; ``.csv`` rows ``index,name``
or ``name,index``; ``classes="imagenet"``: the 1000 ImageNet-1k wnids.

Masks (``masks=DIR``): one image per photo with the same stem (``MASKS/<class>/<stem>.png``
or ``MASKS/<stem>.png``), resized and cropped like the photo (nearest neighbour). A mask with
two values (binary) is foreground where non-zero; a label mask (more values) is foreground
where neither 0 (background) nor 255 (void). Photos without a mask are skipped with a warning.

Preprocessing (a :class:`~absgrad.models.preprocess.Preprocess`): ``size`` (crop, ``H`` or
``(H, W)``), ``resize`` (the shorter side before the center crop, or ``"stretch"``: resize
straight to ``size``), ``norm`` (``"imagenet"``, ``"0.5"``, ``"none"`` or ``"MEAN,STD"`` with 2
or 6 numbers). Defaults come from the model (:func:`~absgrad.models.defaults.model_defaults`).

Weights (``weights``): a file, ``"pretrained"`` (the default: the library's published weights,
:mod:`absgrad.models.pretrained`) or ``"random"``.

Class names (:meth:`FolderCase.class_names`, shown by the report and ``explain``): the user's
where the labels are names (a class table, the class folders, names in a label table); ImageNet's
where they are ImageNet-1k indices (``classes="imagenet"``, wnid folders); the model's own
(published weights only) where they are the model's output indices (integer folders or labels).
"""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from absgrad.cases.base import (
    Case,
    CaseDataset,
    Record,
    Sample,
    UnreadableImageError,
)
from absgrad.cases.io import open_image, read_rgb_image
from absgrad.errors import AbsgradError, MissingFileError
from absgrad.models.build import load_classifier
from absgrad.models.defaults import model_defaults
from absgrad.models.preprocess import RESAMPLE, norm_text
from absgrad.models.pretrained import (
    PRETRAINED,
    RANDOM,
    fetch,
    model_class_names,
    weights_choice,
)
from absgrad.models.spec import ModelSpec, file_fingerprint, parse_model_spec

log = logging.getLogger("absgrad.cases")

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")
MASK_EXTS = (".png", ".bmp", ".gif", ".tif", ".tiff")
CLASS_FILES = ("classes.txt", "classes.json", "classes.csv", "labels.csv")
FILE_COLUMNS = ("file", "path", "filename", "image", "img")
LABEL_COLUMNS = ("label", "class_index", "target", "class", "index", "y")


class DataLayoutError(AbsgradError):
    """The data folder, label table, class table or masks do not fit; the message says how."""


# -- tables ---------------------------------------------------------------------------------------
def read_table(path: Path) -> list[list[str]]:
    """Rows of a CSV/TSV file (BOM and blank lines tolerated), cells stripped."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise DataLayoutError(f"cannot read table {path}: {e}") from e
    delim = "\t" if path.suffix.lower() == ".tsv" or ("\t" in text and "," not in text) else ","
    rows = [[c.strip() for c in r] for r in csv.reader(text.splitlines(), delimiter=delim)]
    return [r for r in rows if any(r)]


def _is_int(s: str) -> bool:
    return s.strip().lstrip("+").isdecimal()


def imagenet_classes() -> list[str]:
    from absgrad.cases.imagenet_s import imagenet_wnids

    return list(imagenet_wnids())


def read_class_table(path: Path) -> list[str]:
    """Class names by index from a ``.txt``, ``.json`` or ``.csv`` class table (see module doc)."""
    if not path.is_file():
        raise MissingFileError(f"class table not found: {path} (your file: .txt, .json or .csv)")
    if path.suffix.lower() == ".json":
        try:
            obj = json.loads(path.read_text(encoding="utf-8-sig"))
        except (OSError, json.JSONDecodeError) as e:
            raise DataLayoutError(f"class table {path} is not valid JSON: {e}") from e
        if isinstance(obj, list):
            return [str(v) for v in obj]
        if isinstance(obj, dict) and obj:
            pairs: list[tuple[int, str]] = []
            for k, v in obj.items():
                if _is_int(str(k)):
                    pairs.append((int(k), str(v[0] if isinstance(v, list) and v else v)))
                elif isinstance(v, int):
                    pairs.append((v, str(k)))
                else:
                    pairs = []
                    break
            if pairs:
                return _by_index(pairs, path)
        raise DataLayoutError(
            f"class table {path}: expected a list of names, {{name: index}} or {{index: name}}"
        )
    if path.suffix.lower() in (".csv", ".tsv"):
        rows = read_table(path)
        if rows and not any(_is_int(c) for c in rows[0]):
            rows = rows[1:]  # a header
        pairs = []
        for r in rows:
            ints = [i for i, c in enumerate(r[:2]) if _is_int(c)]
            if len(r) < 2 or len(ints) != 1:
                raise DataLayoutError(
                    f"class table {path}: row {r} is not 'index,name' or 'name,index'"
                )
            pairs.append((int(r[ints[0]]), r[1 - ints[0]]))
        return _by_index(pairs, path)
    names = [ln.strip() for ln in path.read_text(encoding="utf-8-sig").splitlines()]
    while names and not names[-1]:
        names.pop()
    if not names or any(not n for n in names):
        raise DataLayoutError(f"class table {path}: expected one class name per line")
    return names


def _by_index(pairs: list[tuple[int, str]], path: Path) -> list[str]:
    idx = sorted(i for i, _ in pairs)
    if idx != list(range(len(pairs))):
        raise DataLayoutError(
            f"class table {path}: indices must be 0..{len(pairs) - 1} without gaps or repeats"
        )
    return [n for _, n in sorted(pairs)]


def _is_label_table(path: Path) -> bool:
    """A table with a file column, or whose first row is ``image file,label`` (no header)."""
    rows = read_table(path)
    if not rows:
        return False
    first = rows[0]
    headless = len(first) == 2 and Path(first[0]).suffix.lower() in IMAGE_EXTS
    return headless or any(c.lower() in FILE_COLUMNS for c in first)


def read_label_table(path: Path, root: Path) -> list[tuple[int, str, str]]:
    """``(row, file, label)`` of a label table (see the module docstring); ``root``: the folder
    the file names are relative to. A file listed twice, also under two names (``a.jpg`` and
    ``./a.jpg``), is an error naming both rows.

    With a header, rows are read by :func:`absgrad.cases.io.read_label_table` (BOM, short rows
    and files listed twice are errors naming the line).
    """
    from absgrad.cases.io import SeenFiles
    from absgrad.cases.io import read_label_table as read_with_header

    rows = read_table(path)
    if not rows:
        raise DataLayoutError(f"label table {path} is empty")
    head = [c.lower() for c in rows[0]]
    fcol = next((rows[0][head.index(c)] for c in FILE_COLUMNS if c in head), None)
    lcol = next((rows[0][head.index(c)] for c in LABEL_COLUMNS if c in head), None)
    if fcol is not None and lcol is not None:
        table = read_with_header(
            path, required=(lcol,), key=fcol, what="label table", files_in=root
        )
        for line, row in table.numbered():
            if not row[lcol]:
                raise DataLayoutError(f"label table {path}, row {line}: empty {lcol}")
        return [(line, row[fcol], row[lcol]) for line, row in table.numbered()]
    if fcol is not None or lcol is not None:
        raise DataLayoutError(
            f"label table {path}: header {rows[0]} needs a file column "
            f"({'/'.join(FILE_COLUMNS)}) and a label column ({'/'.join(LABEL_COLUMNS)})"
        )
    if len(rows[0]) != 2 or Path(rows[0][0]).suffix.lower() not in IMAGE_EXTS:
        raise DataLayoutError(
            f"label table {path}: expected a header with file and label columns, or rows "
            f"'file,label'; first row is {rows[0]}"
        )
    out = []
    seen = SeenFiles(path, root)
    for n, r in enumerate(rows, start=1):
        if len(r) != 2 or not r[0] or not r[1]:
            raise DataLayoutError(f"label table {path}, row {n}: expected 'file,label', got {r}")
        seen.add(r[0], n, "file")
        out.append((n, r[0], r[1]))
    return out


_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def table_labels(
    table: Path,
    rows: Sequence[tuple[int, str, str]],
    names: Sequence[str] | None,
    source: str,
    k: int,
) -> tuple[list[int], list[str] | None, str]:
    """The class index of each ``(row, file, label)`` of a label table for a model with ``k``
    outputs, the class names and where the indices come from.

    A label column holds class indices (integers in ``0..k-1``) or class names, never both:
    names index the class table ``names`` (from ``source``) when there is one, else their
    sorted order. A label that is a number but no class index (``-1``, ``1.7``, ``k``), an index
    among names, or a name missing from the class table is an error naming the file and the row.
    """

    def fail(line: int, text: str) -> DataLayoutError:
        return DataLayoutError(f"label table {table}, row {line}: {text}")

    index = {n: i for i, n in enumerate(names or [])}
    if all(_is_int(lab) for _, _, lab in rows):
        for line, f, lab in rows:
            if int(lab) >= k:
                raise fail(
                    line,
                    f"class index {int(lab)} of {f} is not one of the model's {k} classes "
                    f"(0..{k - 1})",
                )
        return [int(lab) for _, _, lab in rows], names, f"the class indices of {table}"
    for line, _, lab in rows:
        if _NUMBER.fullmatch(lab) and not _is_int(lab) and lab not in index:
            raise fail(line, f"label {lab!r} is not a class index (an integer in 0..{k - 1})")
    first = next((line, lab) for line, _, lab in rows if not _is_int(lab))
    if names is None:
        names = sorted({lab for _, _, lab in rows if not _is_int(lab)})
        index = {n: i for i, n in enumerate(names)}
        source = f"the sorted class names of {table}"
    for line, f, lab in rows:
        if lab in index:
            continue
        if _is_int(lab):
            raise fail(
                line,
                f"label {lab!r} is a class index, but row {first[0]} gives the class name "
                f"{first[1]!r}: a label column holds class indices or class names, not both "
                "(a class table, --classes FILE, gives names their indices)",
            )
        raise fail(line, f"class {lab!r} of {f} is not in {source}")
    return [index[lab] for _, _, lab in rows], list(names), source


# -- masks ----------------------------------------------------------------------------------------
def mask_foreground(im: Image.Image) -> np.ndarray:
    """Binary mask: non-zero; label mask (more than 2 values): neither 0 nor 255. ``(H, W)``."""
    a = np.asarray(im.convert("RGB") if im.mode in ("RGB", "RGBA", "LA") else im)
    if a.ndim == 3:
        a = a.astype(np.int64)
        a = a[..., 0] + 256 * a[..., 1] + 65536 * a[..., 2]
    values = np.unique(a)
    if len(values) <= 2:
        return a != 0
    return (a != 0) & (a != 255)


# -- the case -------------------------------------------------------------------------------------
class FolderCase(Case):
    """Images from a folder or label table, a classifier from a model spec, optional masks.

    ``data`` may be None for single-image use (``explain``); ``samples()`` then raises.
    """

    name = "folder"
    gradcam_layer = ""

    def __init__(
        self,
        *,
        data: str | Path | None = None,
        weights: str | Path | None = None,
        model: str | ModelSpec | None = None,
        masks: str | Path | None = None,
        classes: str | Path | Sequence[str] | None = None,
        labels: str | Path | None = None,
        size: Any = None,
        resize: Any = None,
        norm: Any = None,
        layer: str | None = None,
        threshold: float | None = None,
    ) -> None:
        self.weights_choice = weights_choice(weights)
        file = self.weights_choice if isinstance(self.weights_choice, Path) else None
        super().__init__(data=data, weights=file)
        if model is None:
            raise DataLayoutError(
                "the folder case needs a model: timm:NAME, torchvision:NAME, hf:ORG/NAME or "
                "module:factory"
            )
        self.spec = parse_model_spec(model)
        self._classes_arg = classes
        self._model: nn.Module | None = None
        self._vocabulary: tuple[list[str] | None, str] | None = None
        # the data is checked before the model's defaults, which may fetch files
        self._layout = self._find_layout(labels) if self.data is not None else None
        d = model_defaults(self.spec)
        self.preprocess = d.preprocess.with_options(size=size, resize=resize, norm=norm)
        self.defaults_source = d.source
        self.gradcam_layer = layer or ""
        if threshold is not None:
            self.threshold = float(threshold)
        self.masks = Path(masks).expanduser() if masks is not None else None
        self.has_masks = self.masks is not None
        if self.masks is not None and not self.masks.is_dir():
            raise MissingFileError(f"masks folder not found: {self.masks}")

    # -- layout ------------------------------------------------------------------------------
    def _find_layout(self, labels: str | Path | None) -> dict[str, Any]:
        data = self.data
        assert data is not None
        if labels is not None:
            table = Path(labels).expanduser()
            if not table.is_file():
                raise MissingFileError(f"label table not found: {table}")
            root = data if data.is_dir() else table.parent
            return {"kind": "table", "table": table, "root": root}
        if data.is_file():
            return {"kind": "table", "table": data, "root": data.parent}
        if not data.is_dir():
            raise MissingFileError(
                f"data not found: {data} (a folder of class folders of images, or a label "
                "table CSV of file,label)"
            )
        for name in ("labels.csv", "labels.tsv"):
            if (data / name).is_file() and _is_label_table(data / name):
                return {"kind": "table", "table": data / name, "root": data}
        folders = sorted(p.name for p in data.iterdir() if p.is_dir() and _has_images(p))
        if folders:
            return {"kind": "folders", "root": data, "folders": folders}
        raise DataLayoutError(
            f"{data} holds neither class folders of images (DIR/<class>/*.jpg) nor a label "
            "table labels.csv with file and label columns"
        )

    def _class_table(self) -> tuple[list[str] | None, str]:
        """The user's class names by index (or None) and where they come from."""
        arg = self._classes_arg
        if isinstance(arg, (list, tuple)):
            return [str(c) for c in arg], "the given class list"
        if isinstance(arg, str) and arg.lower() == "imagenet":
            return imagenet_classes(), "the ImageNet-1k wnids"
        if arg is not None:
            return read_class_table(Path(arg).expanduser()), str(arg)
        root = self._layout["root"] if self._layout else None
        table = self._layout.get("table") if self._layout else None
        for name in CLASS_FILES:
            p = root / name if root is not None else None
            if p is not None and p.is_file() and p != table and not _is_label_table(p):
                return read_class_table(p), str(p)
        return None, ""

    @property
    def classes(self) -> list[str] | None:
        """Class names by index when known (from a class table or the folder names)."""
        names, _ = self._class_table()
        if names is None and self._layout and self._layout["kind"] == "folders":
            folders = self._layout["folders"]
            if not all(_is_int(f) for f in folders):
                if self._wnid_folders(folders):
                    return imagenet_classes()
                return folders
        return names

    def _wnid_folders(self, folders: Sequence[str]) -> bool:
        if not all(len(f) == 9 and f[0] == "n" and f[1:].isdigit() for f in folders):
            return False
        if len(self.model_info()) != 1000:
            return False
        known = set(imagenet_classes())
        return all(f in known for f in folders)

    def _records(self) -> list[Record]:
        lay = self._layout
        if lay is None:
            raise DataLayoutError("no data given: pass data=DIR (or --data DIR)")
        k = len(self.model_info())
        names, source = self._class_table()
        items: list[tuple[str, Path, int, str]] = []  # id, file, class index, where it is from
        if lay["kind"] == "folders":
            folders = lay["folders"]
            if names is not None:
                index = {n: i for i, n in enumerate(names)}
                unknown = [f for f in folders if f not in index]
                if unknown:
                    raise DataLayoutError(
                        f"class folders {unknown[:8]} are not in the class table {source}"
                    )
            elif all(_is_int(f) for f in folders):
                index = {f: int(f) for f in folders}
                source = "the folder names (integers)"
            elif self._wnid_folders(folders):
                names = imagenet_classes()
                index = {n: i for i, n in enumerate(names)}
                source = "the ImageNet-1k wnids of the folder names"
            else:
                index = {f: i for i, f in enumerate(folders)}
                source = "the sorted folder names"
                names = folders
            root = lay["root"]
            for f in folders:
                for path in image_files(root / f):
                    rid = path.relative_to(root).with_suffix("").as_posix()
                    items.append((rid, path, index[f], f"class folder {root / f}"))
        else:
            table = lay["table"]
            rows = read_label_table(table, lay["root"])
            labels, names, source = table_labels(table, rows, names, source, k)
            for (line, f, _), y in zip(rows, labels, strict=True):
                rid = Path(os.path.normpath(f)).with_suffix("").as_posix()
                items.append((rid, lay["root"] / f, y, f"label table {table}, row {line}"))
        if not items:
            raise DataLayoutError(f"no images found in {self.data} (extensions {IMAGE_EXTS})")
        self._vocabulary = (names, source)
        self._check_classes(names, source, items, k)
        masks = self._mask_index() if self.masks is not None else None
        records, no_mask = [], []
        for rid, path, y, _ in items:
            mask = None
            if masks is not None:
                mask = masks.get(rid) or masks.get(Path(rid).name)
                if mask is None:
                    no_mask.append(rid)
                    continue
            records.append(Record(rid, path, y, mask))
        if no_mask:
            if not records:
                raise DataLayoutError(
                    f"no image has a mask in {self.masks} (expected MASKS/<class>/<stem>.png "
                    f"or MASKS/<stem>.png; e.g. for {no_mask[0]})"
                )
            warnings.warn(
                f"{len(no_mask)} image(s) have no mask in {self.masks} and are skipped: "
                f"{', '.join(no_mask[:5])}{' ...' if len(no_mask) > 5 else ''}",
                stacklevel=3,
            )
        log.info("folder case: %d images, class indices from %s", len(records), source)
        return records

    def _check_classes(
        self,
        names: list[str] | None,
        source: str,
        items: list[tuple[str, Path, int, str]],
        k: int,
    ) -> None:
        inferred = source.startswith("the sorted")
        if names is not None and not inferred and len(names) != k:
            raise DataLayoutError(
                f"the class table ({source}) lists {len(names)} classes but the model outputs {k}:"
                " is this the right model / weights?"
            )
        if names is not None and len(names) > k:
            raise DataLayoutError(
                f"the data has {len(names)} classes (from {source}) but the model outputs {k}: "
                "is this the right model / weights?"
            )
        bad = [(rid, y, where) for rid, _, y, where in items if not 0 <= y < k]
        if bad:
            rid, y, where = bad[0]
            raise DataLayoutError(
                f"{where}: class index {y} of {rid} is not one of the model's {k} classes "
                f"(0..{k - 1}; class indices from {source})"
                + (f"; {len(bad)} images have such labels" if len(bad) > 1 else "")
            )
        if names is not None and len(names) < k and inferred:
            warnings.warn(
                f"class indices 0..{len(names) - 1} come from {source}, but the model outputs "
                f"{k} classes; if that is not how the model was trained, give a class table "
                "(classes=FILE, --classes FILE)",
                stacklevel=4,
            )

    def _mask_index(self) -> dict[str, Path]:
        assert self.masks is not None
        out: dict[str, Path] = {}
        for p in sorted(self.masks.rglob("*")):
            if p.is_file() and p.suffix.lower() in MASK_EXTS:
                rel = p.relative_to(self.masks).with_suffix("").as_posix()
                out.setdefault(rel, p)
                out.setdefault(p.stem, p)
        return out

    # -- model -------------------------------------------------------------------------------
    def model_info(self) -> range:
        """``range(K)``: the class indices of the loaded model (loads it on first use)."""
        self._load()
        return range(self.num_classes)

    def class_names(self) -> list[str] | None:
        """Readable names of the label indices (see the module docstring)."""
        return self.class_vocabulary()[0]

    def class_vocabulary(self) -> tuple[list[str] | None, str]:
        """The class names of :meth:`class_names` and where they come from."""
        if self._layout is not None:
            self.samples()
            assert self._vocabulary is not None
            names, source = self._vocabulary
        else:
            names, source = self._class_table()
        if names is not None and len(names) == 1000 and names == imagenet_classes():
            from absgrad.cases.imagenet_s import imagenet_names

            return list(imagenet_names()), "ImageNet-1k (the labels are ImageNet-1k indices)"
        if names is not None:
            return names, source
        return model_class_names(self.spec, self.weights_choice)  # the model's own indices

    def _load(self) -> nn.Module:
        if self._model is None:
            hint = None
            if self.weights_choice == RANDOM and self._layout is not None:
                names, _ = self._class_table()
                if names is None and self._layout["kind"] == "folders":
                    folders = self._layout["folders"]
                    if not all(_is_int(f) for f in folders):
                        names = folders
                hint = len(names) if names is not None else None
            self._model, self.num_classes = load_classifier(
                self.spec, self.weights_choice, num_classes=hint, size=self.image_size
            )
        return self._model

    def build_model(self, device: str | torch.device = "cpu") -> nn.Module:
        return self._load().to(device).eval()

    def data_id(self) -> str:
        """The data and everything that changes a sample: layout, class table, preprocessing."""
        return json.dumps(
            [
                super().data_id(),
                str(self._classes_arg),
                str(self._layout.get("table")) if self._layout else None,
                list(self.image_size),
                self.preprocess.resize,
                norm_text(self.normalization),
                int(RESAMPLE[self.preprocess.interpolation]),
            ]
        )

    def weights_id(self) -> str:
        return f"{self.spec}|{self.weights_sha()}"

    def weights_sha(self) -> str:
        """What identifies the weights: the file's SHA-256 prefix, that of the published
        files (fetched if need be), ``random``, or ``pretrained`` for a factory's own."""
        if self.weights is not None:
            return file_fingerprint(self.weights)
        if self.weights_choice == PRETRAINED and self.spec.kind != "callable":
            return fetch(self.spec).sha
        return str(self.weights_choice)

    def weights_description(self) -> str:
        """The weights for people: the file, the published files and their source, random."""
        if self.weights is not None:
            return f"file {self.weights} (sha256 {file_fingerprint(self.weights)})"
        if self.weights_choice == PRETRAINED:
            if self.spec.kind == "callable":
                return "the factory's own"
            return f"pretrained: {fetch(self.spec).describe()}"
        return "random (seed 0)"

    # -- data --------------------------------------------------------------------------------
    def _load_mask(self, r: Record, photo_size: tuple[int, int]) -> Tensor:
        assert r.mask_path is not None
        im = open_image(r.mask_path)
        if im.size != photo_size:
            raise UnreadableImageError(
                f"mask {r.mask_path} is {im.size[0]}x{im.size[1]} but its image {r.path} is "
                f"{photo_size[0]}x{photo_size[1]}"
            )
        return self.preprocess.mask(mask_foreground(im))

    def _build_dataset(self) -> CaseDataset:
        records = self._records()

        def load(r: Record) -> Sample:
            photo = read_rgb_image(r.path)
            mask = self._load_mask(r, photo.size) if r.mask_path is not None else None
            return Sample(r.id, self.preprocess.pixels(photo), r.label, mask)

        return CaseDataset(records, load)

    def describe(self) -> dict[str, Any]:
        """The resolved settings (for run.json and logs)."""
        return {
            "model": str(self.spec),
            "image_size": list(self.image_size),
            "resize": self.preprocess.resize,
            "normalization": norm_text(self.normalization),
            "defaults_from": self.defaults_source,
            "layout": self._layout["kind"] if self._layout else None,
            "weights": self.weights_description(),
            "class_names_from": self.class_vocabulary()[1] or None,
        }


def _walk(folder: Path) -> Iterator[tuple[str, list[str]]]:
    """``(folder path, file names)`` of ``folder`` and its subfolders at any depth, links
    followed, a folder reached twice through a link walked once."""
    visited: set[str] = set()
    for top, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(top)
        if real in visited:  # a link back to a folder above: no endless walk
            dirs[:] = []
            continue
        visited.add(real)
        yield top, files


def _is_image(name: str) -> bool:
    return Path(name).suffix.lower() in IMAGE_EXTS


def image_files(folder: Path) -> list[Path]:
    """The image files in ``folder`` and its subfolders at any depth, in torchvision's
    ``ImageFolder`` order (folders by path, then file names; links followed, a folder reached
    twice through a link walked once)."""
    return [
        Path(top, f) for top, files in sorted(_walk(folder)) for f in sorted(files) if _is_image(f)
    ]


def _has_images(folder: Path) -> bool:
    """Whether ``folder`` holds an image file at any depth (the walk stops at the first)."""
    return any(_is_image(f) for _, files in _walk(folder) for f in files)
