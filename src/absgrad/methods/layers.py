"""Grad-CAM layers: which layer by default, and its output as a ``(B, C, h, w)`` feature map.

Default layer (first rule that applies; a model wrapping a backbone, e.g. ``self.model`` or
``self.enet``, is searched through its largest child):

1. Vision transformers (a ``patch_embed`` and a ``blocks`` container whose blocks have
   ``norm1``, e.g. timm ViT, DeiT, BEiT, EVA): ``blocks.<last>.norm1``; torchvision's
   ``VisionTransformer``: ``encoder.layers.<last>.ln_1``; Hugging Face ViT, DeiT, BEiT (patch
   embeddings and a ``layers`` / ``encoder.layer`` list of blocks with ``layernorm_before``):
   ``<base>.layers.<last>.layernorm_before``. The last block's *input* norm is used because
   the block's output reaches the logits only through the class token(s).
2. The last ``features.denseblockN`` (DenseNet); else the last feature stage a timm model
   declares (``model.feature_info[-1]["module"]``: ``layer4`` of a ResNet, ``stages.3`` of a
   ConvNeXt, ``layers.3`` of a Swin, ``blocks.6`` of an EfficientNet, ``s4`` of a RegNet);
   else ``stages.<last>``, ``layers.<last>``, ``encoder.stages.<last>`` (Hugging Face
   ConvNeXt, ResNet), ``encoder.layers.<last>`` (Hugging Face Swin), the last ``layerN``
   (torchvision ResNet).
3. ``blocks.<last>`` (timm EfficientNet, MobileNet), then ``features.<last>`` (torchvision
   ConvNeXt, EfficientNet, MobileNet, Swin, VGG).
4. Otherwise the last ``nn.Conv2d`` in module order.

Feature maps: a layer returning a tuple (Hugging Face stages and blocks: hidden states first)
gives its first entry. A rank-4 output is ``(B, C, h, w)`` or ``(B, h, w, C)`` (Swin, inside ConvNeXt
blocks), told apart by which pair of dimensions has the input's aspect ratio at an integer
stride (ties: the model's ``output_fmt``, else channels first). A rank-3 output ``(B, N, C)``
is tokens: the prefix tokens (class, distillation, register: timm's ``num_prefix_tokens``; a
model that does not declare it may have none or one; a Hugging Face model counts the class,
distillation and register tokens of its ``embeddings``) are dropped and the rest reshaped to
the patch grid. Anything else is a :class:`LayerError`.
"""

from __future__ import annotations

import difflib
import math

from torch import Tensor, nn

from absgrad.errors import AbsgradError

_MAX_PREFIX = 1  # undeclared prefix: none or one class token (e.g. torchvision ViT)


class LayerError(AbsgradError):
    """A Grad-CAM layer that is not in the model or whose output is not a spatial map."""


def _last_child(modules: dict[str, nn.Module], name: str) -> str | None:
    """``name.<last child>`` for any container (Sequential with named children included)."""
    m = modules.get(name)
    if m is None:
        return None
    children = list(m._modules)
    return f"{name}.{children[-1]}" if children else None


def _numbered(modules: dict[str, nn.Module], stem: str) -> str | None:
    """The highest-numbered ``{stem}N`` among ``modules`` (``layer4``, ``features.denseblock4``)."""
    found = [
        (int(n[len(stem) :]), n) for n in modules if n.startswith(stem) and n[len(stem) :].isdigit()
    ]
    return max(found)[1] if found else None


#: Hugging Face vision transformers: their block lists (v5, v4) and the blocks' input norm.
_HF_BLOCKS = ("layers", "encoder.layer", "encoder.layers")
_HF_NORM = "layernorm_before"


