"""Synthetic data with known ground-truth features, for scoring unsupervised methods.

* :class:`SparseFeatureData` - the Sharkey, Braun & Millidge (2022) spec: ``n_features`` random unit
  directions in ``d`` dimensions, ~``n_active`` of them active per sample with frequencies decaying as
  ``decay**i``, correlated firing, magnitudes ``U[0, 1)``. :func:`sharkey_toy` (256-d / 512 features /
  5 active) and :func:`ci_toy` (64 / 128 / 3, CI-sized) are the two presets.
* :class:`ToyModelOfSuperposition` - Elhage et al. (2022): sparse features squeezed through a linear
  bottleneck and read back through a ReLU; :func:`train_tms` trains one in seconds and its hidden
  activations are a second ground-truth data set (the true directions are the columns of ``W``).
"""

from __future__ import annotations

import math

import torch

from toolkit.unsupervised.train import generator


class SparseFeatureData:
    """Sparse superposition of known unit directions.

    ``x = sum_i a_i * features[i]`` with ``a_i ~ U[0, 1)`` when feature ``i`` fires. Feature ``i`` fires
    with probability ``p_i ∝ decay**i`` (scaled so that on average ``n_active`` fire). With
    ``correlated=True`` firing is driven by a Gaussian copula with a random low-rank correlation
    (``n_factors`` shared factors) so that features co-occur, while each ``p_i`` stays exact.

    Args:
        d: ambient dimension. n_features: number of ground-truth directions. n_active: mean active count.
        decay: frequency decay per feature index. correlated: Gaussian-copula correlated firing.
        n_factors / factor_scale: rank and strength of the correlation. seed: fixes the directions and
        the correlation structure (sampling uses its own generator).

    Attributes:
        features: ``[n_features, d]`` unit rows (the ground truth). probs: ``[n_features]`` firing rates.
    """

    def __init__(self, d: int = 256, n_features: int = 512, n_active: float = 5.0, decay: float = 0.99,
                 correlated: bool = True, n_factors: int = 8, factor_scale: float = 0.5, seed: int = 0):
        if d < 1 or n_features < 1:
            raise ValueError(f"d and n_features must be positive, got d={d}, n_features={n_features}")
        if not 0 < n_active < n_features:
            raise ValueError(f"n_active must be in (0, n_features={n_features}), got {n_active}")
        g = generator(seed, "sparse-feature-data")
        self.d, self.n_features, self.n_active, self.decay = d, n_features, n_active, decay
        self.correlated = correlated
        feats = torch.randn(n_features, d, generator=g)
        self.features = feats / feats.norm(dim=1, keepdim=True)
        rel = decay ** torch.arange(n_features, dtype=torch.float64)
        probs = (n_active * rel / rel.sum()).clamp(max=0.999)
        self.probs = probs.float()
        # firing <=> z_i < Phi^-1(p_i) with z_i ~ N(0, 1) marginally
        self._thresh = (math.sqrt(2.0) * torch.erfinv(2 * probs - 1)).float()
        self._factors = torch.randn(n_features, n_factors, generator=g) * factor_scale if correlated else None
        if self._factors is not None:
            self._z_scale = 1.0 / torch.sqrt(1.0 + self._factors.pow(2).sum(1))

    def sample_coefficients(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Ground-truth coefficients ``[n, n_features]`` (zero where a feature is silent)."""
        z = torch.randn(n, self.n_features, generator=generator)
        if self._factors is not None:
            shared = torch.randn(n, self._factors.shape[1], generator=generator) @ self._factors.T
            z = (z + shared) * self._z_scale
        active = z < self._thresh
        mags = torch.rand(n, self.n_features, generator=generator)
        return mags * active

    def sample(self, n: int, generator: torch.Generator | None = None,
               return_coefficients: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``X [n, d]`` (and the coefficients ``[n, n_features]`` if asked)."""
        coef = self.sample_coefficients(n, generator)
        x = coef @ self.features
        return (x, coef) if return_coefficients else x

    def source(self, seed: int = 0):
        """A callable ``source(batch_size) -> X [batch_size, d]`` of fresh samples, for ``fit``."""
        g = generator(seed, "sparse-feature-source")
        return lambda batch_size: self.sample(batch_size, g)

    def __repr__(self) -> str:
        return (f"SparseFeatureData(d={self.d}, n_features={self.n_features}, n_active={self.n_active}, "
                f"decay={self.decay}, correlated={self.correlated})")


def sharkey_toy(seed: int = 0) -> SparseFeatureData:
    """The Sharkey et al. (2022) spec: 256-d, 512 features, ~5 active, decay 0.99, correlated."""
    return SparseFeatureData(d=256, n_features=512, n_active=5.0, decay=0.99, correlated=True, seed=seed)


def ci_toy(seed: int = 0) -> SparseFeatureData:
    """The CI-sized variant: 64-d, 128 features, ~3 active (an SAE recovers it in seconds)."""
    return SparseFeatureData(d=64, n_features=128, n_active=3.0, decay=0.99, correlated=True, seed=seed)


class ToyModelOfSuperposition(torch.nn.Module):
    """Elhage et al. (2022): ``h = W x`` (``W [d_hidden, n_features]``), ``x' = ReLU(W^T h + b)``.

    After training, ``hidden(x)`` gives ``[n, d_hidden]`` activations in which feature ``i`` points along
    ``W[:, i]``; :meth:`true_directions` returns those as unit rows ``[n_features, d_hidden]``.
    """

    def __init__(self, n_features: int = 20, d_hidden: int = 5, seed: int = 0):
        super().__init__()
        g = generator(seed, "tms-init")
        self.W = torch.nn.Parameter(torch.randn(d_hidden, n_features, generator=g) / math.sqrt(d_hidden))
        self.b = torch.nn.Parameter(torch.zeros(n_features))

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.W.T

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.hidden(x) @ self.W + self.b)

    def true_directions(self) -> torch.Tensor:
        w = self.W.detach().T
        return w / w.norm(dim=1, keepdim=True).clamp_min(1e-12)


def tms_features(n: int, n_features: int, feature_prob: float, generator: torch.Generator | None = None
                 ) -> torch.Tensor:
    """Sparse feature vectors ``[n, n_features]``: each entry ``U[0,1)`` with prob ``feature_prob``, else 0."""
    mask = torch.rand(n, n_features, generator=generator) < feature_prob
    return torch.rand(n, n_features, generator=generator) * mask


def train_tms(n_features: int = 20, d_hidden: int = 5, feature_prob: float = 0.05, importance_decay: float = 0.9,
              steps: int = 3000, batch_size: int = 1024, lr: float = 3e-3, seed: int = 0,
              progress: bool = False) -> ToyModelOfSuperposition:
    """Train a Toy Model of Superposition (importance ``importance_decay**i`` weights the MSE)."""
    from tqdm.auto import tqdm

    g = generator(seed, "tms-data")
    model = ToyModelOfSuperposition(n_features, d_hidden, seed=seed)
    importance = importance_decay ** torch.arange(n_features, dtype=torch.float32)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    for _ in tqdm(range(steps), desc="TMS", disable=not progress):
        x = tms_features(batch_size, n_features, feature_prob, g)
        loss = (importance * (model(x) - x).pow(2)).sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval()
