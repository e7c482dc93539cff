"""Run configuration: YAML files and CLI flags -> a validated, hashable :class:`RunConfig`."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from absgrad import names
from absgrad.errors import AbsgradError, excerpt
from absgrad.params import PARAMS, Rule
from absgrad.protocol.catalogue import PAPER_SAMPLING, REVERSED_BASES


class ConfigError(AbsgradError):
    """A configuration value is invalid; the message names the field."""


@dataclass(frozen=True)
class RunConfig:
    """Everything a protocol run needs; see ``docs/protocol.md`` for each field."""

    case: str
    data: str | None = None
    weights: str | None = None  # a file, or for a model spec "pretrained" (default) or "random"
    # the folder case (your data and model; see docs/own-model.md); None: not used / default
    model: str | None = None  # model spec: timm:NAME, torchvision:NAME, module:factory
    masks: str | None = None
    classes: str | None = None  # class table file, or "imagenet"
    labels: str | None = None  # label table CSV (file,label)
    size: tuple[int, int] | None = None
    resize: int | str | tuple[int, int] | None = None
    norm: str | None = None
    weights_sha: str | None = None  # the weights file's or published files' SHA-256: hashed
    model_sha: str | None = None  # a factory's source files' SHA-256: part of the hash
    tables: tuple[int, ...] = (1, 2, 3)
    maps: tuple[str, ...] | None = None  # restrict to these map labels
    metrics: tuple[str, ...] | None = None  # None: the case's default metrics
    limit: int | None = None
    select: bool = True
    threshold: float | None = None  # None: the case's threshold (paper: 0.9)
    seed: int = 0
    device: str = "auto"  # auto: CUDA, else MPS, else the CPU (resolved once, by the runner)
    deterministic: bool = True  # deterministic GPU kernels, no TF32 (see docs/performance.md)
    batch_size: int = PAPER_SAMPLING.batch_size  # images per work unit and per gradient chunk
    # images per gradient pass, or "auto": batch_size on a CPU, measured on a CUDA device
    grad_batch_size: int | str = "auto"
    eval_batch_size: int | str = 16  # perturbed images per forward pass, or "auto" (measured)
    channels_last: bool = False  # model weights in channels-last memory format (see docs)
    engine: str = "auto"  # forward passes of the metrics: eager, compile, onnx, or auto
    precision: str = "fp32"  # fp32, or bf16 autocast in the metrics' forward passes (see docs)
    save_maps: bool | int = True  # True: all, False: none, N: the first N images
    n_samples: int = PAPER_SAMPLING.n_samples
    spread: float = PAPER_SAMPLING.spread
    percentile: float = PAPER_SAMPLING.percentile
    ig_trials: int = PAPER_SAMPLING.ig_trials
    ig_steps: int = PAPER_SAMPLING.ig_steps
    objective: str = PAPER_SAMPLING.objective
    rcap_lower_bound: float = 0.5
    rcap_interval: float = 0.1
    auc_steps: int = 10
    reversal: Mapping[str, tuple[float, float]] | None = None  # None: the case's settings
    gradcam_layer: str | None = None  # None: the case's layer, else the default-layer rule
    extra_maps: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    skip_unsupported: bool = False  # leave out maps the model cannot give (warning), not fail

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        if self.reversal is not None:
            d["reversal"] = {k: list(v) for k, v in self.reversal.items()}
        d["extra_maps"] = {k: dict(v) for k, v in self.extra_maps.items()}
        return d

    def hash_dict(self) -> dict[str, Any]:
        """The fields that change results (not the device, forward batch size or map saving)."""
        d = self.to_dict()
        for k in NOT_HASHED:
            d.pop(k)
        d["maps_version"] = MAPS_VERSION  # a run never mixes maps of two versions of the formulas
        if not d["channels_last"]:
            d.pop("channels_last")  # runs from before the option keep their hash
        if d["precision"] == "fp32":
            d.pop("precision")  # likewise: only bf16 changes the hash
        if d["gradcam_layer"] is None:
            d.pop("gradcam_layer")  # likewise: only a chosen layer changes the hash
        for k in OWN_MODEL_FIELDS:
            if d[k] is None:
                d.pop(k)  # likewise for the folder case's fields
        return d

    def config_hash(self) -> str:
        blob = json.dumps(self.hash_dict(), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


NOT_HASHED = (
    "device",
    "eval_batch_size",
    "grad_batch_size",
    "save_maps",
    "engine",
    "deterministic",
)
#: Bumped whenever a method's formula or its randomness changes the maps: 2 = the second |.| of
#: ``abs`` on path samples, per-round Guided IG samples, ``floor(n * remain) + 1`` kept values on
#: reversal and per-image random generators; 3 = the variance guide of IG and BlurIG with ``abs``
#: over the path's samples, before the second ``|.|`` (SPEC §2.3); 4 = the shuffles of reversed
#: maps over each side's pixels in image order (no longer in value order, which rounding can
#: reorder), and Guided IG's images stepping together (batched gradients, float64 L1 sums).
MAPS_VERSION = 4
#: The folder case's options (your own data and model), passed on to ``get_case("folder")``.
FOLDER_OPTIONS = ("model", "masks", "classes", "labels", "size", "resize", "norm")
OWN_MODEL_FIELDS = (*FOLDER_OPTIONS, "weights_sha", "model_sha")
FIELDS = {f.name: f for f in dataclasses.fields(RunConfig)}
#: YAML sections flattened into fields: ``rcap: {interval: ..}`` -> ``rcap_interval``.
SECTIONS = {
    "rcap": {"lower_bound": "rcap_lower_bound", "interval": "rcap_interval"},
    "auc": {"steps": "auc_steps"},
    "ig": {"trials": "ig_trials", "steps": "ig_steps"},
    "sampling": {
        "n_samples": "n_samples",
        "spread": "spread",
        "percentile": "percentile",
        "objective": "objective",
    },
}


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _fail(name: str, msg: str, value: Any) -> ConfigError:
    return ConfigError(f"config field '{name}': {msg}, got {excerpt(value)}")


def _shown(name: str) -> str:
    """How errors name a field: ``rcap.interval`` for the flat field ``rcap_interval``."""
    return {f: f"rcap.{sub}" for sub, f in SECTIONS["rcap"].items()}.get(name, name)


def _ruled(rule: Rule) -> Callable[[str, Any], Any]:
    """A field check from a rule of ``utils.params`` (the same rules the methods apply)."""

    def check(name: str, v: Any) -> Any:
        if not rule.accepts(v):
            raise _fail(_shown(name), f"must be {rule.describe()}", v)
        return float(v) if rule.kind == "float" and v is not None else v

    return check


def _path(name: str, v: Any) -> str | None:
    if v is None:
        return None
    if not isinstance(v, (str, Path)):
        raise _fail(name, "must be a path", v)
    return str(Path(v).expanduser().resolve())


def _weights(name: str, v: Any) -> str | None:
    """A weights file (made absolute), or ``pretrained`` / ``random`` (any case)."""
    if isinstance(v, str) and v.strip().lower() in names.WEIGHT_WORDS:
        return v.strip().lower()
    return _path(name, v)


def _tables(name: str, v: Any) -> tuple[int, ...]:
    t = v
    if isinstance(t, (int, str)):
        t = [t] if _is_int(t) else [s.strip() for s in str(t).split(",") if s.strip()]
    try:
        tables = tuple(sorted({int(x) for x in t}))
    except (TypeError, ValueError):
        raise _fail(name, "must be a list of table numbers 1, 2, 3", v) from None
    if not tables or any(x not in (1, 2, 3) for x in tables):
        raise _fail(name, "must be a list of table numbers 1, 2, 3", v)
    return tables


def _str_list(name: str, v: Any) -> tuple[str, ...] | None:
    if v is None:
        return None
    if isinstance(v, str):
        v = [s.strip() for s in v.split(",") if s.strip()]
    if not isinstance(v, (list, tuple)) or not v or not all(isinstance(s, str) for s in v):
        raise _fail(name, "must be a non-empty list of names", v)
    return tuple(v)


def _names(name: str, v: Any) -> tuple[str, ...] | None:
    """A list of map labels or metric names; names are case-insensitive, kept in lower case
    (so ``VG`` and ``vg`` are one map, and one run)."""
    names = _str_list(name, v)
    return None if names is None else tuple(n.lower() for n in names)


def _eval_batch(name: str, v: Any) -> int | str:
    if v != "auto" and not (_is_int(v) and v >= 1):
        raise _fail(name, "must be an integer >= 1 or 'auto'", v)
    return v


def _device(name: str, v: Any) -> str:
    kind, _, index = v.partition(":") if isinstance(v, str) else ("", "", "")
    if v == "auto":
        return v
    if kind not in ("cpu", "cuda", "mps") or (index and not (kind == "cuda" and index.isdigit())):
        raise _fail(name, "must be auto, cpu, cuda, cuda:N or mps", v)
    return v


def check_device(name: str, v: Any) -> str:
    """The device ``v`` names on this machine: ``auto`` becomes the best one here (CUDA, else
    MPS, else the CPU: :func:`absgrad.utils.devices.best_device`); a named device must exist
    here (cpu, cuda, cuda:N, mps), else an error.

    A config may name a device the machine writing it lacks; the run checks it where it runs.
    """
    import torch

    from absgrad.utils.devices import best_device

    _device(name, v)
    if v == "auto":
        return best_device()
    kind, _, index = v.partition(":")
    if kind == "cuda" and not torch.cuda.is_available():
        raise _fail(name, "asks for a GPU but PyTorch sees no CUDA device here (use cpu)", v)
    if kind == "cuda" and index and int(index) >= torch.cuda.device_count():
        raise _fail(name, f"names a GPU this machine lacks ({torch.cuda.device_count()} seen)", v)
    if kind == "mps" and not torch.backends.mps.is_available():
        raise _fail(name, "asks for Apple's MPS but it is not available here (use cpu)", v)
    return v


def _save_maps(name: str, v: Any) -> bool | int:
    if not (isinstance(v, bool) or (_is_int(v) and v >= 0)):
        raise _fail(name, "must be true, false or a number of images", v)
    return v


def _layer(name: str, v: Any) -> str | None:
    if v is not None and (not isinstance(v, str) or not v.strip()):
        raise _fail(name, "must be a module name of the model", v)
    return v


def _int(low: int, optional: bool = False) -> Callable[[str, Any], Any]:
    return _ruled(Rule("int", low, optional=optional))


def _unit(*, low_open: bool = False, optional: bool = False) -> Callable[[str, Any], Any]:
    return _ruled(Rule("float", 0.0, 1.0, low_open=low_open, high_open=True, optional=optional))


#: How each field is checked (and cleaned): one row per field, the numeric rules shared with
#: the methods' own parameters (``utils.params.PARAMS``). ``case``, ``reversal`` and
#: ``extra_maps`` have their own checks below.
CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "data": _path,
    "weights": _weights,
    "tables": _tables,
    "maps": _names,
    "metrics": _names,
    "limit": _int(1, optional=True),
    "select": _ruled(Rule("bool")),
    "threshold": _unit(optional=True),
    "seed": _int(0),
    "device": _device,
    "deterministic": _ruled(Rule("bool")),
    "engine": _ruled(Rule("choice", choices=names.ENGINES)),
    "precision": _ruled(Rule("choice", choices=names.PRECISIONS)),
    "batch_size": _ruled(PARAMS["batch_size"]),
    "eval_batch_size": _eval_batch,
    "grad_batch_size": _eval_batch,
    "channels_last": _ruled(Rule("bool")),
    "skip_unsupported": _ruled(Rule("bool")),
    "save_maps": _save_maps,
    "n_samples": _int(2),  # the variance-based maps need two samples
    "spread": _ruled(PARAMS["spread"]),
    "percentile": _ruled(PARAMS["percentile"]),
    "ig_trials": _int(2),
    "ig_steps": _ruled(PARAMS["steps"]),
    "objective": _ruled(PARAMS["objective"]),
    "gradcam_layer": _layer,
    "rcap_lower_bound": _unit(),
    "rcap_interval": _unit(low_open=True),
    "auc_steps": _int(2),
}


def _validate(d: dict[str, Any]) -> dict[str, Any]:
    """Type- and range-check each field; return cleaned values."""
    out = dict(d)
    if d.get("case") is None and d.get("model") is not None:
        out["case"] = d["case"] = "folder"
    if not isinstance(d.get("case"), str) or not d["case"]:
        raise _fail("case", "is required and must be a case name", d.get("case"))
    for name, check in CHECKS.items():
        if name in d:
            out[name] = check(name, d[name])
    out.update(_check_own_model(d))
    if d.get("reversal") is not None:
        out["reversal"] = _check_reversal(d["reversal"])
    if "extra_maps" in d:  # YAML's "extra_maps:" with nothing after it is None: none
        out["extra_maps"] = _check_extra_maps({} if d["extra_maps"] is None else d["extra_maps"])
    return out


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _check_own_model(d: dict[str, Any]) -> dict[str, Any]:
    """The folder case's fields: parsed, paths made absolute, fingerprints of the files."""
    out: dict[str, Any] = {}
    own = [k for k in FOLDER_OPTIONS if d.get(k)]
    if d["case"] != "folder" and own:
        raise _fail(
            own[0], f"applies to case 'folder' (your data and model), not to case {d['case']!r}",
            d[own[0]],
        )  # fmt: skip
    word = _weights("weights", d.get("weights"))
    if d["case"] != "folder" and word in names.WEIGHT_WORDS:
        raise _fail(
            "weights", f"'{word}' applies to a model spec (--model); case {d['case']!r} takes "
            "a weights file", word,
        )  # fmt: skip
    if d["case"] == "folder":
        from absgrad.models.preprocess import PreprocessError, norm_text, parse_norm, parse_resize
        from absgrad.models.preprocess import parse_size as _size
        from absgrad.models.spec import ModelSpecError, parse_model_spec, spec_fingerprint

        if not d.get("model"):
            raise _fail("model", "is required for case 'folder' (e.g. timm:resnet18)", None)
        if not d.get("data"):
            raise _fail("data", "is required for case 'folder' (a folder or label table)", None)
        try:
            spec = parse_model_spec(str(d["model"]))
            out["model"] = str(spec)
            out["model_sha"] = spec_fingerprint(spec)
            out["weights"] = word or "pretrained"  # a model spec without weights: published
            if word == "random" and "select" not in d:
                out["select"] = False  # no image of a random model passes the selection rule
            if spec.kind == "callable" and word == "random":
                raise _fail(
                    "weights", f"'random' applies to timm:, torchvision: and hf: specs; the "
                    f"factory {spec} builds its model itself", word,
                )  # fmt: skip
            for k in ("masks", "labels"):
                if d.get(k) is not None:
                    out[k] = str(Path(d[k]).expanduser().resolve())
            if d.get("classes") is not None:
                c = str(d["classes"])
                out["classes"] = (
                    c if c.lower() == "imagenet" else str(Path(c).expanduser().resolve())
                )
            if d.get("size") is not None:
                out["size"] = _size(d["size"])
            if d.get("resize") is not None:
                out["resize"] = parse_resize(d["resize"])
            if d.get("norm") is not None:
                out["norm"] = norm_text(parse_norm(d["norm"]))
        except (PreprocessError, ModelSpecError) as e:
            raise ConfigError(f"config: {e}") from None
    w = d.get("weights")
    if w is not None and word not in names.WEIGHT_WORDS and Path(w).expanduser().is_file():
        from absgrad.models.spec import file_fingerprint

        sha = file_fingerprint(Path(w).expanduser())
        if d.get("weights_sha") not in (None, sha):
            raise _fail(
                "weights_sha", f"the weights file {w} changed (now {sha})", d["weights_sha"]
            )
        out["weights_sha"] = sha
    return out


