"""Comparing two float implementations with a tolerance relative to the tensors' scale.

Two implementations of one computation (the fast cache pass and the bridge, our solver and scikit-learn) agree up to
float rounding, and rounding is relative: it scales with the magnitude of the values involved, and its digits differ
between CPUs and torch kernel paths. An absolute tolerance is wrong for large activations and near-zero elements
alike (an Intel CPU put one element 1.4e-6 off where ``atol=1e-6`` applied to a value near zero). So compare
``max |actual - expected|`` with ``rel * max |expected|``; each caller says in one line why its ``rel`` has that size.
"""

from __future__ import annotations

import numpy as np
import torch


def relative_error(actual, expected) -> float:
    """max |actual - expected| / max |expected| (the denominator floored at 1e-12)."""
    a = torch.as_tensor(np.asarray(actual) if not isinstance(actual, torch.Tensor) else actual).double()
    e = torch.as_tensor(np.asarray(expected) if not isinstance(expected, torch.Tensor) else expected).double()
    assert a.shape == e.shape, f"shapes differ: {tuple(a.shape)} vs {tuple(e.shape)}"
    return float((a - e).abs().max()) / max(float(e.abs().max()), 1e-12)


def assert_close_to_scale(actual, expected, rel: float, why: str, what: str = "") -> None:
    """Fail unless ``max |actual - expected| <= rel * max |expected|``; ``why`` justifies ``rel`` in the message."""
    err = relative_error(actual, expected)
    assert err <= rel, f"{what}: max difference is {err:.2e} of the scale, above {rel:.0e} ({why})"
