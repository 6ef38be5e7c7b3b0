"""Compare a learner's answer with the reference and say *what* is wrong, not only that it is wrong.

Every function returns ``None`` when the answer is right and a one-sentence message otherwise. The
messages diagnose the common slips generically (wrong shape, transposed, extra dimension, shifted by one
position, sign flipped, off by a constant factor, NaN, reversed list, missing keys); exercise-specific
slips are diagnosed by :class:`~toolkit.exercises.core.Mistake` variants of the reference.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

_MAX_REPR = 90


def short(value: Any, limit: int = _MAX_REPR) -> str:
    """A repr that fits in one line of a report."""
    if isinstance(value, torch.Tensor):
        if value.numel() > 12:
            return f"tensor of shape {tuple(value.shape)} ({value.dtype})"
        text = repr(value.tolist())
    elif isinstance(value, np.ndarray):
        if value.size > 12:
            return f"array of shape {value.shape} ({value.dtype})"
        text = repr(value.tolist())
    elif isinstance(value, float):
        text = f"{value:.4g}"
    else:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe(value: Any) -> str:
    """Type and shape of a value, e.g. ``tensor [8, 12] float32`` or ``list of 4``."""
    if isinstance(value, torch.Tensor):
        return f"tensor {list(value.shape)} {str(value.dtype).replace('torch.', '')}"
    if isinstance(value, np.ndarray):
        return f"numpy array {list(value.shape)} {value.dtype}"
    if isinstance(value, (list, tuple, set, dict)):
        return f"{type(value).__name__} of {len(value)}"
    return type(value).__name__


def as_tensor(value: Any) -> torch.Tensor | None:
    """Tensor view of tensors, arrays, numbers and (nested) lists; ``None`` if not convertible."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, (bool, int, float, np.ndarray, np.generic, list, tuple)):
        try:
            return torch.as_tensor(np.asarray(value))
        except (TypeError, ValueError):
            return None
    return None


def _close(a: torch.Tensor, b: torch.Tensor, atol: float, rtol: float) -> bool:
    if a.shape != b.shape:
        return False
    if a.numel() == 0:
        return True
    return bool(torch.allclose(a.double(), b.double(), atol=atol, rtol=rtol, equal_nan=True))


def diff_tensor(got: Any, expected: torch.Tensor, *, name: str = "output", atol: float = 1e-5,
                rtol: float = 1e-4, seq_dim: int | None = None) -> str | None:
    """Compare a tensor-like answer with ``expected``.

    Args:
        got: the learner's value (tensor, array, number or nested list).
        expected: the reference tensor.
        name: what the value is called in messages.
        seq_dim: the token-position dimension, if any: enables the "shifted by one position" diagnosis.
    """
    expected = expected.detach().cpu()
    g = as_tensor(got)
    if g is None:
        return f"{name} should be a tensor of shape {list(expected.shape)}, got a {describe(got)}"
    if g.shape != expected.shape:
        want, have = list(expected.shape), list(g.shape)
        if g.numel() == expected.numel() and [s for s in have if s != 1] == [s for s in want if s != 1]:
            return (f"{name} has shape {have} but should have shape {want}: an extra or missing dimension of "
                    "size 1 (check keepdim / squeeze / unsqueeze)")
        if g.ndim == expected.ndim and sorted(have) == sorted(want):
            return f"{name} has shape {have} but should have shape {want}: dimensions in the wrong order (transposed?)"
        if g.ndim > expected.ndim and g.shape[: expected.ndim] == expected.shape:
            return (f"{name} has shape {have} but should have shape {want}: you kept dimensions that should be "
                    "reduced (summed, averaged or indexed away)")
        if g.ndim < expected.ndim:
            return (f"{name} has shape {have} but should have shape {want}: you reduced over a dimension that "
                    "should be kept")
        return f"{name} has shape {have} but should have shape {want}"
    if expected.dtype == torch.bool and g.dtype.is_floating_point and not bool(((g == 0) | (g == 1)).all()):
        return f"{name} should be boolean (True/False), got {describe(got)} with values other than 0 and 1"
    if g.dtype.is_floating_point and bool(torch.isnan(g).any()) and not bool(torch.isnan(expected.double()).any()):
        return (f"{name} contains NaN: did you divide by zero (e.g. a mean over an empty mask) or take the log "
                "of zero?")
    gd, ed = g.double(), expected.double()
    if _close(gd, ed, atol, rtol):
        return None
    if ed.abs().max() > atol and _close(-gd, ed, atol, rtol):
        return f"{name} has the right magnitude but the wrong sign: flip the sign"
    if seq_dim is not None and expected.ndim > 0 and expected.shape[seq_dim] > 2:
        d = seq_dim % expected.ndim
        n = expected.shape[d]
        for shift, where in ((1, "one position too late"), (-1, "one position too early")):
            a = gd.narrow(d, max(shift, 0), n - 1)
            b = ed.narrow(d, max(-shift, 0), n - 1)
            if _close(a, b, atol, rtol) and not _close(gd.narrow(d, 0, n - 1), ed.narrow(d, 0, n - 1), atol, rtol):
                return (f"{name} is off by one position: your values sit {where} along dimension {d} "
                        "(check the shift between logits and targets)")
    nonzero = ed.abs() > max(atol, 1e-12)
    if bool(nonzero.any()) and bool(((gd.abs() > 1e-12) == nonzero).all()):
        ratio = gd[nonzero] / ed[nonzero]
        c = float(ratio.median())
        if abs(c - 1) > 1e-3 and c != 0 and _close(gd, ed * c, atol, rtol):
            return (f"{name} is off by a constant factor {c:.4g}: check your normalisation (e.g. dividing by "
                    "the wrong count)")
    wrong = ~torch.isclose(gd, ed, atol=atol, rtol=rtol, equal_nan=True)
    n_wrong, n_all = int(wrong.sum()), wrong.numel()
    idx = tuple(int(i) for i in wrong.nonzero()[0]) if n_wrong else ()
    at = f" at index {list(idx)}" if idx else ""
    return (f"{name}: {n_wrong} of {n_all} values differ; e.g.{at} you have {float(gd[idx]):.4g}, expected "
            f"{float(ed[idx]):.4g}")


