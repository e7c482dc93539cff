"""Weights by name: a file, the library's own published weights (``pretrained``), or ``random``.

``--weights`` (YAML ``weights:``, Python ``weights=``) is a FILE, ``pretrained`` or ``random``;
a model spec without it means ``pretrained``. Published weights come through each library's own
download code into its own cache, once; after that nothing touches the network:

=======================  ==============================================  ===========================
spec                     ``pretrained`` is                               cached in
=======================  ==============================================  ===========================
``timm:NAME[.TAG]``      timm's pretrained config of NAME (its default   ``$HF_HOME/hub`` (a Hub
                         tag unless one is given): ``model.safetensors``  repo), else
                         of its Hub repo, else its URL                   ``$TORCH_HOME/hub/checkpoints``
``torchvision:NAME``     the ``DEFAULT`` member of NAME's weights enum   ``$TORCH_HOME/hub/checkpoints``
``hf:ORG/NAME[@REV]``    the repo's ``config.json``,                     ``$HF_HOME/hub``
                         ``preprocessor_config.json`` and weights
``hf:/path/to/folder``   the folder's own files                          (the folder)
``module:factory``       the factory's model as it returns it            (the factory's business)
=======================  ==============================================  ===========================

``HF_HUB_OFFLINE=1`` is respected. When the weights are not cached and cannot be downloaded
(offline, a firewall, a wrong name) :func:`fetch` raises :class:`PretrainedError`, one line
naming the model, the cache folder and file looked for, and the two ways on (``--weights FILE``,
``--weights random``); what the attempt wrote into the cache is removed. A fetched set of files
is identified by :attr:`Fetched.sha` (the SHA-256 of each file): the run's hash covers it.

Class names the model knows (:func:`model_class_names`): timm's ImageNet info, torchvision's
``meta["categories"]``, Hugging Face ``config.id2label``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from absgrad.errors import AbsgradError, first_line
from absgrad.models.spec import ModelSpec, ModelSpecError, file_fingerprint, parse_model_spec
from absgrad.names import PRETRAINED, RANDOM, WEIGHT_WORDS

#: Weights files of a Hugging Face model, in the order ``from_pretrained`` prefers them.
HF_WEIGHTS = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
HF_CONFIG = "config.json"
HF_PROCESSOR = "preprocessor_config.json"
#: What an offline error suggests instead.
WAYS_ON = (
    "pass --weights FILE (a weights file you have) or --weights random (random weights, "
    "to try the pipeline)"
)
_GENERIC_LABEL = re.compile(r"^LABEL_\d+$")


class PretrainedError(AbsgradError):
    """Published weights that cannot be had: not cached and not downloadable, or none exist."""


def weights_choice(weights: Any) -> str | Path:
    """``None`` and ``"pretrained"`` -> ``"pretrained"``, ``"random"`` -> ``"random"`` (any
    case), anything else -> the weights file's path."""
    if weights is None:
        return PRETRAINED
    if isinstance(weights, str) and weights.strip().lower() in WEIGHT_WORDS:
        return weights.strip().lower()
    return Path(weights).expanduser()


@dataclass(frozen=True)
class Fetched:
    """Local files of a spec's published weights (or of an ``hf:`` model's configuration).

    ``files``: name -> path (``model.safetensors``, ``config.json``...); ``folder``: where
    ``from_pretrained`` finds them (``hf:`` specs); ``source``: where they come from, for people
    (``Hugging Face Hub timm/resnet18.a1_in1k@<commit>``); ``name``: the resolved model name
    (timm's tag, torchvision's enum member).
    """

    spec: ModelSpec
    files: dict[str, Path]
    source: str
    name: str = ""
    folder: Path | None = None

    @property
    def sha(self) -> str:
        """The first 16 hex digits of a SHA-256 over each file's name and SHA-256."""
        h = hashlib.sha256()
        for key in sorted(self.files):
            h.update(f"{key}={file_fingerprint(self.files[key])};".encode())
        return h.hexdigest()[:16]

    @property
    def weights_file(self) -> Path | None:
        """The (first) weights file, None for a configuration only."""
        return next((p for k, p in self.files.items() if k not in (HF_CONFIG, HF_PROCESSOR)), None)

    def describe(self) -> str:
        """``timm resnet18.a1_in1k from Hugging Face Hub timm/resnet18.a1_in1k@abc (sha ...)``."""
        return (f"{self.name} from " if self.name else "") + f"{self.source} (sha256 {self.sha})"


# -- leaving nothing half-written -------------------------------------------------------------------
def _tree(path: Path) -> set[Path]:
    if not path.exists() and not path.is_symlink():
        return set()
    if not path.is_dir() or path.is_symlink():
        return {path}
    return {path, *path.rglob("*")}


