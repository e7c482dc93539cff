"""The paper's selection rule: keep the images whose true-class probability exceeds a threshold.

The model runs once over a case; the true-class probability of every sample is cached in a JSON
file keyed by (case, data, weights, model fingerprint, data fingerprint), so a rerun (with any
threshold) is instant, and an edited label file or a replaced image is a new key (scored again).
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from torch import nn

from absgrad.cases.base import Case, Sample, UnreadableImageError
from absgrad.errors import AbsgradError
from absgrad.metrics.forward import chunk_probs
from absgrad.utils.files import absgrad_cache_dir

_CACHE_VERSION = 4  # 4: the model keyed by its full fingerprint


def default_cache_dir() -> Path:
    """``$ABSGRAD_CACHE`` if set, else ``~/.cache/absgrad``."""
    return absgrad_cache_dir()


def model_fingerprint(model: nn.Module) -> str:
    """A short hash of a model's parameters and buffers (the digest of
    :func:`absgrad.models.fingerprint.model_fingerprint`, which a run records)."""
    from absgrad.models.fingerprint import model_fingerprint as fingerprint

    return fingerprint(model)["digest"]


def _cache_file(case: Case, model: nn.Module, cache_dir: Path) -> tuple[Path, dict]:
    key = {
        "version": _CACHE_VERSION,
        "case": case.name,
        "data": case.data_id(),
        "data_fingerprint": case.data_fingerprint()["digest"],  # labels, sizes, mtimes
        "weights": case.weights_id(),
        "model": model_fingerprint(model),
        "image_size": list(case.image_size),
    }
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir / f"select-{case.name}-{digest}.json", key


def score_case(
    case: Case,
    model: nn.Module,
    *,
    batch_size: int = 16,
    cache_dir: str | Path | None = None,
    device: str | torch.device = "cpu",
    num_workers: int = 2,
    progress: bool = False,
) -> dict[str, tuple[float, int]]:
    """``{sample id: (softmax probability of its label, predicted class)}``, one pass, cached.

    Unreadable images are skipped with a warning naming the file and left out of the result.
    ``progress``: show a progress bar (images, images per second, ETA) on stderr.
    """
    if batch_size < 1:
        raise AbsgradError(f"batch_size must be >= 1, got {batch_size}")
    cdir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    path, key = _cache_file(case, model, cdir)
    ds = case.samples()
    if path.is_file():
        try:
            stored = json.loads(path.read_text())
            known = set(stored["scores"]) | set(stored["unreadable"])
            if stored.get("key") == key and all(i in known for i in ds.ids):
                bad = set(stored["unreadable"])
                for i, sid in enumerate(ds.ids):  # skipped as when they were found
                    if sid in bad:
                        ds.note_unreadable(
                            i, "the image cannot be decoded (as the cached pass found)"
                        )
                return {k: (float(p), int(c)) for k, (p, c) in stored["scores"].items()}
        except (json.JSONDecodeError, KeyError, TypeError):
            warnings.warn(f"ignoring a corrupt selection cache file {path}", stacklevel=2)

    model = model.to(device).eval()
    scores: dict[str, tuple[float, int]] = {}
    unreadable: list[str] = []

    def load(i: int) -> Sample | None:
        try:
            return ds[i]
        except UnreadableImageError as e:
            ds.note_unreadable(i, e)
            unreadable.append(ds.records[i].id)
            return None

    from tqdm import tqdm

    bar = tqdm(
        total=len(ds), unit="img", desc="selection", disable=not progress, dynamic_ncols=True
    )
    with bar, ThreadPoolExecutor(max(1, num_workers)) as pool:
        for start in range(0, len(ds), batch_size):
            stop = min(start + batch_size, len(ds))
            batch = [s for s in pool.map(load, range(start, stop)) if s]
            if not batch:
                bar.update(stop - start)
                continue
            x = case.normalize(torch.stack([s.image for s in batch]).to(device))
            labels = torch.tensor([s.label for s in batch], device=device)
            with torch.inference_mode():
                prob = chunk_probs(model, x)  # NaN logits are an error, not "not selected"
            p = prob.gather(1, labels[:, None])[:, 0].cpu()
            pred = prob.argmax(dim=1).cpu()
            scores.update(
                {s.id: (float(v), int(c)) for s, v, c in zip(batch, p, pred, strict=True)}
            )
            bar.update(stop - start)

    cdir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")  # concurrent runs never share a temp file
    tmp.write_text(json.dumps({"key": key, "scores": scores, "unreadable": unreadable}, indent=0))
    tmp.replace(path)
    return scores


def readable(case: Case, limit: int | None = None, *, num_workers: int = 2) -> list[int]:
    """Indices into ``case.samples()`` of the first ``limit`` (None: all) samples that decode;
    one that does not is skipped with a warning and noted in ``samples().skipped``, as the
    selection pass does (the rule for an unreadable image whether or not images are selected)."""
    ds = case.samples()
    out: list[int] = []

    def decodes(i: int) -> bool:
        try:
            ds[i]
        except UnreadableImageError as e:
            ds.note_unreadable(i, e)
            return False
        return True

    with ThreadPoolExecutor(max(1, num_workers)) as pool:
        for start in range(0, len(ds), 32):
            if limit is not None and len(out) >= limit:
                break
            stop = min(start + 32, len(ds))
            out += [
                i
                for i, ok in zip(
                    range(start, stop), pool.map(decodes, range(start, stop)), strict=True
                )
                if ok
            ]
    return out if limit is None else out[:limit]


def true_class_probs(case: Case, model: nn.Module, **kw: object) -> dict[str, float]:
    """``{sample id: softmax probability of its label}`` (see ``score_case``; cached)."""
    return {k: p for k, (p, _) in score_case(case, model, **kw).items()}  # type: ignore[arg-type]


def select(
    case: Case,
    model: nn.Module,
    *,
    threshold: float | None = None,
    batch_size: int = 16,
    cache_dir: str | Path | None = None,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> list[int]:
    """Indices into ``case.samples()`` whose true-class probability is above ``threshold``.

    ``threshold`` defaults to ``case.threshold`` (the paper's 0.9; the demo's is documented in
    ``docs/cases.md``). The model runs once per (case, data, weights, model); later calls read
    the cached probabilities from ``cache_dir`` (default ``$ABSGRAD_CACHE`` or
    ``~/.cache/absgrad``).
    """
    thr = case.threshold if threshold is None else float(threshold)
    if not 0.0 <= thr < 1.0:
        raise AbsgradError(f"threshold must lie in [0, 1), got {thr}")
    scores = score_case(
        case, model, batch_size=batch_size, cache_dir=cache_dir, device=device, progress=progress
    )
    return [i for i, sid in enumerate(case.samples().ids) if sid in scores and scores[sid][0] > thr]
