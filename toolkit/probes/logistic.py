"""Batched L2-regularised logistic regression: ``G`` independent probes in one L-BFGS run, in torch.

Every problem's objective is scikit-learn's: ``mean loss + ||W||^2 / (2 C n)`` over its ``n`` real rows, the
intercept unpenalised. :func:`fit_logistic_buckets` runs one L-BFGS per problem, vectorised across problems:
each keeps its own curvature memory (:class:`~toolkit.probes.lbfgs.History`), step size and stopping test, and
drops out when converged. What keeps it fast:

* Rows in buckets. Problems of different row counts (one per position of a layer x position map) are kept in
  buckets of similar counts (:func:`bucket_rows`), so a batched matrix product pads a problem only up to the
  longest problem of its bucket, not of the whole batch.
* Two passes over the data per iteration. The logits are linear in the parameters, so along a search direction
  ``z(t) = z + t zd``: one product gives ``zd``, every line-search trial is elementwise, and one product at the
  accepted point gives the gradient. (Logits kept up to date this way drift from ``X W + b`` by rounding only:
  < 2e-5 after 70 float32 iterations on tree-8.)
* Preconditioning as a change of variables, ``W = P V`` with ``P P^T = (cov + eps)^-1`` per problem (a
  Cholesky factor): the data stay as given and ``P`` only touches ``[K, d]`` parameter blocks. ``eps``, the
  floor under the feature covariance's spectrum, is ``PRECOND_REG`` x the penalty's curvature relative to the
  data's at ``W = 0``: directions the features barely span are then scaled by the penalty, which dominates
  their curvature, instead of being blown up (a fixed floor of 1e-3 needed twice the iterations on tree-8 maps).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from toolkit.probes.lbfgs import History

BUCKET_RATIO = 0.8  # a bucket holds problems with at least this fraction of its longest problem's rows
COMPACT_AT = 0.75  # a bucket drops its converged problems once at most this fraction is still active
PRECOND_REG = 8.0  # see the module docstring
LOG2E = 1.0 / math.log(2.0)


def _terms(z: torch.Tensor, Y: torch.Tensor, wn: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Data loss ``[m]`` and weighted residual ``r = (p - y) * wn`` ``[m, K, n]`` at logits ``z [m, K, n]``.

    Logits are transposed (classes on the short outer axis) so the softmax vectorises along the rows. ``Y`` is
    ``[m, n]`` int64 offsets ``class * n + row`` into a problem's flattened ``[K * n]`` logits (softmax) or
    ``[m, K, n]`` 0/1 (sigmoids); ``wn [m, n]`` is row weight / row count.
    """
    m, K, n = z.shape
    if Y.ndim == 3:
        loss = (F.binary_cross_entropy_with_logits(z, Y, reduction="none").sum(1) * wn).sum(1)
        return loss, (torch.sigmoid(z) - Y).mul_(wn[:, None, :])
    mx = z.amax(1, keepdim=True)
    e = torch.sub(z, mx).mul_(LOG2E).exp2_()  # exp2: 4x faster than torch.exp on the (AVX-512) dev machine
    tot = e.sum(1, keepdim=True)
    lse = (mx + tot.log())[:, 0]
    loss = ((lse - z.reshape(m, K * n).gather(1, Y)) * wn).sum(1)
    r = e.mul_(wn[:, None, :] / tot)
    r.view(m, K * n).scatter_add_(1, Y, -wn)
    return loss, r


class _Bucket:
    """Problems ``ids [m]`` with their rows ``X [m, n_b, d]``, targets ``Y``, weights ``wn [m, n_b]``; the logits
    ``z [m, K, n_b]`` and residuals ``r`` at the current point; the logits' change ``zd`` along the direction."""

    def __init__(self, ids: torch.Tensor, X: torch.Tensor, Y: torch.Tensor, wn: torch.Tensor) -> None:
        self.ids, self.X, self.Y, self.wn = ids, X, Y, wn
        self.z = self.r = self.zd = torch.empty(0)
        self.pending: tuple | None = None

    def keep(self, alive: torch.Tensor) -> None:
        """Keep only the members where ``alive [m]``: the live ones past the first ``k = alive.sum()`` slots move
        into the dead slots among them (in place), then every tensor is cut to its first ``k`` (a view)."""
        k = int(alive.sum())
        holes = (~alive[:k]).nonzero().flatten()
        movers = alive[k:].nonzero().flatten() + k
        for name in ("ids", "X", "Y", "wn", "z", "r"):
            t = getattr(self, name)
            t[holes] = t[movers]
            setattr(self, name, t[:k])


