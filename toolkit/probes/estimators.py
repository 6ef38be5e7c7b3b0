"""Probes as scikit-learn-style estimators: ``fit`` / ``predict`` / ``predict_proba`` / ``score``.

* :class:`LogisticProbe` - linear; multiclass (softmax), binary or multilabel (independent sigmoids)
* :class:`RidgeProbe` - linear regression for scalar or vector targets (e.g. distances)
* :class:`MLPProbe` - one hidden layer; a *stronger* reporter. Linear probes are intentionally weak: if an MLP
  decodes a label that a linear probe cannot, the information is there but not linearly readable - which is
  weaker evidence that the model *uses* it.

Inputs are ``[n, d]`` torch tensors or numpy arrays; outputs come back as the same type. Features are
standardised internally; ``coef_`` / ``intercept_`` are in the original coordinates (``X @ coef_.T +
intercept_`` gives the logits), so a row of ``coef_`` is a direction in activation space.
"""

from __future__ import annotations

from typing import Any

import torch

from toolkit._estimator import Estimator, check_array, check_targets
from toolkit._threads import torch_threads
from toolkit.probes import solvers

_KINDS = ("auto", "binary", "multiclass", "multilabel")


def as_tensor(X: Any) -> tuple[torch.Tensor, bool]:
    """``(float32 CPU tensor, was_numpy)`` of activations ``[n, d]``; NaN / inf / bad shapes raise ValueError."""
    t, numpy = check_array(X)
    return t.cpu(), numpy


def _out(t: torch.Tensor, numpy: bool) -> Any:
    return t.numpy() if numpy else t


def _r2(pred: Any, y: Any) -> float:
    """R² of ``pred`` against ``y`` ([n] or [n, k]; mean over outputs that vary)."""
    yt = check_targets(y, len(pred)).float().cpu()
    pred = torch.as_tensor(pred).reshape(len(yt), -1).double()
    y2 = yt.reshape(len(yt), -1).double()
    sst = ((y2 - y2.mean(0)) ** 2).sum(0)
    ok = sst > 1e-12
    return float((1 - ((y2 - pred) ** 2).sum(0)[ok] / sst[ok]).mean())


def _check_kind(kind: Any, allowed: tuple[str, ...]) -> None:
    if kind not in allowed:
        raise ValueError(f"kind={kind!r} is not valid; use one of {allowed}")


class _Probe(Estimator):
    """Shared by every probe: input checks, targets, and ``predict_proba`` / ``predict`` / ``score`` computed
    from ``decision_function`` (logits ``[n, K]``, or values for ``kind_ == "regression"``)."""

    kind_: str
    n_classes: int | None = None

    def _X(self, X: Any, reset: bool = False) -> tuple[torch.Tensor, bool]:
        """Checked float32 CPU activations ``[n, d]`` and whether they came as numpy."""
        if not reset:
            self._check_fitted(how="call .fit(X, y) first")
        t, numpy = self._validate(X, reset=reset)
        return t.cpu(), numpy

    def _classification_kind(self, y: torch.Tensor) -> str:
        if self.kind != "auto":
            return self.kind
        if y.ndim == 2:
            return "multilabel"
        return "binary" if int(y.max()) <= 1 and (self.n_classes or 2) <= 2 else "multiclass"

    def _targets(self, yt: torch.Tensor, kind: str) -> tuple[int, torch.Tensor]:
        """``(n_outputs K, Y [1, n] class ids or [1, n, K] floats)``; sets ``classes_`` / ``scalar_``."""
        if kind == "multiclass":
            if yt.ndim != 1 or yt.is_floating_point() and not bool((yt == yt.round()).all()) or int(yt.min()) < 0:
                raise ValueError("multiclass y must be integer class ids >= 0 of shape [n]")
            K = self.n_classes or int(yt.max()) + 1
            self.classes_ = torch.arange(K)
            return K, yt.long()[None]
        if kind == "multilabel" and yt.ndim != 2:
            raise ValueError("multilabel y must be 0/1 of shape [n, K]")
        if kind == "regression":
            self.scalar_ = yt.ndim == 1
        Y = yt.float().reshape(len(yt), -1)[None]
        if kind != "regression":
            self.classes_ = torch.arange(2 if kind == "binary" else Y.shape[2])
        return Y.shape[2], Y

    def predict_proba(self, X: Any) -> Any:
        """Class probabilities ``[n, n_classes]`` (binary: ``[n, 2]``); multilabel: ``[n, K]`` sigmoids."""
        Xt, numpy = self._X(X)
        z = self.decision_function(Xt)
        if self.kind_ == "regression":
            raise ValueError("predict_proba needs a classifier; this probe was fitted for regression (use predict)")
        if self.kind_ == "multiclass":
            return _out(z.softmax(-1), numpy)
        p = torch.sigmoid(z)
        return _out(torch.cat([1 - p, p], 1) if self.kind_ == "binary" else p, numpy)

    def predict(self, X: Any) -> Any:
        """Class ids ``[n]`` (multilabel: 0/1 ``[n, K]``); regression: values ``[n]`` or ``[n, K]``."""
        Xt, numpy = self._X(X)
        z = self.decision_function(Xt)
        if self.kind_ == "regression":
            return _out(z[:, 0] if self.scalar_ else z, numpy)
        if self.kind_ == "multiclass":
            return _out(z.argmax(-1), numpy)
        pred = (z > 0).long()
        return _out(pred[:, 0] if self.kind_ == "binary" else pred, numpy)

    def score(self, X: Any, y: Any) -> float:
        """Accuracy (multilabel: fraction of outputs right); R² (uniform average over outputs) for regression."""
        pred = torch.as_tensor(self.predict(self._X(X)[0]))
        if self.kind_ == "regression":
            return _r2(pred, y)
        yt = check_targets(y, len(pred)).long().cpu()
        return float((pred == yt).float().mean())


