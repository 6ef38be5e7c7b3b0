"""Shared test set-up: offline, headless, seeded, and nbval tuned for our notebooks."""

from __future__ import annotations

import os
import tempfile

import pytest

# Headless plotting and no writes into the user's home from any test or notebook run.
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("SEARCHLIGHT_PROGRESS", os.path.join(tempfile.gettempdir(), "searchlight-test-progress.json"))

# Outputs nbval must never compare: rich HTML/JS (circuitsvis, widgets) and widget state change on every run.
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


@pytest.fixture(scope="module")
def one_torch_thread():
    """Small tensors: one torch thread was several times faster than two on a loaded 2-core machine (measured)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
