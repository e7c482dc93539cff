"""The ``synthetic`` case: one class-deciding shape at a random place in textured noise.

Images are ``(3, 32, 32)``; the class is the shape (0 square, 1 disk, 2 triangle, 3 cross), its
colour and position are random, and the background is smooth colour noise plus pixel noise, so
only the shape's form decides the class. The ground-truth mask is exactly the shape's pixels.
Every image is a pure function of ``(seed, split, index)``, so datasets are identical everywhere.

The classifier is ``SynthNet`` (three conv blocks, about 24k parameters) trained for a few seconds
on the CPU by ``train_synthetic_model``; the weights trained with the default settings ship as
``assets/synthetic_cnn.pt`` (about 100 kB), so every install explains the same model.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from absgrad.cases.base import SYMMETRIC, Case, CaseDataset, Record, Sample
from absgrad.errors import AbsgradError, MissingFileError
from absgrad.models.checkpoint import load_weights
from absgrad.models.preprocess import Preprocess

SIZE = 32
SHAPE_SIDES = (12, 17)  # side of the shape in pixels: low inclusive, high exclusive
BACKGROUND = (0.25, 0.75)  # range of the coarse background colours
PIXEL_NOISE = 0.06  # standard deviation of the per-pixel background noise
CLASSES = ("square", "disk", "triangle", "cross")
WEIGHTS_ASSET = "synthetic_cnn.pt"
_SPLITS = {"train": 0, "test": 1}


def _rng(seed: int, split: str, index: int) -> np.random.Generator:
    if split not in _SPLITS:
        raise AbsgradError(f"split must be one of {sorted(_SPLITS)}, got {split!r}")
    return np.random.default_rng([seed, _SPLITS[split], index])


def label_of(seed: int, split: str, index: int) -> int:
    """The label of image ``index`` without drawing it (the first draw of its generator)."""
    return int(_rng(seed, split, index).integers(len(CLASSES)))


def make_image(seed: int, split: str, index: int, size: int = SIZE) -> tuple[Tensor, int, Tensor]:
    """The image ``(3, size, size)`` in [0, 1], its label and its exact mask ``(size, size)`` bool."""
    rng = _rng(seed, split, index)
    label = int(rng.integers(len(CLASSES)))
    # textured background: a coarse random colour grid, upsampled smoothly, plus pixel noise
    coarse = torch.from_numpy(rng.uniform(*BACKGROUND, size=(1, 3, 5, 5))).float()
    bg = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=True)[0]
    bg = bg + torch.from_numpy(rng.normal(0.0, PIXEL_NOISE, size=(3, size, size))).float()
    # the shape: side 12 to 16 px, anywhere fully inside the image
    s = int(rng.integers(*SHAPE_SIDES))
    top, left = (int(v) for v in rng.integers(0, size - s + 1, size=2))
    yy, xx = np.mgrid[0:s, 0:s].astype(float) + 0.5
    if label == 0:
        local = np.ones((s, s), dtype=bool)
    elif label == 1:
        local = (yy - s / 2) ** 2 + (xx - s / 2) ** 2 <= (s / 2) ** 2
    elif label == 2:  # apex up, base at the bottom
        local = np.abs(xx - s / 2) <= yy / 2
    else:
        w = s / 3
        band = lambda v: np.abs(v - s / 2) <= w / 2  # noqa: E731
        local = band(xx) | band(yy)
    mask = np.zeros((size, size), dtype=bool)
    mask[top : top + s, left : left + s] = local
    # colour: each channel either dark or bright, so the shape always stands out
    colour = np.where(rng.random(3) < 0.5, rng.uniform(0.0, 0.15, 3), rng.uniform(0.85, 1.0, 3))
    m = torch.from_numpy(mask)
    img = torch.where(m, torch.from_numpy(colour).float()[:, None, None], bg).clamp(0.0, 1.0)
    return img, label, m


def make_batch(seed: int, split: str, n: int, size: int = SIZE) -> tuple[Tensor, Tensor, Tensor]:
    """``n`` images ``(n, 3, size, size)``, labels ``(n,)`` and masks ``(n, size, size)``."""
    items = [make_image(seed, split, i, size) for i in range(n)]
    return (
        torch.stack([i[0] for i in items]),
        torch.tensor([i[1] for i in items]),
        torch.stack([i[2] for i in items]),
    )


class SynthNet(nn.Module):
    """Small conv-BN-ReLU CNN: ``(B, 3, 32, 32)`` normalised -> ``(B, 4)`` logits.

    Grad-CAM layer: ``block3``.
    """

    def __init__(self, num_classes: int = len(CLASSES), width: int = 16) -> None:
        super().__init__()

        def block(cin: int, cout: int, pool: bool) -> nn.Sequential:
            layers = [
                nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                nn.BatchNorm2d(cout),
                nn.ReLU(),
            ]
            return nn.Sequential(*layers, *([nn.MaxPool2d(2)] if pool else []))

        w = width
        self.block1 = block(3, w, True)
        self.block2 = block(w, 2 * w, True)
        self.block3 = block(2 * w, 4 * w, False)
        self.fc = nn.Linear(4 * w, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        h = self.block3(self.block2(self.block1(x)))
        return self.fc(h.mean(dim=(2, 3)))


def train_synthetic_model(
    seed: int = 0,
    n_train: int = 3000,
    epochs: int = 6,
    batch_size: int = 64,
    lr: float = 1e-2,
    device: str | torch.device = "cpu",
    verbose: bool = False,
) -> SynthNet:
    """Train ``SynthNet`` on ``n_train`` generated images (seeded; seconds on a CPU); eval mode."""
    torch.manual_seed(seed)
    x, y, _ = make_batch(seed, "train", n_train)
    x = (x - 0.5) / 0.5
    model = SynthNet().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=lr, total_steps=epochs * ((n_train + batch_size - 1) // batch_size)
    )
    gen = torch.Generator().manual_seed(seed)
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(n_train, generator=gen)
        total = 0.0
        for i in range(0, n_train, batch_size):
            idx = order[i : i + batch_size]
            loss = F.cross_entropy(model(x[idx].to(device)), y[idx].to(device))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        if verbose:
            print(f"epoch {epoch + 1}/{epochs}: loss {total / n_train:.4f}")
    return model.eval()


def synthetic_weights_path() -> Path:
    """The shipped weights file inside the installed package."""
    return Path(str(resources.files("absgrad.cases").joinpath("assets").joinpath(WEIGHTS_ASSET)))


def synthetic_model(
    weights: str | Path | None = None, device: str | torch.device = "cpu"
) -> SynthNet:
    """``SynthNet`` with the shipped weights (or a state dict file ``weights``), eval mode."""
    path = Path(weights) if weights is not None else synthetic_weights_path()
    if not path.is_file():
        raise MissingFileError(
            f"synthetic-case weights not found at {path}. Expected: a SynthNet state dict. "
            "Source: shipped with absgrad as cases/assets/synthetic_cnn.pt, or recreate it with "
            "absgrad.cases.synthetic.train_synthetic_model() and torch.save(model.state_dict(), path)"
        )
    model = SynthNet()
    return load_weights(model, path, "synthetic").to(device).eval()


class SyntheticCase(Case):
    """Generated shapes in noise, exact masks, the shipped ``SynthNet``.

    ``n``: number of evaluation images (from the test split); ``seed``: data seed.
    """

    name = "synthetic"
    num_classes = len(CLASSES)
    # the images are generated at 32 x 32; a photo (explain) is resized and centre-cropped
    preprocess = Preprocess(size=(SIZE, SIZE), resize=SIZE, mean=SYMMETRIC[0], std=SYMMETRIC[1])
    gradcam_layer = "block3"
    has_masks = True

    def __init__(
        self,
        *,
        data: str | Path | None = None,
        weights: str | Path | None = None,
        n: int = 256,
        seed: int = 0,
    ) -> None:
        if data is not None:
            raise AbsgradError(
                "the synthetic case generates its images; it takes no data= argument"
            )
        if n < 1:
            raise AbsgradError(f"n (number of synthetic images) must be >= 1, got {n}")
        super().__init__(weights=weights)
        self.n, self.seed = int(n), int(seed)

    def data_id(self) -> str:
        return f"synthetic:seed={self.seed}:n={self.n}"

    def class_names(self) -> list[str] | None:
        return list(CLASSES)

    def build_model(self, device: str | torch.device = "cpu") -> nn.Module:
        return synthetic_model(self.weights, device)

    def _build_dataset(self) -> CaseDataset:
        records = [
            Record(
                f"synthetic-{self.seed}-{i:05d}", Path(f"test/{i}"), label_of(self.seed, "test", i)
            )
            for i in range(self.n)
        ]

        def load(r: Record) -> Sample:
            img, label, mask = make_image(self.seed, "test", int(r.path.name))
            return Sample(r.id, img, label, mask)

        return CaseDataset(records, load, check_headers=False)
