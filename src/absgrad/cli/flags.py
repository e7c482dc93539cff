"""Every command-line argument in one table: the parsers and the run's config overrides come from it.

A row (:class:`Flag`) says which commands take the argument, how argparse reads it, its help, and
the :class:`~absgrad.protocol.config.RunConfig` field it overrides (``field``; None: it configures
the command, not the run). A flag that means different things to two commands (``run --seed``
and ``explain --seed``) has a row per meaning. Rows are in the order ``--help`` lists them;
each command's arguments are the rows naming it. Adding a flag is adding a row.

Torch-free: ``absgrad --help`` and ``absgrad list`` build their parsers from here at once.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from absgrad import names


class _ArgparseDefault:
    """A row's ``default`` when it sets none: argparse's own (None, False for store_true...)."""

    def __repr__(self) -> str:
        return "ARGPARSE_DEFAULT"


ARGPARSE_DEFAULT: Any = _ArgparseDefault()

# -- which commands take a row ---------------------------------------------------------------
RUN = ("run",)
RUNS = ("run", "demo")  # demo is run with the shipped demo config: no case, data or model flags
EXPLAIN = ("explain",)
RUN_EXPLAIN = ("run", "explain")

# -- argument groups (a section of --help each) ------------------------------------------------
OWN_MODEL = "your data and model (case 'folder'; see docs/own-model.md)"
RAY = "--executor ray (pip install 'absgrad[ray]'; see docs/ray.md)"


# -- value parsers -------------------------------------------------------------------------------
def int_list(text: str) -> list[int]:
    """``"1,3"`` -> ``[1, 3]``."""
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None


def name_list(text: str) -> list[str]:
    """``"gag-85, sg"`` -> ``["gag-85", "sg"]``."""
    return [s.strip() for s in text.split(",") if s.strip()]


def eval_batch_size(value: str) -> int | str:
    """A number, or ``"auto"``."""
    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {value!r}") from None


def unless_given(value: Any) -> Any:
    """A switch that turns a config field off: ``False`` when given, else no override."""
    return False if value else None


@dataclass(frozen=True)
class Flag:
    """One command-line argument: where it applies, how it is read, what it overrides.

    ``names`` are argparse's (``("--out",)``, or ``("image",)`` for a positional); ``field`` is
    the RunConfig field the value overrides (``to_config`` maps the value first). ``group`` is
    the ``--help`` section (None: the command's own options), ``exclusive`` names a set of rows
    of which one may be given. The other attributes are ``add_argument``'s.
    """

    names: tuple[str, ...]
    commands: tuple[str, ...]
    help: str | None = None
    field: str | None = None
    type: Callable[[str], Any] | None = None
    choices: Iterable[Any] | None = None
    metavar: str | None = None
    default: Any = ARGPARSE_DEFAULT
    action: str | type[argparse.Action] | None = None
    const: Any = None
    nargs: str | None = None
    dest: str | None = None
    required: bool = False
    group: str | None = None
    exclusive: str | None = None
    to_config: Callable[[Any], Any] | None = None

    @property
    def key(self) -> str:
        """The attribute of the parsed namespace that holds the value."""
        return self.dest or self.names[0].lstrip("-").replace("-", "_")

    def kwargs(self) -> dict[str, Any]:
        """``add_argument``'s keyword arguments (those the row sets)."""
        kw: dict[str, Any] = {
            "help": self.help,
            "type": self.type,
            "choices": self.choices,
            "metavar": self.metavar,
            "action": self.action,
            "const": self.const,
            "nargs": self.nargs,
            "dest": self.dest,
        }
        kw = {k: v for k, v in kw.items() if v is not None}
        if self.default is not ARGPARSE_DEFAULT:
            kw["default"] = self.default
        if self.required:
            kw["required"] = True
        return kw


def _f(*names: str, on: tuple[str, ...], **kw: Any) -> Flag:
    return Flag(names, on, **kw)


#: Every argument of every command, in ``--help`` order.
FLAGS: tuple[Flag, ...] = (
    # -- what to run on / what to explain -------------------------------------------------------
    _f("image", on=EXPLAIN, help="image file (any format Pillow reads)"),
    _f(
        "--config",
        on=RUN,
        metavar="FILE",
        help="experiment YAML: a path, or a shipped name "
        "(imagenet-s, isic, places365, demo, synthetic)",
    ),
    _f(
        "--case",
        on=RUN,
        field="case",
        help="case name (demo, synthetic, imagenet-sample, imagenet-s, isic, places365)",
    ),
    _f(
        "--data",
        on=RUN,
        field="data",
        metavar="PATH",
        help="the case's dataset folder; with --model: your folder of class folders of "
        "images, or a label table CSV (file,label)",
    ),
    _f(
        "--weights",
        on=RUN,
        field="weights",
        metavar="FILE|pretrained|random",
        help="the model's weights: a file (a state dict, a checkpoint holding one, "
        "safetensors, TorchScript); with --model also 'pretrained' (the library's published "
        "weights, fetched once into its cache: the default) or 'random'",
    ),
    _f(
        "--model",
        on=EXPLAIN,
        default="demo",
        help="a model spec (timm:NAME, torchvision:NAME, hf:ORG/NAME, package.module:factory) "
        "or a case name whose model to use (default: demo = EfficientNet-Lite0, ImageNet)",
    ),
    _f(
        "--weights",
        on=EXPLAIN,
        metavar="FILE|pretrained|random",
        help="weights file for the model; a model spec also takes 'pretrained' (its library's "
        "published weights: the default) or 'random'",
    ),
    _f(
        "--data",
        on=EXPLAIN,
        metavar="PATH",
        help="the dataset folder of a built-in case that needs one",
    ),
    # -- your data and model (the folder case) --------------------------------------------------
    _f(
        "--model",
        on=RUN,
        field="model",
        group=OWN_MODEL,
        metavar="SPEC",
        help="your classifier: timm:NAME, torchvision:NAME, hf:ORG/NAME, hf:/folder, "
        "package.module:factory or file.py:factory (published weights unless --weights; "
        "see `absgrad list models`)",
    ),
    _f(
        "--masks",
        on=RUN,
        field="masks",
        group=OWN_MODEL,
        metavar="DIR",
        help="ground-truth masks: a binary or label PNG per image, same file stem",
    ),
    _f(
        "--labels",
        on=RUN,
        field="labels",
        group=OWN_MODEL,
        metavar="CSV",
        help="label table file,label for the images in --data",
    ),
    _f(
        "--classes",
        on=RUN_EXPLAIN,
        field="classes",
        group=OWN_MODEL,
        metavar="FILE",
        help="class names by index (.txt one per line, .json, .csv) or 'imagenet' (wnids)",
    ),
    _f(
        "--size",
        on=RUN_EXPLAIN,
        field="size",
        group=OWN_MODEL,
        metavar="N|HxW",
        help="model input size (default: the model's)",
    ),
    _f(
        "--resize",
        on=RUN_EXPLAIN,
        field="resize",
        group=OWN_MODEL,
        metavar="N|stretch",
        help="shorter side before the center crop, or 'stretch' (default: the model's)",
    ),
    _f(
        "--norm",
        on=RUN_EXPLAIN,
        field="norm",
        group=OWN_MODEL,
        metavar="NAME",
        help="imagenet, 0.5, none or MEAN,STD (2 or 6 numbers; default: the model's)",
    ),
    _f(
        "--layer",
        on=EXPLAIN,
        group=OWN_MODEL,
        metavar="NAME",
        help="Grad-CAM layer, a name from model.named_modules() (default: chosen by the rule "
        "for CNNs, ConvNeXt, ViT and Swin in docs/methods.md)",
    ),
    # -- what a run computes --------------------------------------------------------------------
    _f(
        "--tables",
        on=RUN,
        field="tables",
        type=int_list,
        metavar="1,2,3",
        help="which tables to compute (default: all three)",
    ),
    _f(
        "--methods",
        on=RUN,
        field="maps",
        type=name_list,
        metavar="LABELS",
        help="only these maps, e.g. gag-85,sg,ig-r (see `absgrad list maps`)",
    ),
    _f(
        "--metrics",
        on=RUN,
        field="metrics",
        type=name_list,
        metavar="NAMES",
        help="only these metrics, e.g. rcap,dauc,iauc (see `absgrad list metrics`)",
    ),
    _f(
        "--batch-size",
        on=RUN,
        field="batch_size",
        type=int,
        metavar="N",
        help="images per work unit and per gradient chunk (default 4)",
    ),
    _f(
        "--eval-batch-size",
        on=RUN,
        field="eval_batch_size",
        type=eval_batch_size,
        metavar="N",
        help="perturbed images per forward pass (default 16), or 'auto': the fastest size "
        "by a short measurement at start-up",
    ),
    _f(
        "--grad-batch-size",
        on=RUN,
        field="grad_batch_size",
        type=eval_batch_size,
        metavar="N",
        help="images per gradient pass (samples x images); default 'auto': --batch-size on "
        "a CPU, on a CUDA device the fastest size that fits, by a short measurement",
    ),
    _f(
        "--channels-last",
        on=RUN,
        field="channels_last",
        action="store_true",
        default=None,
        help="run the model in channels-last memory format: about 20%% faster on CPU, "
        "fp32 results differ slightly (docs/performance.md)",
    ),
    _f(
        "--engine",
        on=RUN,
        field="engine",
        choices=names.ENGINES,
        help="forward passes of the metrics: ONNX Runtime (onnx, CPU), CUDA graphs "
        "(cudagraph, CUDA), torch.compile (compile), plain PyTorch (eager) or auto "
        "(default: onnx on a CPU where ONNX Runtime is installed; on CUDA the faster of "
        "eager and cudagraph, timed at start; else compile for runs of 16+ images); "
        "scores agree to 1e-5",
    ),
    _f(
        "--precision",
        on=RUN,
        field="precision",
        choices=names.PRECISIONS,
        help="bf16: bfloat16 autocast in the metrics' forward passes; scores move by about "
        "1e-3 (docs/performance.md); default fp32",
    ),
    _f(
        "--deterministic",
        on=RUN,
        field="deterministic",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="deterministic GPU kernels and no TF32, so a GPU repeats its numbers (default "
        "on; about 8%% slower on a GPU, no change on a CPU; docs/performance.md)",
    ),
    _f("--seed", on=RUN, field="seed", type=int, metavar="S", help="random seed (default 0)"),
    _f(
        "--n-samples",
        on=RUN,
        field="n_samples",
        type=int,
        metavar="N",
        help="samples per sampled method (paper: 20)",
    ),
    _f(
        "--threshold",
        on=RUN,
        field="threshold",
        type=float,
        metavar="T",
        help="selection: keep images whose true-class probability exceeds T",
    ),
    _f(
        "--no-select",
        on=RUN,
        field="select",
        to_config=unless_given,
        action="store_true",
        help="keep every image (no selection rule)",
    ),
    _f(
        "--skip-unsupported",
        on=RUN,
        field="skip_unsupported",
        action="store_true",
        default=None,
        help="leave out, with a warning, maps the model cannot give (guided backprop without "
        "activation modules, Grad-CAM without a layer) instead of stopping before any work",
    ),
    _f(
        "--layer",
        on=RUN,
        field="gradcam_layer",
        metavar="NAME",
        help="Grad-CAM layer, a name from model.named_modules() (default: the case's, else "
        "the rule for CNNs, ConvNeXt, ViT and Swin in docs/methods.md)",
    ),
    # -- how a run is executed ------------------------------------------------------------------
    _f("--executor", on=RUN, default="local", help="how units are run: local (default) or ray"),
    _f(
        "--address",
        on=RUN,
        group=RAY,
        metavar="ADDR",
        help="join a Ray cluster: auto or ray://HOST:PORT (default: start a local Ray instance)",
    ),
    _f(
        "--workers",
        on=RUN,
        group=RAY,
        type=int,
        metavar="N",
        help="Ray workers, each loading the model once (default: CPUs, or GPUs / gpus-per-worker)",
    ),
    _f(
        "--gpus-per-worker",
        on=RUN,
        group=RAY,
        type=float,
        metavar="F",
        help="GPUs per Ray worker (with --device cuda)",
    ),
    _f(
        "--worker-writes",
        on=RUN,
        group=RAY,
        action="store_true",
        help="Ray workers write results into --out themselves (a filesystem shared with them)",
    ),
    # -- a run's output, device and resuming ----------------------------------------------------
    _f(
        "--out",
        on=RUNS,
        metavar="DIR",
        help="output directory (results, tables, figures, report.html); default ./absgrad-CASE, "
        "or ./absgrad-MODEL[-WEIGHTS] for --model",
    ),
    _f(
        "--limit",
        on=RUNS,
        field="limit",
        type=int,
        metavar="N",
        help="use only the first N selected images",
    ),
    _f(
        "--device",
        on=RUNS,
        field="device",
        help="auto, cpu, cuda, cuda:N or mps (default auto: CUDA, else MPS, else CPU)",
    ),
    _f(
        "--quiet",
        on=RUNS,
        action="store_true",
        help="no progress bars or console log (the log file is still written)",
    ),
    _f(
        "--resume",
        on=RUNS,
        exclusive="resume",
        dest="resume",
        action="store_true",
        default=None,
        help="require a compatible run in --out and resume it (the default when there is one)",
    ),
    _f(
        "--no-resume",
        on=RUNS,
        exclusive="resume",
        dest="resume",
        action="store_false",
        help="refuse to touch an existing run in --out",
    ),
    _f(
        "--compare-paper",
        on=(*RUNS, "report"),
        nargs="?",
        const=True,
        default=None,
        metavar="CASE",
        help="show the paper's numbers beside ours (for imagenet-s, isic, places365; or name one)",
    ),
    _f(
        "--no-report", on=RUNS, action="store_true", help="skip the tables, figures and report.html"
    ),
    # -- explain: the method and the output -----------------------------------------------------
    _f(
        "--method",
        on=EXPLAIN,
        default="gag",
        help="saliency method (default: gag); see `absgrad list methods`",
    ),
    _f(
        "--param",
        on=EXPLAIN,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="method parameter, e.g. --param n_samples=50 (repeatable)",
    ),
    _f("--target", on=EXPLAIN, type=int, help="class index (default: the predicted class)"),
    _f("--seed", on=EXPLAIN, type=int, default=0, help="random seed (default 0)"),
    _f(
        "--device",
        on=EXPLAIN,
        default="auto",
        help="auto, cpu, cuda, cuda:N or mps (default auto: CUDA, else MPS, else CPU)",
    ),
    _f(
        "--out",
        on=EXPLAIN,
        metavar="MAP.png",
        help="output overlay PNG, or a folder to write IMAGE-METHOD.png into (default: the "
        "current folder); the map is also saved as MAP.npy",
    ),
    # -- report, compare, list ------------------------------------------------------------------
    _f("dir", on=("report",), help="a run's output directory"),
    _f("--tables", on=("report",), type=int_list, metavar="1,2,3"),
    _f("run_a", on=("compare",), metavar="RUN_A", help="a run's output directory"),
    _f("run_b", on=("compare",), metavar="RUN_B", help="another run's output directory"),
    _f(
        "--out",
        on=("compare",),
        metavar="DIR",
        help="also write compare.md and compare.html into DIR",
    ),
    _f(
        "--across-models",
        on=("compare",),
        action="store_true",
        help="compare runs of different models (case, model or weights); refused otherwise",
    ),
    _f("what", on=("list",), choices=("cases", "methods", "maps", "metrics", "configs", "models")),
    _f(
        "pattern",
        on=("list",),
        nargs="?",
        metavar="PATTERN",
        help="with 'models': only the names matching PATTERN (wildcards as *resnet*, else a "
        "part of the name)",
    ),
)


def flags_of(command: str) -> tuple[Flag, ...]:
    """The rows of ``command``, in ``--help`` order."""
    return tuple(f for f in FLAGS if command in f.commands)


def add_flags(parser: argparse.ArgumentParser, command: str) -> None:
    """Add ``command``'s arguments to ``parser`` (its sections and exclusive sets as declared)."""
    groups: dict[str, Any] = {}
    exclusive: dict[str, Any] = {}
    for flag in flags_of(command):
        target: Any = parser
        if flag.group is not None:
            if flag.group not in groups:
                groups[flag.group] = parser.add_argument_group(flag.group)
            target = groups[flag.group]
        if flag.exclusive is not None:
            if flag.exclusive not in exclusive:
                exclusive[flag.exclusive] = target.add_mutually_exclusive_group()
            target = exclusive[flag.exclusive]
        target.add_argument(*flag.names, **flag.kwargs())


def config_overrides(args: argparse.Namespace, command: str) -> dict[str, Any]:
    """``{RunConfig field: value}`` of ``command``'s flags (None: not given, no override)."""
    out: dict[str, Any] = {}
    for flag in flags_of(command):
        if flag.field is None:
            continue
        value = getattr(args, flag.key, None)
        out[flag.field] = flag.to_config(value) if flag.to_config else value
    return out


def flag_name(command: str, key: str) -> str:
    """How ``command`` spells the argument stored as ``key`` (``"target"`` -> ``"--target"``)."""
    for flag in flags_of(command):
        if flag.key == key:
            return flag.names[0]
    raise KeyError(f"command {command!r} has no argument {key!r}")
