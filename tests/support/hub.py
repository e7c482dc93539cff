"""Tiny Hugging Face image classifiers saved as ``save_pretrained`` writes them, and the Hub
client's cache laid out by hand as ``hf_hub_download`` lays it out (no network needed)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

#: Tiny random configurations of the six families absgrad names (32 x 32 inputs, 3 classes).
TINY = {
    "vit": ("ViTConfig", {"image_size": 32, "patch_size": 8, "hidden_size": 16,
                          "num_hidden_layers": 2, "num_attention_heads": 2,
                          "intermediate_size": 32}),
    "deit": ("DeiTConfig", {"image_size": 32, "patch_size": 8, "hidden_size": 16,
                            "num_hidden_layers": 2, "num_attention_heads": 2,
                            "intermediate_size": 32,
                            "architectures": ["DeiTForImageClassificationWithTeacher"]}),
    "beit": ("BeitConfig", {"image_size": 32, "patch_size": 8, "hidden_size": 16,
                            "num_hidden_layers": 2, "num_attention_heads": 2,
                            "intermediate_size": 32, "use_mean_pooling": True,
                            "layer_scale_init_value": 1.0}),  # its blocks count
    "swin": ("SwinConfig", {"image_size": 32, "patch_size": 4, "embed_dim": 8, "depths": [1, 2],
                            "num_heads": [1, 2], "window_size": 4}),
    "convnext": ("ConvNextConfig", {"hidden_sizes": [8, 16], "depths": [1, 1],
                                    "num_stages": 2, "layer_scale_init_value": 1.0}),
    "resnet": ("ResNetConfig", {"embedding_size": 8, "hidden_sizes": [8, 16], "depths": [1, 1],
                                "num_stages": 2, "layer_type": "basic"}),
}  # fmt: skip
#: Processors of the tiny models: (class, settings) at their 32 px input.
PROCESSORS = {
    "vit": ("ViTImageProcessor", {"size": {"height": 32, "width": 32}}),
    "deit": ("DeiTImageProcessor", {"size": {"height": 40, "width": 40},
                                    "crop_size": {"height": 32, "width": 32}}),
    "beit": ("BeitImageProcessor", {"size": {"height": 32, "width": 32},
                                    "do_center_crop": False}),
    "swin": ("ViTImageProcessor", {"size": {"height": 32, "width": 32}}),
    "convnext": ("ConvNextImageProcessor", {"size": {"shortest_edge": 32}, "crop_pct": 0.875}),
    "resnet": ("ConvNextImageProcessor", {"size": {"shortest_edge": 32}, "crop_pct": 0.875}),
}  # fmt: skip
LABELS = ("ant", "bee", "cow")


def tiny_model(kind: str, *, seed: int = 0, bias: float = 0.0) -> torch.nn.Module:
    """A random tiny image classifier of ``kind`` (a key of :data:`TINY`), 3 named classes;
    ``bias`` is added to class 0's logit (a confident model passes the selection rule)."""
    import transformers

    name, kw = TINY[kind]
    labels = {i: n for i, n in enumerate(LABELS)}
    config = getattr(transformers, name)(
        num_labels=3, id2label=labels, label2id={n: i for i, n in labels.items()}, **kw
    )
    torch.manual_seed(seed)
    model = transformers.AutoModelForImageClassification.from_config(config).eval()
    with torch.no_grad():
        for m in model.modules():  # heads are zero-initialised: give them a signal
            if isinstance(m, torch.nn.Linear) and m.out_features == 3:
                torch.nn.init.normal_(m.weight, std=0.5)
                m.bias.zero_()
                m.bias[0] += bias
    return model


def save_tiny(kind: str, folder: Path, **kw) -> Path:
    """:func:`tiny_model` and its image processor written into ``folder`` by
    ``save_pretrained`` (``config.json``, ``model.safetensors``, ``preprocessor_config.json``)."""
    import transformers

    tiny_model(kind, **kw).save_pretrained(folder)
    name, settings = PROCESSORS[kind]
    getattr(transformers, name)(**settings).save_pretrained(folder)
    return folder


def _etag(name: str, data: bytes) -> str:
    """The Hub's ETag of a file: the SHA-256 of an LFS file (weights), else its git blob SHA-1."""
    if name.endswith((".safetensors", ".bin", ".pth")):
        return hashlib.sha256(data).hexdigest()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lay_out_hub_repo(
    cache: Path, repo: str, files: dict[str, Path], commit: str = "1" * 40
) -> Path:
    """``files`` (name in the repo -> local file) in the Hub client's cache ``cache`` as
    ``hf_hub_download`` leaves them: ``models--ORG--NAME/blobs/<etag>``, ``refs/main`` holding
    the commit, ``snapshots/<commit>/<name>`` relative links to the blobs. Returns the snapshot
    folder."""
    root = cache / ("models--" + repo.replace("/", "--"))
    snapshot = root / "snapshots" / commit
    for name, src in files.items():
        data = Path(src).read_bytes()
        blob = root / "blobs" / _etag(name, data)
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (root / "refs").mkdir(parents=True, exist_ok=True)
    (root / "refs" / "main").write_text(commit)
    return snapshot


def files_under(path: Path) -> list[str]:
    """Every file and folder under ``path`` (relative), for "nothing was written" checks."""
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path.exists() else []
