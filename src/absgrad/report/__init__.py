"""Reading finished runs: tables, intervals, claims, figures, the gallery and ``report.html``.

Nothing here imports torch: a finished run is read from its folder (:mod:`absgrad.protocol.store`).
``build_report(out)`` writes every output; ``load_results(out)`` gives the scores;
``compare_runs(a, b)`` sets two runs side by side.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from absgrad.utils.lazy import lazy_exports

#: public name -> the submodule that defines it
_EXPORTS = {
    "build_report": "absgrad.report.build",
    "Results": "absgrad.report.results",
    "load_results": "absgrad.report.results",
    "compare_runs": "absgrad.report.compare",
}

__all__ = ["Results", "build_report", "compare_runs", "load_results"]


__getattr__, __dir__ = lazy_exports("absgrad.report", _EXPORTS, globals())


if TYPE_CHECKING:  # pragma: no cover
    from absgrad.report.build import build_report
    from absgrad.report.compare import compare_runs
    from absgrad.report.results import Results, load_results