def bucket_rows(counts: list[int], ratio: float = BUCKET_RATIO) -> list[list[int]]:
    """Partition problems by row count: indices sorted by ``counts`` (descending), a new bucket whenever a count
    falls below ``ratio`` x the bucket's first (largest) one. Padding within a bucket is then < ``1 - ratio``."""
    order = sorted(range(len(counts)), key=lambda i: -counts[i])
    out: list[list[int]] = []
    for i in order:
        if not out or counts[i] < ratio * counts[out[-1][0]]:
            out.append([])
        out[-1].append(i)
    return out


class _Rows:
    """The ``G`` problems' rows in buckets; every method takes and returns full-size ``[G, ...]`` tensors indexed
    by problem id (numbered bucket by bucket)."""

    def __init__(self, parts: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], dtype: torch.dtype) -> None:
        self.dtype, self.buckets, self.G = dtype, [], 0
        for X, Y, wn in parts:
            self.buckets.append(_Bucket(torch.arange(self.G, self.G + len(X)), X, Y, wn))
            self.G += len(X)

    def _zeros(self, *shape: int) -> torch.Tensor:
        return torch.zeros(self.G, *shape, dtype=self.dtype)

    def second_moment(self) -> torch.Tensor:
        """``[G, d, d]``: every problem's weighted ``X^T X / n`` (its feature covariance: features are
        standardised)."""
        out = self._zeros(self.buckets[0].X.shape[2], self.buckets[0].X.shape[2])
        for bk in self.buckets:
            out[bk.ids] = torch.bmm((bk.X * bk.wn[..., None]).transpose(1, 2), bk.X)
        return out

    def start(self, b: torch.Tensor) -> torch.Tensor:
        """Move to ``W = 0`` with intercepts ``b [G, K]``; return the data loss ``[G]``."""
        loss = self._zeros()
        for bk in self.buckets:
            bk.z = b[bk.ids][:, :, None].expand(-1, -1, bk.X.shape[1]).contiguous()
            loss[bk.ids], bk.r = _terms(bk.z, bk.Y, bk.wn)
        return loss

    def gradient(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Data-term gradients at the current point: ``gWT [G, K, d]``, ``gb [G, K]``."""
        K, d = self.buckets[0].r.shape[1], self.buckets[0].X.shape[2]
        gW, gb = self._zeros(K, d), self._zeros(K)
        for bk in self.buckets:
            gW[bk.ids] = torch.bmm(bk.r, bk.X)
            gb[bk.ids] = bk.r.sum(2)
        return gW, gb

    def direction(self, DWT: torch.Tensor, db: torch.Tensor) -> None:
        """Set the search direction ``DWT [G, K, d]``, ``db [G, K]``."""
        for bk in self.buckets:
            bk.zd = torch.baddbmm(db[bk.ids][:, :, None], DWT[bk.ids], bk.X.transpose(1, 2))

    def trial(self, t: torch.Tensor, need: torch.Tensor) -> torch.Tensor:
        """Data loss ``[G]`` at steps ``t [G]`` along the direction, for the problems in ``need [G]`` (the others
        must have ``t = 0``: a bucket evaluated whole leaves them where they are)."""
        loss = self._zeros()
        for bk in self.buckets:
            sel = need[bk.ids]
            bk.pending = None
            n_sel = int(sel.sum())
            if n_sel == 0:
                continue
            at = None if n_sel >= COMPACT_AT * len(sel) else sel.nonzero().flatten()
            ids, z, zd, Y, wn = ((bk.ids, bk.z, bk.zd, bk.Y, bk.wn) if at is None else
                                 (bk.ids[at], bk.z[at], bk.zd[at], bk.Y[at], bk.wn[at]))
            zt = torch.addcmul(z, t[ids][:, None, None], zd)
            loss[ids], r = _terms(zt, Y, wn)
            bk.pending = (at, sel, zt, r)
        return loss

    def accept(self, ok: torch.Tensor) -> None:
        """Move the problems in ``ok [G]`` to their last trial point."""
        for bk in self.buckets:
            if bk.pending is None:
                continue
            at, need, zt, r = bk.pending
            bk.pending = None
            if at is None:  # evaluated whole: keep the trial tensors, with the rejected members' rows put back
                stay = (need & ~ok[bk.ids]).nonzero().flatten()  # (members not needed were evaluated at t = 0)
                zt[stay], r[stay] = bk.z[stay], bk.r[stay]
                bk.z, bk.r = zt, r
            else:
                src = ok[bk.ids[at]].nonzero().flatten()
                bk.z[at[src]], bk.r[at[src]] = zt[src], r[src]

    def compact(self, active: torch.Tensor) -> None:
        """Drop converged problems (``active [G]`` False) from buckets where few are left active."""
        kept = []
        for bk in self.buckets:
            alive = active[bk.ids]
            n_alive = int(alive.sum())
            if n_alive == 0:
                continue
            if n_alive <= COMPACT_AT * len(bk.ids):
                bk.keep(alive)
            kept.append(bk)
        self.buckets = kept


def fit_logistic(X: torch.Tensor, Y: torch.Tensor, n_out: int, C: float = 1.0, max_iter: int = 200,
                 tol: float = 1e-4, history: int = 10, precondition: bool = True,
                 weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Fit ``G`` logistic probes at once. Returns ``W [G, d, K]``, ``b [G, K]`` (``K = n_out``).

    The problems are bucketed by row count (:func:`bucket_rows`) and solved by :func:`fit_logistic_buckets`.

    Args:
        X: standardised features ``[G, n, d]`` (float32; padding rows finite, e.g. zero).
        Y: class ids ``[G, n]`` (multinomial, ``n_out`` classes) or 0/1 targets ``[G, n, n_out]`` (sigmoids).
        C: inverse L2 strength, objective ``mean loss + ||W||^2 / (2 C n)`` (scikit-learn's convention).
        precondition: whiten (``W = P V``): same optimum, far fewer iterations on correlated features.
        weights: optional 0/1 row mask ``[G, n]`` (padding rows get 0; ``n`` is then each problem's row count).
    """
    G, n, d = X.shape
    w = torch.ones(G, n, dtype=X.dtype) if weights is None else weights.to(X.dtype)
    extent = torch.where(w > 0, torch.arange(1, n + 1), 0).amax(1).clamp_min(1).tolist()  # then only padding
    buckets = bucket_rows(extent)
    parts = []
    for idx in buckets:
        n_b = max(extent[i] for i in idx)
        parts.append((X[idx, :n_b], Y[idx, :n_b], w[idx, :n_b]))
    W, b = torch.empty(G, d, n_out, dtype=X.dtype), torch.empty(G, n_out, dtype=X.dtype)
    for idx, (Wi, bi) in zip(buckets, fit_logistic_buckets(parts, n_out, C, max_iter, tol, history, precondition)):
        W[idx], b[idx] = Wi, bi
    return W, b


def _preconditioner(cov: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """``L^-1`` ``[G, d, d]`` for ``cov + eps I = L L^T`` (``cov [G, d, d]``, ``eps [G]``): with ``P = L^-T``,
    ``P P^T = (cov + eps I)^-1``."""
    eye = torch.eye(cov.shape[1], dtype=torch.float64)
    L = torch.linalg.cholesky(cov.double() + eps.double()[:, None, None] * eye)
    return torch.linalg.solve_triangular(L, eye.expand_as(L), upper=False).to(cov.dtype)


def fit_logistic_buckets(parts: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], n_out: int,
                         C: float = 1.0, max_iter: int = 200, tol: float = 1e-4, history: int = 10,
                         precondition: bool = True, max_ls: int = 20) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Fit the logistic probes of several buckets in one L-BFGS run; returns ``(W [m, d, K], b [m, K])`` per
    bucket.

    A bucket ``(X [m, n_b, d], Y, weights [m, n_b])`` holds ``m`` problems padded to ``n_b`` rows, ``X``, ``Y``
    and ``weights`` as in :func:`fit_logistic`. The solver owns ``X``: it moves problems within it as they
    converge (pass a copy to keep it). Each problem stops when max |gradient| < ``tol`` (on the
    standardised ``W`` and ``b``, scikit-learn's test), when its objective stops moving (scipy's relative ftol)
    or when its line search (backtracking Armijo, safeguarded quadratic interpolation) fails.
    """
    X0, Y0, _ = parts[0]
    d, K, dtype = X0.shape[2], n_out, X0.dtype
    multinomial = Y0.ndim == 2
    data, lam_all = [], []
    for X, Y, w in parts:
        n_rows = w.to(dtype).sum(1).clamp_min(1.0)
        if multinomial:  # flat offsets class * n + row (see _terms)
            Y = Y.long() * X.shape[1] + torch.arange(X.shape[1])
        else:
            Y = Y.to(dtype).transpose(1, 2).contiguous()
        data.append((X.contiguous(), Y, (w.to(dtype) / n_rows[:, None]).contiguous()))
        lam_all.append(1.0 / (C * n_rows))
    rows = _Rows(data, dtype)
    G, lam_all, spans = rows.G, torch.cat(lam_all), [bk.ids.clone() for bk in rows.buckets]
    curv0 = 1.0 / K if multinomial else 0.25  # the data term's curvature at W = 0 (whitened features)
    R_all = _preconditioner(rows.second_moment(), PRECOND_REG * lam_all / curv0) if precondition else None
    kd = K * d
    theta = torch.zeros(G, kd + K, dtype=dtype)  # [V^T flattened | b]; W^T = V^T P^T = V^T R
    f = rows.start(theta[:, kd:])

    def gradient(active: torch.Tensor, WT: torch.Tensor, R: torch.Tensor | None, lam: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """(gradient in the solver's coordinates ``[A, kd + K]``, max |gradient| on ``W`` and ``b`` ``[A]``)."""
        gW, gb = rows.gradient()
        gW, gb = gW[active] + lam[:, None, None] * WT, gb[active]
        size = torch.maximum(gW.abs().amax((1, 2)), gb.abs().amax(1))
        gV = gW if R is None else torch.bmm(gW, R.transpose(1, 2))  # g_V = P^T g_W
        return torch.cat([gV.reshape(len(gW), -1), gb], 1), size

    active, R, lam = torch.arange(G), R_all, lam_all
    WT = torch.zeros(G, K, d, dtype=dtype)
    g, gsize = gradient(active, WT, R, lam)
    # first step: the inverse curvature at W = 0 when the features are whitened; else a unit steepest-descent step
    gamma0 = 1.0 / curv0 if precondition else 1.0 / max(1.0, float(g.norm(dim=1).max()))
    memory = History(G, kd + K, history, gamma0, dtype)
    stalled = torch.zeros(G, dtype=torch.bool)
    for _ in range(max_iter):
        done = (gsize < tol) | stalled
        if bool(done.any()):
            keep = (~done).nonzero().flatten()
            if len(keep) == 0:
                break
            active, f, g, WT, lam = active[keep], f[keep], g[keep], WT[keep], lam[keep]
            R = None if R_all is None else R_all[active]
            memory.select(keep)
            rows.compact(torch.zeros(G, dtype=torch.bool).index_fill_(0, active, True))
        direction = memory.direction(g)
        slope0 = (g * direction).sum(1)
        DWT = direction[:, :kd].reshape(-1, K, d)
        DWT = DWT if R is None else torch.bmm(DWT, R)
        rows.direction(torch.zeros(G, K, d, dtype=dtype).index_copy_(0, active, DWT),
                       torch.zeros(G, K, dtype=dtype).index_copy_(0, active, direction[:, kd:]))
        # the penalty along the line: lam / 2 * (ww + 2 t wd + t^2 dd)
        ww, wd, dd = (WT * WT).sum((1, 2)), (WT * DWT).sum((1, 2)), (DWT * DWT).sum((1, 2))
        step = torch.ones(len(active), dtype=dtype)
        accepted = torch.zeros(len(active), dtype=torch.bool)
        f_new = f.clone()
        for _ in range(max_ls):
            t = torch.zeros(G, dtype=dtype).index_copy_(0, active, torch.where(accepted, 0.0, step))
            loss = rows.trial(t, torch.zeros(G, dtype=torch.bool).index_copy_(0, active, ~accepted))
            ft = loss[active] + 0.5 * lam * (ww + step * (2 * wd + step * dd))
            ok = ~accepted & (ft <= f + 1e-4 * step * slope0)
            rows.accept(torch.zeros(G, dtype=torch.bool).index_copy_(0, active, ok))
            f_new = torch.where(ok, ft, f_new)
            accepted |= ok
            if bool(accepted.all()):
                break
            # minimiser of the quadratic through f(0), f'(0) and f(step), kept within [0.1, 0.5] x step
            quad = -slope0 * step * step / (2 * (ft - f - slope0 * step).clamp_min(1e-30))
            step = torch.where(accepted, step, torch.minimum(torch.maximum(quad, 0.1 * step), 0.5 * step))
        taken = step * accepted
        s = taken[:, None] * direction
        theta[active] += s
        WT = WT + taken[:, None, None] * DWT
        g_new, gsize = gradient(active, WT, R, lam)
        yv = g_new - g
        memory.push(s, yv, accepted & ((s * yv).sum(1) > 1e-10))
        stalled = ~accepted | ((f - f_new) <= 2.2e-9 * torch.maximum(f.abs(), f_new.abs()).clamp_min(1.0))
        f, g = f_new, g_new
    W = theta[:, :kd].reshape(G, K, d)
    W = (W if R_all is None else torch.bmm(W, R_all)).transpose(1, 2).contiguous()
    return [(W[ids], theta[ids, kd:]) for ids in spans]
