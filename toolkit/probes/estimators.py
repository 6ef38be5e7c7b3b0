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

import numpy as np
import torch

from toolkit._threads import torch_threads
from toolkit.probes import solvers

_KINDS = ("auto", "binary", "multiclass", "multilabel")


def as_tensor(X: Any) -> tuple[torch.Tensor, bool]:
    """``(float32 tensor, was_numpy)``."""
    if isinstance(X, torch.Tensor):
        return X.detach().float().cpu(), False
    return torch.as_tensor(np.asarray(X), dtype=torch.float32), True


def _out(t: torch.Tensor, numpy: bool) -> Any:
    return t.numpy() if numpy else t


def _check_X(X: torch.Tensor, d: int | None = None) -> None:
    if X.ndim != 2:
        raise ValueError(f"X must be [n_rows, n_features], got shape {tuple(X.shape)}; flatten it or use acts[hook]")
    if d is not None and X.shape[1] != d:
        raise ValueError(f"X has {X.shape[1]} features but the probe was fitted on {d}")



def _r2(pred: Any, y: Any) -> float:
    """R² of ``pred`` against ``y`` ([n] or [n, k]; mean over outputs that vary)."""
    yt, _ = as_tensor(y)
    pred = torch.as_tensor(pred).reshape(len(yt), -1).double()
    y2 = yt.reshape(len(yt), -1).double()
    sst = ((y2 - y2.mean(0)) ** 2).sum(0)
    ok = sst > 1e-12
    return float((1 - ((y2 - pred) ** 2).sum(0)[ok] / sst[ok]).mean())

class _Linear:
    coef_: torch.Tensor
    intercept_: torch.Tensor

    def decision_function(self, X: Any) -> Any:
        """Raw outputs ``[n, K]`` (logits, or predicted values for regression)."""
        if not hasattr(self, "coef_"):
            raise RuntimeError(f"this {type(self).__name__} is not fitted yet; call .fit(X, y) first")
        Xt, numpy = as_tensor(X)
        _check_X(Xt, self.coef_.shape[1])
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
        if kind not in _KINDS:
            raise ValueError(f"kind={kind!r} is not valid; use one of {_KINDS}")
        if not C > 0:
            raise ValueError(f"C must be > 0, got {C!r}")
        self.C, self.kind, self.n_classes, self.max_iter, self.tol = C, kind, n_classes, max_iter, tol
        self.threads = threads

    def _kind(self, y: torch.Tensor) -> str:
        if self.kind != "auto":
            return self.kind
        if y.ndim == 2:
            return "multilabel"
        return "binary" if int(y.max()) <= 1 and (self.n_classes or 2) <= 2 else "multiclass"

    def fit(self, X: Any, y: Any) -> LogisticProbe:
        Xt, _ = as_tensor(X)
        yt = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y)
        _check_X(Xt)
        if len(yt) != len(Xt):
            raise ValueError(f"X has {len(Xt)} rows but y has {len(yt)}")
        self.kind_ = self._kind(yt)
        if self.kind_ == "multiclass":
            if yt.ndim != 1 or int(yt.min()) < 0:
                raise ValueError("multiclass y must be class ids >= 0 of shape [n]")
            K = self.n_classes or int(yt.max()) + 1
            Y = yt.long()[None]
            self.classes_ = torch.arange(K)
        elif self.kind_ == "binary":
            K, Y = 1, yt.reshape(-1, 1).float()[None]
            self.classes_ = torch.arange(2)
        else:
            if yt.ndim != 2:
                raise ValueError("multilabel y must be 0/1 of shape [n, K]")
            K, Y = yt.shape[1], yt.float()[None]
            self.classes_ = torch.arange(K)
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

    def predict_proba(self, X: Any) -> Any:
        """Class probabilities ``[n, n_classes]`` (binary: ``[n, 2]``); multilabel: ``[n, K]`` sigmoids."""
        Xt, numpy = as_tensor(X)
        z = self.decision_function(Xt)
        if self.kind_ == "multiclass":
            p = z.softmax(-1)
        elif self.kind_ == "binary":
            p1 = torch.sigmoid(z)
            p = torch.cat([1 - p1, p1], 1)
        else:
            p = torch.sigmoid(z)
        return _out(p, numpy)

    def predict(self, X: Any) -> Any:
        Xt, numpy = as_tensor(X)
        z = self.decision_function(Xt)
        if self.kind_ == "multiclass":
            return _out(z.argmax(-1), numpy)
        pred = (z > 0).long()
        return _out(pred[:, 0] if self.kind_ == "binary" else pred, numpy)

    def score(self, X: Any, y: Any) -> float:
        """Accuracy (multilabel: fraction of outputs right)."""
        pred = torch.as_tensor(self.predict(as_tensor(X)[0]))
        yt = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y).long()
        return float((pred == yt).float().mean())


