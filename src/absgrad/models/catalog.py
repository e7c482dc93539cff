"""The names of models with published weights, for ``absgrad list models [PATTERN]``.

timm's names (``pretrained=True``, each with its tags) and torchvision's classification models
with a ``DEFAULT`` weights enum. Listing them imports the libraries (and torch) once per
installed version; the lists are then kept in absgrad's cache folder (``$ABSGRAD_CACHE``) and
read without importing torch. Hugging Face models are named, not listed (the Hub is online).
"""

from __future__ import annotations

import fnmatch
import json
import os
from importlib import metadata
from pathlib import Path

from absgrad.utils.files import absgrad_cache_dir

#: How Hugging Face image classifiers are named (transformers does not list the Hub).
HF_NAMING = (
    (
        "hf:ORG/NAME",
        "an image classifier on the Hugging Face Hub, e.g. hf:google/vit-base-patch16-224",
    ),
    ("hf:ORG/NAME@REVISION", "a branch, tag or commit of it"),
    ("hf:/path/to/folder", "a folder written by save_pretrained (config.json, weights, processor)"),
)


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _listed() -> dict[str, list[str]]:
    """``{"timm": [name.tag, ...], "torchvision": ["name Weights.MEMBER", ...]}``, computed."""
    out: dict[str, list[str]] = {"timm": [], "torchvision": []}
    if _version("timm"):
        import timm

        out["timm"] = list(timm.list_models(pretrained=True))
    if _version("torchvision"):
        import torchvision.models as tvm

        for name in tvm.list_models(module=tvm):
            try:
                default = tvm.get_model_weights(name).DEFAULT
            except (ValueError, KeyError, AttributeError):
                continue
            out["torchvision"].append(f"{name} {type(default).__name__}.{default.name}")
    return out


def published_models(cache: Path | None = None) -> dict[str, list[str]]:
    """The names :func:`_listed` gives, kept per installed timm and torchvision version in
    ``cache`` (default: absgrad's cache folder) so later calls import neither."""
    key = f"timm-{_version('timm')}-torchvision-{_version('torchvision')}"
    path = (cache or absgrad_cache_dir()) / "model-names" / f"{key}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        pass
    listed = _listed()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(listed))
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache: list again next time
    return listed


def matches(name: str, pattern: str | None) -> bool:
    """``pattern`` with wildcards (``*resnet*``, as ``timm.list_models``) or a substring; any
    case."""
    if not pattern:
        return True
    pat = pattern.lower()
    if not any(c in pat for c in "*?["):
        pat = f"*{pat}*"
    return fnmatch.fnmatchcase(name.lower(), pat)


def model_lines(pattern: str | None = None) -> list[str]:
    """The lines ``absgrad list models [PATTERN]`` prints."""
    names = published_models()
    timm = [n for n in names["timm"] if matches(n, pattern)]
    tv = [n for n in names["torchvision"] if matches(n.split()[0], pattern)]
    lines = [
        f"timm ({len(timm)} with published weights; timm:NAME takes NAME's default tag, the "
        "first; cached in $HF_HOME/hub or $TORCH_HOME/hub/checkpoints):"
    ]
    lines += [f"  timm:{n}" for n in timm]
    lines.append(
        f"torchvision ({len(tv)}; the DEFAULT weights, cached in $TORCH_HOME/hub/checkpoints):"
    )
    lines += [f"  torchvision:{n.split()[0]:28s} {n.split()[1]}" for n in tv]
    lines.append("Hugging Face (pip install 'absgrad[hf]'; cached in $HF_HOME/hub):")
    lines += [f"  {spec:22s} {what}" for spec, what in HF_NAMING]
    return lines


__all__ = ["HF_NAMING", "matches", "model_lines", "published_models"]