def _rule(model: nn.Module) -> str | None:
    modules = dict(model.named_modules())
    blocks = modules.get("blocks")
    # 1. vision transformers
    if (
        "patch_embed" in modules
        and isinstance(blocks, (nn.Sequential, nn.ModuleList))
        and len(blocks)
    ):
        last = f"blocks.{len(blocks) - 1}"
        if f"{last}.norm1" in modules:
            return f"{last}.norm1"
    last_layer = _last_child(modules, "encoder.layers")
    if last_layer and f"{last_layer}.ln_1" in modules:
        return f"{last_layer}.ln_1"
    if "embeddings.patch_embeddings" in modules:
        for name in _HF_BLOCKS:
            last_layer = _last_child(modules, name)
            if last_layer and f"{last_layer}.{_HF_NORM}" in modules:
                return f"{last_layer}.{_HF_NORM}"
    # 2. DenseNet, then the last feature stage timm declares, then staged backbones
    found = _numbered(modules, "features.denseblock")
    if found:
        return found
    info = getattr(model, "feature_info", None)
    if isinstance(info, list) and info and isinstance(info[-1], dict):
        found = info[-1].get("module")
        if isinstance(found, str) and found in modules and found:
            return found
    for name in ("stages", "layers", "encoder.stages", "encoder.layers"):
        found = _last_child(modules, name)
        if found and isinstance(modules[name], (nn.Sequential, nn.ModuleList)):
            return found
    found = _numbered(modules, "layer")
    if found:
        return found
    # 3. block lists
    for name in ("blocks", "features"):
        if isinstance(modules.get(name), (nn.Sequential, nn.ModuleList)):
            found = _last_child(modules, name)
            if found:
                return found
    return None


def default_layer(model: nn.Module) -> str:
    """The name of the module whose output Grad-CAM uses by default (rules in the module doc)."""
    found = _rule(model)
    if found is not None:
        return found
    children = [(sum(p.numel() for p in c.parameters()), n, c) for n, c in model.named_children()]
    if children:
        _, name, child = max(children, key=lambda t: t[0])
        inner = _rule(child)
        if inner is not None:
            return f"{name}.{inner}"
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if convs:
        return convs[-1]
    raise LayerError(
        "no Grad-CAM layer found (no stages, blocks, transformer blocks or Conv2d in the model); "
        "pass layer='<module name>' (--layer on the command line)"
    )


def find_layer(model: nn.Module, layer: str | nn.Module | None) -> tuple[str, nn.Module]:
    """``(name, module)`` of ``layer`` (a module name, a submodule, or ``None`` for the default)."""
    named = dict(model.named_modules())
    if isinstance(layer, nn.Module):
        name = next((n for n, m in named.items() if m is layer), None)
        if name is None:
            raise LayerError("the Grad-CAM layer module given is not a submodule of the model")
        return name, layer
    if layer is not None and not isinstance(layer, str):
        raise LayerError(f"layer must be a module name (str), a module or None, got {layer!r}")
    name = default_layer(model) if layer is None else layer
    if name not in named or name == "":
        close = difflib.get_close_matches(name, [n for n in named if n], n=5, cutoff=0.5)
        hint = f"; close names: {', '.join(close)}" if close else ""
        raise LayerError(
            f"Grad-CAM layer {name!r} is not in the model{hint} "
            f"(the default for this model is {default_layer(model)!r}; "
            "names are those of model.named_modules())"
        )
    return name, named[name]


def _owner_attr(model: nn.Module, name: str, attr: str) -> object:
    """``attr`` of the innermost module on the path to ``name`` that has it (None if none)."""
    parts = name.split(".") if name else []
    for i in range(len(parts), -1, -1):
        owner = model.get_submodule(".".join(parts[:i])) if i else model
        if hasattr(owner, attr):
            return getattr(owner, attr)
    return None


def layer_tensor(out: object) -> object:
    """A layer's output as the tensor Grad-CAM uses: the output itself, or the first entry of
    a tuple (Hugging Face blocks and stages return ``(hidden_states, ...)``)."""
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], Tensor):
        return out[0]
    return out


def _prefix_tokens(model: nn.Module, name: str) -> object:
    """The prefix tokens before the patch tokens at layer ``name``: timm's
    ``num_prefix_tokens``; for a Hugging Face model, the class, distillation and register
    tokens of its ``embeddings``; None when the model does not say."""
    declared = _owner_attr(model, name, "num_prefix_tokens")
    if declared is not None:
        return declared
    emb = _owner_attr(model, name, "embeddings")
    if not isinstance(emb, nn.Module) or not hasattr(emb, "patch_embeddings"):
        return None
    count = 0
    for attr in ("cls_token", "distillation_token", "register_tokens"):
        t = getattr(emb, attr, None)
        if isinstance(t, Tensor) and t.dim() == 3:
            count += int(t.shape[1])
    return count


