"""absgrad: gradient saliency maps that localise (Guided AbsoluteGrad) and the metrics to measure it.

Quick use::

    import absgrad
    maps = absgrad.explain(model, images, target, "gag")   # (B, H, W) in [0, 1]
    scores = absgrad.metrics.rcap(model, images, target, maps)
    e = absgrad.explain_file("photo.jpg", model="demo", method="gag")  # one image file
    absgrad.save_explanation(e, "map.png")                            # overlay + map.npy
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = [
    "explain",
    "explain_many",
    "attribute",
    "reverse",
    "explain_file",
    "save_explanation",
    "Explanation",
    "METHODS",
    "metrics",
    "cases",
    "models",
    "__version__",
]


def __getattr__(name: str):
    # Lazy imports keep `import absgrad` and the CLI start-up fast.
    if name in ("explain", "explain_many", "attribute", "reverse", "METHODS"):
        from absgrad import methods

        return getattr(methods, name)
    if name in ("explain_file", "save_explanation", "Explanation"):
        from absgrad import explanation

        return getattr(explanation, name)
    if name in ("metrics", "cases", "models", "methods", "protocol"):
        import importlib

        return importlib.import_module(f"absgrad.{name}")
    raise AttributeError(f"module 'absgrad' has no attribute {name!r}")