def _check_reversal(rev: Any) -> dict[str, tuple[float, float]]:
    if not isinstance(rev, Mapping):
        raise _fail("reversal", "must map a base method to [remain, mis]", rev)
    out = {}
    for base, v in rev.items():
        name = f"reversal.{base}"
        if base not in REVERSED_BASES:
            raise _fail(name, f"names no base method ({', '.join(REVERSED_BASES)})", base)
        if not isinstance(v, (list, tuple)) or len(v) != 2 or not all(_is_num(x) for x in v):
            raise _fail(name, "must be [remain, mis]", v)
        remain, mis = float(v[0]), float(v[1])
        if not (0 <= remain < 1 and 0 < mis < 1 and remain + 2 * mis <= 1):
            raise _fail(name, "needs 0 <= remain < 1, 0 < mis < 1, remain + 2*mis <= 1", v)
        out[base] = (remain, mis)
    return out


def _check_extra_maps(extra: Any) -> dict[str, dict[str, Any]]:
    from absgrad.methods import make_request

    if not isinstance(extra, Mapping):
        raise _fail("extra_maps", "must map labels to {method: NAME, params: {...}}", extra)
    out = {}
    for label, spec in extra.items():
        name = f"extra_maps.{label}"
        if not isinstance(label, str) or not label.replace("-", "").replace("_", "").isalnum():
            raise _fail(name, "label must be letters, digits, '-' or '_'", label)
        if (
            not isinstance(spec, Mapping)
            or "method" not in spec
            or set(spec) - {"method", "params"}
        ):
            raise _fail(name, "must be {method: NAME, params: {...}}", spec)
        params = dict(spec.get("params") or {})
        try:
            make_request(spec["method"], params)
        except AbsgradError as e:
            raise ConfigError(f"config field '{name}': {e}") from None
        if label.lower() in out:  # labels are case-insensitive, kept in lower case
            raise _fail(name, "label differs from another only in case", label)
        out[label.lower()] = {"method": spec["method"].lower(), "params": params}
    return out


