"""Toy generators produce what their specs promise."""

from __future__ import annotations

import pytest
import torch

from toolkit.unsupervised import (
    SparseAutoencoder,
    SparseFeatureData,
    ci_toy,
    mmcs,
    sharkey_toy,
    train_tms,
)
from toolkit.unsupervised.toy_data import tms_features

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_sharkey_spec_statistics():
    data = sharkey_toy(0)
    assert data.features.shape == (512, 256)
    torch.testing.assert_close(data.features.norm(dim=1), torch.ones(512))
    X, coef = data.sample(10_000, torch.Generator().manual_seed(0), return_coefficients=True)
    torch.testing.assert_close(X, coef @ data.features)
    active = coef > 0
    assert abs(float(active.sum(1).float().mean()) - 5.0) < 0.2
    freq = active.float().mean(0)
    torch.testing.assert_close(freq[:50].mean(), data.probs[:50].mean(), rtol=0.06, atol=0)
    assert float(freq[:64].mean()) > 3 * float(freq[-64:].mean())  # decay 0.99^i
    mags = coef[active]
    assert 0.0 <= float(mags.min()) and float(mags.max()) < 1.0 and abs(float(mags.mean()) - 0.5) < 0.02


def test_correlated_firing_differs_from_independent():
    corr = SparseFeatureData(d=16, n_features=32, n_active=4, correlated=True, seed=0)
    ind = SparseFeatureData(d=16, n_features=32, n_active=4, correlated=False, seed=0)
    g = torch.Generator().manual_seed(1)

    def spread(data):
        a = (data.sample_coefficients(20_000, g) > 0).float()
        c = torch.corrcoef(a.T)
        off = c[~torch.eye(32, dtype=torch.bool)]
        return float(off.abs().mean())

    assert spread(corr) > 2 * spread(ind)
    torch.testing.assert_close(corr.features, ind.features)  # same seed, same directions


def test_source_and_seeds():
    a, b = ci_toy(0), ci_toy(1)
    assert not torch.allclose(a.features, b.features)
    src1, src2 = a.source(seed=3), a.source(seed=3)
    torch.testing.assert_close(src1(8), src2(8))
    assert src1(5).shape == (5, 64)
    with pytest.raises(ValueError, match="n_active"):
        SparseFeatureData(d=4, n_features=3, n_active=5)


def test_tms_superposition_and_sae_recovery():
    tms = train_tms(n_features=12, d_hidden=4, feature_prob=0.05, steps=600, seed=0)
    g = torch.Generator().manual_seed(0)
    x = tms_features(4000, 12, 0.05, g)
    with torch.no_grad():
        err = (tms(x) - x).pow(2).sum(1).mean()
    assert float(err) < float(x.pow(2).sum(1).mean()) * 0.5  # 12 features through 4 dims, mostly recovered
    H = tms.hidden(x).detach()
    assert tms.true_directions().shape == (12, 4)
    sae = SparseAutoencoder(d_sae=24, l1_coefficient=0.05, n_samples=100_000, batch_size=256,
                            progress=False).fit(H)
    assert mmcs(sae.dictionary_, tms.true_directions()) > 0.8