@contextlib.contextmanager
def _no_trace(*paths: Path) -> Iterator[None]:
    """On an exception in the block, remove every file and folder it created at or under
    ``paths``, and the empty parent folders it created."""
    before = {p: _tree(p) for p in paths}
    parents = {a for p in paths for a in p.parents if not a.exists()}
    try:
        yield
    except BaseException:
        for p, old in before.items():
            for q in sorted(_tree(p) - old, key=lambda q: len(q.parts), reverse=True):
                with contextlib.suppress(OSError):
                    if q.is_dir() and not q.is_symlink():
                        shutil.rmtree(q)
                    else:
                        q.unlink()
        for a in sorted(parents, key=lambda a: len(a.parts), reverse=True):
            with contextlib.suppress(OSError):
                a.rmdir()  # only when empty
        raise


@contextlib.contextmanager
def _quiet(*loggers: str) -> Iterator[None]:
    """The libraries' retry and progress chatter off (the error says what happened)."""
    saved = [(lg, lg.level) for lg in map(logging.getLogger, loggers)]
    for lg, _ in saved:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in saved:
            lg.setLevel(level)


# -- the Hugging Face Hub ---------------------------------------------------------------------------
def hub_cache() -> Path:
    """The Hub client's cache folder (``$HF_HUB_CACHE``, by default ``$HF_HOME/hub``)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def hub_repo_folder(repo: str) -> Path:
    """Where the Hub client keeps ``repo``'s files: ``<hub cache>/models--ORG--NAME``."""
    return hub_cache() / ("models--" + repo.replace("/", "--"))


def _hub_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _hub_file(
    spec: ModelSpec, repo: str, filename: str, revision: str | None, *, cached_only: bool = False
) -> Path | None:
    """``filename`` of ``repo`` in the Hub cache, downloaded there once by the Hub client
    (``cached_only``: never); None when the repo has no such file (or, ``cached_only``, when it
    is not cached). Raises :class:`PretrainedError` (see the module doc)."""
    from huggingface_hub import hf_hub_download, try_to_load_from_cache
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    cached = try_to_load_from_cache(repo, filename, revision=revision)
    if isinstance(cached, str):
        return Path(cached)
    if cached is not None or cached_only:  # the client recorded that the repo lacks it
        return None
    folder = hub_repo_folder(repo)
    try:
        with _no_trace(folder, hub_cache() / ".locks" / folder.name), _quiet("huggingface_hub"):
            return Path(hf_hub_download(repo, filename, revision=revision))
    except LocalEntryNotFoundError:
        why = (
            "HF_HUB_OFFLINE is set"
            if _hub_offline()
            else "the Hugging Face Hub cannot be reached (no network? HF_HUB_OFFLINE=1 fails "
            "at once)"
        )
        raise _not_cached(spec, f"Hugging Face Hub repo {repo}", filename, folder, why) from None
    except EntryNotFoundError:
        return None
    except Exception as e:  # noqa: BLE001  (repo not found, gated, HTTP errors: all one line)
        raise _not_cached(
            spec, f"Hugging Face Hub repo {repo}", filename, folder, _hub_reason(e, repo)
        ) from None


