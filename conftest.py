"""nbval set-up for every notebook run, with or without tests/ on the command line.

Outputs nbval must never compare: rich HTML/JS (circuitsvis, widgets, the measured number beside a claim's verdict)
and widget state change on every run or between CPUs. Only text outputs of ``# NBVAL_CHECK_OUTPUT`` cells are
compared: claim verdicts and exact facts. This file sits at the repository root so that
``pytest --nbval-lax tutorials/solutions/04_*.ipynb`` (without ``tests/``) applies it too.
"""

from __future__ import annotations

import pytest

NBVAL_SKIP = (
    "text/html",
    "application/javascript",
    "application/vnd.jupyter.widget-state+json",
    "application/vnd.jupyter.widget-view+json",
    "image/svg+xml",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    seen = set()
    for item in items:
        parent = item.parent
        if parent is not None and hasattr(parent, "skip_compare") and id(parent) not in seen:
            seen.add(id(parent))
            parent.skip_compare = tuple(parent.skip_compare) + NBVAL_SKIP
