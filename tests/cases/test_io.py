"""Image reading of every bit depth and mode, and CSV label tables (BOM, short / repeated rows)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from absgrad.cases.io import (
    LabelTableError,
    UnreadableImageError,
    read_image,
    read_label_table,
    read_rgb_image,
)
from absgrad.errors import AbsgradError

RNG = np.random.default_rng(0)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_png16_rgb(path: Path, arr: np.ndarray) -> None:
    """A 48-bit RGB PNG written by hand (Pillow cannot write one): filter 0, big-endian."""
    h, w, _ = arr.shape
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(raw))
        + _png_chunk(b"IEND", b"")
    )


def test_16bit_grayscale_png_is_scaled_not_clipped(tmp_path):
    grey = RNG.integers(0, 65536, size=(6, 5), dtype=np.uint16)
    path = tmp_path / "g16.png"
    Image.fromarray(grey).save(path)
    x = read_image(path)
    assert x.shape == (3, 6, 5) and x.dtype == torch.float32
    expected = torch.from_numpy(grey.astype(np.float64) / 65535.0).float()
    for c in range(3):
        torch.testing.assert_close(x[c], expected, atol=1e-6, rtol=0)
    # the 8-bit Pillow image the cases resize carries the same picture at 8 bits
    rgb = np.asarray(read_rgb_image(path), dtype=np.float64)
    np.testing.assert_allclose(rgb[:, :, 0], grey / 65535.0 * 255.0, atol=0.5 + 1e-9)


def test_16bit_rgb_png(tmp_path):
    arr = RNG.integers(0, 65536, size=(4, 7, 3), dtype=np.uint16)
    path = tmp_path / "rgb48.png"
    write_png16_rgb(path, arr)
    x = read_image(path)
    assert x.shape == (3, 4, 7)
    ref = torch.from_numpy(arr.astype(np.float64) / 65535.0).permute(2, 0, 1).float()
    assert float((x - ref).abs().max()) <= 1.0 / 255.0 + 1e-6


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "LA", "CMYK", "1", "RGB"])
def test_8bit_modes_match_pillow_rgb(tmp_path, mode):
    rgb = RNG.integers(0, 256, size=(5, 6, 3), dtype=np.uint8)
    im = Image.fromarray(rgb, "RGB")
    im = im.convert(mode) if mode != "P" else im.quantize(16)
    ext = ".jpg" if mode == "CMYK" else ".png"
    path = tmp_path / f"im_{mode}{ext}"
    im.save(path, **({"quality": 100} if ext == ".jpg" else {}))
    with Image.open(path) as ref_im:
        assert ref_im.mode == mode
        ref = np.asarray(ref_im.convert("RGB"), dtype=np.float32) / 255.0
    x = read_image(path)
    np.testing.assert_allclose(x.permute(1, 2, 0).numpy(), ref, atol=1e-7)
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0


def test_exif_orientation_is_ignored_as_torchvision_does(tmp_path):
    """A JPEG tagged "rotate 90" is read as stored, pixel for pixel as torchvision's
    ``ImageFolder`` loader reads it (docs/own-model.md says so): not turned upright."""
    from torchvision.datasets.folder import pil_loader

    im = Image.fromarray(RNG.integers(0, 256, (20, 60, 3), dtype=np.uint8))
    exif = im.getexif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW to display
    im.save(tmp_path / "tagged.jpg", exif=exif, quality=95)
    ours = read_rgb_image(tmp_path / "tagged.jpg")
    assert ours.size == (60, 20)
    assert np.array_equal(np.asarray(ours), np.asarray(pil_loader(tmp_path / "tagged.jpg")))


def test_float_image_in_range_accepted_out_of_range_refused(tmp_path):
    ok = RNG.random((3, 4), dtype=np.float32)
    Image.fromarray(ok, "F").save(tmp_path / "ok.tiff")
    torch.testing.assert_close(read_image(tmp_path / "ok.tiff")[1], torch.from_numpy(ok))
    Image.fromarray(ok * 300, "F").save(tmp_path / "bad.tiff")
    with pytest.raises(UnreadableImageError, match="bad.tiff.*outside"):
        read_image(tmp_path / "bad.tiff")


def test_unsupported_mode_and_garbage_refused_by_name(tmp_path):
    lab = Image.new("LAB", (3, 3))
    lab.save(tmp_path / "lab.tiff")
    with pytest.raises(UnreadableImageError, match=r"lab\.tiff.*'LAB'"):
        read_image(tmp_path / "lab.tiff")
    (tmp_path / "junk.png").write_bytes(b"not an image")
    with pytest.raises(AbsgradError, match="junk.png"):
        read_image(tmp_path / "junk.png")
    with pytest.raises(AbsgradError, match="missing.png"):
        read_image(tmp_path / "missing.png")


# -- label tables -----------------------------------------------------------------------------
def test_label_table_bom_and_rows(tmp_path):
    p = tmp_path / "labels.csv"
    p.write_bytes("\ufefffile,class_index\na.jpg,3\n\nb.jpg, 7\n".encode())
    t = read_label_table(p, required=("file", "class_index"), key="file")
    assert t.columns == ["file", "class_index"]
    assert [r["file"] for r in t] == ["a.jpg", "b.jpg"]
    assert t.lines == [2, 4]
    assert t.int_column("class_index", 0, 10) == [3, 7]


def test_label_table_short_row_names_file_and_row(tmp_path):
    p = tmp_path / "labels.csv"
    p.write_text("file,wnid,class_index\na.jpg,n1,3\nb.jpg,n2\n")
    with pytest.raises(LabelTableError, match=r"labels\.csv, row 3: 2 field"):
        read_label_table(p, required=("file",), key="file")


def test_label_table_duplicate_row(tmp_path):
    p = tmp_path / "labels.csv"
    p.write_text("file,class_index\na.jpg,3\nb.jpg,4\na.jpg,3\n")
    with pytest.raises(LabelTableError, match=r"row 4: file 'a.jpg' is listed again.*row 2"):
        read_label_table(p, key="file")


def test_label_table_bad_values_and_columns(tmp_path):
    p = tmp_path / "labels.csv"
    p.write_text("file,class_index\na.jpg,x\n")
    t = read_label_table(p, key="file")
    with pytest.raises(LabelTableError, match=r"row 2: class_index 'x' is not an integer"):
        t.int_column("class_index", 0, 10)
    p.write_text("file,class_index\na.jpg,10\n")
    with pytest.raises(LabelTableError, match=r"row 2: class_index 10 is not in \[0, 10\)"):
        read_label_table(p).int_column("class_index", 0, 10)
    with pytest.raises(LabelTableError, match="lacks the column"):
        read_label_table(p, required=("wnid",))
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(LabelTableError, match="empty"):
        read_label_table(tmp_path / "empty.csv")


# -- the cases read through these ---------------------------------------------------------------
def _sample_folder(tmp_path: Path, labels: str) -> Path:
    from absgrad.cases.imagenet_sample import ImageNetSampleCase  # noqa: F401

    for name in ("a.png", "b.png"):
        Image.fromarray(RNG.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(tmp_path / name)
    grey = np.full((8, 8), 40000, dtype=np.uint16)
    Image.fromarray(grey).save(tmp_path / "c16.png")
    (tmp_path / "labels.csv").write_bytes(labels.encode("utf-8"))
    return tmp_path


def test_imagenet_sample_case_reads_bom_and_16bit(tmp_path):
    from absgrad.cases.imagenet_sample import ImageNetSampleCase

    root = _sample_folder(
        tmp_path, "\ufefffile,wnid,class_index,name\na.png,n,1,x\nc16.png,n,2,y\n"
    )
    ds = ImageNetSampleCase(data=root).samples()
    assert ds.ids == ["a", "c16"] and [r.label for r in ds.records] == [1, 2]
    img = ds[1].image
    # 40000 / 65535 of full scale, not clipped to white
    assert abs(float(img.mean()) - round(40000 / 65535 * 255) / 255) < 1e-6


@pytest.mark.parametrize(
    "labels, match",
    [
        (
            "file,wnid,class_index,name\na.png,n,1,x\nb.png,n,2,y\na.png,n,1,x\n",
            "row 4.*listed again",
        ),
        (  # one file under two names (issue 23, item 2)
            "file,wnid,class_index,name\na.png,n,1,x\n./a.png,n,2,y\n",
            r"row 3: file '\./a\.png' names the same file as 'a\.png' \(first at row 2\)",
        ),
        ("file,wnid,class_index,name\na.png,n,1,x\nb.png,n\n", "row 3: 2 field"),
        ("file,wnid,class_index,name\na.png,n,,x\n", "row 2: class_index '' is not an integer"),
    ],
)
def test_imagenet_sample_case_refuses_bad_rows(tmp_path, labels, match):
    from absgrad.cases.imagenet_sample import ImageNetSampleCase

    root = _sample_folder(tmp_path, labels)
    with pytest.raises(AbsgradError, match=match):
        ImageNetSampleCase(data=root).samples()
