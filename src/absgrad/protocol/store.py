"""The output directory of a run: atomic per-unit results any executor can write, and run.json.

Layout::

    run.json              config, its hash, images, maps, seeds, versions, sessions (timings)
    absgrad.log           the log of every session
    units/<unit>.json     per-image scores of one unit (written last: its presence = unit done),
                          with the SHA-256 of itself and of the unit's .npz files
    maps/<unit>.npz       the unit's maps, float16, compressed (when saved)
    images/b<batch>.npz   the batch's images, uint8 (for the figures)
    .lock                 held (flock) by the run writing into the folder

Every file is written to a temporary name in the same folder and moved into place with
``os.replace``, so a killed run never leaves a half-written file under a final name. Every
stored file is checked against its checksum when read: ``damaged_units`` finds the units whose
files were truncated or altered (the runner recomputes them), and reading a damaged file for a
report raises ``DamagedFileError`` naming it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import queue
import socket
import threading
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

from absgrad.errors import AbsgradError
from absgrad.protocol.config import RunConfig
from absgrad.protocol.plan import UnitResult

META = "run.json"
LOCK = ".lock"
FORMAT = 1


class RunDirError(AbsgradError):
    """The output directory holds something this run must not write over."""


class DamagedFileError(RunDirError):
    """A stored file is truncated or altered (its checksum or format is wrong); names the file."""


_REDO = "; rerun the same command to recompute it"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _record_checksum(record: dict[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != "checksum"}
    return sha256(json.dumps(body, sort_keys=True).encode())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)  # per process and thread: concurrent writers never share one
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=1).encode())


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")


#: zlib level of the stored ``.npz`` files: float16 maps (noisy gradients) compress to about
#: 0.81 of their size at level 1 and 0.80 at numpy's level 6, which takes 1.6x as long.
NPZ_LEVEL = 1


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """``arrays`` as a compressed ``.npz`` (what ``np.savez_compressed`` writes, at zlib level
    :data:`NPZ_LEVEL`; ``np.load`` reads it)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=NPZ_LEVEL) as zf:
        for name, a in arrays.items():
            with zf.open(f"{name}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(a), allow_pickle=False)
    return buf.getvalue()


def _diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]