def _hub_reason(e: BaseException, repo: str) -> str:
    from huggingface_hub.errors import (
        GatedRepoError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if isinstance(e, GatedRepoError):
        return f"{repo} is gated: accept its terms on the Hub and log in (hf auth login)"
    if isinstance(e, RepositoryNotFoundError):
        return f"the Hub has no repo {repo} (or it is private)"
    if isinstance(e, RevisionNotFoundError):
        return f"the Hub repo {repo} has no such revision"
    return f"{type(e).__name__}: {first_line(e, empty=type(e).__name__)}"


def _not_cached(
    spec: ModelSpec, where: str, filename: str, folder: Path, why: str
) -> PretrainedError:
    return PretrainedError(
        f"{spec}: its pretrained weights ({filename} of {where}) are not in the cache {folder} "
        f"and cannot be downloaded: {why}; {WAYS_ON}"
    )


def _hub_weights(
    spec: ModelSpec, repo: str, revision: str | None, names: tuple[str, ...]
) -> dict[str, Path]:
    """The first of the weights files ``names`` the repo has (with the shards an index lists):
    a cached one first, then the first the Hub serves."""
    for cached_only in (True, False):
        for name in names:
            path = _hub_file(spec, repo, name, revision, cached_only=cached_only)
            if path is None:
                continue
            files = {name: path}
            if name.endswith(".index.json"):
                for shard in sorted(set(json.loads(path.read_text())["weight_map"].values())):
                    got = _hub_file(spec, repo, shard, revision)
                    if got is None:
                        raise PretrainedError(
                            f"{spec}: {repo} lists the weights shard {shard} but lacks it"
                        )
                    files[shard] = got
            return files
    raise PretrainedError(
        f"{spec}: the Hugging Face Hub repo {repo} holds no PyTorch weights "
        f"({', '.join(names)}); {WAYS_ON}"
    )


# -- URLs (torch.hub) -------------------------------------------------------------------------------
def torch_checkpoints() -> Path:
    """torch.hub's checkpoint folder (``$TORCH_HOME/hub/checkpoints``)."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def _url_file(spec: ModelSpec, url: str, check_hash: bool) -> Path:
    """The file at ``url`` in torch.hub's checkpoint folder, downloaded there once as
    ``torch.hub.load_state_dict_from_url`` does (with its hash check when ``check_hash``)."""
    import torch.hub

    folder = torch_checkpoints()
    path = folder / os.path.basename(urlparse(url).path)
    if path.is_file():
        return path
    prefix = None
    if check_hash:
        m = torch.hub.HASH_REGEX.search(path.name)
        prefix = m.group(1) if m else None
    try:
        with _no_trace(folder):
            folder.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(url, str(path), prefix, progress=True)
    except Exception as e:  # noqa: BLE001  (URLError, HTTPError, a hash mismatch: one line)
        raise _not_cached(
            spec,
            url,
            path.name,
            folder,
            f"the download failed ({type(e).__name__}: {first_line(e, empty=type(e).__name__)})",
        ) from None
    return path


# -- per library ------------------------------------------------------------------------------------
def timm_pretrained_cfg(spec: ModelSpec) -> Any:
    """timm's pretrained config of ``timm:NAME[.TAG]`` (the default tag without one)."""
    import timm
    from timm.models import get_pretrained_cfg

    if not timm.is_model(spec.name):
        from absgrad.models.build import no_such_model

        raise no_such_model(spec)
    try:
        cfg = get_pretrained_cfg(spec.name)
    except RuntimeError as e:  # an unknown tag
        tags = timm.list_models(spec.name.split(".")[0], pretrained=True)
        raise ModelSpecError(
            f"model spec {spec}: {e} (published: {', '.join(tags[:8]) or 'none'})"
        ) from None
    return cfg


def _fetch_timm(spec: ModelSpec) -> Fetched:
    cfg = timm_pretrained_cfg(spec)
    if cfg is None or not (cfg.hf_hub_id or cfg.url or cfg.file) or cfg.custom_load:
        raise PretrainedError(
            f"{spec}: timm has no published weights to load by name for {spec.name} "
            f"(`absgrad list models {spec.name.split('.')[0]}` lists those it has); "
            "pass --weights FILE or --weights random"
        )
    name = f"{cfg.architecture}.{cfg.tag}" if cfg.tag else cfg.architecture
    if cfg.file:
        return Fetched(spec, {"weights": Path(cfg.file)}, f"file {cfg.file}", name)
    if cfg.hf_hub_id:
        repo, _, rev = cfg.hf_hub_id.partition("@")
        names = (
            (cfg.hf_hub_filename,)
            if cfg.hf_hub_filename
            else ("model.safetensors", "pytorch_model.bin")
        )
        files = _hub_weights(spec, repo, rev or None, names)
        return Fetched(spec, files, f"Hugging Face Hub {repo}@{_commit(files)}", name)
    path = _url_file(spec, cfg.url, check_hash=False)
    return Fetched(spec, {path.name: path}, cfg.url, name)


def torchvision_weights(spec: ModelSpec) -> Any:
    """The ``DEFAULT`` member of the weights enum of ``torchvision:NAME``."""
    import torchvision.models as tvm

    if spec.name not in tvm.list_models():
        from absgrad.models.build import no_such_model

        raise no_such_model(spec)
    try:
        return tvm.get_model_weights(spec.name).DEFAULT
    except (ValueError, KeyError, AttributeError):
        raise PretrainedError(
            f"{spec}: torchvision publishes no weights for {spec.name}; "
            "pass --weights FILE or --weights random"
        ) from None


def _fetch_torchvision(spec: ModelSpec) -> Fetched:
    w = torchvision_weights(spec)
    path = _url_file(spec, w.url, check_hash=True)  # torchvision's own loader checks it too
    return Fetched(spec, {path.name: path}, w.url, f"{type(w).__name__}.{w.name}")


def _fetch_hf(spec: ModelSpec, weights: bool) -> Fetched:
    if spec.is_local:
        folder = Path(spec.name)
        files = {n: folder / n for n in (HF_CONFIG, HF_PROCESSOR) if (folder / n).is_file()}
        if weights:
            name = next((n for n in HF_WEIGHTS if (folder / n).is_file()), None)
            if name is None:
                raise PretrainedError(
                    f"{spec}: the folder holds no PyTorch weights ({', '.join(HF_WEIGHTS)}); "
                    f"{WAYS_ON}"
                )
            files[name] = folder / name
            if name.endswith(".index.json"):
                for shard in set(json.loads(files[name].read_text())["weight_map"].values()):
                    files[shard] = folder / shard
        return Fetched(spec, files, f"folder {folder}", "", folder)
    repo, rev = spec.hub_repo
    config = _hub_file(spec, repo, HF_CONFIG, rev)
    if config is None:
        raise PretrainedError(f"{spec}: the Hugging Face Hub repo {repo} has no {HF_CONFIG}")
    files = {HF_CONFIG: config}
    processor = _hub_file(spec, repo, HF_PROCESSOR, rev)
    if processor is not None:
        files[HF_PROCESSOR] = processor
    if weights:
        files.update(_hub_weights(spec, repo, rev, HF_WEIGHTS))
    return Fetched(spec, files, f"Hugging Face Hub {repo}@{_commit(files)}", repo, config.parent)


def _commit(files: dict[str, Path]) -> str:
    """The snapshot (commit) folder name the Hub client put the files in."""
    return next(iter(files.values())).parent.name


@lru_cache(maxsize=16)
def _fetch(spec: ModelSpec, weights: bool) -> Fetched:
    if spec.kind == "timm":
        return _fetch_timm(spec)
    if spec.kind == "torchvision":
        return _fetch_torchvision(spec)
    if spec.kind == "hf":
        return _fetch_hf(spec, weights)
    raise PretrainedError(f"{spec}: a factory builds its model itself; it has no published weights")


def fetch(spec: str | ModelSpec, *, weights: bool = True) -> Fetched:
    """The local files of ``spec``'s published weights, downloaded once into the library's
    cache (``weights=False``: an ``hf:`` model's configuration only). Remembered per process.
    """
    return _fetch(parse_model_spec(spec), weights)


def clear_fetched() -> None:
    """Forget what :func:`fetch` found (for a cache changed behind this process's back)."""
    _fetch.cache_clear()


# -- class names --------------------------------------------------------------------------------------
def hf_id2label(config_file: Path) -> list[str] | None:
    """``config.id2label`` as a list, None when absent or generic (``LABEL_0``...)."""
    try:
        raw = json.loads(config_file.read_text()).get("id2label") or {}
        pairs = sorted((int(k), str(v)) for k, v in raw.items())
    except (OSError, ValueError, AttributeError):
        return None
    names = [v for _, v in pairs]
    if not names or [k for k, _ in pairs] != list(range(len(names))):
        return None
    return None if all(_GENERIC_LABEL.match(n) for n in names) else names


def timm_class_names(cfg: Any) -> list[str] | None:
    """Class names of a timm pretrained config: its own label names, else ImageNet's subset
    for its class count (timm's ``ImageNetInfo``)."""
    names = getattr(cfg, "label_descriptions", None) or getattr(cfg, "label_names", None)
    if names:
        return [str(n) for n in names]
    from timm.data import infer_imagenet_subset

    subset = infer_imagenet_subset(cfg.to_dict())
    if subset is None:
        return None
    return imagenet_class_names(subset)


def imagenet_class_names(subset: str = "imagenet-1k") -> list[str]:
    """Readable names of an ImageNet subset's classes by index (``tench``, ``goldfish``...):
    the first lemma of each class in timm's metadata."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo(subset)
    return [info.index_to_description(i).split(",")[0] for i in range(info.num_classes())]


def model_class_names(spec: str | ModelSpec, weights: Any) -> tuple[list[str] | None, str]:
    """Class names the model knows with these weights, and where they come from.

    Only published weights have names (``pretrained``, and an ``hf:`` model's own
    ``id2label``); a weights file or random weights have none (their classes are the user's).
    """
    spec = parse_model_spec(spec)
    if weights_choice(weights) != PRETRAINED:
        return None, ""
    if spec.kind == "timm":
        cfg = timm_pretrained_cfg(spec)
        names = timm_class_names(cfg) if cfg is not None else None
        return names, f"timm's class names of {spec.name}" if names else ""
    if spec.kind == "torchvision":
        cats = torchvision_weights(spec).meta.get("categories")
        return (list(cats), f"torchvision's categories of {spec.name}") if cats else (None, "")
    if spec.kind == "hf":
        config = fetch(spec, weights=False).files[HF_CONFIG]
        names = hf_id2label(config)
        return names, f"config.id2label of {spec}" if names else ""
    return None, ""


__all__ = [
    "HF_CONFIG",
    "HF_PROCESSOR",
    "HF_WEIGHTS",
    "PRETRAINED",
    "RANDOM",
    "WEIGHT_WORDS",
    "Fetched",
    "PretrainedError",
    "clear_fetched",
    "fetch",
    "hf_id2label",
    "hub_cache",
    "hub_repo_folder",
    "model_class_names",
    "timm_class_names",
    "timm_pretrained_cfg",
    "torch_checkpoints",
    "torchvision_weights",
    "weights_choice",
]
