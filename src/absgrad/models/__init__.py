"""Models: specs, building, the one checkpoint reader, outputs as logits, preprocessing.

=====================  =========================================================================
module                 what it holds
=====================  =========================================================================
``spec``               ``ModelSpec`` and ``parse_model_spec`` (``timm:``, ``torchvision:``,
                       ``hf:``, ``module:factory``, ``file.py:factory``), file and source
                       fingerprints; torch-free
``pretrained``         weights by name: ``pretrained`` (fetched once into the library's cache,
                       an offline error naming it), ``random``, a file; the model's class names
``build``              ``build_architecture`` and ``load_model``: a spec with its weights
``fingerprint``        ``model_fingerprint``: a built model's parameters and buffers
``catalog``            the names with published weights (``absgrad list models``); torch-free
``checkpoint``         ``read_state_dict``: every weights file -> a state dict (the only reader),
                       prefix stripping, ``load_exact``, ``CheckpointError``
``logits``             ``to_logits``, ``logits_model``: any output -> ``(B, K)`` logits
``defaults``           ``model_defaults``: the test-time preprocessing timm / torchvision know
``builtin``            the built-in cases' networks (Lite0, ResNet-50, DenseNet-161, ISIC net)
``preprocess``         ``Preprocess``: a photo -> model-size pixels and masks (crop or stretch),
                       mean/std; every case declares one, ``run`` and ``explain`` share it
=====================  =========================================================================

Quick use::

    from absgrad.models import load_model, model_defaults
    model = load_model("timm:resnet18")                 # published weights, (B, K) logits
    model = load_model("timm:resnet18", "r18.pth")      # your weights file, eval mode
    prep = model_defaults("timm:resnet18").preprocess   # size, crop or stretch, mean/std
    x = prep.normalize(prep.pixels(pil_image)[None])    # (1, 3, 224, 224) model input
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from absgrad.utils.lazy import lazy_exports

# Names resolve on first use, so that ``absgrad.models.spec`` (the config check) imports
# without torch.
#: public name -> the submodule that defines it
_EXPORTS = {
    "ModelSpec": "absgrad.models.spec",
    "ModelSpecError": "absgrad.models.spec",
    "file_fingerprint": "absgrad.models.spec",
    "parse_model_spec": "absgrad.models.spec",
    "spec_fingerprint": "absgrad.models.spec",
    "build_architecture": "absgrad.models.build",
    "load_classifier": "absgrad.models.build",
    "load_model": "absgrad.models.build",
    "PretrainedError": "absgrad.models.pretrained",
    "fetch": "absgrad.models.pretrained",
    "model_class_names": "absgrad.models.pretrained",
    "model_fingerprint": "absgrad.models.fingerprint",
    "CheckpointError": "absgrad.models.checkpoint",
    "load_exact": "absgrad.models.checkpoint",
    "read_state_dict": "absgrad.models.checkpoint",
    "strip_prefixes": "absgrad.models.checkpoint",
    "logits_model": "absgrad.models.logits",
    "output_classes": "absgrad.models.logits",
    "to_logits": "absgrad.models.logits",
    "ModelDefaults": "absgrad.models.defaults",
    "model_defaults": "absgrad.models.defaults",
    "IsicNet": "absgrad.models.builtin",
    "densenet161_places365": "absgrad.models.builtin",
    "isic_model": "absgrad.models.builtin",
    "lite0_model": "absgrad.models.builtin",
    "resnet50_imagenet": "absgrad.models.builtin",
    "Preprocess": "absgrad.models.preprocess",
    "PreprocessError": "absgrad.models.preprocess",
}


__getattr__, __dir__ = lazy_exports("absgrad.models", _EXPORTS, globals())


if TYPE_CHECKING:  # pragma: no cover
    from absgrad.models.build import build_architecture, load_classifier, load_model
    from absgrad.models.builtin import (
        IsicNet,
        densenet161_places365,
        isic_model,
        lite0_model,
        resnet50_imagenet,
    )
    from absgrad.models.checkpoint import (
        CheckpointError,
        load_exact,
        read_state_dict,
        strip_prefixes,
    )
    from absgrad.models.defaults import ModelDefaults, model_defaults
    from absgrad.models.fingerprint import model_fingerprint
    from absgrad.models.logits import logits_model, output_classes, to_logits
    from absgrad.models.preprocess import Preprocess, PreprocessError
    from absgrad.models.pretrained import PretrainedError, fetch, model_class_names
    from absgrad.models.spec import (
        ModelSpec,
        ModelSpecError,
        file_fingerprint,
        parse_model_spec,
        spec_fingerprint,
    )

__all__ = [
    "CheckpointError",
    "IsicNet",
    "ModelDefaults",
    "ModelSpec",
    "ModelSpecError",
    "Preprocess",
    "PreprocessError",
    "PretrainedError",
    "build_architecture",
    "densenet161_places365",
    "fetch",
    "file_fingerprint",
    "isic_model",
    "lite0_model",
    "load_classifier",
    "load_exact",
    "load_model",
    "logits_model",
    "model_class_names",
    "model_defaults",
    "model_fingerprint",
    "output_classes",
    "parse_model_spec",
    "read_state_dict",
    "resnet50_imagenet",
    "spec_fingerprint",
    "strip_prefixes",
    "to_logits",
]