def flatten(raw: Mapping[str, Any]) -> dict[str, Any]:
    """YAML layout -> flat field names; unknown keys raise :class:`ConfigError` naming them."""
    flat: dict[str, Any] = {}
    for key, value in raw.items():
        if key in SECTIONS:
            if not isinstance(value, Mapping):
                raise _fail(key, f"must be a mapping with keys {', '.join(SECTIONS[key])}", value)
            for sub, v in value.items():
                if sub not in SECTIONS[key]:
                    raise ConfigError(
                        f"config field '{key}.{sub}': unknown; "
                        f"valid keys are {', '.join(SECTIONS[key])}"
                    )
                flat[SECTIONS[key][sub]] = v
        elif key in FIELDS:
            flat[key] = value
        else:
            valid = sorted([*FIELDS, *SECTIONS])
            raise ConfigError(
                f"config field '{key}': unknown field; valid fields are {', '.join(valid)}"
            )
    return flat


def make_config(raw: Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> RunConfig:
    """A :class:`RunConfig` from a YAML-layout mapping and flat ``overrides`` (CLI flags)."""
    flat = flatten(raw)
    for k, v in (overrides or {}).items():
        if k not in FIELDS:
            raise ConfigError(f"config field '{k}': unknown field")
        if v is not None:
            flat[k] = v
    return RunConfig(**_validate(flat))


def shipped_configs() -> dict[str, str]:
    """The experiment configs shipped with absgrad: ``{name: YAML text}``."""
    folder = resources.files("absgrad.protocol") / "configs"
    return {p.name[:-5]: p.read_text() for p in folder.iterdir() if p.name.endswith(".yaml")}


#: The most values a config may expand to once its aliases (``*name``) are resolved: real
#: configs hold a few hundred; an alias bomb (nested anchors) expands exponentially.
MAX_YAML_VALUES = 10_000


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (instead of the last
    winning) and a document whose aliases expand to more than :data:`MAX_YAML_VALUES` values."""

    def compose_document(self) -> yaml.Node:
        node = super().compose_document()
        _expanded_size(node, {}, set())
        return node

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first at line {seen[key] + 1})",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def _expanded_size(node: yaml.Node, memo: dict[int, int], open_: set[int]) -> int:
    """How many values ``node`` stands for with every alias expanded (linear time: each node
    is sized once); raises ``yaml.YAMLError`` past :data:`MAX_YAML_VALUES` or on a recursive
    alias."""
    key = id(node)
    if key in memo:
        return memo[key]
    if key in open_:
        raise yaml.composer.ComposerError(
            None, None, "a recursive alias (an anchor used inside itself)", node.start_mark
        )
    open_.add(key)
    size = 1
    if isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(n, memo, open_) for n in node.value)
    elif isinstance(node, yaml.MappingNode):
        size += sum(
            _expanded_size(k, memo, open_) + _expanded_size(v, memo, open_) for k, v in node.value
        )
    open_.discard(key)
    if size > MAX_YAML_VALUES:
        raise yaml.composer.ComposerError(
            None,
            None,
            f"its aliases expand to more than {MAX_YAML_VALUES} values (nested anchors?); "
            "write the values out",
            node.start_mark,
        )
    memo[key] = size
    return size


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML config: a file path, or the name of a shipped config (``imagenet-s``)."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        try:
            text = p.read_bytes().decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ConfigError(
                f"config file {str(path)!r} is not a text file (UTF-8 YAML expected)"
            ) from None
        except OSError as e:
            raise ConfigError(f"cannot read config file {str(path)!r}: {e.strerror or e}") from None
    else:
        shipped = shipped_configs()
        if str(path) not in shipped:
            raise ConfigError(
                f"config file {str(path)!r} not found "
                f"(shipped configs: {', '.join(sorted(shipped))})"
            )
        text = shipped[str(path)]
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"config file {str(path)!r} is not valid YAML{where}: {what}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping of fields")
    return raw


def to_yaml(config: RunConfig) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False)