def _spatial_ok(h: int, w: int, size: tuple[int, int]) -> bool:
    """Whether an ``h x w`` grid is the input ``size`` at one integer stride (both floor or ceil)."""
    big_h, big_w = size
    if not (1 <= h <= big_h and 1 <= w <= big_w):
        return False
    strides = {max(1, math.floor(big_h / h)), math.ceil(big_h / h)}
    strides |= {max(1, math.floor(big_w / w)), math.ceil(big_w / w)}
    for s in strides:
        if (h, w) in ((big_h // s, big_w // s), (-(-big_h // s), -(-big_w // s))):
            return True
    return False


def _token_grid(n: int, c_prefix: object, size: tuple[int, int]) -> list[tuple[int, int, int]]:
    """Candidate ``(prefix, h, w)`` with ``prefix + h * w == n`` and ``h x w`` fitting ``size``."""
    prefixes = [int(c_prefix)] if isinstance(c_prefix, int) else range(_MAX_PREFIX + 1)
    out = []
    for p in prefixes:
        rest = n - p
        if rest < 1:
            continue
        for h in range(1, int(math.isqrt(rest)) + 1):
            if rest % h:
                continue
            for hh, ww in {(h, rest // h), (rest // h, h)}:
                if _spatial_ok(hh, ww, size):
                    out.append((p, hh, ww))
    return out


def feature_map(out: object, model: nn.Module, name: str, size: tuple[int, int]) -> Tensor:
    """The output ``out`` of layer ``name`` as a ``(B, C, h, w)`` map (``size``: input ``(H, W)``).

    Raises :class:`LayerError` naming the layer and the shape when that is not possible.
    """
    out = layer_tensor(out)
    if not isinstance(out, Tensor):
        raise LayerError(
            f"Grad-CAM layer {name!r} returns a {type(out).__name__}, not a tensor; "
            "pick a module whose output is a feature map or tokens"
        )
    shape = tuple(out.shape)
    if out.dim() == 4 and shape[2:] == (1, 1) and size != (1, 1):
        raise LayerError(
            f"Grad-CAM layer {name!r} outputs a 1 x 1 map {shape} (pooled, or the input is too "
            f"small for its stride): nothing to localise; pick an earlier layer"
        )
    if out.dim() == 4:
        first = _spatial_ok(shape[2], shape[3], size)
        last = _spatial_ok(shape[1], shape[2], size)
        if first and last:
            last = _owner_attr(model, name, "output_fmt") == "NHWC"
            first = not last
        if first:
            return out
        if last:
            return out.permute(0, 3, 1, 2)
        nhwc = _owner_attr(model, name, "output_fmt") == "NHWC"
        if not nhwc and 1 <= shape[2] <= size[0] and 1 <= shape[3] <= size[1]:
            return out  # channels first, from unpadded ("valid") convolutions: no integer stride
    elif out.dim() == 3:
        grid = getattr(_owner_attr(model, name, "patch_embed"), "grid_size", None)
        prefix = _prefix_tokens(model, name)
        cands = _token_grid(shape[1], prefix, size)
        if grid is not None and isinstance(prefix, int):
            gh, gw = (int(g) for g in grid)
            cands = [c for c in cands if c[1:] == (gh, gw)] or cands
        if len(cands) == 1:
            p, h, w = cands[0]
            return out[:, p:, :].reshape(shape[0], h, w, shape[2]).permute(0, 3, 1, 2)
        if len(cands) > 1:
            raise LayerError(
                f"Grad-CAM layer {name!r} outputs {shape[1]} tokens, which fit several patch "
                f"grids (prefix tokens, h, w: {cands}); give the model a num_prefix_tokens "
                "attribute or pick a convolutional layer"
            )
    raise LayerError(
        f"Grad-CAM layer {name!r} outputs shape {shape}, which is not a feature map "
        f"(B, C, h, w) / (B, h, w, C) or tokens (B, N, C) on a patch grid of the "
        f"{size[0]}x{size[1]} input; pick a layer before the pooling (e.g. the default "
        f"{default_layer(model)!r})"
    )


def check_patch_gradient(raw: Tensor, fmap: Tensor, name: str) -> None:
    """Refuse a token layer whose gradient reaches the logits only through its prefix tokens.

    ``raw``: the gradient at the layer's output; ``fmap``: the same as a ``(B, C, h, w)`` map.
    """
    if raw.dim() != 3:
        return
    silent = ~fmap.flatten(1).any(dim=1) & raw.flatten(1).any(dim=1)
    if bool(silent.any()):
        raise LayerError(
            f"the gradient at Grad-CAM layer {name!r} is zero on every patch token: its output "
            "reaches the logits only through the class (prefix) tokens, e.g. the last block of a "
            "ViT that classifies its class token; use that block's input norm (blocks.N.norm1, "
            "the default) or an earlier block"
        )
