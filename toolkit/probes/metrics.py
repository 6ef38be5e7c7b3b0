"""Held-out scores with example-level bootstrap error bars, paired across the systems being compared.

Rows of one example are not independent (neighbouring positions share a context), so the bootstrap resamples
*examples*: for ``B`` resamples a count matrix ``[B, n_examples]`` weights every example's per-row sums. The
same resamples score every system (probe, trivial baseline, control, random-init twin), so differences get
paired error bars.

Scores: ``accuracy`` for binary / multiclass (fraction of rows right) and multilabel (fraction of outputs
right, averaged over rows); ``r2`` for regression (uniform average over outputs that vary).
"""

from __future__ import annotations

import torch


def metric_name(kind: str) -> str:
    return "r2" if kind == "regression" else "accuracy"


def predict(kind: str, z: torch.Tensor) -> torch.Tensor:
    """Raw outputs ``[..., K]`` -> predictions: class ids (multiclass), 0/1 (binary, multilabel), values."""
    if kind == "multiclass":
        return z.argmax(-1)
    if kind in ("binary", "multilabel"):
        return (z > 0).to(torch.long)
    return z


class Scorer:
    """Bootstrap scorer for one set of test rows.

    Args:
        kind: the label kind.
        y: test targets ``[n]`` (class ids) or ``[n, K]``.
        example: example id of every test row ``[n]``.
        n_boot: bootstrap resamples (0: point estimates only).
        seed: seeds the resampling.
    """

    def __init__(self, kind: str, y: torch.Tensor, example: torch.Tensor, n_boot: int = 200, seed: int = 0):
        self.kind = kind
        self.y = y
        uniq, self.inv = torch.unique(example, return_inverse=True)
        self.n_ex = len(uniq)
        g = torch.Generator().manual_seed(seed)
        ones = torch.ones(1, self.n_ex, dtype=torch.float64)
        if n_boot > 0:
            draws = torch.randint(0, self.n_ex, (n_boot, self.n_ex), generator=g)
            counts = torch.zeros(n_boot, self.n_ex, dtype=torch.float64).scatter_add_(
                1, draws, torch.ones_like(draws, dtype=torch.float64))
            self.counts = torch.cat([ones, counts])
        else:
            self.counts = ones
        self.rows = self._per_example(torch.ones(len(y), dtype=torch.float64))

    def _per_example(self, v: torch.Tensor) -> torch.Tensor:
        shape = (self.n_ex,) + tuple(v.shape[1:])
        return torch.zeros(shape, dtype=torch.float64).index_add_(0, self.inv, v.double())

    def scores(self, pred: torch.Tensor) -> torch.Tensor:
        """``[1 + n_boot]`` scores of predictions for the test rows; entry 0 is the point estimate."""
        y = self.y
        if self.kind == "regression":
            y2 = y.reshape(len(y), -1).double()
            p2 = pred.reshape(len(y), -1).double()
            sse = self.counts @ self._per_example((y2 - p2) ** 2)
            sy = self.counts @ self._per_example(y2)
            syy = self.counts @ self._per_example(y2 ** 2)
            n = (self.counts @ self.rows)[:, None]
            sst = syy - sy ** 2 / n
            ok = sst[0] > 1e-9 * n[0, 0]
            if not bool(ok.any()):
                return torch.full((len(self.counts),), float("nan"), dtype=torch.float64)
            r2 = 1 - sse[:, ok] / sst[:, ok].clamp_min(1e-12)
            return r2.mean(1)
        right = (pred == y).double()
        if right.ndim > 1:
            right = right.reshape(len(y), -1).mean(1)
        return (self.counts @ self._per_example(right)) / (self.counts @ self.rows)


def summary(s: torch.Tensor) -> dict[str, float]:
    """Point estimate, bootstrap std and 95% percentile interval from :meth:`Scorer.scores` output."""
    point = float(s[0])
    if len(s) < 3:
        return {"score": point, "std": float("nan"), "lo": float("nan"), "hi": float("nan")}
    boot = s[1:]
    return {"score": point, "std": float(boot.std()), "lo": float(boot.quantile(0.025)),
            "hi": float(boot.quantile(0.975))}
