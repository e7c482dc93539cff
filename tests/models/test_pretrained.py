"""Published weights by name, with no network: the real loading code of each library against
caches the tests lay out themselves (a local Hugging Face folder, the Hub client's offline
cache, timm's pretrained-config file overlay, torchvision's checkpoint folder), the offline
error (one line, the cache path, nothing written), class names and image processors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
import torchvision
from PIL import Image

from absgrad.models import load_model, model_defaults
from absgrad.models.pretrained import (
    PretrainedError,
    clear_fetched,
    fetch,
    model_class_names,
    weights_choice,
)
from support.hub import files_under, lay_out_hub_repo, save_tiny, tiny_model
from support.offline import no_network  # noqa: F401  (a fixture)

transformers = pytest.importorskip("transformers")
X = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


@pytest.fixture(autouse=True)
def caches(tmp_path, monkeypatch, no_network):  # noqa: F811
    """Empty Hub and torch.hub caches of the test's own, no network, nothing remembered."""
    from huggingface_hub import constants

    hub = tmp_path / "hf" / "hub"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(hub))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    clear_fetched()
    yield {"hub": hub, "torch": tmp_path / "torch"}
    clear_fetched()


def _logits(model: torch.nn.Module, x: torch.Tensor = X) -> torch.Tensor:
    with torch.no_grad():
        out = model.eval()(x)
    return getattr(out, "logits", out)


def test_weights_words():
    assert weights_choice(None) == weights_choice(" Pretrained") == "pretrained"
    assert weights_choice("RANDOM") == "random"
    assert weights_choice("w.pth") == Path("w.pth")


@pytest.mark.parametrize("kind", ["vit", "resnet"])
def test_local_hugging_face_folder(kind, tmp_path):
    folder = save_tiny(kind, tmp_path / kind)
    model = load_model(f"hf:{folder}", size=(32, 32))
    reference = transformers.AutoModelForImageClassification.from_pretrained(folder)
    torch.testing.assert_close(_logits(model), _logits(reference), rtol=0, atol=0)
    assert model_class_names(f"hf:{folder}", None) == (
        ["ant", "bee", "cow"],
        f"config.id2label of hf:{folder}",
    )
    assert model_defaults(f"hf:{folder}").preprocess.size == (32, 32)
    # the identity is the files' content: new weights, a new identity
    sha = fetch(f"hf:{folder}").sha
    save_tiny(kind, folder, seed=1)
    clear_fetched()
    assert fetch(f"hf:{folder}").sha != sha


def test_hub_cache_offline_as_the_hub_client_lays_it_out(caches, tmp_path):
    saved = save_tiny("vit", tmp_path / "saved")
    files = {p.name: p for p in saved.iterdir()}
    snapshot = lay_out_hub_repo(caches["hub"], "tiny-org/tiny-vit", files, commit="ab" * 20)
    before = files_under(caches["hub"])
    model = load_model("hf:tiny-org/tiny-vit", size=(32, 32))
    reference = transformers.AutoModelForImageClassification.from_pretrained(saved)
    torch.testing.assert_close(_logits(model), _logits(reference), rtol=0, atol=0)
    got = fetch("hf:tiny-org/tiny-vit")
    assert (
        got.folder == snapshot and got.source == f"Hugging Face Hub tiny-org/tiny-vit@{'ab' * 20}"
    )
    assert fetch(f"hf:tiny-org/tiny-vit@{'ab' * 20}").sha == got.sha  # a pinned revision
    assert files_under(caches["hub"]) == before  # read from the cache, nothing added


def test_timm_through_its_pretrained_config_file_overlay(caches, tmp_path):
    """timm's loader reads the cached file (overlay ``file=``): the published weights of
    ``test_resnet`` stand in for ``resnet50``'s, same code path, no download."""
    from safetensors.torch import save_file

    torch.manual_seed(3)
    ref = timm.create_model("test_resnet").eval()  # 1000 classes: ImageNet's head
    save_file(ref.state_dict(), str(tmp_path / "model.safetensors"))
    repo = timm.models.get_pretrained_cfg("test_resnet").hf_hub_id
    lay_out_hub_repo(caches["hub"], repo, {"model.safetensors": tmp_path / "model.safetensors"})
    model = load_model("timm:test_resnet", size=(32, 32))
    torch.testing.assert_close(_logits(model), _logits(ref), rtol=0, atol=0)
    names, source = model_class_names("timm:test_resnet", "pretrained")
    assert len(names) == 1000 and names[0] == "tench" and "timm" in source
    assert model_class_names("timm:test_resnet", "random") == (None, "")  # a random head: none


def test_torchvision_weights_enum_with_the_file_in_torch_hub_checkpoints(caches):
    weights = torchvision.models.get_model_weights("squeezenet1_1").DEFAULT
    torch.manual_seed(4)
    ref = torchvision.models.squeezenet1_1(num_classes=1000).eval()
    folder = caches["torch"] / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    name = Path(weights.url).name  # squeezenet1_1-<hash prefix>.pth: checked on download only
    torch.save(ref.state_dict(), folder / name)
    model = load_model("torchvision:squeezenet1_1", size=(64, 64))
    x = torch.rand(1, 3, 64, 64)
    torch.testing.assert_close(_logits(model, x), _logits(ref, x), rtol=0, atol=0)
    assert fetch("torchvision:squeezenet1_1").name == "SqueezeNet1_1_Weights.IMAGENET1K_V1"
    names, _ = model_class_names("torchvision:squeezenet1_1", None)
    assert names == list(weights.meta["categories"]) and names[0] == "tench"


