"""Baselines and controls with the SAE's API: ``fit(X)``, ``transform(X)``, ``reconstruct(X)``, ``dictionary_``.

``dictionary_ [n_components, d]`` holds unit-norm directions, so every method is scored the same way
(``ground_truth_scores(method.dictionary_, true_features)``, ``match_labels(method.transform(X), ...)``).

* :class:`PCA` - principal directions.
* :class:`ICA` - FastICA; ``dictionary_`` is the *mixing* matrix (columns = directions that sources
  write into activation space), not the unmixing rows (which are filters, not features).
* :class:`KMeans` (``spherical=True`` clusters directions by cosine) - ``dictionary_`` = centroids.
* :class:`NMF` - non-negative inputs only (e.g. ReLU outputs); signed data is refused.
* Controls: :class:`RandomDictionary` (random unit directions, codes = projections) and
  :class:`FrozenDecoderSAE` (an SAE whose decoder stays random: only encoder and biases train).
  A method's result means something only where it beats these.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from toolkit._estimator import DEPRECATED, Estimator
from toolkit._threads import torch_threads
from toolkit.unsupervised.metrics import reconstruction_metrics, unit_rows
from toolkit.unsupervised.sae import SparseAutoencoder
from toolkit.unsupervised.train import generator


def _np(x: torch.Tensor) -> np.ndarray:
    """A checked float32 tensor ``[n, d]`` as a float64 array (what scikit-learn fits on)."""
    return x.cpu().numpy().astype(np.float64)


class _Dictionary(Estimator):
    """Shared helpers: ``fit`` checks ``X [n, d]`` and runs ``_fit`` on it with ``threads`` threads (default 1:
    measured 5-15x faster than two on a shared 2-core machine for these sizes; None leaves the settings
    alone), ``_x`` checks inputs of ``transform`` / ``predict`` / ``reconstruct`` against the fit,
    ``score`` = explained variance, ``evaluate`` = SAELens-named metrics."""

    dictionary_: torch.Tensor

    def fit(self, X: Any, y: Any = None):
        """Fit on activations ``X [n_rows, d]`` (``y`` is ignored). Returns ``self``."""
        x, _ = self._validate(X, reset=True)
        with torch_threads(self._threads(), blas=True):
            self._fit(x)
        return self

    def _x(self, X: Any) -> torch.Tensor:
        """Checked float32 ``[n, d]`` with the fitted ``d``."""
        self._check_fitted("dictionary_")
        return self._validate(X, reset=False)[0]

    def fit_transform(self, X: Any, y: Any = None) -> torch.Tensor:
        return self.fit(X).transform(X)

    def evaluate(self, X: Any) -> dict[str, Any]:
        x = self._x(X)
        codes = self.transform(x)
        return reconstruction_metrics(x, self.reconstruct(x), codes)

    def score(self, X: Any, y: Any = None) -> float:
        return self.evaluate(X)["explained_variance"]

    def __repr__(self) -> str:
        n = getattr(self, "n_components", getattr(self, "n_clusters", "?"))
        return f"{type(self).__name__}({n}{', fitted' if hasattr(self, 'dictionary_') else ''})"


class _SklearnDictionary(_Dictionary):
    """A fitted scikit-learn decomposition in ``model_``: its ``transform`` / ``inverse_transform``."""

    def transform(self, X: Any) -> torch.Tensor:
        """``[n, d]`` -> codes ``[n, n_components]``."""
        x = _np(self._x(X))
        return torch.from_numpy(self.model_.transform(x)).float()

    def reconstruct(self, X: Any) -> torch.Tensor:
        """``[n, d]`` -> ``[n, d]`` through the codes."""
        codes = self.transform(X).double().numpy()
        return torch.from_numpy(self.model_.inverse_transform(codes)).float()


class PCA(_SklearnDictionary):
    """Principal components. ``transform`` -> projections ``[n, n_components]`` of the centred data."""

    def __init__(self, n_components: int = 16, seed: int = 0, threads: int | None = 1,
                 n_threads: Any = DEPRECATED):
        self.n_components, self.seed, self.threads = n_components, seed, threads
        self.n_threads = n_threads

    def _fit(self, x: torch.Tensor) -> None:
        from sklearn.decomposition import PCA as _PCA

        x = _np(x)
        n = min(self.n_components, *x.shape)
        self.model_ = _PCA(n_components=n, random_state=self.seed).fit(x)
        self.dictionary_ = torch.from_numpy(self.model_.components_).float()
        self.explained_variance_ratio_ = torch.from_numpy(self.model_.explained_variance_ratio_).float()


class ICA(_SklearnDictionary):
    """FastICA. ``dictionary_`` = unit-norm columns of the mixing matrix; ``transform`` -> sources."""

    def __init__(self, n_components: int = 16, max_iter: int = 400, seed: int = 0, threads: int | None = 1,
                 n_threads: Any = DEPRECATED):
        self.n_components, self.max_iter, self.seed, self.threads = n_components, max_iter, seed, threads
        self.n_threads = n_threads

    def _fit(self, x: torch.Tensor) -> None:
        import warnings

        from sklearn.decomposition import FastICA
        from sklearn.exceptions import ConvergenceWarning

        x = _np(x)
        n = min(self.n_components, *x.shape)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.model_ = FastICA(n_components=n, whiten="unit-variance", max_iter=self.max_iter,
                                  random_state=self.seed).fit(x)
        self.mixing_ = torch.from_numpy(self.model_.mixing_).float()  # [d, n_components]
        self.dictionary_ = unit_rows(self.mixing_.T)


class KMeans(_Dictionary):
    """k-means (``spherical=False``) or spherical k-means on unit-normalised rows (``spherical=True``).

    ``transform`` -> one-hot cluster membership ``[n, n_clusters]`` scaled by the projection on the
    centroid direction (spherical) or 1 (plain); ``predict`` -> cluster ids ``[n]``; ``reconstruct``
    -> the assigned centroid (plain) or the projection onto it (spherical).
    """

    def __init__(self, n_clusters: int = 16, spherical: bool = False, n_iter: int = 50, n_init: int = 3,
                 seed: int = 0, threads: int | None = 1, n_threads: Any = DEPRECATED):
        self.n_clusters, self.spherical, self.n_iter, self.n_init, self.seed = (n_clusters, spherical, n_iter,
                                                                                n_init, seed)
        self.threads, self.n_threads = threads, n_threads

    def _fit(self, x: torch.Tensor) -> None:
        if x.shape[0] < self.n_clusters:
            raise ValueError(f"need at least n_clusters={self.n_clusters} rows, got {x.shape[0]}")
        if not self.spherical:
            from sklearn.cluster import KMeans as _KMeans

            km = _KMeans(self.n_clusters, n_init=self.n_init, max_iter=self.n_iter, random_state=self.seed)
            self.cluster_centers_ = torch.from_numpy(km.fit(x.numpy()).cluster_centers_).float()
        else:
            self.cluster_centers_ = self._spherical(unit_rows(x))
        self.dictionary_ = unit_rows(self.cluster_centers_)

    def _spherical(self, u: torch.Tensor) -> torch.Tensor:
        g = generator(self.seed, "spherical-kmeans")
        best, best_obj = None, -float("inf")
        for _ in range(self.n_init):
            c = u[torch.randperm(u.shape[0], generator=g)[: self.n_clusters]].clone()
            for _ in range(self.n_iter):
                assign = (u @ c.T).argmax(1)
                new = torch.zeros_like(c).index_add_(0, assign, u)
                empty = new.norm(dim=1) == 0  # re-seed empty clusters at random rows
                new[empty] = u[torch.randint(0, u.shape[0], (int(empty.sum()),), generator=g)]
                new = unit_rows(new)
                if torch.allclose(new, c):
                    break
                c = new
            obj = float((u @ c.T).max(1).values.sum())
            if obj > best_obj:
                best, best_obj = c, obj
        return best

    def predict(self, X: Any) -> torch.Tensor:
        x = self._x(X)
        if self.spherical:
            return (unit_rows(x) @ self.dictionary_.T).argmax(1)
        return torch.cdist(x, self.cluster_centers_).argmin(1)

    def transform(self, X: Any) -> torch.Tensor:
        x = self._x(X)
        ids = self.predict(x)
        out = torch.zeros(x.shape[0], self.n_clusters)
        val = (x @ self.dictionary_.T).gather(1, ids[:, None])[:, 0] if self.spherical else torch.ones(len(ids))
        return out.scatter_(1, ids[:, None], val[:, None])

    def reconstruct(self, X: Any) -> torch.Tensor:
        codes = self.transform(X)
        return codes @ (self.dictionary_ if self.spherical else self.cluster_centers_)


class NMF(_Dictionary):
    """Non-negative matrix factorisation ``X ≈ W H`` for non-negative ``X`` (e.g. post-ReLU activations).

    ``transform`` -> ``W [n, n_components]``; ``dictionary_`` = unit-norm rows of ``H``.
    """

    def __init__(self, n_components: int = 16, max_iter: int = 400, seed: int = 0, threads: int | None = 1,
                 n_threads: Any = DEPRECATED):
        self.n_components, self.max_iter, self.seed, self.threads = n_components, max_iter, seed, threads
        self.n_threads = n_threads

    @staticmethod
    def _check(x: np.ndarray) -> None:
        if x.min() < 0:
            raise ValueError(f"NMF needs non-negative inputs, but the minimum is {x.min():.3g}; use it on "
                             "post-ReLU activations only, or use PCA / ICA / SparseAutoencoder for signed data "
                             "(residual-stream and GELU activations are signed)")

    def _fit(self, x: torch.Tensor) -> None:
        import warnings

        from sklearn.decomposition import NMF as _NMF
        from sklearn.exceptions import ConvergenceWarning

        x = _np(x)
        self._check(x)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.model_ = _NMF(n_components=self.n_components, init="nndsvda", max_iter=self.max_iter,
                               random_state=self.seed).fit(x)
        self.components_ = torch.from_numpy(self.model_.components_).float()
        self.dictionary_ = unit_rows(self.components_)

    def transform(self, X: Any) -> torch.Tensor:
        x = _np(self._x(X))
        self._check(x)
        return torch.from_numpy(self.model_.transform(x)).float()

    def reconstruct(self, X: Any) -> torch.Tensor:
        return self.transform(X) @ self.components_


class RandomDictionary(_Dictionary):
    """Control: ``n_components`` random unit directions. ``transform`` -> projections of the centred data
    (``relu=True``: their positive part, like SAE latents); ``reconstruct`` -> least-squares fit."""

    def __init__(self, n_components: int = 16, relu: bool = False, seed: int = 0, threads: int | None = 1,
                 n_threads: Any = DEPRECATED):
        self.n_components, self.relu, self.seed, self.threads = n_components, relu, seed, threads
        self.n_threads = n_threads

    def _fit(self, x: torch.Tensor) -> None:
        g = generator(self.seed, "random-dictionary")
        self.dictionary_ = unit_rows(torch.randn(self.n_components, x.shape[1], generator=g))
        self.mean_ = x.mean(0)

    def transform(self, X: Any) -> torch.Tensor:
        p = (self._x(X) - self.mean_) @ self.dictionary_.T
        return p.clamp_min(0) if self.relu else p

    def reconstruct(self, X: Any) -> torch.Tensor:
        xc = self._x(X) - self.mean_
        coef = torch.linalg.lstsq(self.dictionary_.T, xc.T).solution.T
        return coef @ self.dictionary_ + self.mean_


class FrozenDecoderSAE(SparseAutoencoder):
    """Control: a :class:`SparseAutoencoder` whose unit-norm decoder stays at its random initialisation.

    Encoder and biases still train, so it reconstructs reasonably and its latents are sparse - but its
    directions were never learned. Whatever label-matching a trained SAE shows must beat this.
    """

    def __init__(self, **params: Any):
        params.setdefault("freeze_decoder", True)
        super().__init__(**params)

    def fit(self, X: Any, y: Any = None) -> FrozenDecoderSAE:
        if not self.freeze_decoder:
            raise ValueError("FrozenDecoderSAE always freezes its decoder (freeze_decoder=True); use "
                             "SparseAutoencoder instead")
        return super().fit(X, y)