class RidgeProbe(_Linear):
    """Ridge-regression probe for scalar ``[n]`` or vector ``[n, K]`` targets; ``score`` is R^2
    (uniform average over outputs)."""

    def __init__(self, alpha: float = 1.0, threads: int | None = 1):
        if not alpha >= 0:
            raise ValueError(f"alpha must be >= 0, got {alpha!r}")
        self.alpha, self.threads = alpha, threads

    def fit(self, X: Any, y: Any) -> RidgeProbe:
        Xt, _ = as_tensor(X)
        yt, _ = as_tensor(y)
        _check_X(Xt)
        self.scalar_ = yt.ndim == 1
        Y = yt.reshape(len(yt), -1)[None]
        mean, std = solvers.standardize(Xt[None])
        with torch_threads(self.threads):
            W, b = solvers.fit_ridge((Xt[None] - mean) / std, Y, self.alpha)
        self.set_weights(W[0], b[0], mean[0, 0], std[0, 0])
        self.kind_ = "regression"
        return self

    @classmethod
    def from_weights(cls, W_std: torch.Tensor, b_std: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
                     alpha: float = 1.0, scalar: bool = False) -> RidgeProbe:
        probe = cls(alpha)
        probe.set_weights(W_std, b_std, mean, std)
        probe.scalar_, probe.kind_ = scalar, "regression"
        return probe

    def predict(self, X: Any) -> Any:
        Xt, numpy = as_tensor(X)
        z = self.decision_function(Xt)
        return _out(z[:, 0] if self.scalar_ else z, numpy)

    def score(self, X: Any, y: Any) -> float:
        return _r2(self.predict(as_tensor(X)[0]), y)


class MLPProbe:
    """A one-hidden-layer ReLU MLP probe (classification or regression), trained with AdamW.

    Args:
        hidden: hidden units.
        kind: as for :class:`LogisticProbe`, plus ``"regression"``.
        steps, lr, weight_decay, batch_size, seed: training settings (AdamW, one-cycle learning rate).
    """

    def __init__(self, hidden: int = 64, kind: str = "auto", n_classes: int | None = None, steps: int = 1500,
                 lr: float = 1e-2, weight_decay: float = 1e-4, batch_size: int = 256, seed: int = 0,
                 threads: int | None = 1):
        if kind not in (*_KINDS, "regression"):
            raise ValueError(f"kind={kind!r} is not valid; use one of {(*_KINDS, 'regression')}")
        self.hidden, self.kind, self.n_classes, self.steps = hidden, kind, n_classes, steps
        self.lr, self.weight_decay, self.batch_size, self.seed = lr, weight_decay, batch_size, seed
        self.threads = threads

    def fit(self, X: Any, y: Any) -> MLPProbe:
        Xt, _ = as_tensor(X)
        _check_X(Xt)
        yt = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y)
        kind = self.kind
        if kind == "auto":
            kind = "regression" if yt.is_floating_point() and not bool(((yt == 0) | (yt == 1)).all()) else \
                LogisticProbe(n_classes=self.n_classes)._kind(yt)
        self.kind_ = kind
        if kind == "multiclass":
            K, Y = self.n_classes or int(yt.max()) + 1, yt.long()[None]
        elif kind == "regression":
            self.scalar_ = yt.ndim == 1
            Y = yt.float().reshape(len(yt), -1)[None]
            K = Y.shape[2]
        else:
            Y = yt.float().reshape(len(yt), -1)[None]
            K = Y.shape[2]
        self.mean_, self.std_ = solvers.standardize(Xt[None])
        with torch_threads(self.threads):
            self.params_ = solvers.fit_mlp((Xt[None] - self.mean_) / self.std_, Y, K,
                                           regression=kind == "regression", hidden=self.hidden, steps=self.steps,
                                           lr=self.lr, weight_decay=self.weight_decay, batch_size=self.batch_size,
                                           seed=self.seed)
        return self

    def decision_function(self, X: Any) -> Any:
        if not hasattr(self, "params_"):
            raise RuntimeError("this MLPProbe is not fitted yet; call .fit(X, y) first")
        Xt, numpy = as_tensor(X)
        _check_X(Xt, self.params_["W1"].shape[1])
        with torch.no_grad():
            return _out(solvers.mlp_forward(self.params_, (Xt[None] - self.mean_) / self.std_)[0], numpy)

    def predict_proba(self, X: Any) -> Any:
        Xt, numpy = as_tensor(X)
        z = self.decision_function(Xt)
        if self.kind_ == "multiclass":
            return _out(z.softmax(-1), numpy)
        p = torch.sigmoid(z)
        return _out(torch.cat([1 - p, p], 1) if self.kind_ == "binary" else p, numpy)

    def predict(self, X: Any) -> Any:
        Xt, numpy = as_tensor(X)
        z = self.decision_function(Xt)
        if self.kind_ == "regression":
            return _out(z[:, 0] if self.scalar_ else z, numpy)
        if self.kind_ == "multiclass":
            return _out(z.argmax(-1), numpy)
        pred = (z > 0).long()
        return _out(pred[:, 0] if self.kind_ == "binary" else pred, numpy)

    def score(self, X: Any, y: Any) -> float:
        if self.kind_ == "regression":
            return _r2(self.predict(as_tensor(X)[0]), y)
        pred = torch.as_tensor(self.predict(as_tensor(X)[0]))
        yt = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y).long()
        return float((pred == yt).float().mean())