class RunLock:
    """An exclusive ``flock`` on ``<run>/.lock`` for as long as a run writes into the folder.

    The operating system drops the lock when the process ends, however it ends (kill -9
    included), so a lock is never stale. Where ``fcntl`` is missing the lock is a no-op.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "a+")  # noqa: SIM115 - held open for the lock's lifetime
        if fcntl is None:
            return
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._file.seek(0)
            holder = self._file.read().strip() or "another process"
            self._file.close()
            raise RunDirError(
                f"another absgrad run ({holder}) is writing into {path.parent}; wait for it to "
                "finish or stop it, or choose another --out"
            ) from None
        self._file.seek(0)
        self._file.truncate()
        self._file.write(f"pid {os.getpid()} on {socket.gethostname()}")
        self._file.flush()

    def release(self) -> None:
        if not self._file.closed:
            if fcntl is not None:
                fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()

    def __enter__(self) -> RunLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


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
        if meta.get("status") == "running" and self.lock_holder() is None:
            # the process that wrote "running" is gone (killed): nobody holds the folder's lock
            meta["status"] = "interrupted"
            meta["status_note"] = "the run's process stopped without recording its end (killed)"
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
            leftovers = {"absgrad.log", LOCK}  # a run that failed before its first unit
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

    # -- the folder's lock -----------------------------------------------------------------
    @property
    def lock_path(self) -> Path:
        return self.root / LOCK

    def lock(self) -> RunLock:
        """Take the folder's lock (``RunDirError`` when another process holds it)."""
        return RunLock(self.lock_path)

    def lock_holder(self) -> str | None:
        """None when no process holds the folder's lock, else what the lock file says of it."""
        if fcntl is None or not self.lock_path.is_file():
            return None
        with open(self.lock_path, "a+") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                f.seek(0)
                return f.read().strip() or "another process"
            fcntl.flock(f, fcntl.LOCK_UN)
        return None

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

        The record carries the SHA-256 of the unit's files and of itself. A unit already stored
        is left as it is (results are never written twice).
        """
        uid = result.unit.id
        if self.has(uid):
            return
        files: dict[str, str] = {}
        if result.maps is not None:
            data = _npz_bytes(result.maps)
            atomic_write_bytes(self.maps_dir / f"{uid}.npz", data)
            files[f"maps/{uid}.npz"] = sha256(data)
        if result.images is not None:
            ipath = self.images_dir / f"b{result.unit.batch:05d}.npz"
            if not ipath.is_file():
                atomic_write_bytes(ipath, _npz_bytes({"images": result.images}))
            files[f"images/{ipath.name}"] = sha256(ipath.read_bytes())
        record = {**result.record(), "files": files}
        record["checksum"] = _record_checksum(record)
        atomic_write_json(self.unit_path(uid), record)

    # -- checks when reading --------------------------------------------------------------
    def read_record(self, unit_id: str) -> dict[str, Any]:
        """A unit's record, checked (valid JSON, its own checksum); else ``DamagedFileError``."""
        path = self.unit_path(unit_id)
        try:
            record = json.loads(path.read_bytes())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DamagedFileError(
                f"damaged unit file {path}: not valid JSON ({e}){_REDO}"
            ) from None
        if not isinstance(record, dict) or "scores" not in record:
            raise DamagedFileError(f"damaged unit file {path}: not a unit record{_REDO}")
        if "checksum" in record and record["checksum"] != _record_checksum(record):
            raise DamagedFileError(f"damaged unit file {path}: content fails its checksum{_REDO}")
        return record

    def _check_file(self, rel: str, expected: str | None) -> bytes:
        path = self.root / rel
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise DamagedFileError(
                f"missing file {path} (listed by its unit record){_REDO}"
            ) from None
        if expected is not None and sha256(data) != expected:
            raise DamagedFileError(f"damaged file {path}: its content fails its checksum{_REDO}")
        return data

    def unit_problem(self, unit_id: str) -> str | None:
        """None when the unit's record and files are intact, else what is wrong (naming files)."""
        try:
            record = self.read_record(unit_id)
            for rel, digest in record.get("files", {}).items():
                self._check_file(rel, digest)
        except DamagedFileError as e:
            return str(e)
        return None

    def damaged_units(self, unit_ids: set[str] | None = None) -> dict[str, str]:
        """``{unit id: problem}`` of the stored units (or of ``unit_ids``) that fail a check."""
        ids = self.done_ids() if unit_ids is None else unit_ids & self.done_ids()
        problems = {uid: self.unit_problem(uid) for uid in sorted(ids)}
        return {uid: p for uid, p in problems.items() if p is not None}

    def discard(self, unit_id: str) -> None:
        """Remove a damaged unit's record and maps so that it is computed again.

        A damaged batch image file is removed as well (the unit rewrites it)."""
        with contextlib.suppress(DamagedFileError):
            for rel, digest in self.read_record(unit_id).get("files", {}).items():
                with contextlib.suppress(DamagedFileError):
                    self._check_file(rel, digest)
                    continue
                (self.root / rel).unlink(missing_ok=True)
        self.unit_path(unit_id).unlink(missing_ok=True)
        (self.maps_dir / f"{unit_id}.npz").unlink(missing_ok=True)

    def records(self) -> Iterator[dict[str, Any]]:
        """Stored unit records in unit-id order, each checked (``DamagedFileError`` names a bad one)."""
        for uid in sorted(self.done_ids()):
            yield self.read_record(uid)

    def _load_npz(self, path: Path) -> dict[str, np.ndarray]:
        try:
            with np.load(path) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
            raise DamagedFileError(f"damaged file {path}: {type(e).__name__}: {e}{_REDO}") from None

    def load_maps(self, unit_id: str) -> dict[str, np.ndarray]:
        path = self.maps_dir / f"{unit_id}.npz"
        if not path.is_file():
            return {}
        return {k: v.astype(np.float32) for k, v in self._load_npz(path).items()}

    def load_images(self, batch: int) -> np.ndarray | None:
        path = self.images_dir / f"b{batch:05d}.npz"
        if not path.is_file():
            return None
        arrays = self._load_npz(path)
        if "images" not in arrays:
            raise DamagedFileError(f"damaged file {path}: it holds no 'images' array")
        return arrays["images"]

    def clean_temporaries(self) -> int:
        """Remove temporary files a killed run left behind; returns how many."""
        n = 0
        for folder in (self.root, self.units_dir, self.maps_dir, self.images_dir):
            if folder.is_dir():
                for p in folder.glob(".*.tmp"):
                    p.unlink(missing_ok=True)
                    n += 1
        return n


class UnitWriter:
    """Stores finished units on one background thread, so that compressing, checksumming and
    writing a unit's files overlaps the computation of the next units.

    :meth:`submit` queues a unit and returns at once, unless ``depth`` units wait already
    (then it waits, so memory stays bounded). Units are stored in the order they come, each
    by :meth:`RunStore.write` (its files first, its record last: a unit counts as stored only
    when it is complete); ``on_stored(result)`` runs on the writer thread after each one.
    :meth:`close` stores every queued unit and stops the thread: the runner calls it however
    a run ends (Ctrl-C included), before it counts the stored units. A unit the writer could
    not store raises its error in the calling thread, at the next :meth:`submit` or at
    :meth:`close`, and no later unit is stored.
    """

    def __init__(
        self,
        store: RunStore,
        on_stored: Callable[[UnitResult], None] | None = None,
        depth: int = 2,
    ) -> None:
        self.store = store
        self.on_stored = on_stored
        self._queue: queue.Queue[UnitResult | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None  # raised once, in the calling thread
        self._failed = False
        self._closed = False
        self._thread = threading.Thread(target=self._work, name="absgrad-writer", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while True:
            result = self._queue.get()
            if result is None:
                return
            if self._failed:
                continue  # after a failure nothing more is stored
            try:
                self.store.write(result)
                if self.on_stored is not None:
                    self.on_stored(result)
            except BaseException as e:  # noqa: BLE001 - handed to the calling thread
                self._failed, self._error = True, e

    def submit(self, result: UnitResult) -> None:
        """Queue ``result`` for storing (raises the error of an earlier unit, if any)."""
        self._raise()
        if self._closed:
            raise RuntimeError("this UnitWriter is closed")
        self._queue.put(result)

    def close(self) -> None:
        """Store every queued unit and stop the thread; raises the writer's error, if any."""
        if not self._closed:
            self._closed = True
            self._queue.put(None)
            self._thread.join()
        self._raise()

    def _raise(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise err
