"""The case contract: ``Sample``, ``Case`` and the lazy, fault-tolerant ``CaseDataset``.

A case bundles a dataset, a model, the preprocessing (input size, normalisation), the Grad-CAM
layer, the reversal settings and, where it exists, a ground-truth mask per image.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor, nn

from absgrad.cases.io import UnreadableImageError, open_image, read_rgb_image
from absgrad.errors import AbsgradError
from absgrad.models.preprocess import Preprocess, denormalize, normalize
from absgrad.utils.normalization import IMAGENET_MEAN as IMAGENET_MEAN
from absgrad.utils.normalization import IMAGENET_STD as IMAGENET_STD
from absgrad.utils.normalization import SYMMETRIC as SYMMETRIC

# The paper's (remain, mis) of the reversed maps per base method.
PAPER_REVERSAL: dict[str, tuple[float, float]] = {
    "sg": (0.07, 0.10),
    "ig": (0.07, 0.10),
    "guidedig": (0.07, 0.10),
    "blurig": (0.07, 0.10),
    "gb": (0.03, 0.10),
}


class DuplicateImageError(AbsgradError):
    """A case lists one image twice (one id, or one file under two names); names both."""


@dataclass
class Sample:
    """One image of a case.

    ``image``: ``(3, H, W)`` float in [0, 1] pixel space, already at the case's input size;
    ``mask``: ``(H, W)`` bool foreground with the image's geometry, or None.
    """

    id: str
    image: Tensor
    label: int
    mask: Tensor | None = None


@dataclass
class Record:
    """What a dataset knows about one item before reading it: enough to load it lazily."""

    id: str
    path: Path
    label: int
    mask_path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class CaseDataset(Sequence[Sample]):
    """A lazy sequence of samples: ``len`` is known up front, images are decoded on access.

    Records whose files are missing or whose headers cannot be read are dropped when the dataset
    is built, with a warning naming each file. A file that passes the header check but fails to
    decode raises ``UnreadableImageError`` from ``ds[i]``; iteration (and ``select``) skip it with
    a warning instead. ``skipped`` lists ``(path, reason)`` of every file skipped so far.

    Two records with one id, or (``check_headers``: records of files) naming one file, are an
    error naming both: an image counted twice would weigh double in every mean.
    """

    def __init__(
        self,
        records: Sequence[Record],
        loader: Callable[[Record], Sample],
        *,
        check_headers: bool = True,
    ) -> None:
        self.skipped: list[tuple[str, str]] = []
        self._loader = loader
        _check_unique(records, files=check_headers)
        kept = []
        for r in records:
            reason = _header_problem(r.path) if check_headers else None
            if reason is None and check_headers and r.mask_path is not None:
                reason = _header_problem(r.mask_path)
                if reason is not None:
                    self._skip(r.mask_path, reason)
                    continue
            if reason is not None:
                self._skip(r.path, reason)
                continue
            kept.append(r)
        self.records: list[Record] = kept

    def _skip(self, path: Path | str, reason: str) -> None:
        self.skipped.append((str(path), reason))
        warnings.warn(f"skipping unreadable file {path}: {reason}", stacklevel=3)

    @property
    def num_skipped(self) -> int:
        """How many files were skipped so far (at build time and during iteration)."""
        return len(self.skipped)

    @property
    def ids(self) -> list[str]:
        return [r.id for r in self.records]

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> Sample:  # type: ignore[override]
        if isinstance(index, slice):
            raise TypeError("CaseDataset does not support slicing; index one sample at a time")
        return self._loader(self.records[index])

    def __iter__(self) -> Iterator[Sample]:
        for i in range(len(self)):
            try:
                yield self[i]
            except UnreadableImageError as e:
                self._skip(self.records[i].path, str(e))

    def note_unreadable(self, index: int, error: Exception | str) -> None:
        """Record (and warn about) an item that failed to load; used by batch readers."""
        self._skip(self.records[index].path, str(error))

    @property
    def unreadable(self) -> list[str]:
        """The files skipped so far, each once, in the order they were found."""
        return list(dict.fromkeys(path for path, _ in self.skipped))


def _check_unique(records: Sequence[Record], *, files: bool) -> None:
    """Refuse two records with one id or (``files``) one file, naming both."""
    ids: dict[str, Record] = {}
    paths: dict[str, Record] = {}
    for r in records:
        if r.id in ids:
            raise DuplicateImageError(
                f"two images have the id {r.id!r}: {ids[r.id].path} and {r.path} (an id is the "
                "file's path without its extension); rename one"
            )
        ids[r.id] = r
        if files:
            key = str(Path(r.path).resolve())
            if key in paths:
                raise DuplicateImageError(
                    f"the image {r.path} is listed twice, as {paths[key].id!r} and {r.id!r} "
                    f"({paths[key].path} is the same file); each image may appear once"
                )
            paths[key] = r


def _header_problem(path: Path) -> str | None:
    """None when ``path`` is a file whose image header PIL can read, else the reason."""
    if not path.is_file():
        return "file not found"
    try:
        with Image.open(path) as im:
            im.size  # noqa: B018 - touching the header is the check
    except (UnidentifiedImageError, OSError, ValueError) as e:
        return f"not a readable image ({type(e).__name__}: {e})"
    return None


def read_rgb(path: Path) -> Image.Image:
    """Decode an image file fully as 8-bit RGB (any bit depth and mode, see ``cases.io``)."""
    return read_rgb_image(path)


def read_raw(path: Path) -> Image.Image:
    """Decode an image file fully without a mode change (masks)."""
    try:
        return open_image(path)
    except UnreadableImageError as e:
        raise UnreadableImageError(f"mask: {e}") from e


def _file_stat(path: Path) -> list[Any]:
    """``[size, mtime_ns]`` of a file, or ``[str(path)]`` for a non-file (built-in data)."""
    try:
        st = Path(path).stat()
    except OSError:
        return [str(path)]
    return [st.st_size, st.st_mtime_ns]


class _FromPreprocess:
    """A read-only attribute of a case taken from its ``preprocess`` (on the class and on instances)."""

    def __init__(self, get: Callable[[Preprocess], Any], doc: str) -> None:
        self._get, self.__doc__ = get, doc

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    def __get__(self, obj: Any, owner: type) -> Any:
        return self._get((obj if obj is not None else owner).preprocess)

    def __set__(self, obj: Any, value: Any) -> None:
        raise AttributeError(f"{self._name} follows the case's preprocess; set preprocess instead")


class Case:
    """Base class of every case; subclasses set the class attributes and implement the loaders.

    ``preprocess`` (:class:`~absgrad.models.preprocess.Preprocess`) declares how a photo becomes
    the model's pixels: input size, crop or stretch, interpolation, mean/std; ``image_size`` and
    ``normalization`` are read from it.

    ``normalize`` maps ``(B, 3, H, W)`` pixels in [0, 1] to model inputs, ``denormalize`` back.
    ``threshold`` is the selection rule's default true-class probability (paper: 0.9).
    """

    name: ClassVar[str] = ""
    num_classes: int = 0
    preprocess: Preprocess = Preprocess()
    image_size = _FromPreprocess(lambda p: p.size, "(H, W) of the model input")
    normalization = _FromPreprocess(lambda p: p.normalization, "(mean, std) of the model input")
    gradcam_layer: str = ""
    has_masks: bool = False
    reversal: dict[str, tuple[float, float]] = PAPER_REVERSAL
    threshold: float = 0.9

    def __init__(
        self, *, data: str | Path | None = None, weights: str | Path | None = None
    ) -> None:
        self.data = Path(data).expanduser() if data is not None else None
        self.weights = Path(weights).expanduser() if weights is not None else None
        self._samples: CaseDataset | None = None

    # -- model -----------------------------------------------------------------------------
    def build_model(self, device: str | torch.device = "cpu") -> nn.Module:
        """The case's classifier in eval mode with its weights loaded from local files."""
        raise NotImplementedError

    def class_names(self) -> list[str] | None:
        """Readable names of the case's label indices (index -> name), None when unknown."""
        return None

    def weights_id(self) -> str:
        """A string identifying the weights (path), used in selection cache keys."""
        return str(self.weights.resolve()) if self.weights is not None else "default"

    def data_id(self) -> str:
        """A string identifying the data (path), used in selection cache keys."""
        return str(self.data.resolve()) if self.data is not None else "builtin"

    def data_fingerprint(self) -> dict[str, Any]:
        """What the case's data is now: ``{"digest", "n_images", "images": {id: entry}}``.

        Each entry is ``[label, file size, mtime_ns]`` of the image (and its mask), from the
        dataset's records, so an edited label file or a replaced image changes the digest. The
        selection cache and a run's identity include the digest; a resume compares the entries.
        """
        images: dict[str, list[Any]] = {}
        for r in self.samples().records:
            entry: list[Any] = [r.label, *_file_stat(r.path)]
            if r.mask_path is not None:
                entry += _file_stat(r.mask_path)
            images[r.id] = entry
        blob = json.dumps(images, sort_keys=True).encode()
        return {
            "digest": hashlib.sha256(blob).hexdigest()[:16],
            "n_images": len(images),
            "images": images,
        }

    # -- data ------------------------------------------------------------------------------
    def _build_dataset(self) -> CaseDataset:
        raise NotImplementedError

    def samples(self) -> CaseDataset:
        """The lazy dataset of samples (built once per case object; see ``refresh``)."""
        if self._samples is None:
            self._samples = self._build_dataset()
        return self._samples

    def load_image(self, path: str | Path) -> Tensor:
        """One image file -> ``(3, H, W)`` pixels in [0, 1] at the model's input size, exactly as
        ``samples()`` gives that file: decoded as RGB, then the case's ``preprocess``."""
        return self.preprocess.pixels(read_rgb(Path(path)))

    def refresh(self) -> None:
        """Forget the dataset read so far: the next ``samples()`` reads the label files again."""
        self._samples = None

    # -- preprocessing ---------------------------------------------------------------------
    def normalize(self, pixels: Tensor) -> Tensor:
        """``(B, 3, H, W)`` (or ``(3, H, W)``) pixels in [0, 1] -> normalised model inputs."""
        return normalize(pixels, *self.normalization)

    def denormalize(self, x: Tensor) -> Tensor:
        """Normalised model inputs -> pixels in [0, 1] (the inverse of ``normalize``)."""
        return denormalize(x, *self.normalization)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, data={self.data}, weights={self.weights})"
        )
