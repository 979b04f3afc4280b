"""Module names say what each owns (issue 14: three ``report`` modules plus a ``reporting/`` package, two
``plots.py`` and two ``autoregressive.py`` made "where is X?" a guess). No two modules of the package share a
file name, so a name found in a traceback or an import is one place."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import diffusion_lab

PACKAGE = Path(diffusion_lab.__file__).resolve().parent
#: names shared on purpose: package inits and one base-class module per package. Left for later:
#: synthetic.py (data/: the embedded dataset; viz/: model-free trajectories for the renderers).
SHARED = {"__init__.py", "base.py", "synthetic.py"}


def _modules() -> list[Path]:
    return [p for p in PACKAGE.rglob("*.py") if not {"conf", "__pycache__"} & set(p.relative_to(PACKAGE).parts)]


def test_no_two_modules_share_a_name():
    names = Counter(p.name for p in _modules())
    assert sorted(n for n, k in names.items() if k > 1 and n not in SHARED) == []


def test_report_is_only_the_task():
    """``tasks/report.py`` is ``task=report`` (task modules are named as their task); what it builds on is
    ``sweep_results/``; the classifier's table is ``classifiers/results_table.py``, the evaluation page
    ``evaluation/suite_page.py``."""
    paths = [p for p in PACKAGE.rglob("*report*") if not {"conf", "__pycache__"} & set(p.relative_to(PACKAGE).parts)]
    assert sorted(str(p.relative_to(PACKAGE)) for p in paths) == ["tasks/report.py"]
