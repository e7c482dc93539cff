"""The folder case: ImageFolder and label-table layouts, class tables, preprocessing as torchvision
does it, masks resized like their images, class counts checked, the shared sample photos."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from torchvision import transforms as T

from absgrad.cases import get_case
from absgrad.cases.folder import DataLayoutError

CLASSES = ("cat", "dog", "fox")


def _photo(path, seed, size=(60, 40)):
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """test_resnet checkpoints: 3 classes and 1000 classes (random weights saved by the test)."""
    d = tmp_path_factory.mktemp("w")
    torch.manual_seed(0)
    torch.save(timm.create_model("test_resnet", num_classes=3).state_dict(), d / "k3.pth")
    torch.save(timm.create_model("test_resnet").state_dict(), d / "k1000.pth")
    return d


@pytest.fixture
def folders(tmp_path):
    root = tmp_path / "data"
    for ci, c in enumerate(CLASSES):
        for i in range(2):
            _photo(root / c / f"{c}{i}.png", 10 * ci + i)  # PNG: exact pixels
    return root


def _case(data, weights, **kw):
    kw.setdefault("size", 32)
    return get_case("folder", data=data, weights=weights / "k3.pth", model="timm:test_resnet", **kw)


def test_image_folder_sorted_names_and_preprocessing(folders, weights):
    case = _case(folders, weights, resize=36, norm="imagenet")
    ds = case.samples()
    assert ds.ids == [f"{c}/{c}{i}" for c in CLASSES for i in range(2)]
    assert [s.label for s in ds] == [0, 0, 1, 1, 2, 2]
    assert case.classes == list(CLASSES)
    # the same pixels as torchvision's Resize(36) + CenterCrop(32), bilinear as in timm's config
    ref = T.Compose([T.Resize(36, T.InterpolationMode.BILINEAR), T.CenterCrop(32), T.ToTensor()])
    with Image.open(folders / "dog" / "dog1.png") as im:
        expect = ref(im.convert("RGB"))
    torch.testing.assert_close(ds[3].image, expect, rtol=0, atol=1e-6)
    x = case.normalize(ds[3].image[None])
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    torch.testing.assert_close(x[0], (expect - mean) / std)
    stretched = _case(folders, weights, resize="stretch", size="24x32").samples()[0].image
    with Image.open(folders / "cat" / "cat0.png") as im:
        expect = T.ToTensor()(im.convert("RGB").resize((32, 24), Image.BILINEAR))
    torch.testing.assert_close(stretched, expect, rtol=0, atol=1e-6)


def test_model_defaults_are_used(folders, weights):
    case = _case(folders, weights, size=None)
    cfg = timm.get_pretrained_cfg("test_resnet")
    assert case.image_size == cfg.input_size[1:]
    assert case.preprocess.resize == int(cfg.input_size[1] / cfg.crop_pct)
    assert case.normalization == (tuple(cfg.mean), tuple(cfg.std))
    assert case.samples()[0].image.shape == (3, *cfg.input_size[1:])


@pytest.mark.parametrize("fmt", ["txt", "json", "csv"])
def test_class_tables(folders, weights, fmt):
    order = ["fox", "cat", "dog"]
    if fmt == "txt":
        (folders / "classes.txt").write_text("\n".join(order) + "\n")
    elif fmt == "json":
        (folders / "classes.json").write_text(json.dumps({n: i for i, n in enumerate(order)}))
    else:
        (folders / "classes.csv").write_text("index,name\n" + "".join(
            f"{i},{n}\n" for i, n in enumerate(order)
        ))  # fmt: skip
    case = _case(folders, weights)
    assert {s.id.split("/")[0]: s.label for s in case.samples()} == {"fox": 0, "cat": 1, "dog": 2}
    assert case.classes == order


def test_integer_folders_and_bad_class_tables(tmp_path, weights):
    for name in ("0", "2", "10"):
        _photo(tmp_path / "d" / name / "a.png", int(name))
    with pytest.raises(DataLayoutError, match=r"folder .*d/10: class index 10 .* 3 classes \(0..2"):
        _case(tmp_path / "d", weights).samples()
    shutil.rmtree(tmp_path / "d" / "10")
    assert [s.label for s in _case(tmp_path / "d", weights).samples()] == [0, 2]
    (tmp_path / "d" / "classes.txt").write_text("zero\none\ntwo\n")
    with pytest.raises(DataLayoutError, match=r"\['0', '2'\] are not in the class table"):
        _case(tmp_path / "d", weights).samples()
    (tmp_path / "d" / "classes.txt").write_text("0\n1\n2\n3\n")
    with pytest.raises(DataLayoutError, match="lists 4 classes but the model outputs 3"):
        _case(tmp_path / "d", weights).samples()


def test_label_tables(tmp_path, weights):
    root = tmp_path / "flat"
    rows = [("a.png", "dog"), ("sub/b.png", "cat"), ("c.png", "fox"), ("d.png", "dog")]
    for i, (f, _) in enumerate(rows):
        _photo(root / f, i)
    with open(root / "table.csv", "w", newline="", encoding="utf-8-sig") as fh:  # with a BOM
        w = csv.writer(fh)
        w.writerow(["filename", "label"])
        w.writerows(rows)
    case = _case(root / "table.csv", weights)
    assert [(s.id, s.label) for s in case.samples()] == [("a", 1), ("sub/b", 0), ("c", 2), ("d", 1)]
    # class indices, no header, given as labels= with data = the image folder
    (tmp_path / "idx.csv").write_text("a.png,2\nc.png,0\n")
    case = _case(root, weights, labels=tmp_path / "idx.csv")
    assert [(s.id, s.label) for s in case.samples()] == [("a", 2), ("c", 0)]
    # labels.csv in the folder, the imagenet-sample layout (file, wnid, class_index, name)
    (root / "labels.csv").write_text("file,wnid,class_index,name\na.png,n0,1,x\nd.png,n0,2,y\n")
    assert [s.label for s in _case(root, weights).samples()] == [1, 2]
    (root / "labels.csv").write_text("file,label\na.png,cow\n")
    (root / "classes.txt").write_text("cat\ndog\nfox\n")
    with pytest.raises(DataLayoutError, match="row 2: class 'cow' of a.png is not in"):
        _case(root, weights).samples()
    (root / "labels.csv").write_text("file,label\na.png,cat\na.png,dog\n")
    with pytest.raises(ValueError, match="row 3: .*a.png"):
        _case(root, weights).samples()


def test_masks_binary_and_label(folders, weights, tmp_path):
    masks = tmp_path / "masks"
    masks.mkdir()
    fg = np.zeros((40, 60), np.uint8)
    fg[5:30, 10:45] = 255
    Image.fromarray(fg).save(masks / "cat0.png")  # flat layout, binary
    labels = np.zeros((40, 60), np.uint8)
    labels[0:20, 30:60] = 7  # object
    labels[20:40, 30:60] = 3  # another object
    labels[:, 29] = 255  # void boundary
    (masks / "dog").mkdir()
    Image.fromarray(labels).save(masks / "dog" / "dog1.png")  # class-folder layout, label mask
    with pytest.warns(UserWarning, match="4 image.* have no mask"):
        case = _case(folders, weights, masks=masks, resize=36)
        ds = case.samples()
    assert case.has_masks and ds.ids == ["cat/cat0", "dog/dog1"]
    ref = T.Compose([T.Resize(36, T.InterpolationMode.NEAREST), T.CenterCrop(32)])
    for sample, truth in zip(ds, (fg > 0, (labels != 0) & (labels != 255)), strict=True):
        expect = np.asarray(ref(Image.fromarray(truth.astype(np.uint8) * 255))) > 127
        assert sample.mask.dtype == torch.bool and sample.mask.shape == (32, 32)
        assert np.array_equal(sample.mask.numpy(), expect)
    Image.fromarray(fg[:20]).save(masks / "cat0.png")
    with pytest.raises(ValueError, match="mask .*cat0.png is 60x20 but its image"):
        _case(folders, weights, masks=masks).samples()[0]
    (tmp_path / "other").mkdir()
    Image.fromarray(fg).save(tmp_path / "other" / "elk.png")
    with pytest.raises(DataLayoutError, match="no image has a mask"):
        _case(folders, weights, masks=tmp_path / "other").samples()


def test_missing_data_and_model(tmp_path, weights):
    with pytest.raises(FileNotFoundError, match="data not found"):
        _case(tmp_path / "nope", weights)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataLayoutError, match="neither class folders"):
        _case(tmp_path / "empty", weights)
    with pytest.raises(DataLayoutError, match="needs a model"):
        get_case("folder", data=tmp_path)


def test_shared_photos_in_wnid_folders(imagenet_sample_dir, tmp_path, weights):
    """Real photos copied into DIR/<wnid>/: a 1000-class model reads wnids as ImageNet indices."""
    with open(imagenet_sample_dir / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))[:4]
    for r in rows:
        (tmp_path / "photos" / r["wnid"]).mkdir(parents=True)
        shutil.copy(imagenet_sample_dir / r["file"], tmp_path / "photos" / r["wnid"])
    case = get_case(
        "folder", data=tmp_path / "photos", weights=weights / "k1000.pth", model="timm:test_resnet"
    )
    labels = {s.id.split("/")[0]: s.label for s in case.samples()}
    assert labels == {r["wnid"]: int(r["class_index"]) for r in rows}
    assert case.classes[int(rows[1]["class_index"])] == rows[1]["wnid"]
    # with a 3-class model the same folders are indexed in sorted order (a fine-tuned subset)
    three = get_case(
        "folder", data=tmp_path / "photos", weights=weights / "k3.pth", model="timm:test_resnet"
    )
    with pytest.raises(DataLayoutError, match="4 classes"):
        three.samples()


def test_selection_cache_tells_preprocessings_apart(folders, weights, tmp_path):
    from absgrad.cases import score_case

    probs = {}
    for norm in ("imagenet", "0.5", "imagenet"):
        case = _case(folders, weights, norm=norm)
        model = case.build_model()
        got = score_case(case, model, cache_dir=tmp_path)  # one cache folder for all three
        s = case.samples()[4]
        with torch.no_grad():
            expect = model(case.normalize(s.image[None])).softmax(1)[0, s.label]
        assert got[s.id][0] == pytest.approx(float(expect), abs=1e-6)
        probs.setdefault(norm, got[s.id][0])
    assert probs["imagenet"] != probs["0.5"]
    assert len(list(tmp_path.glob("select-folder-*.json"))) == 2


# -- issue 23, item 2: one image listed twice ------------------------------------------------------
@pytest.mark.parametrize(
    "table, match",
    [
        ("file,label\na.png,0\n./a.png,1\n", r"row 3: file '\./a\.png' names the same file as"),
        ("a.png,0\nsub/../a.png,1\n", r"row 2: file 'sub/\.\./a\.png' names the same file as"),
        ("file,label\na.png,0\nlink.png,1\n", r"row 3: file 'link\.png' names the same file"),
    ],
)
def test_an_image_under_two_names_is_refused(tmp_path, weights, table, match):
    """``a.png`` and ``./a.png`` (or ``sub/../a.png``, or a link to it) are one image: counted
    twice it would weigh double in every mean. Before the fix the names were compared as
    written, and the run counted the image twice."""
    _photo(tmp_path / "a.png", 0)
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.png").symlink_to(tmp_path / "a.png")
    (tmp_path / "labels.csv").write_text(table)
    with pytest.raises(ValueError, match=match + r".*first at row \d.*each image may appear once"):
        _case(tmp_path / "labels.csv", weights).samples()


def test_the_same_file_in_two_class_folders_or_two_images_with_one_id(folders, weights):
    """A link from one class folder to another's photo is the same image listed twice; two
    photos ``x.png`` and ``x.jpg`` in one folder would share the id ``cat/x``."""
    from absgrad.cases.base import DuplicateImageError

    (folders / "dog" / "alias.png").symlink_to(folders / "cat" / "cat0.png")
    with pytest.raises(
        DuplicateImageError, match=r"alias\.png is listed twice, as 'cat/cat0' and 'dog/alias'"
    ):
        _case(folders, weights).samples()
    (folders / "dog" / "alias.png").unlink()
    _photo(folders / "cat" / "cat0.jpg", 5)
    with pytest.raises(DuplicateImageError, match="two images have the id 'cat/cat0'"):
        _case(folders, weights).samples()


# -- issue 23, item 3: labels that are neither class indices nor class names ------------------------
@pytest.mark.parametrize(
    "rows, match",
    [
        ("a.png,2\nb.png,-1\n", r"row 2: label '-1' is not a class index \(an integer in 0..2\)"),
        ("a.png,1.7\nb.png,2\n", r"row 1: label '1.7' is not a class index"),
        ("a.png,cat\nb.png,2\n", "row 2: label '2' is a class index, but row 1 gives the class"),
        ("a.png,0\nb.png,3\n", r"row 2: class index 3 of b.png is not one of the model's 3"),
    ],
)
def test_labels_neither_indices_nor_names_are_refused_by_row(tmp_path, weights, rows, match):
    """A label column holds class indices or class names. Before the fix ``-1``, ``1.7`` or
    ``cat`` beside ``2`` were read as class names, sorted, and silently became classes 0 and 1
    (and an index out of range was reported without its file and row)."""
    for i, name in enumerate(("a.png", "b.png")):
        _photo(tmp_path / name, i)
    table = tmp_path / "labels.csv"
    table.write_text(rows)
    with pytest.raises(DataLayoutError, match=r"labels\.csv, " + match):
        _case(table, weights).samples()
    (tmp_path / "classes.txt").write_text("cat\ndog\nfox\n")
    table.write_text("a.png,fox\nb.png,2\n")  # the names of a class table, or its indices...
    with pytest.raises(DataLayoutError, match="row 2: label '2' is a class index"):
        _case(table, weights, classes=tmp_path / "classes.txt").samples()
    table.write_text("a.png,fox\nb.png,cat\n")  # ...not both
    case = _case(table, weights, classes=tmp_path / "classes.txt")
    assert [r.label for r in case.samples().records] == [2, 0]


# -- issue 23, item 11: the out-of-range label message names its source ----------------------------
def test_an_index_folder_out_of_range_is_named(tmp_path, weights):
    """Class folders named by index (``0``, ``1``, ``7``) for a 3-class model: the error names
    the class folder, the image and the valid range, and counts the images with such labels.
    Before the fix it said only "labels outside 0..2 (class indices from the folder names)"."""
    for name in ("0", "1", "7"):
        for i in range(2):
            _photo(tmp_path / "d" / name / f"p{i}.png", i)
    folder = tmp_path / "d" / "7"
    with pytest.raises(DataLayoutError) as e:
        _case(tmp_path / "d", weights).samples()
    assert str(e.value).startswith(f"class folder {folder}: class index 7 of 7/p0 ")
    assert "not one of the model's 3 classes (0..2" in str(e.value)
    assert str(e.value).endswith("; 2 images have such labels")


# -- issue 23, item 5: images in subfolders of a class folder ---------------------------------------
def test_nested_images_are_found_as_image_folder_finds_them(folders, weights, tmp_path):
    """``DIR/cls/sub/x.png`` belongs to class ``cls`` (torchvision's ``ImageFolder`` reads it);
    its id is ``cls/sub/x`` and its mask is found the same way. Before the fix subfolders were
    ignored without a word (and a class with photos only in subfolders was no class)."""
    from torchvision.datasets import ImageFolder

    _photo(folders / "cat" / "sub" / "deep" / "cat0.png", 20)  # same stem as cat/cat0.png
    _photo(folders / "cat" / "a-sub" / "z.png", 21)
    _photo(folders / "elk" / "only" / "nested.png", 22)  # a class with nested photos only
    (folders / "cat" / "notes.txt").write_text("not an image")
    case = _case(folders, weights, classes=["cat", "dog", "elk"])
    with pytest.raises(DataLayoutError, match=r"class folders \['fox'\] are not in"):
        case.samples()
    shutil.rmtree(folders / "fox")
    ds = _case(folders, weights).samples()
    ref = ImageFolder(str(folders))
    assert [str(r.path) for r in ds.records] == [p for p, _ in ref.samples]
    assert [r.label for r in ds.records] == [y for _, y in ref.samples]
    assert ds.ids == [
        "cat/cat0", "cat/cat1", "cat/a-sub/z", "cat/sub/deep/cat0", "dog/dog0", "dog/dog1",
        "elk/only/nested",
    ]  # fmt: skip
    masks = tmp_path / "masks"
    for rel in ("cat/sub/deep/cat0.png", "elk/only/nested.png", "cat/cat0.png"):
        (masks / rel).parent.mkdir(parents=True, exist_ok=True)
        m = np.zeros((40, 60), np.uint8)
        m[: 5 + 5 * len(rel)] = 255  # a different mask for each photo
        Image.fromarray(m).save(masks / rel)
    with pytest.warns(UserWarning, match="4 image"):
        got = _case(folders, weights, masks=masks).samples()
    assert {r.id: r.mask_path for r in got.records} == {
        "cat/cat0": masks / "cat/cat0.png",
        "cat/sub/deep/cat0": masks / "cat/sub/deep/cat0.png",
        "elk/only/nested": masks / "elk/only/nested.png",
    }


def test_class_names_come_from_the_labels_vocabulary(folders, weights, tmp_path):
    """Issue 23, item 4: the user's names wherever the labels are names, whatever the model's
    head; ImageNet's only where the labels are ImageNet indices; none for a weights file's own
    output indices (a file says nothing of what its classes are)."""
    import absgrad

    k1000 = weights / "k1000.pth"
    big = get_case("folder", data=folders, weights=k1000, model="timm:test_resnet", size=32)
    assert big.class_names() == list(CLASSES)  # not "tench", "goldfish", "great white shark"
    table = tmp_path / "names.txt"
    table.write_text("fox\ncat\ndog\n")
    case = _case(folders, weights, classes=str(table))
    assert case.class_vocabulary() == (["fox", "cat", "dog"], str(table))
    e = absgrad.explain_file(
        folders / "dog" / "dog0.png", model="timm:test_resnet", weights=weights / "k3.pth",
        classes=str(table), size=32, method="vg", target=2,
    )  # fmt: skip
    assert e.label == "2 dog"
    # wnid folders of a 1000-class model: ImageNet indices, ImageNet's names
    wnids = tmp_path / "wnids"
    for wnid in ("n01440764", "n01443537"):
        _photo(wnids / wnid / "a.png", 1)
    case = get_case("folder", data=wnids, weights=k1000, model="timm:test_resnet", size=32)
    assert [s.label for s in case.samples()] == [0, 1]
    assert case.class_names()[:2] == ["tench", "goldfish"]
    # integer folders: the model's own indices; a weights file names none
    ints = tmp_path / "ints"
    _photo(ints / "0" / "a.png", 2)
    case = get_case("folder", data=ints, weights=k1000, model="timm:test_resnet", size=32)
    assert case.class_vocabulary() == (None, "")
