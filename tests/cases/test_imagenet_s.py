"""imagenet-s: the real on-disk layout, R + 256 * G mask decoding, wnid -> index, ResNet-50 weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.models import resnet18, resnet50

from absgrad.cases import get_case, select
from absgrad.cases.imagenet_s import decode_mask, imagenet_wnids, wnid_to_index
from absgrad.models import CheckpointError

# two real ImageNet-S classes: tench (ImageNet-1k index 0) and goldfish (index 1)
TENCH, GOLDFISH = "n01440764", "n01443537"


def _ids_to_rgb(ids: np.ndarray) -> np.ndarray:
    """Encode class ids as the ImageNet-S PNGs do: R = id % 256, G = id // 256, B = 0."""
    rgb = np.zeros((*ids.shape, 3), dtype=np.uint8)
    rgb[..., 0] = ids % 256
    rgb[..., 1] = ids // 256
    return rgb


def _write_pair(root, wnid, name, size, ids) -> None:
    (root / "validation" / wnid).mkdir(parents=True, exist_ok=True)
    (root / "validation-segmentation" / wnid).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    photo = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(photo).save(root / "validation" / wnid / f"{name}.JPEG", quality=90)
    Image.fromarray(_ids_to_rgb(ids)).save(root / "validation-segmentation" / wnid / f"{name}.png")


@pytest.fixture
def imagenet_s(tmp_path):
    root = tmp_path / "ImageNetS919"
    # 512 x 512 with blocks that resize exactly to 256 x 256 (nearest): left half object id 300
    # (R = 44, G = 1, needs the G channel), a 64 x 64 block of ignore (1000), the rest background
    ids = np.zeros((512, 512), dtype=np.int64)
    ids[:, :256] = 300
    ids[0:64, 256:320] = 1000
    _write_pair(root, TENCH, "ILSVRC2012_val_00000001", (512, 512), ids)
    ids2 = np.zeros((300, 400), dtype=np.int64)
    ids2[100:200, 100:300] = 2
    _write_pair(root, GOLDFISH, "ILSVRC2012_val_00000002", (400, 300), ids2)
    return tmp_path  # the folder holding ImageNetS919/


def test_wnids_are_the_sorted_imagenet_1k_list() -> None:
    wnids = imagenet_wnids()
    assert len(wnids) == 1000 and wnids[0] == TENCH and wnids[1] == GOLDFISH
    assert wnid_to_index("n15075141") == 999  # toilet tissue, the last class
    with pytest.raises(ValueError, match="not one of the 1000"):
        wnid_to_index("n99999999")


def test_mask_decoding_uses_r_plus_256_g() -> None:
    ids = np.array([[0, 1, 255], [256, 300, 1000]])
    assert (decode_mask(Image.fromarray(_ids_to_rgb(ids))) == ids).all()
    assert (decode_mask(Image.fromarray(np.array([[0, 7]], dtype=np.uint8), "L")) == [[0, 7]]).all()


def test_loader_labels_masks_and_geometry(imagenet_s) -> None:
    case = get_case("imagenet-s", data=imagenet_s)  # the folder holding ImageNetS919/ also works
    assert case.class_index == {TENCH: 0, GOLDFISH: 1}
    ds = case.samples()
    assert ds.ids == ["ILSVRC2012_val_00000001", "ILSVRC2012_val_00000002"]
    a, b = ds[0], ds[1]
    assert (a.label, b.label) == (0, 1)
    assert a.image.shape == b.image.shape == (3, 256, 256)
    assert a.mask.shape == (256, 256) and a.mask.dtype == torch.bool
    expected = torch.zeros(256, 256, dtype=torch.bool)
    expected[:, :128] = True  # id 300 is foreground; 1000 (ignore) and 0 are not
    assert torch.equal(a.mask, expected)
    # 400 x 300 squeezed to 256 x 256: the object covers 1/3 of the rows and 1/2 of the columns
    assert abs(float(b.mask.float().mean()) - 1 / 6) < 0.01
    assert b.mask[128, 128] and not b.mask[10, 10]


