"""Captum-style classes: ``Method(model).attribute(inputs, target=..., **params)``."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from absgrad.methods.api import attribute
from absgrad.methods.randomness import GeneratorArg, SeedsArg
from absgrad.utils.maps import to_map


class Attribution:
    """Base class: binds a model to one method of ``absgrad.METHODS``.

    ``attribute`` returns the attribution before the map step (``(B, C, H, W)``; Grad-CAM
    ``(B, 1, H, W)``), like Captum; ``explain`` returns the normalised ``(B, H, W)`` map.
    """

    method: str = ""

    def __init__(self, model: nn.Module, **defaults: Any) -> None:
        self.model = model
        self.defaults = defaults

    def attribute(
        self,
        inputs: Tensor,
        target: int | Tensor | None = None,
        *,
        generator: GeneratorArg = None,
        seeds: SeedsArg = None,
        **params: Any,
    ) -> Tensor:
        return attribute(
            self.model,
            inputs,
            target,
            self.method,
            generator=generator,
            seeds=seeds,
            **{**self.defaults, **params},
        )

    def explain(
        self,
        inputs: Tensor,
        target: int | Tensor | None = None,
        *,
        generator: GeneratorArg = None,
        seeds: SeedsArg = None,
        **params: Any,
    ) -> Tensor:
        return to_map(self.attribute(inputs, target, generator=generator, seeds=seeds, **params))


class VanillaGradient(Attribution):
    """Gradient of the target logit at the input."""

    method = "vg"


class SmoothGrad(Attribution):
    """Mean gradient over Gaussian-noised copies (``n_samples``, ``spread``)."""

    method = "sg"


class VarGrad(Attribution):
    """Variance of the gradient over Gaussian-noised copies."""

    method = "vargrad"


class GuidedAbsoluteGrad(Attribution):
    """Guided AbsoluteGrad: variance guide (``percentile``) times the sum of |gradients|."""

    method = "gag"


class IntegratedGradients(Attribution):
    """Integrated Gradients with random uniform baselines (``n_samples`` trials, ``steps``)."""

    method = "ig"


class BlurIG(Attribution):
    """Integrated Gradients along the Gaussian blur path."""

    method = "blurig"


class GuidedIG(Attribution):
    """Guided Integrated Gradients (adaptive path from the zero baseline)."""

    method = "guidedig"


class GuidedBackprop(Attribution):
    """Guided backpropagation (``hook``: positive, negative, both, abs)."""

    method = "gb"


class GradCAM(Attribution):
    """Grad-CAM on ``layer`` (default: the model's last convolutional block)."""

    method = "gradcam"


CLASSES = {c.method: c for c in Attribution.__subclasses__()}
