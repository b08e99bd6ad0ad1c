"""The evaluation suite: fidelity, protocol validity, ML utility and privacy of synthetic traffic,
each beside the real-versus-real floor and a naive baseline (``netdiffusion evaluate``).

Python API::

    from netdiffusion.evaluation import evaluate, load_sides, write_report

    sides = load_sides(["held-out/"], ["default"], labels="folder")   # or synthetic captures
    ev = evaluate(sides, seed=0)
    ev.figures["discriminator.roc_auc"], ev.figures["utility.tstr.macro_f1"]
    write_report(ev, "report/")                                        # JSON, Markdown, PNGs

Modules, one job each: :mod:`._data` (the sides and the split), :mod:`.fidelity`,
:mod:`.validity`, :mod:`.utility`, :mod:`.privacy`, :mod:`.baselines`, :mod:`.report`. Every
figure is defined in ``docs/evaluation.md``. scikit-learn, scipy and matplotlib are needed
(``pip install 'netdiffusion[eval]'``); they are imported by the modules that use them.
"""

from __future__ import annotations

from netdiffusion.evaluation._data import EvaluationError, Sides, load_sides
from netdiffusion.evaluation._run import STAGES, Evaluation, evaluate
from netdiffusion.evaluation.report import write_report

__all__ = [
    "STAGES",
    "Evaluation",
    "EvaluationError",
    "Sides",
    "evaluate",
    "load_sides",
    "write_report",
]
