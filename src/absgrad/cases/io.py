"""Reading the files a case is made of: images of any bit depth and mode, and CSV label tables.

``read_image(path)`` -> ``(3, H, W)`` float32 in [0, 1]. 8-bit images of every common mode
(RGB, grayscale, palette, bilevel, RGBA/LA/PA with the alpha channel dropped, CMYK, YCbCr) are
converted by Pillow; 16-bit grayscale images are scaled by 1/65535 (not clipped at 255, which
would turn them almost white); 16-bit RGB PNGs are read at 8 bits per channel by Pillow; float
images are accepted when their values lie in [0, 1]. Any other mode is refused with an
``UnreadableImageError`` naming the file and the mode. ``read_rgb_image(path)`` returns the
same image as an 8-bit RGB Pillow image, for cases that resize with Pillow.

``read_label_table(path, required=..., key=..., files_in=...)`` reads a CSV label file: a UTF-8
byte-order mark is accepted, and a row with too few or too many fields, or a second row for the
same key, is an error naming the file and the row's line number. With ``files_in`` the key names
a file in that folder, and two names of one file (``a.jpg``, ``./a.jpg``, ``sub/../a.jpg``, a
link to it) are the same key.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch import Tensor

from absgrad.errors import AbsgradError

# Pillow converts these modes to RGB correctly (alpha channels are dropped).
_PILLOW_RGB_MODES = frozenset(
    {"1", "L", "P", "RGB", "RGBA", "RGBX", "RGBa", "LA", "La", "PA", "CMYK", "YCbCr"}
)
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})


class UnreadableImageError(AbsgradError, OSError):
    """An image (or mask) file exists but cannot be decoded; the message names the file."""


class LabelTableError(AbsgradError):
    """A label file is malformed; the message names the file and the row."""


def open_image(path: str | Path) -> Image.Image:
    """Decode an image file fully, without a mode change; problems raise ``UnreadableImageError``."""
    p = Path(path)
    if not p.is_file():
        raise UnreadableImageError(f"image file not found: {p}")
    try:
        with Image.open(p) as im:
            im.load()
            out = im.copy()
            out.format = im.format  # copy() drops it; the 16-bit rule reads it
            return out
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
        raise UnreadableImageError(f"cannot decode image {p}: {e}") from e


def image_to_array(im: Image.Image, path: str | Path = "<image>") -> np.ndarray:
    """A decoded Pillow image -> ``(H, W, 3)`` float32 in [0, 1], any supported mode."""
    mode = im.mode
    if mode in _PILLOW_RGB_MODES:
        return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    if mode in _SIXTEEN_BIT_MODES or (mode == "I" and _is_sixteen_bit(im)):
        grey = np.asarray(im, dtype=np.float64)
        if mode == "I" and (grey.min() < 0 or grey.max() > 65535):
            raise UnreadableImageError(
                f"image {path}: 32-bit integer values outside 0..65535; convert it to 8 or 16 bit"
            )
        grey = (grey / 65535.0).astype(np.float32)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if mode == "F":
        grey = np.asarray(im, dtype=np.float32)
        if not np.isfinite(grey).all() or grey.min() < 0.0 or grey.max() > 1.0:
            raise UnreadableImageError(
                f"image {path}: floating-point image with values outside [0, 1] (or NaN); "
                "store it as an 8- or 16-bit image"
            )
        return np.repeat(grey[:, :, None], 3, axis=2)
    raise UnreadableImageError(
        f"image {path}: unsupported image mode {mode!r} (supported: 8-bit RGB, RGBA, grayscale, "
        "palette, CMYK, YCbCr; 16-bit grayscale or RGB PNG; float grayscale in [0, 1])"
    )


def _is_sixteen_bit(im: Image.Image) -> bool:
    """Mode ``I`` images come from 16-bit PNG/TIFF/PGM files (Pillow widens them to 32 bits)."""
    return (im.format or "").upper() in {"PNG", "TIFF", "PPM"}


def read_image(path: str | Path) -> Tensor:
    """Image file -> ``(3, H, W)`` float32 in [0, 1]; refuses unreadable files and modes by name."""
    arr = image_to_array(open_image(path), path)
    return torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).contiguous()


def read_rgb_image(path: str | Path) -> Image.Image:
    """Image file -> 8-bit RGB Pillow image, with 16-bit and float modes scaled correctly."""
    im = open_image(path)
    if im.mode in _PILLOW_RGB_MODES:
        return im.convert("RGB")
    arr = image_to_array(im, path)
    return Image.fromarray(np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8), "RGB")


# -- label tables ---------------------------------------------------------------------------------
@dataclass
class LabelTable:
    """The rows of a CSV label file, each with the line number it came from (header = line 1)."""

    path: Path
    columns: list[str]
    rows: list[dict[str, str]]
    lines: list[int]

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[dict[str, str]]:
        return iter(self.rows)

    def numbered(self) -> Iterator[tuple[int, dict[str, str]]]:
        """``(line number, row)`` pairs, for error messages that name the row."""
        return zip(self.lines, self.rows, strict=True)

    def int_column(self, column: str, low: int, high: int) -> list[int]:
        """The values of ``column`` as ints in ``[low, high)``; a bad value names file and row."""
        out = []
        for line, row in self.numbered():
            value = row[column].strip()
            try:
                v = int(value)
            except ValueError:
                raise LabelTableError(
                    f"{self.path}, row {line}: {column} {value!r} is not an integer"
                ) from None
            if not low <= v < high:
                raise LabelTableError(
                    f"{self.path}, row {line}: {column} {v} is not in [{low}, {high})"
                )
            out.append(v)
        return out


def read_label_table(
    path: str | Path,
    *,
    required: Sequence[str] = (),
    key: str | None = None,
    what: str = "label file",
    files_in: str | Path | None = None,
) -> LabelTable:
    """Read a CSV label file with a header row.

    ``required``: columns that must be present; ``key``: a column whose values must be unique
    (e.g. the image file name), so that no image is listed twice; ``files_in``: the folder the
    key's file names are relative to, so that two names of the same file are the same key (see
    :func:`same_file_key`). A UTF-8 byte-order mark is accepted; blank lines are skipped; a row
    with a different number of fields than the header, an empty key, or a repeated key raises
    ``LabelTableError`` naming the file and line number.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise LabelTableError(f"{what} not found: {p}")
    try:
        text = p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise LabelTableError(f"{p} is not UTF-8 text: {e}") from None
    reader = csv.reader(text.splitlines())
    header: list[str] | None = None
    rows: list[dict[str, str]] = []
    lines: list[int] = []
    seen = SeenFiles(p, files_in)
    try:
        for fields in reader:
            line = reader.line_num
            if not fields or all(not f.strip() for f in fields):
                continue
            if header is None:
                header = [f.strip() for f in fields]
                if len(set(header)) != len(header):
                    raise LabelTableError(f"{p}, row {line}: repeated column name in {header}")
                missing = [c for c in required if c not in header]
                if missing or (key is not None and key not in header):
                    need = list(required) + ([key] if key and key not in required else [])
                    raise LabelTableError(
                        f"{p} lacks the column(s) {missing or [key]}: expected a header with "
                        f"{','.join(need)}, got {','.join(header)}"
                    )
                continue
            if len(fields) != len(header):
                raise LabelTableError(
                    f"{p}, row {line}: {len(fields)} field(s) where the header has "
                    f"{len(header)} ({','.join(header)})"
                )
            row = {c: v.strip() for c, v in zip(header, fields, strict=True)}
            if key is not None:
                if not row[key]:
                    raise LabelTableError(f"{p}, row {line}: empty {key}")
                seen.add(row[key], line, key)
            rows.append(row)
            lines.append(line)
    except csv.Error as e:
        raise LabelTableError(f"{p}, row {reader.line_num}: {e}") from None
    if header is None:
        raise LabelTableError(f"{p} is empty: expected a header row and one row per image")
    return LabelTable(p, header, rows, lines)