def _normalise(value: Any) -> Any:
    """Plain Python form of numbers, arrays, tensors and containers (for equality tests)."""
    if isinstance(value, torch.Tensor):
        return _normalise(value.tolist())
    if isinstance(value, np.ndarray):
        return _normalise(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return [_normalise(v) for v in value]
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return {_normalise(v) for v in value}
    if isinstance(value, Mapping):
        return {_normalise(k): _normalise(v) for k, v in value.items()}
    return value


def _equal(a: Any, b: Any, tol: float) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b and isinstance(a, bool) == isinstance(b, bool)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if isinstance(a, float) or isinstance(b, float):
            return math.isclose(a, b, abs_tol=tol, rel_tol=tol) or (math.isnan(a) and math.isnan(b))
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y, tol) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k], tol) for k in a)
    return a == b


def equal(got: Any, expected: Any, tol: float = 1e-6) -> bool:
    """Equality after normalising tensors/arrays/tuples to lists, with a float tolerance."""
    return _equal(_normalise(got), _normalise(expected), tol)


def diff_value(got: Any, expected: Any, *, name: str = "result", tol: float = 1e-6) -> str | None:
    """Compare plain Python answers (numbers, lists, tuples, sets, dicts; tensors are converted)."""
    g, e = _normalise(got), _normalise(expected)
    if _equal(g, e, tol):
        return None
    if e is None:
        return f"{name} should be None, got {short(got)}"
    if g is None:
        return (f"{name} is None but should be {short(expected)}: did you forget a `return` statement, or "
                "return None in a case that has an answer?")
    if isinstance(e, bool) and not isinstance(g, bool):
        return f"{name} should be True or False, got {describe(got)} {short(got)}"
    if isinstance(e, (int, float)) and not isinstance(e, bool):
        if not isinstance(g, (int, float)) or isinstance(g, bool):
            return f"{name} should be a number like {short(expected)}, got a {describe(got)}: {short(got)}"
        if isinstance(e, int) and isinstance(g, int) and abs(g - e) == 1:
            return f"{name} is off by one: you have {g}, expected {e}"
        return f"{name} is {short(g)}, expected {short(e)}"
    if isinstance(e, list):
        if not isinstance(g, list):
            return f"{name} should be a list like {short(expected)}, got a {describe(got)}: {short(got)}"
        if len(g) == len(e) and _equal(g[::-1], e, tol):
            return f"{name} is in reverse order: you have {short(got)}, expected {short(expected)}"
        if len(g) != len(e):
            extra = ""
            if len(g) == len(e) - 1 and (_equal(g, e[1:], tol) or _equal(g, e[:-1], tol)):
                extra = f" (you left out the {'first' if _equal(g, e[1:], tol) else 'last'} element)"
            elif len(g) == len(e) + 1 and (_equal(g[1:], e, tol) or _equal(g[:-1], e, tol)):
                extra = " (one element too many at the " + ("start" if _equal(g[1:], e, tol) else "end") + ")"
            return f"{name} has {len(g)} elements but should have {len(e)}{extra}: you have {short(got)}, " \
                   f"expected {short(expected)}"
        if isinstance(g, list) and sorted(map(repr, g)) == sorted(map(repr, e)):
            return (f"{name} has the right elements in the wrong order: you have {short(got)}, "
                    f"expected {short(expected)}")
        return f"{name} is {short(got)}, expected {short(expected)}"
    if isinstance(e, set):
        if not isinstance(g, set):
            g = set(g) if isinstance(g, list) else g
            if g == e:
                return None
        if isinstance(g, set):
            missing, extra = e - g, g - e
            parts = []
            if missing:
                parts.append(f"missing {short(sorted(missing, key=repr))}")
            if extra:
                parts.append(f"should not contain {short(sorted(extra, key=repr))}")
            return f"{name} " + " and ".join(parts)
        return f"{name} should be a set like {short(expected)}, got a {describe(got)}"
    if isinstance(e, dict):
        if not isinstance(g, dict):
            return f"{name} should be a dict like {short(expected)}, got a {describe(got)}"
        missing, extra = [k for k in e if k not in g], [k for k in g if k not in e]
        if missing:
            return f"{name} is missing the key(s) {short(missing)}"
        if extra:
            return f"{name} has unexpected key(s) {short(extra)}"
        for k in e:
            if not _equal(g[k], e[k], tol):
                return f"{name}[{k!r}] is {short(g[k])}, expected {short(e[k])}"
    return f"{name} is {short(got)}, expected {short(expected)}"


def diff(got: Any, expected: Any, **kwargs: Any) -> str | None:
    """Dispatch: tensors and arrays go to :func:`diff_tensor`, everything else to :func:`diff_value`."""
    if isinstance(expected, (torch.Tensor, np.ndarray)):
        return diff_tensor(got, torch.as_tensor(expected), **kwargs)
    kwargs.pop("seq_dim", None)
    kwargs.pop("atol", None)
    kwargs.pop("rtol", None)
    return diff_value(got, expected, **kwargs)


def is_sequence(x: Any) -> bool:
    return isinstance(x, Sequence) and not isinstance(x, str)
