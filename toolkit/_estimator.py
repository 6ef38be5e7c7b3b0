"""The one estimator base and the one input policy of every probe, eraser and dictionary in the toolkit.

scikit-learn conventions:

* ``__init__`` stores its arguments unchanged (no checks, no conversion); :meth:`Estimator.fit` checks them.
* :meth:`Estimator.get_params` / :meth:`Estimator.set_params` read the parameter names from the ``__init__``
  signature, so ``type(est)(**est.get_params())`` builds an unfitted twin.
* ``fit`` sets ``n_features_in_``; ``predict`` / ``transform`` refuse inputs with another number of features.

Inputs: :func:`check_array` takes a torch tensor, a numpy array or a nested list and returns a float32 tensor,
or raises ONE ``ValueError`` that names the problem and the fix (NaN / inf rows, wrong rank, no rows or
features, a feature count that differs from the fit). :func:`check_targets` does the same for labels ``y``.

Thread count: one parameter name, ``threads``. The old ``n_threads`` keyword still works for one release
(``DEPRECATED`` marks it unused; :meth:`Estimator._threads` warns and uses it).
"""

from __future__ import annotations

import inspect
import warnings
from typing import Any

import numpy as np
import torch

DEPRECATED = "deprecated"  # default of a renamed keyword that still works for one release


def _to_tensor(X: Any, what: str) -> tuple[torch.Tensor, bool]:
    """``(tensor, was_numpy)``; torch tensors are detached, everything else goes through ``np.asarray``."""
    if isinstance(X, torch.Tensor):
        return X.detach(), False
    try:
        arr = np.asarray(X)
        return torch.as_tensor(arr), True
    except (TypeError, ValueError, RuntimeError) as e:
        raise ValueError(f"{what} must be a torch tensor or numpy array of numbers, got {type(X).__name__} "
                         f"({e})") from e


def nonfinite_rows(X: torch.Tensor) -> str | None:
    """``None`` if every value is finite, else e.g. ``"NaN in 3 of 300 rows and inf in 1 of 300 rows (first at
    row 5)"``. ``X [n, ...]``: a row is ``X[i]``; a 1-D ``X`` counts entries."""
    if not X.is_floating_point() and not X.is_complex():
        return None
    bad = ~torch.isfinite(X)
    if not bool(bad.any()):
        return None
    rows_of = (lambda m: m.reshape(m.shape[0], -1).any(1)) if X.ndim > 1 else (lambda m: m.reshape(-1))
    nan_rows, inf_rows = rows_of(torch.isnan(X)), rows_of(torch.isinf(X))
    n = X.shape[0] if X.ndim else 1
    parts = [f"{kind} in {int(r.sum())} of {n} rows" for kind, r in (("NaN", nan_rows), ("inf", inf_rows))
             if bool(r.any())]
    return f"{' and '.join(parts)} (first at row {int(rows_of(bad).nonzero()[0, 0])})"


def finite_problem(X: torch.Tensor, what: str = "X") -> str | None:
    """``None`` if every value is finite, else one sentence: how many rows hold NaN / inf and what to do."""
    rows = nonfinite_rows(X)
    if rows is None:
        return None
    keep = f"torch.isfinite({what})" + {1: "", 2: ".all(1)"}.get(X.ndim, f".reshape(len({what}), -1).all(1)")
    return (f"{what} has {rows}; drop those rows (keep = {keep}, then index X and y with keep) or impute them, "
            "and check where they came from (e.g. a diverged model or a division by zero)")


def check_array(X: Any, what: str = "X", *, ndim: int | None = 2, n_features: int | None = None,
                fitted: str = "this estimator", finite: bool = True) -> tuple[torch.Tensor, bool]:
    """Validate activations and return ``(float32 tensor on X's device, was_numpy)``.

    Args:
        X: ``[n_rows, n_features]`` (``ndim=2``) or ``[..., n_features]`` (``ndim=None``: any leading shape).
        what: the argument's name in messages.
        n_features: the feature count the estimator was fitted on (``n_features_in_``), checked if given.
        fitted: who was fitted, for the mismatch message (e.g. ``"this LogisticProbe"``).
        finite: refuse NaN / inf.
    Raises:
        ValueError: one message naming the problem and the fix.
    """
    t, numpy = _to_tensor(X, what)
    if ndim is not None and t.ndim != ndim:
        raise ValueError(f"{what} must be {ndim}-D [n_rows, n_features], got shape {tuple(t.shape)}; flatten "
                         f"positions first, e.g. {what}.reshape(-1, {what}.shape[-1]), {what}[mask] or acts[hook]")
    if t.ndim == 0:
        raise ValueError(f"{what} must be [..., n_features], got a scalar")
    if t.is_complex() or not (t.is_floating_point() or t.dtype in (torch.bool, torch.uint8, torch.int8, torch.int16,
                                                                   torch.int32, torch.int64)):
        raise ValueError(f"{what} must hold real numbers, got dtype {t.dtype}")
    if ndim is not None and t.shape[0] == 0:
        raise ValueError(f"{what} has 0 rows (shape {tuple(t.shape)}); pass at least one row, e.g. check that the "
                         "mask or label you selected rows with is not empty")
    if t.shape[-1] == 0:
        raise ValueError(f"{what} has 0 features (shape {tuple(t.shape)}); pass activations with a feature axis, "
                         "e.g. acts[hook] rather than an empty slice")
    if n_features is not None and t.shape[-1] != n_features:
        raise ValueError(f"{what} has {t.shape[-1]} features but {fitted} was fitted on {n_features}; pass "
                         "activations from the same hook (and model) it was fitted on, or fit it again")
    if finite:
        problem = finite_problem(t, what)
        if problem is not None:
            raise ValueError(problem)
    return (t if t.dtype == torch.float32 else t.float()), numpy