def _assert_offline_error(err: PretrainedError, spec: str, folder: Path, filename: str) -> None:
    text = str(err)
    assert "\n" not in text and text.startswith(spec)
    assert str(folder) in text and filename in text
    assert "--weights FILE" in text and "--weights random" in text


def test_offline_hub_is_one_error_naming_the_cache_and_writes_nothing(caches):
    with pytest.raises(PretrainedError, match="HF_HUB_OFFLINE is set") as e:
        load_model("timm:test_resnet", size=(32, 32))
    repo = timm.models.get_pretrained_cfg("test_resnet").hf_hub_id
    folder = caches["hub"] / ("models--" + repo.replace("/", "--"))
    _assert_offline_error(e.value, "timm:test_resnet", folder, "model.safetensors")
    assert not caches["hub"].exists()
    with pytest.raises(PretrainedError, match="HF_HUB_OFFLINE is set") as e:
        load_model("hf:tiny-org/not-cached", size=(32, 32))
    folder = caches["hub"] / "models--tiny-org--not-cached"
    _assert_offline_error(e.value, "hf:tiny-org/not-cached", folder, "config.json")
    assert not caches["hub"].exists()


def test_unreachable_network_is_the_same_error(caches, monkeypatch):
    """Not offline by setting: the Hub client tries, its connection fails (the guard), it gives
    up after its retries (not waited for here), and nothing is left in the cache."""
    from huggingface_hub import constants
    from huggingface_hub.utils import _http

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(_http.time, "sleep", lambda _s: None)
    with pytest.raises(PretrainedError, match="cannot be reached") as e:
        fetch("timm:test_resnet")
    repo = timm.models.get_pretrained_cfg("test_resnet").hf_hub_id
    folder = caches["hub"] / ("models--" + repo.replace("/", "--"))
    _assert_offline_error(e.value, "timm:test_resnet", folder, "model.safetensors")
    assert files_under(caches["hub"]) == []
    # torch.hub's URL downloads (torchvision): the folder it made for the file goes again
    with pytest.raises(PretrainedError, match="the download failed") as e:
        fetch("torchvision:squeezenet1_1")
    folder = caches["torch"] / "hub" / "checkpoints"
    name = Path(torchvision.models.get_model_weights("squeezenet1_1").DEFAULT.url).name
    _assert_offline_error(e.value, "torchvision:squeezenet1_1", folder, name)
    assert not caches["torch"].exists()


def test_wrong_names_are_named():
    from absgrad.models import ModelSpecError

    with pytest.raises(ModelSpecError, match="timm has no model 'resnet_nope'"):
        fetch("timm:resnet_nope")
    with pytest.raises(ModelSpecError, match=r"Invalid pretrained tag \(nope\).*resnet18\.a1_in1k"):
        fetch("timm:resnet18.nope")
    with pytest.raises(ModelSpecError, match="holds no config.json"):
        fetch(f"hf:{Path(__file__).parent}")


def test_hugging_face_weights_file_and_random(tmp_path):
    """``--weights FILE`` into an hf: architecture (safetensors); ``random``: seed 0, no names."""
    folder = save_tiny("vit", tmp_path / "vit")
    other = tiny_model("vit", seed=5)
    from safetensors.torch import save_file

    save_file(other.state_dict(), str(tmp_path / "other.safetensors"))
    model = load_model(f"hf:{folder}", tmp_path / "other.safetensors", size=(32, 32))
    torch.testing.assert_close(_logits(model), _logits(other), rtol=0, atol=0)
    with pytest.warns(UserWarning, match="RANDOM"):
        a = load_model(f"hf:{folder}", "random", size=(32, 32))
    with pytest.warns(UserWarning, match="RANDOM"):
        b = load_model(f"hf:{folder}", "random", size=(32, 32))
    torch.testing.assert_close(_logits(a), _logits(b), rtol=0, atol=0)
    assert not torch.allclose(_logits(a), _logits(model))
    assert model_class_names(f"hf:{folder}", "random") == (None, "")


# -- the image processor gives the preprocessing --------------------------------------------------
@pytest.mark.parametrize("kind", ["vit", "deit", "convnext", "beit"])
def test_preprocessing_is_the_image_processors(kind, tmp_path):
    """The pixels a run feeds the model are those of the model's own image processor (its PIL
    backend) on a photo of another aspect ratio: stretch, stretch-then-crop, crop_pct, none."""
    folder = save_tiny(kind, tmp_path / kind)
    prep = model_defaults(f"hf:{folder}").preprocess
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    processor = transformers.AutoImageProcessor.from_pretrained(folder, backend="pil")
    theirs = processor(photo, return_tensors="pt")["pixel_values"][0]
    ours = prep.normalize(prep.pixels(photo))
    assert ours.shape == theirs.shape == (3, 32, 32)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


def test_size_and_norm_override_the_processor(tmp_path):
    from absgrad.cases import get_case

    folder = save_tiny("deit", tmp_path / "deit")
    case = get_case("folder", model=f"hf:{folder}", size=48, norm="imagenet")
    assert case.preprocess.size == (48, 48) and case.preprocess.resize == (60, 60)
    assert case.normalization[0] == pytest.approx((0.485, 0.456, 0.406))


def test_a_local_folder_may_move(tmp_path):
    """The identity is the files', not the folder's name: a copied folder is the same model."""
    folder = save_tiny("vit", tmp_path / "a")
    copy = Path(shutil.copytree(folder, tmp_path / "b"))
    assert fetch(f"hf:{folder}").sha == fetch(f"hf:{copy}").sha
