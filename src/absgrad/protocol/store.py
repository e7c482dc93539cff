"""The output directory of a run: atomic per-unit results any executor can write, and run.json.

Layout::

    run.json              config, its hash, images, maps, seeds, versions, sessions (timings)
    absgrad.log           the log of every session
    units/<unit>.json     per-image scores of one unit (written last: its presence = unit done)
    maps/<unit>.npz       the unit's maps, float16, compressed (when saved)
    images/b<batch>.npz   the batch's images, uint8 (for the figures)

Every file is written to a temporary name in the same folder and moved into place with
``os.replace``, so a killed run never leaves a half-written file under a final name.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from absgrad.errors import AbsgradError
from absgrad.protocol.config import RunConfig
from absgrad.protocol.worker import UnitResult

META = "run.json"
FORMAT = 1


class RunDirError(AbsgradError):
    """The output directory holds something this run must not write over."""


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=1).encode())


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def _diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]


class RunStore:
    """Read and write one run directory."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.units_dir = self.root / "units"
        self.maps_dir = self.root / "maps"
        self.images_dir = self.root / "images"

    # -- run.json -------------------------------------------------------------------------
    @property
    def meta_path(self) -> Path:
        return self.root / META

    def read_meta(self) -> dict[str, Any]:
        if not self.meta_path.is_file():
            raise RunDirError(f"{self.root} holds no absgrad run ({META} is missing)")
        try:
            meta = json.loads(self.meta_path.read_text())
        except json.JSONDecodeError as e:
            raise RunDirError(f"{self.meta_path} is not valid JSON: {e}") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise RunDirError(f"{self.meta_path} is not an absgrad run file of format {FORMAT}")
        return meta

    def write_meta(self, meta: dict[str, Any]) -> None:
        atomic_write_json(self.meta_path, {"format": FORMAT, **meta})

    def check(self, config: RunConfig, resume: bool | None) -> dict[str, Any] | None:
        """The existing compatible run's metadata, None for a fresh directory; else raise.

        ``resume=None`` resumes a compatible run, ``False`` refuses any existing run, ``True``
        requires one.
        """
        exists = self.root.exists()
        if exists and not self.root.is_dir():
            raise RunDirError(f"output path {self.root} exists and is not a directory")
        has_meta = self.meta_path.is_file()
        if not has_meta:
            leftovers = {"absgrad.log"}  # a run that failed before its first unit leaves its log
            if exists and any(p.name not in leftovers for p in self.root.iterdir()):
                raise RunDirError(
                    f"output directory {self.root} is not empty and holds no absgrad run; "
                    "refusing to write into it (choose another --out)"
                )
            if resume:
                raise RunDirError(f"--resume given but {self.root} holds no run to resume")
            return None
        meta = self.read_meta()
        if meta.get("config_hash") != config.config_hash():
            changes = _diff(meta.get("config_hashed", {}), config.hash_dict())
            raise RunDirError(
                f"output directory {self.root} holds an incompatible run "
                f"(config {meta.get('config_hash')} vs {config.config_hash()}; changed: "
                f"{'; '.join(changes) or 'unknown'}); nothing was overwritten. "
                "Use another --out, or the same settings to resume."
            )
        if resume is False:
            raise RunDirError(
                f"output directory {self.root} already holds this run; refusing to overwrite it "
                "(drop --no-resume to resume it, or choose another --out)"
            )
        return meta

    # -- units ----------------------------------------------------------------------------
    def unit_path(self, unit_id: str) -> Path:
        return self.units_dir / f"{unit_id}.json"

    def has(self, unit_id: str) -> bool:
        return self.unit_path(unit_id).is_file()

    def done_ids(self) -> set[str]:
        if not self.units_dir.is_dir():
            return set()
        return {p.stem for p in self.units_dir.glob("*.json")}

    def write(self, result: UnitResult) -> None:
        """Store a unit: maps and images first, the score record last (the 'done' marker).

        A unit already stored is left as it is (results are never written twice).
        """
        uid = result.unit.id
        if self.has(uid):
            return
        if result.maps is not None:
            atomic_write_bytes(self.maps_dir / f"{uid}.npz", _npz_bytes(result.maps))
        if result.images is not None:
            ipath = self.images_dir / f"b{result.unit.batch:05d}.npz"
            if not ipath.is_file():
                atomic_write_bytes(ipath, _npz_bytes({"images": result.images}))
        atomic_write_json(self.unit_path(uid), result.record())

    def records(self) -> Iterator[dict[str, Any]]:
        """Stored unit records in unit-id order."""
        for uid in sorted(self.done_ids()):
            yield json.loads(self.unit_path(uid).read_text())

    def load_maps(self, unit_id: str) -> dict[str, np.ndarray]:
        path = self.maps_dir / f"{unit_id}.npz"
        if not path.is_file():
            return {}
        with np.load(path) as z:
            return {k: z[k].astype(np.float32) for k in z.files}

    def load_images(self, batch: int) -> np.ndarray | None:
        path = self.images_dir / f"b{batch:05d}.npz"
        if not path.is_file():
            return None
        with np.load(path) as z:
            return z["images"]

    def clean_temporaries(self) -> int:
        """Remove temporary files a killed run left behind; returns how many."""
        n = 0
        for folder in (self.root, self.units_dir, self.maps_dir, self.images_dir):
            if folder.is_dir():
                for p in folder.glob(".*.tmp"):
                    p.unlink(missing_ok=True)
                    n += 1
        return n
