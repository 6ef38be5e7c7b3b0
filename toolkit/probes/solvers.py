"""Batched probe solvers: many independent linear probes fitted at once, in torch.

Every function takes a stack of ``G`` problems that share the number of rows: ``X [G, n, d]`` (e.g. one slice
per layer, or per layer x {real labels, control labels}). Problems with fewer rows are padded and given a
``weights [G, n]`` row mask (1 = real row, 0 = padding), so cells of different sizes (one per position) are
fitted in one batch too. Features are standardised per problem on the training rows (:func:`standardize`),
so one regularisation strength suits every layer.

* :func:`fit_logistic` (from :mod:`toolkit.probes.logistic`): multinomial (``Y [G, n]`` class ids) or
  independent sigmoid outputs (``Y [G, n, K]`` 0/1, binary = ``K=1``), L2 penalty ``||W||^2 / (2 C n)`` like
  scikit-learn's ``C``; one batched L-BFGS per problem, all problems vectorised together.
* :func:`fit_ridge`: closed-form ridge regression for ``Y [G, n, K]`` (``alpha`` on the summed squared error,
  like scikit-learn's ``Ridge``), intercept unpenalised.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from toolkit.probes.logistic import fit_logistic

__all__ = ["fit_logistic", "fit_mlp", "fit_ridge", "logits", "mlp_forward", "standardize"]


def standardize(X: torch.Tensor, weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-problem feature ``(mean [G, 1, d], std [G, 1, d])`` over the (weighted) rows; constant features get
    std 1."""
    if weights is None:
        mean = X.mean(1, keepdim=True)
        std = X.std(1, keepdim=True, unbiased=False)
    else:
        w = (weights / weights.sum(1, keepdim=True).clamp_min(1))[..., None]
        mean = (X * w).sum(1, keepdim=True)
        std = (((X - mean) ** 2) * w).sum(1, keepdim=True).sqrt()
    return mean, torch.where(std > 1e-6, std, torch.ones_like(std))


def logits(X: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``X [G, n, d] @ W [G, d, K] + b [G, K]`` -> ``[G, n, K]``."""
    return torch.baddbmm(b[:, None, :], X, W)


def fit_ridge(X: torch.Tensor, Y: torch.Tensor, alpha: float = 1.0, weights: torch.Tensor | None = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """Closed-form ridge for ``G`` problems: ``X [G, n, d]``, ``Y [G, n, K]`` -> ``W [G, d, K]``, ``b [G, K]``
    (``weights``: optional 0/1 row mask ``[G, n]``)."""
    Xd, Yd = X.double(), Y.double()
    w = torch.ones(X.shape[:2], dtype=torch.float64) if weights is None else weights.double()
    wm = (w / w.sum(1, keepdim=True).clamp_min(1))[..., None]
    xm, ym = (Xd * wm).sum(1, keepdim=True), (Yd * wm).sum(1, keepdim=True)
    Xc, Yc = (Xd - xm) * w[..., None], (Yd - ym) * w[..., None]
    eye = torch.eye(X.shape[2], dtype=torch.float64)
    W = torch.linalg.solve(Xc.transpose(1, 2) @ Xc + alpha * eye, Xc.transpose(1, 2) @ Yc)
    b = (ym - xm @ W).squeeze(1)
    return W.to(X.dtype), b.to(X.dtype)


def fit_mlp(X: torch.Tensor, Y: torch.Tensor, n_out: int, regression: bool = False, hidden: int = 64,
            steps: int = 1500, lr: float = 1e-2, weight_decay: float = 1e-4, batch_size: int = 256, seed: int = 0
            ) -> dict[str, torch.Tensor]:
    """Fit ``G`` one-hidden-layer ReLU MLPs at once (AdamW on minibatches, one-cycle schedule, batched matmuls).

    ``Y`` as in :func:`fit_logistic` (class ids ``[G, n]`` or 0/1 ``[G, n, K]``) or float ``[G, n, K]`` with
    ``regression=True``. Returns the weights ``{"W1" [G, d, h], "b1" [G, h], "W2" [G, h, K], "b2" [G, K]}``.
    """
    G, n, d = X.shape
    g = torch.Generator().manual_seed(seed)
    p = {"W1": torch.randn(G, d, hidden, generator=g) * (2.0 / d) ** 0.5, "b1": torch.zeros(G, hidden),
         "W2": torch.randn(G, hidden, n_out, generator=g) * (1.0 / hidden) ** 0.5, "b2": torch.zeros(G, n_out)}
    p = {k: v.to(X.dtype).requires_grad_(True) for k, v in p.items()}
    opt = torch.optim.AdamW(list(p.values()), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    multinomial = Y.ndim == 2 and not regression
    order = torch.randperm(n, generator=g)
    at = 0
    with torch.enable_grad():
        for _ in range(steps):
            if at + batch_size > n:
                order, at = torch.randperm(n, generator=g), 0
            idx = order[at:at + batch_size]
            at += batch_size
            z = mlp_forward(p, X[:, idx])
            y = Y[:, idx]
            if regression:
                loss = F.mse_loss(z, y.to(z.dtype), reduction="sum") / len(idx)
            elif multinomial:
                loss = F.cross_entropy(z.reshape(-1, n_out), y.reshape(-1).long(), reduction="sum") / len(idx)
            else:
                loss = F.binary_cross_entropy_with_logits(z, y.to(z.dtype), reduction="sum") / len(idx)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return {k: v.detach() for k, v in p.items()}


def mlp_forward(p: dict[str, torch.Tensor], X: torch.Tensor) -> torch.Tensor:
    """``X [G, n, d]`` -> outputs ``[G, n, K]`` of the batched MLPs from :func:`fit_mlp`."""
    h = torch.relu(torch.baddbmm(p["b1"][:, None, :], X, p["W1"]))
    return torch.baddbmm(p["b2"][:, None, :], h, p["W2"])
