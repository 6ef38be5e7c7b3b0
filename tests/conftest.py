"""Shared test set-up: offline, headless, seeded (nbval's output filter is in the root conftest.py)."""

from __future__ import annotations

import os
import tempfile

import pytest

# Headless plotting and no writes into the user's home from any test or notebook run.
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("SEARCHLIGHT_PROGRESS", os.path.join(tempfile.gettempdir(), "searchlight-test-progress.json"))


@pytest.fixture(scope="module")
def one_torch_thread():
    """Small tensors: one torch thread was several times faster than two on a loaded 2-core machine (measured)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def kernel():
    """A real IPython kernel (the tests' Python, nothing imported yet): a started ``jupyter_client`` client."""
    jupyter_client = pytest.importorskip("jupyter_client")
    km = jupyter_client.KernelManager(kernel_name="python3")
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=60)
    try:
        yield kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