def check_targets(y: Any, n_rows: int, what: str = "y") -> torch.Tensor:
    """Labels / targets ``[n_rows]`` or ``[n_rows, K]`` as a tensor (dtype kept); clear errors otherwise."""
    t, _ = _to_tensor(y, what)
    if t.ndim not in (1, 2):
        raise ValueError(f"{what} must be [n_rows] or [n_rows, K], got shape {tuple(t.shape)}")
    if t.shape[0] != n_rows:
        raise ValueError(f"X has {n_rows} rows but {what} has {t.shape[0]}; they must describe the same rows "
                         "(select both with the same mask)")
    problem = finite_problem(t, what)
    if problem is not None:
        raise ValueError(problem)
    return t


class Estimator:
    """scikit-learn-style base: parameters from the ``__init__`` signature, one input policy, one thread knob."""

    @classmethod
    def _param_names(cls) -> list[str]:
        """Names of the ``__init__`` parameters (the first class in the MRO with an explicit signature)."""
        for klass in cls.__mro__:
            init = klass.__dict__.get("__init__")
            if init is None:
                continue
            params = inspect.signature(init).parameters.values()
            if any(p.kind is p.VAR_KEYWORD for p in params):
                continue  # e.g. FrozenDecoderSAE(**params): use its parent's signature
            return [p.name for p in params if p.name != "self" and p.kind is not p.VAR_POSITIONAL]
        return []

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """``{name: value}`` of every ``__init__`` parameter (``deep`` is accepted for scikit-learn)."""
        return {k: getattr(self, k) for k in self._param_names()}

    def set_params(self, **params: Any) -> Estimator:
        """Set parameters by name (unknown names raise); returns ``self``. Takes effect at the next ``fit``."""
        valid = self._param_names()
        for k, v in params.items():
            if k not in valid:
                raise ValueError(f"unknown parameter {k!r} for {type(self).__name__}; valid: {sorted(valid)}")
            setattr(self, k, v)
        return self

    def __repr__(self) -> str:
        defaults = {p.name: p.default for p in inspect.signature(type(self)).parameters.values()}
        shown = [f"{k}={v!r}" for k, v in self.get_params().items()
                 if k in defaults and not _same(defaults[k], v)]
        return f"{type(self).__name__}({', '.join(shown)})"

    # ------------------------------------------------------------------ helpers for subclasses
    def _check_fitted(self, attr: str = "n_features_in_", how: str = "call .fit(X) first") -> None:
        if not hasattr(self, attr):
            raise RuntimeError(f"this {type(self).__name__} is not fitted yet; {how}")

    def _validate(self, X: Any, what: str = "X", *, reset: bool, ndim: int | None = 2) -> tuple[torch.Tensor, bool]:
        """:func:`check_array` for ``fit`` (``reset=True``: sets ``n_features_in_``) or for ``predict`` /
        ``transform`` (``reset=False``: checks the feature count against ``n_features_in_``)."""
        if reset:
            t, numpy = check_array(X, what, ndim=ndim)
            self.n_features_in_ = int(t.shape[-1])
            return t, numpy
        self._check_fitted()
        return check_array(X, what, ndim=ndim, n_features=self.n_features_in_, fitted=f"this {type(self).__name__}")

    def _threads(self) -> Any:
        """The ``threads`` setting, or the deprecated ``n_threads`` if one was passed (with a DeprecationWarning)."""
        old = getattr(self, "n_threads", DEPRECATED)
        if isinstance(old, str) and old == DEPRECATED:
            return self.threads
        warnings.warn(f"{type(self).__name__}(n_threads=...) is renamed threads=...; n_threads will be removed in "
                      "the next release", DeprecationWarning, stacklevel=3)
        return old


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b) and type(a) is type(b)
    except (TypeError, ValueError, RuntimeError):
        return a is b


def resolve_threads(threads: Any, n_threads: Any, where: str) -> Any:
    """For functions: ``threads``, or the deprecated ``n_threads`` keyword if given (with a DeprecationWarning)."""
    if isinstance(n_threads, str) and n_threads == DEPRECATED:
        return threads
    warnings.warn(f"{where}(n_threads=...) is renamed threads=...; n_threads will be removed in the next release",
                  DeprecationWarning, stacklevel=3)
    return n_threads
