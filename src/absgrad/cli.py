"""The ``absgrad`` command: ``demo``, ``run``, ``explain``, ``report`` and ``list``.

User errors (bad names, invalid configs, incompatible output directories, missing files) print
one line ``absgrad: error: ...`` and exit with status 2; set ``ABSGRAD_DEBUG=1`` for tracebacks.
An interrupted run exits with 130 and resumes when the same command is run again.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from absgrad import names
from absgrad.errors import AbsgradError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UserError(AbsgradError):
    """An error caused by the command line or its inputs (reported without a traceback)."""


def _int_list(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated numbers, got {text!r}"
        ) from None


def _names(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def _add_run_options(p: argparse.ArgumentParser, *, with_case: bool) -> None:
    if with_case:
        p.add_argument(
            "--config",
            metavar="FILE",
            help="experiment YAML: a path, or a shipped name "
            "(imagenet-s, isic, places365, demo, synthetic)",
        )
        p.add_argument(
            "--case",
            help="case name (demo, synthetic, imagenet-sample, imagenet-s, isic, places365)",
        )
        p.add_argument(
            "--data",
            metavar="PATH",
            help="the case's dataset folder; with --model: your folder of class folders of "
            "images, or a label table CSV (file,label)",
        )
        p.add_argument(
            "--weights",
            metavar="PATH",
            help="the model's weights file (a state dict, a checkpoint holding one, TorchScript)",
        )
        _add_model_options(p)
        p.add_argument(
            "--tables",
            type=_int_list,
            metavar="1,2,3",
            help="which tables to compute (default: all three)",
        )
        p.add_argument(
            "--methods",
            type=_names,
            metavar="LABELS",
            help="only these maps, e.g. gag-85,sg,ig-r (see `absgrad list maps`)",
        )
        p.add_argument(
            "--metrics",
            type=_names,
            metavar="NAMES",
            help="only these metrics, e.g. rcap,dauc,iauc (see `absgrad list metrics`)",
        )
        p.add_argument(
            "--batch-size",
            type=int,
            metavar="N",
            help="images per work unit and per gradient chunk (default 4)",
        )
        p.add_argument(
            "--eval-batch-size",
            type=_eval_batch_size,
            metavar="N",
            help="perturbed images per forward pass (default 16), or 'auto': the fastest size "
            "by a short measurement at start-up",
        )
        p.add_argument(
            "--channels-last",
            action="store_true",
            default=None,
            help="run the model in channels-last memory format: about 20%% faster on CPU, "
            "fp32 results differ slightly (docs/performance.md)",
        )
        p.add_argument(
            "--engine",
            choices=names.ENGINES,
            help="forward passes of the metrics: ONNX Runtime (onnx, CPU), torch.compile "
            "(compile), plain PyTorch (eager) or auto (default: onnx on a CPU where ONNX Runtime "
            "is installed, else compile for runs of 16+ images); scores agree to 1e-5",
        )
        p.add_argument(
            "--precision",
            choices=names.PRECISIONS,
            help="bf16: bfloat16 autocast in the metrics' forward passes; scores move by about "
            "1e-3 (docs/performance.md); default fp32",
        )
        p.add_argument("--seed", type=int, metavar="S", help="random seed (default 0)")
        p.add_argument(
            "--n-samples", type=int, metavar="N", help="samples per sampled method (paper: 20)"
        )
        p.add_argument(
            "--threshold",
            type=float,
            metavar="T",
            help="selection: keep images whose true-class probability exceeds T",
        )
        p.add_argument(
            "--no-select", action="store_true", help="keep every image (no selection rule)"
        )
        p.add_argument(
            "--layer",
            metavar="NAME",
            help="Grad-CAM layer, a name from model.named_modules() (default: the case's, else "
            "the rule for CNNs, ConvNeXt, ViT and Swin in docs/methods.md)",
        )
        p.add_argument(
            "--executor", default="local", help="how units are run: local (default) or ray"
        )
        ray = p.add_argument_group("--executor ray (pip install 'absgrad[ray]'; see docs/ray.md)")
        ray.add_argument(
            "--address",
            metavar="ADDR",
            help="join a Ray cluster: auto or ray://HOST:PORT (default: start a local Ray instance)",
        )
        ray.add_argument(
            "--workers",
            type=int,
            metavar="N",
            help="Ray workers, each loading the model once (default: CPUs, or GPUs / gpus-per-worker)",
        )
        ray.add_argument(
            "--gpus-per-worker",
            type=float,
            metavar="F",
            help="GPUs per Ray worker (with --device cuda)",
        )
        ray.add_argument(
            "--worker-writes",
            action="store_true",
            help="Ray workers write results into --out themselves (a filesystem shared with them)",
        )
    p.add_argument(
        "--out", metavar="DIR", help="output directory (results, tables, figures, report.html)"
    )
    p.add_argument("--limit", type=int, metavar="N", help="use only the first N selected images")
    p.add_argument("--device", help="cpu, cuda, cuda:N or mps (default cpu)")
    p.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bars or console log (the log file is still written)",
    )
    resume = p.add_mutually_exclusive_group()
    resume.add_argument(
        "--resume",
        dest="resume",
        action="store_true",
        default=None,
        help="require a compatible run in --out and resume it (the default when there is one)",
    )
    resume.add_argument(
        "--no-resume",
        dest="resume",
        action="store_false",
        help="refuse to touch an existing run in --out",
    )
    p.add_argument(
        "--compare-paper",
        nargs="?",
        const=True,
        default=None,
        metavar="CASE",
        help="show the paper's numbers beside ours (for imagenet-s, isic, places365; or name one)",
    )
    p.add_argument(
        "--no-report", action="store_true", help="skip the tables, figures and report.html"
    )


def _add_model_options(p: argparse.ArgumentParser, *, explain: bool = False) -> None:
    g = p.add_argument_group("your data and model (case 'folder'; see docs/own-model.md)")
    if not explain:
        g.add_argument(
            "--model",
            metavar="SPEC",
            help="your classifier: timm:NAME, torchvision:NAME, package.module:factory or "
            "file.py:factory (built without downloading; weights from --weights)",
        )
        g.add_argument(
            "--masks",
            metavar="DIR",
            help="ground-truth masks: a binary or label PNG per image, same file stem",
        )
        g.add_argument(
            "--labels", metavar="CSV", help="label table file,label for the images in --data"
        )
    g.add_argument(
        "--classes",
        metavar="FILE",
        help="class names by index (.txt one per line, .json, .csv) or 'imagenet' (wnids)",
    )
    g.add_argument("--size", metavar="N|HxW", help="model input size (default: the model's)")
    g.add_argument(
        "--resize",
        metavar="N|stretch",
        help="shorter side before the center crop, or 'stretch' (default: the model's)",
    )
    g.add_argument(
        "--norm",
        metavar="NAME",
        help="imagenet, 0.5, none or MEAN,STD (2 or 6 numbers; default: the model's)",
    )
    if explain:  # `run` has its own --layer
        g.add_argument(
            "--layer",
            metavar="NAME",
            help="Grad-CAM layer, a name from model.named_modules() (default: chosen by the rule "
            "for CNNs, ConvNeXt, ViT and Swin in docs/methods.md)",
        )


def build_parser() -> argparse.ArgumentParser:
    from absgrad import __version__

    parser = argparse.ArgumentParser(
        prog="absgrad",
        description="Gradient saliency maps (Guided AbsoluteGrad) and their evaluation: "
        "run the paper's "
        "protocol (Tables 1-3) on a case and get tables, figures and an HTML report.",
        epilog="Examples:\n"
        "  absgrad demo\n"
        "  absgrad run --case synthetic --limit 8 --out runs/syn\n"
        "  absgrad run --config imagenet-s --data ~/ImageNet-S --weights rn50.pth --out runs/ins\n"
        "  absgrad run --data photos/ --model timm:resnet18 --weights r18.pth --out runs/mine\n"
        "  absgrad report runs/syn --compare-paper imagenet-s\n"
        "  absgrad compare runs/syn runs/syn-50 --out runs/compare\n"
        "  absgrad explain photo.jpg --method gag --out map.png\n"
        "See docs/protocol.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"absgrad {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "demo", help="the whole protocol on the built-in demo case (a few minutes on a CPU)"
    )
    _add_run_options(p, with_case=False)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("run", help="the protocol on any case, or from a --config file")
    _add_run_options(p, with_case=True)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("explain", help="a saliency map of one image: overlay PNG and .npy")
    p.add_argument("image", help="image file (any format Pillow reads)")
    p.add_argument(
        "--model",
        default="demo",
        help="a model spec (timm:NAME, torchvision:NAME, package.module:factory) or a case name "
        "whose model to use (default: demo = EfficientNet-Lite0, ImageNet)",
    )
    p.add_argument("--weights", metavar="PATH", help="weights file for the model")
    p.add_argument(
        "--data", metavar="PATH", help="the dataset folder of a built-in case that needs one"
    )
    _add_model_options(p, explain=True)
    p.add_argument(
        "--method", default="gag", help="saliency method (default: gag); see `absgrad list methods`"
    )
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="method parameter, e.g. --param n_samples=50 (repeatable)",
    )
    p.add_argument("--target", type=int, help="class index (default: the predicted class)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--out",
        required=True,
        metavar="MAP.png",
        help="output overlay PNG; the map is also saved as MAP.npy",
    )
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser(
        "report", help="rebuild tables, figures and report.html from a run directory"
    )
    p.add_argument("dir", help="a run's output directory")
    p.add_argument("--tables", type=_int_list, metavar="1,2,3")
    p.add_argument("--compare-paper", nargs="?", const=True, default=None, metavar="CASE")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser(
        "compare",
        help="two runs side by side: every shared map and metric, B - A with its interval",
    )
    p.add_argument("run_a", metavar="RUN_A", help="a run's output directory")
    p.add_argument("run_b", metavar="RUN_B", help="another run's output directory")
    p.add_argument("--out", metavar="DIR", help="also write compare.md and compare.html into DIR")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("list", help="list cases, methods, maps, metrics or shipped configs")
    p.add_argument("what", choices=["cases", "methods", "maps", "metrics", "configs"])
    p.set_defaults(func=cmd_list)
    return parser


def _eval_batch_size(value: str) -> int | str:
    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'auto', got {value!r}") from None


# -- run / demo ---------------------------------------------------------------------------------
def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    get = lambda name: getattr(args, name, None)  # noqa: E731
    out = {
        "case": get("case"),
        "data": get("data"),
        "weights": get("weights"),
        "model": get("model"),
        "masks": get("masks"),
        "labels": get("labels"),
        "classes": get("classes"),
        "size": get("size"),
        "resize": get("resize"),
        "norm": get("norm"),
        "tables": get("tables"),
        "maps": get("methods"),
        "metrics": get("metrics"),
        "limit": get("limit"),
        "device": get("device"),
        "batch_size": get("batch_size"),
        "eval_batch_size": get("eval_batch_size"),
        "channels_last": get("channels_last"),
        "engine": get("engine"),
        "precision": get("precision"),
        "seed": get("seed"),
        "n_samples": get("n_samples"),
        "threshold": get("threshold"),
        "gradcam_layer": get("layer"),
    }
    if get("no_select"):
        out["select"] = False
    return out


def _executor_options(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """Options of ``--executor ray`` (which this registers); other executors take none."""
    flags = {"address": "--address", "workers": "--workers", "gpus_per_worker": "--gpus-per-worker"}
    opts = {k: getattr(args, k) for k in flags if getattr(args, k, None) is not None}
    if getattr(args, "worker_writes", False):
        opts["write_dir"] = out
        flags["write_dir"] = "--worker-writes"
    if getattr(args, "executor", "local") == "ray":
        import absgrad.protocol.ray_executor  # noqa: F401  (registers --executor ray)
    elif opts:
        raise UserError(f"{', '.join(flags[k] for k in opts)} only apply with --executor ray")
    return opts


def _run(args: argparse.Namespace, raw: dict[str, Any], default_out: str) -> int:
    from absgrad.protocol.config import make_config
    from absgrad.protocol.executors import get_executor
    from absgrad.protocol.runner import run_protocol
    from absgrad.report.build import build_report, resolve_compare

    config = make_config(raw, _overrides(args))
    if args.compare_paper is not None:
        resolve_compare(config.case, args.compare_paper)  # fail early on a bad name
    out = Path(args.out or default_out.format(case=config.case))
    executor = get_executor(getattr(args, "executor", "local"), **_executor_options(args, out))
    t0 = time.perf_counter()
    meta = run_protocol(config, out, resume=args.resume, executor=executor, quiet=args.quiet)
    wall = time.perf_counter() - t0
    if not args.no_report:
        report = build_report(out, compare=args.compare_paper)
        if not args.quiet:
            print((out / "tables" / "tables.md").read_text())
            print((out / "claims.md").read_text())
        print(f"report: {report.html.resolve()}")
    print(
        f"run {meta['status']}: {meta['done_units']} of {meta['n_units']} units "
        f"in {out} ({wall:.1f} s)"
    )
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from absgrad.protocol.config import load_config_file

    if args.config is None and args.case is None and args.model is None:
        raise UserError("give --case NAME, --config FILE, or --data DIR --model SPEC")
    raw = load_config_file(args.config) if args.config else {}
    return _run(args, raw, "absgrad-{case}")


def cmd_demo(args: argparse.Namespace) -> int:
    from absgrad.protocol.config import load_config_file

    return _run(args, load_config_file("demo"), "absgrad-demo")


def cmd_report(args: argparse.Namespace) -> int:
    from absgrad.report.build import build_report

    report = build_report(
        args.dir, compare=args.compare_paper, tables=tuple(args.tables) if args.tables else None
    )
    print((Path(args.dir) / "tables" / "tables.md").read_text())
    print((Path(args.dir) / "claims.md").read_text())
    if not report.complete:
        print("note: the run is partial; the tables cover the stored units only", file=sys.stderr)
    print(f"report: {report.html.resolve()}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from absgrad.report.compare import compare_runs, comparison_markdown

    comparison, files = compare_runs(args.run_a, args.run_b, args.out)
    print(comparison_markdown(comparison))
    for path in files.values():
        print(f"wrote {path}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    # names only (no torch): `absgrad list` answers at once
    if args.what == "methods":
        for name, title in names.METHODS.items():
            print(f"{name:10s} {title}")
    elif args.what == "metrics":
        for key, m in names.METRICS.items():
            print(f"{key:14s} {m.title} {m.arrow}{'  (needs masks)' if m.needs_mask else ''}")
    elif args.what == "maps":
        from absgrad.protocol.catalogue import PAPER_SAMPLING, REVERSED_BASES, paper_maps

        rev = dict.fromkeys(REVERSED_BASES, (0.07, 0.1))
        for label, s in paper_maps(PAPER_SAMPLING, rev).items():
            what = f"reversed {s.reverse_of}" if s.derived else f"{s.method} {dict(s.params)}"
            print(f"{label:12s} {s.title:12s} {what}")
    elif args.what == "cases":
        for name in names.CASES:
            print(name)
    else:
        from absgrad.protocol.config import shipped_configs

        for name in sorted(shipped_configs()):
            print(name)
    return 0


# -- explain ------------------------------------------------------------------------------------
def _parse_params(items: list[str]) -> dict[str, Any]:
    import yaml

    out = {}
    for item in items:
        if "=" not in item:
            raise UserError(f"--param expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip()] = yaml.safe_load(v)
    return out


def _explain_case(args: argparse.Namespace) -> Any:
    """The case whose model and preprocessing ``explain`` uses: a built-in one or a model spec."""
    from absgrad.cases import CASES, get_case

    own = {k: getattr(args, k) for k in ("classes", "size", "resize", "norm", "layer")}
    if args.model in CASES and args.model != "folder":
        given = [f"--{k}" for k, v in own.items() if v is not None and k != "layer"]
        if given:
            raise UserError(f"{', '.join(given)} apply to a model spec, not to case {args.model!r}")
        return get_case(args.model, data=args.data, weights=args.weights)
    if ":" not in args.model:
        raise UserError(
            f"unknown model {args.model!r}: give a model spec (timm:NAME, torchvision:NAME, "
            f"package.module:factory) or a case name ({', '.join(c for c in CASES if c != 'folder')})"
        )
    kw = {k: v for k, v in own.items() if v is not None}
    return get_case("folder", data=None, weights=args.weights, model=args.model, **kw)


def cmd_explain(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from absgrad.methods import explain
    from absgrad.protocol.config import check_device

    src = Path(args.image)
    if not src.is_file():
        raise UserError(f"image file not found: {src}")
    check_device("--device", args.device)
    out = _explain_out(Path(args.out), src, args.method)
    case = _explain_case(args)
    model = case.build_model(args.device)
    pixels = case.load_image(src)  # the pixels `run` scores for this file
    x = case.normalize(pixels[None]).to(args.device)
    with torch.inference_mode():
        probs = model(x).softmax(dim=1)[0]
    target = int(probs.argmax()) if args.target is None else args.target
    if not 0 <= target < probs.shape[0]:
        raise UserError(
            f"--target {target} is out of range for a model with {probs.shape[0]} classes"
        )
    params = _parse_params(args.param)
    layer = args.layer or case.gradcam_layer or None
    if args.layer is not None and args.method.lower() != "gradcam":
        raise UserError(f"--layer applies to --method gradcam, not to {args.method!r}")
    if args.method.lower() == "gradcam" and layer is not None:
        params.setdefault("layer", layer)
    gen = torch.Generator().manual_seed(args.seed)
    smap = explain(model, x, target, args.method, generator=gen, **params)[0].cpu()
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out.with_suffix(".npy"), smap.numpy())
    names = getattr(case, "classes", None)
    label = f"{target} {names[target]}" if names and target < len(names) else str(target)
    _save_overlay(pixels, smap, out, f"{args.method} (class {label}, p={float(probs[target]):.2f})")
    print(
        f"class {label} (probability {float(probs[target]):.3f}); "
        f"map: {out} and {out.with_suffix('.npy')}"
    )
    return 0


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".pdf", ".svg")


def _explain_out(out: Path, image: Path, method: str) -> Path:
    """``--out``: an image file (``.png``, ...), or a folder that receives ``<image>-<method>.png``."""
    if out.is_dir() or str(out).endswith(("/", os.sep)):
        return out / f"{image.stem}-{method}.png"
    if out.suffix.lower() not in IMAGE_SUFFIXES:
        raise UserError(
            f"--out {out}: give a file name ending in {', '.join(IMAGE_SUFFIXES)}, or an "
            "existing folder (or one written with a trailing /) to write into"
        )
    return out


def _save_overlay(pixels, smap, out: Path, title: str) -> None:
    """The photo and the map drawn over it as the report does (percentile-clipped, inferno)."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    from absgrad.report.figures import ordinal
    from absgrad.report.overlay import CLIP, CMAP, overlay

    photo = (pixels.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    fig = Figure(figsize=(8.6, 4))
    a, b = fig.subplots(1, 2)
    a.imshow(photo)
    a.set_title("image")
    b.imshow(overlay(photo, smap.float().numpy()))
    b.set_title(title)
    for ax in (a, b):
        ax.axis("off")
    bar = fig.colorbar(ScalarMappable(Normalize(0, 1), cmap=CMAP), ax=b, fraction=0.046)
    bar.set_ticks([0, 1], labels=[f"{ordinal(CLIP[0])} pct", f"{ordinal(CLIP[1])} pct"])
    fig.savefig(out, dpi=100, bbox_inches="tight")


# -- entry point --------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 2 user error, 130 interrupted)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(
            "absgrad: interrupted; stored units are kept, run the same command to resume",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except AbsgradError as e:  # the user's input; anything else is a bug and shows as one
        if os.environ.get("ABSGRAD_DEBUG"):
            raise
        print(f"absgrad: error: {e}", file=sys.stderr)
        return EXIT_USAGE


def console_main() -> int:
    """The ``absgrad`` command: ``main``, leaving at once after an interrupt.

    After Ctrl-C every stored unit is complete and run.json is written; tearing down the
    interpreter (collecting the model's and the run's objects) can take many seconds on a busy
    machine, so the command ends the process right away with status 130.
    """
    code = main()
    if code == EXIT_INTERRUPTED:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(console_main())