def same_file_key(folder: str | Path, name: str) -> str:
    """What ``name`` (a file name relative to ``folder``) points at: its resolved path, so that
    ``a.jpg``, ``./a.jpg``, ``sub/../a.jpg`` and a link to ``a.jpg`` give one key."""
    return str((Path(folder) / name).resolve())


class SeenFiles:
    """The file names a label file listed so far; a second listing of one file is an error
    naming the file of labels and both rows. ``files_in``: the folder the names are relative to
    (names are compared by the file they point at), or None (compared as written)."""

    def __init__(self, path: Path, files_in: str | Path | None, unit: str = "row") -> None:
        self.path, self.files_in, self.unit = path, files_in, unit
        self.first: dict[str, tuple[str, int]] = {}

    def add(self, name: str, line: int, what: str) -> None:
        """Note file ``name`` (the ``what`` column) listed at ``line``."""
        k = same_file_key(self.files_in, name) if self.files_in is not None else name
        if k in self.first:
            earlier, at = self.first[k]
            same = "is listed again" if earlier == name else f"names the same file as {earlier!r}"
            raise LabelTableError(
                f"{self.path}, {self.unit} {line}: {what} {name!r} {same} (first at "
                f"{self.unit} {at}); each image may appear once"
            )
        self.first[k] = (name, line)


__all__ = [
    "LabelTable",
    "LabelTableError",
    "SeenFiles",
    "UnreadableImageError",
    "image_to_array",
    "open_image",
    "read_image",
    "read_label_table",
    "read_rgb_image",
    "same_file_key",
]