def test_bad_files_are_skipped_with_a_warning_naming_them(imagenet_s) -> None:
    root = imagenet_s / "ImageNetS919"
    (root / "validation" / TENCH / "ILSVRC2012_val_00000003.JPEG").write_bytes(b"not a jpeg")
    # a photo whose mask is missing
    Image.new("RGB", (64, 64)).save(root / "validation" / GOLDFISH / "ILSVRC2012_val_00000004.JPEG")
    # a truncated JPEG: the header reads, the pixels do not
    good = root / "validation" / GOLDFISH / "ILSVRC2012_val_00000002.JPEG"
    cut = root / "validation" / GOLDFISH / "ILSVRC2012_val_00000005.JPEG"
    cut.write_bytes(good.read_bytes()[:800])
    (root / "validation-segmentation" / GOLDFISH / "ILSVRC2012_val_00000005.png").write_bytes(
        (root / "validation-segmentation" / GOLDFISH / "ILSVRC2012_val_00000002.png").read_bytes()
    )
    case = get_case("imagenet-s", data=root)
    with pytest.warns(UserWarning) as rec:
        ds = case.samples()
    text = " ".join(str(w.message) for w in rec)
    assert "ILSVRC2012_val_00000003.JPEG" in text
    assert "ILSVRC2012_val_00000004.png" in text and "file not found" in text
    assert len(ds) == 3 and ds.num_skipped == 2
    with pytest.warns(UserWarning, match="ILSVRC2012_val_00000005.JPEG"):
        got = [s.id for s in ds]
    assert got == ["ILSVRC2012_val_00000001", "ILSVRC2012_val_00000002"]
    assert ds.num_skipped == 3


def test_missing_folders_say_what_is_expected(tmp_path) -> None:
    with pytest.raises(
        FileNotFoundError, match="ImageNet-S folder not found .*validation-segmentation"
    ):
        get_case("imagenet-s", data=tmp_path / "absent")
    (tmp_path / "validation").mkdir()
    with pytest.raises(FileNotFoundError, match="segmentation folder not found"):
        get_case("imagenet-s", data=tmp_path)
    (tmp_path / "validation-segmentation").mkdir()
    (tmp_path / "validation" / "not_a_wnid").mkdir()
    with pytest.raises(ValueError, match="'not_a_wnid' is not one of the 1000"):
        get_case("imagenet-s", data=tmp_path)


def test_resnet50_weights_from_a_file_or_the_hub_cache(imagenet_s, tmp_path, monkeypatch) -> None:
    torch.manual_seed(0)
    ref = resnet50(weights=None).eval()
    path = tmp_path / "resnet50-0676ba61.pth"
    torch.save(ref.state_dict(), path)
    case = get_case("imagenet-s", data=imagenet_s, weights=path)
    model = case.build_model()
    x = case.normalize(case.samples()[0].image[None])
    with torch.inference_mode():
        assert torch.allclose(model(x), ref(x), atol=1e-5)
    assert case.gradcam_layer in dict(model.named_modules())
    keep = select(case, model, cache_dir=tmp_path / "cache", threshold=0.0)
    assert keep == [0, 1]

    # without weights=, the torch hub cache is used if (and only if) the file is already there
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    hub_case = get_case("imagenet-s", data=imagenet_s)
    with pytest.raises(FileNotFoundError, match="resnet50-0676ba61.pth.*download.pytorch.org"):
        hub_case.build_model()
    (tmp_path / "torch" / "hub" / "checkpoints").mkdir(parents=True)
    path.rename(tmp_path / "torch" / "hub" / "checkpoints" / path.name)
    with torch.inference_mode():
        assert torch.allclose(hub_case.build_model()(x), ref(x), atol=1e-5)


def test_a_checkpoint_of_another_network_lists_the_keys(imagenet_s, tmp_path) -> None:
    path = tmp_path / "r18.pth"
    torch.save(resnet18(weights=None).state_dict(), path)
    case = get_case("imagenet-s", data=imagenet_s, weights=path)
    with pytest.raises(
        CheckpointError, match=r"missing keys: .*layer1\.0\.conv3\.weight.*shape mismatches"
    ):
        case.build_model()
    (tmp_path / "junk.pth").write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="cannot read ResNet-50 checkpoint .*junk.pth"):
        get_case("imagenet-s", data=imagenet_s, weights=tmp_path / "junk.pth").build_model()
