"""Baselines and controls: each recovers what its assumptions fit, and refuses what they do not."""

from __future__ import annotations

import pytest
import torch

from toolkit.unsupervised import ICA, NMF, PCA, KMeans, RandomDictionary, ci_toy, mmcs
from toolkit.unsupervised.metrics import unit_rows

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def test_ica_reports_the_mixing_matrix_and_beats_pca_on_ica_data():
    d, n = 6, 4000
    A = unit_rows(torch.randn(d, d, generator=_gen(0)))  # rows = directions the sources write into
    u = torch.rand(n, d, generator=_gen(1)) - 0.5
    S = -u.sign() * torch.log1p(-2 * u.abs())  # Laplace sources (non-Gaussian, as ICA needs)
    X = S @ A
    ica = ICA(n_components=d).fit(X)
    pca = PCA(n_components=d).fit(X)
    assert ica.dictionary_.shape == (d, d)
    assert mmcs(ica.dictionary_, A) > 0.95
    assert mmcs(ica.dictionary_, A) > mmcs(pca.dictionary_, A) + 0.1
    assert ica.score(X) > 0.99 and pca.score(X) > 0.99  # both reconstruct: only ICA finds the directions


def test_pca_is_poor_on_sparse_overcomplete_features_but_reconstructs():
    data = ci_toy(0)
    X = data.sample(3000, _gen(1))
    pca = PCA(n_components=64).fit(X)
    assert mmcs(pca.dictionary_, data.features) < 0.5
    assert pca.transform(X).shape == (3000, 64)
    torch.testing.assert_close(pca.reconstruct(X), X, atol=1e-4, rtol=1e-4)
    assert pca.explained_variance_ratio_.sum() == pytest.approx(1.0, abs=1e-4)


def test_spherical_kmeans_finds_clustered_directions():
    centres = unit_rows(torch.randn(5, 16, generator=_gen(0)))
    ids = torch.randint(0, 5, (2000,), generator=_gen(1))
    scale = torch.rand(2000, generator=_gen(2))[:, None] * 3 + 0.5  # norms vary; directions do not
    X = scale * (centres[ids] + 0.05 * torch.randn(2000, 16, generator=_gen(3)))
    sph = KMeans(5, spherical=True, seed=0).fit(X)
    assert mmcs(sph.dictionary_, centres) > 0.99
    codes = sph.transform(X)
    assert codes.shape == (2000, 5) and int((codes != 0).sum(1).max()) == 1
    km = KMeans(5, seed=0).fit(X)
    assert km.predict(X).shape == (2000,)
    assert km.reconstruct(X).shape == X.shape


def test_nmf_refuses_signed_data_and_works_on_non_negative():
    X = torch.randn(100, 8, generator=_gen(0))
    with pytest.raises(ValueError, match="non-negative"):
        NMF(4).fit(X)
    W = torch.rand(300, 3, generator=_gen(1))
    H = torch.rand(3, 8, generator=_gen(2))
    nmf = NMF(3, max_iter=1000).fit(W @ H)
    assert mmcs(nmf.dictionary_, H) > 0.95
    assert nmf.score(W @ H) > 0.98


def test_random_dictionary_control():
    X = torch.randn(500, 16, generator=_gen(0))
    rd = RandomDictionary(32, relu=True, seed=0).fit(X)
    assert rd.dictionary_.shape == (32, 16)
    assert float(rd.transform(X).min()) >= 0.0
    assert rd.score(X) > 0.99  # 32 directions span R^16: reconstruction alone proves nothing
    other = RandomDictionary(32, seed=1).fit(X)
    assert not torch.allclose(rd.dictionary_, other.dictionary_)


def test_unfitted_baselines_raise():
    for est in (PCA(), ICA(), KMeans(), NMF(), RandomDictionary()):
        with pytest.raises(RuntimeError, match="not fitted"):
            est.transform(torch.zeros(3, 4))
