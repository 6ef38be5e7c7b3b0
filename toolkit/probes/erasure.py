"""Directions for steering, and concept erasure to test whether information is *used*.

* :func:`direction` - a unit vector for a label (class-mean difference or a probe's weight row).
* :class:`LeaceEraser` - LEACE (Belrose et al. 2023, "LEACE: Perfect linear concept erasure in closed form"):
  the least-squares-smallest affine edit ``x -> x - W^+ P W (x - mean)`` after which no linear classifier
  predicts the concept better than a constant (the class-conditional means coincide). ``W`` whitens,
  ``P`` projects onto the whitened cross-covariance with the one-hot concept.
* :func:`project_out` - the plain orthogonal projection that removes given directions.

Apply an eraser inside the model with :func:`toolkit.interventions.erase`: if the model's output survives the
erasure, the model did not need that (linearly available) information at that hook.
"""

from __future__ import annotations

from typing import Any

import torch

from toolkit._estimator import Estimator, check_targets
from toolkit.probes.estimators import LogisticProbe, RidgeProbe, as_tensor


def _one_hot(y: torch.Tensor, kind: str | None = None) -> torch.Tensor:
    """Targets -> float ``[n, k]`` concept matrix (one-hot class ids, or the 0/1 / real columns as given)."""
    if y.ndim == 2:
        return y.double()
    if kind == "regression" or y.is_floating_point():
        return y.double()[:, None]
    classes = torch.unique(y)
    return (y[:, None] == classes[None, :]).double()


class LeaceEraser(Estimator):
    """LEACE concept eraser, scikit-learn style: ``fit(X, y)`` then ``transform(X)``.

    Args:
        rank_tol: singular values below ``rank_tol * max`` count as zero.

    Attributes (after fit): ``mean_ [d]``, ``proj_ [d, d]`` (the edit is ``x - (x - mean_) @ proj_.T``),
    ``rank_`` (dimensions erased), ``n_features_in_`` (d).
    """

    def __init__(self, rank_tol: float = 1e-6):
        self.rank_tol = rank_tol

    def fit(self, X: Any, y: Any, kind: str | None = None) -> LeaceEraser:
        """Fit on activations ``X [n, d]`` and the concept ``y [n]`` (class ids / values) or ``[n, K]``."""
        Xt, _ = self._validate(X, reset=True)
        yt = check_targets(y, len(Xt)).cpu()
        Xd = Xt.cpu().double()
        Z = _one_hot(yt, kind)
        mean = Xd.mean(0)
        Xc, Zc = Xd - mean, Z - Z.mean(0)
        n = len(Xd)
        sxx = Xc.T @ Xc / n
        sxz = Xc.T @ Zc / n
        evals, evecs = torch.linalg.eigh(sxx)
        keep = evals > self.rank_tol * evals.max().clamp_min(1e-30)
        inv_sqrt = torch.where(keep, evals.clamp_min(1e-30).rsqrt(), torch.zeros_like(evals))
        sqrt = torch.where(keep, evals.clamp_min(0).sqrt(), torch.zeros_like(evals))
        W = evecs @ torch.diag(inv_sqrt) @ evecs.T
        W_pinv = evecs @ torch.diag(sqrt) @ evecs.T
        U, S, _ = torch.linalg.svd(W @ sxz, full_matrices=False)
        r = int((S > self.rank_tol * S.max().clamp_min(1e-30)).sum()) if S.numel() else 0
        U = U[:, :r]
        self.mean_ = mean.float()
        self.proj_ = (W_pinv @ U @ U.T @ W).float()
        self.rank_ = r
        return self

    def transform(self, X: Any) -> Any:
        """Erase the concept from ``X [..., d]`` (any leading shape; a torch input keeps its dtype and device)."""
        self._check_fitted("proj_", "call .fit(X, y) first")
        checked, numpy = self._validate(X, reset=False, ndim=None)
        Xt = X if isinstance(X, torch.Tensor) else checked
        out = Xt - (Xt - self.mean_.to(Xt)) @ self.proj_.to(Xt).T
        return out.numpy() if numpy else out

    def fit_transform(self, X: Any, y: Any) -> Any:
        return self.fit(X, y).transform(X)

    def __call__(self, X: torch.Tensor) -> torch.Tensor:
        return self.transform(X)


def project_out(X: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """Remove the span of ``directions [k, d]`` (or one ``[d]``) from ``X [..., d]`` (orthogonal projection)."""
    D = directions.reshape(-1, X.shape[-1]).to(X)
    Q, _ = torch.linalg.qr(D.T)
    return X - (X @ Q) @ Q.T


def direction(X: Any, y: Any, cls: int | None = None, method: str = "mean_diff", normalize: bool = True,
              kind: str | None = None) -> torch.Tensor:
    """A direction ``[d]`` in activation space for a concept, e.g. to steer with.

    Args:
        X: activations ``[n, d]`` (e.g. ``acts[hook][valid]``).
        y: labels ``[n]`` (class ids / 0-1 / values) or ``[n, K]``.
        cls: the class (or output column) to point towards; required for multiclass / multi-output labels.
        method: ``"mean_diff"`` (mean of ``cls`` rows minus mean of the rest; for regression the covariance
            with the target) or ``"probe"`` (the weight row of a logistic / ridge probe, in original units).
        normalize: return a unit vector (else the raw mean difference, whose length is the typical gap).
    """
    Xt, _ = as_tensor(X)
    yt = check_targets(y, len(Xt)).cpu()
    if method not in ("mean_diff", "probe"):
        raise ValueError(f"method={method!r} is not valid; use 'mean_diff' or 'probe'")
    regression = kind == "regression" or (yt.is_floating_point() and not bool(((yt == 0) | (yt == 1)).all()))
    if yt.ndim == 2:
        if cls is None:
            raise ValueError(f"y has {yt.shape[1]} outputs; pass cls= to pick one")
        yt = yt[:, cls]
        cls = None if regression else 1
    if regression:
        if method == "probe":
            v = RidgeProbe().fit(Xt, yt.float()).coef_[0]
        else:
            yc = yt.double() - yt.double().mean()
            v = ((Xt.double() - Xt.double().mean(0)) * yc[:, None]).mean(0).float()
    else:
        classes = torch.unique(yt)
        if cls is None:
            if len(classes) > 2:
                raise ValueError(f"y has {len(classes)} classes; pass cls= (one of {classes.tolist()})")
            cls = int(classes.max())
        pos = yt == cls
        if not bool(pos.any()) or bool(pos.all()):
            raise ValueError(f"class {cls} must occur in some but not all rows of y")
        if method == "probe":
            v = LogisticProbe(kind="binary").fit(Xt, pos.long()).coef_[0]
        else:
            v = Xt[pos].mean(0) - Xt[~pos].mean(0)
    return v / v.norm().clamp_min(1e-12) if normalize else v