class _Linear(_Probe):
    coef_: torch.Tensor
    intercept_: torch.Tensor

    def decision_function(self, X: Any) -> Any:
        """Raw outputs ``[n, K]`` (logits, or predicted values for regression)."""
        self._check_fitted("coef_", "call .fit(X, y) first")
        Xt, numpy = self._X(X)
        return _out(Xt @ self.coef_.T + self.intercept_, numpy)

    def set_weights(self, W_std: torch.Tensor, b_std: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Fold the standardisation into the weights: ``W_std [d, K]`` on ``(x - mean) / std``."""
        W = W_std / std.reshape(-1, 1)
        self.coef_ = W.T.contiguous()
        self.intercept_ = b_std - mean.reshape(1, -1) @ W
        self.intercept_ = self.intercept_.reshape(-1)
        self.n_features_in_ = W.shape[0]


class LogisticProbe(_Linear):
    """L2-regularised logistic-regression probe.

    Args:
        C: inverse regularisation strength on standardised features (scikit-learn convention).
        kind: ``"auto"`` (class ids ``[n]`` -> binary if two classes else multiclass; 0/1 ``[n, K]`` ->
            multilabel), or one of ``binary`` / ``multiclass`` / ``multilabel``.
        n_classes: for multiclass: the number of classes (default ``max(y) + 1``).
        max_iter, tol: L-BFGS settings (``tol``: max |gradient|, as scikit-learn).
        threads: torch threads while fitting (default 1: measured 1.2 s vs 5.2 s median for ten 10k-row fits on
            the shared 2-core machine; None keeps torch's setting).
    """

    def __init__(self, C: float = 1.0, kind: str = "auto", n_classes: int | None = None, max_iter: int = 200,
                 tol: float = 1e-4, threads: int | None = 1):
        self.C, self.kind, self.n_classes, self.max_iter, self.tol = C, kind, n_classes, max_iter, tol
        self.threads = threads

    def fit(self, X: Any, y: Any) -> LogisticProbe:
        """Fit on activations ``X [n, d]`` and labels ``y [n]`` (class ids) or ``[n, K]`` (0/1 multilabel)."""
        _check_kind(self.kind, _KINDS)
        if not self.C > 0:
            raise ValueError(f"C must be > 0, got {self.C!r}")
        Xt, _ = self._X(X, reset=True)
        yt = check_targets(y, len(Xt)).cpu()
        self.kind_ = self._classification_kind(yt)
        K, Y = self._targets(yt, self.kind_)
        mean, std = solvers.standardize(Xt[None])
        with torch_threads(self.threads):
            W, b = solvers.fit_logistic((Xt[None] - mean) / std, Y, K, C=self.C, max_iter=self.max_iter,
                                        tol=self.tol)
        self.set_weights(W[0], b[0], mean[0, 0], std[0, 0])
        return self

    @classmethod
    def from_weights(cls, kind: str, W_std: torch.Tensor, b_std: torch.Tensor, mean: torch.Tensor,
                     std: torch.Tensor, C: float = 1.0) -> LogisticProbe:
        """A fitted probe from solver output (used by :func:`toolkit.probes.sweep`)."""
        probe = cls(C=C, kind=kind)
        probe.kind_ = kind
        probe.set_weights(W_std, b_std, mean, std)
        probe.classes_ = torch.arange(2 if kind == "binary" else W_std.shape[1])
        return probe


class RidgeProbe(_Linear):
    """Ridge-regression probe for scalar ``[n]`` or vector ``[n, K]`` targets; ``score`` is R^2
    (uniform average over outputs). ``threads``: torch threads while fitting (None keeps torch's setting)."""

    def __init__(self, alpha: float = 1.0, threads: int | None = 1):
        self.alpha, self.threads = alpha, threads

    def fit(self, X: Any, y: Any) -> RidgeProbe:
        """Fit on activations ``X [n, d]`` and real targets ``y [n]`` or ``[n, K]``."""
        if not self.alpha >= 0:
            raise ValueError(f"alpha must be >= 0, got {self.alpha!r}")
        Xt, _ = self._X(X, reset=True)
        yt = check_targets(y, len(Xt)).float().cpu()
        self.kind_ = "regression"
        _, Y = self._targets(yt, "regression")
        mean, std = solvers.standardize(Xt[None])
        with torch_threads(self.threads):
            W, b = solvers.fit_ridge((Xt[None] - mean) / std, Y, self.alpha)
        self.set_weights(W[0], b[0], mean[0, 0], std[0, 0])
        return self

    @classmethod
    def from_weights(cls, W_std: torch.Tensor, b_std: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
                     alpha: float = 1.0, scalar: bool = False) -> RidgeProbe:
        probe = cls(alpha)
        probe.set_weights(W_std, b_std, mean, std)
        probe.scalar_, probe.kind_ = scalar, "regression"
        return probe


class MLPProbe(_Probe):
    """A one-hidden-layer ReLU MLP probe (classification or regression), trained with AdamW.

    Args:
        hidden: hidden units.
        kind: as for :class:`LogisticProbe`, plus ``"regression"`` (``"auto"`` picks it for real-valued ``y``).
        steps, lr, weight_decay, batch_size, seed: training settings (AdamW, one-cycle learning rate).
        threads: torch threads while fitting (None keeps torch's setting).
    """

    def __init__(self, hidden: int = 64, kind: str = "auto", n_classes: int | None = None, steps: int = 1500,
                 lr: float = 1e-2, weight_decay: float = 1e-4, batch_size: int = 256, seed: int = 0,
                 threads: int | None = 1):
        self.hidden, self.kind, self.n_classes, self.steps = hidden, kind, n_classes, steps
        self.lr, self.weight_decay, self.batch_size, self.seed = lr, weight_decay, batch_size, seed
        self.threads = threads

    def fit(self, X: Any, y: Any) -> MLPProbe:
        """Fit on activations ``X [n, d]`` and labels / targets ``y [n]`` or ``[n, K]``."""
        _check_kind(self.kind, (*_KINDS, "regression"))
        Xt, _ = self._X(X, reset=True)
        yt = check_targets(y, len(Xt)).cpu()
        real = self.kind == "auto" and yt.is_floating_point() and not bool(((yt == 0) | (yt == 1)).all())
        self.kind_ = kind = "regression" if real else self._classification_kind(yt)
        K, Y = self._targets(yt, kind)
        self.mean_, self.std_ = solvers.standardize(Xt[None])
        with torch_threads(self.threads):
            self.params_ = solvers.fit_mlp((Xt[None] - self.mean_) / self.std_, Y, K,
                                           regression=kind == "regression", hidden=self.hidden, steps=self.steps,
                                           lr=self.lr, weight_decay=self.weight_decay, batch_size=self.batch_size,
                                           seed=self.seed)
        return self

    def decision_function(self, X: Any) -> Any:
        """Raw outputs ``[n, K]`` (logits, or predicted values for regression)."""
        self._check_fitted("params_", "call .fit(X, y) first")
        Xt, numpy = self._X(X)
        with torch.no_grad():
            return _out(solvers.mlp_forward(self.params_, (Xt[None] - self.mean_) / self.std_)[0], numpy)
