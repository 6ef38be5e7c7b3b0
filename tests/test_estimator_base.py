"""One estimator base for every probe, eraser and dictionary: input policy, get/set_params, threads, SAE warning."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from toolkit._estimator import check_array, check_targets
from toolkit.probes import LogisticProbe, MLPProbe, RidgeProbe
from toolkit.probes.erasure import LeaceEraser
from toolkit.unsupervised.baselines import ICA, NMF, PCA, FrozenDecoderSAE, KMeans, RandomDictionary
from toolkit.unsupervised.ccs import CCS, contrast_baselines, make_contrast_pairs
from toolkit.unsupervised.sae import SAEFitWarning, SparseAutoencoder

N, D = 60, 6
SAE_FAST = dict(n_samples=2048, batch_size=256, progress=False)


def data():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(N, D, generator=g).abs() + 0.1  # non-negative: NMF takes it too
    return X, (X[:, 0] > X[:, 1]).long()


def _supervised(est, X, y):
    return est.fit(X, y)


# name -> (estimator, fit(est, X, y), apply(est, X)): apply is predict / transform
ESTIMATORS = {
    "LogisticProbe": (lambda: LogisticProbe(), _supervised, lambda e, X: e.predict(X)),
    "RidgeProbe": (lambda: RidgeProbe(alpha=2.0), lambda e, X, y: e.fit(X, y * 1.0), lambda e, X: e.predict(X)),
    "MLPProbe": (lambda: MLPProbe(hidden=4, steps=5), _supervised, lambda e, X: e.predict(X)),
    "LeaceEraser": (lambda: LeaceEraser(), _supervised, lambda e, X: e.transform(X)),
    "PCA": (lambda: PCA(3), lambda e, X, y: e.fit(X), lambda e, X: e.transform(X)),
    "ICA": (lambda: ICA(3, max_iter=50), lambda e, X, y: e.fit(X), lambda e, X: e.transform(X)),
    "KMeans": (lambda: KMeans(3, n_init=1), lambda e, X, y: e.fit(X), lambda e, X: e.predict(X)),
    "SphericalKMeans": (lambda: KMeans(3, spherical=True, n_init=1), lambda e, X, y: e.fit(X),
                        lambda e, X: e.transform(X)),
    "NMF": (lambda: NMF(3, max_iter=50), lambda e, X, y: e.fit(X), lambda e, X: e.transform(X)),
    "RandomDictionary": (lambda: RandomDictionary(4), lambda e, X, y: e.fit(X), lambda e, X: e.reconstruct(X)),
    "SparseAutoencoder": (lambda: SparseAutoencoder(d_sae=8, **SAE_FAST), lambda e, X, y: e.fit(X),
                          lambda e, X: e.transform(X)),
    "FrozenDecoderSAE": (lambda: FrozenDecoderSAE(d_sae=8, **SAE_FAST), lambda e, X, y: e.fit(X),
                         lambda e, X: e.transform(X)),
    "CCS": (lambda: CCS(n_restarts=2, n_epochs=5), lambda e, X, y: e.fit(X, 1 - X),  # x_neg: any same-shape
            lambda e, X: e.predict(X, 1 - X)),
}


def fitted(name):
    make, fit, _ = ESTIMATORS[name]
    X, y = data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SAEFitWarning)  # tiny SAEs on 60 rows: the fit quality is not the point
        return fit(make(), X, y)


@pytest.mark.parametrize("name", ESTIMATORS)
@pytest.mark.parametrize("bad, word", [(float("nan"), "NaN"), (float("inf"), "inf"), (-float("inf"), "inf")])
def test_fit_refuses_nan_and_inf_and_says_how_many_rows(name, bad, word):
    make, fit, _ = ESTIMATORS[name]
    X, y = data()
    X[[3, 7], 2] = bad
    with pytest.raises(ValueError, match=rf"{word} in 2 of {N} rows \(first at row 3\); drop those rows") as e:
        fit(make(), X, y)
    assert "impute" in str(e.value)
    with pytest.raises(ValueError, match=word):  # numpy input: the same policy
        fit(make(), X.numpy(), y.numpy())


@pytest.mark.parametrize("name", ESTIMATORS)
def test_predict_and_transform_refuse_nan_and_wrong_width(name):
    est = fitted(name)
    apply = ESTIMATORS[name][2]
    X, _ = data()
    assert est.n_features_in_ == D
    apply(est, X)  # fine
    X[5, 0] = float("nan")
    with pytest.raises(ValueError, match=r"NaN in 1 of 60 rows"):  # not a silent class 0
        apply(est, X)
    with pytest.raises(ValueError, match=rf"has {D + 1} features but this \w+ was fitted on {D}"):
        apply(est, torch.ones(4, D + 1))


@pytest.mark.parametrize("name", ESTIMATORS)
def test_get_params_round_trips_through_the_constructor(name):
    est = ESTIMATORS[name][0]()
    params = est.get_params()
    assert "threads" in params or name == "LeaceEraser"  # one name for the thread count everywhere
    twin = type(est)(**params)
    assert twin.get_params() == params
    key = "seed" if "seed" in params else next(iter(params))
    new = 7 if key == "seed" else params[key]
    assert est.set_params(**{key: new}) is est and est.get_params()[key] == new
    with pytest.raises(ValueError, match="unknown parameter 'bogus'"):
        est.set_params(bogus=1)
    done = fitted(name)
    assert type(done)(**done.get_params()).get_params() == done.get_params()


@pytest.mark.parametrize("name", ["PCA", "KMeans", "SparseAutoencoder", "CCS"])
def test_old_n_threads_keyword_still_works_with_a_deprecation_warning(name):
    make, fit, _ = ESTIMATORS[name]
    X, y = data()
    est = make().set_params(n_threads=1)
    with pytest.warns(DeprecationWarning, match="renamed threads"), warnings.catch_warnings():
        warnings.simplefilter("ignore", SAEFitWarning)
        fit(est, X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        warnings.simplefilter("ignore", SAEFitWarning)
        fit(make(), X, y)  # the new name: no warning


def test_contrast_baselines_takes_threads_and_the_old_name():
    d = make_contrast_pairs(n=40, d=6)
    kw = dict(ccs_params={"n_epochs": 5, "n_restarts": 2}, n_random=2)
    with pytest.warns(DeprecationWarning, match="renamed threads"):
        old = contrast_baselines(d["x_pos"], d["x_neg"], d["truth"], n_threads=1, **kw)
    assert contrast_baselines(d["x_pos"], d["x_neg"], d["truth"], threads=1, **kw) == old


def test_init_stores_arguments_and_fit_checks_them():
    probe = LogisticProbe(C=-1.0, kind="ordinal")
    assert probe.get_params()["C"] == -1.0 and probe.kind == "ordinal"
    X, y = data()
    with pytest.raises(ValueError, match="kind='ordinal'"):
        probe.fit(X, y)
    with pytest.raises(ValueError, match="C must be > 0"):
        LogisticProbe(C=-1.0).fit(X, y)
    with pytest.raises(ValueError, match="alpha must be >= 0"):
        RidgeProbe(alpha=-1).fit(X, y.float())
    with pytest.raises(ValueError, match="kind="):
        MLPProbe(kind="ordinal").fit(X, y)
    with pytest.raises(ValueError, match="always freezes"):
        FrozenDecoderSAE(freeze_decoder=False).fit(X)


def test_shapes_rows_and_lengths_each_get_one_clear_message():
    X, y = data()
    with pytest.raises(ValueError, match=r"2-D \[n_rows, n_features\], got shape \(60,\); flatten"):
        LogisticProbe().fit(X[:, 0], y)
    with pytest.raises(ValueError, match=r"0 rows .*not empty"):
        RidgeProbe().fit(X[:0], y[:0].float())
    with pytest.raises(ValueError, match="0 features"):
        PCA().fit(X[:, :0])
    with pytest.raises(ValueError, match="X has 60 rows but y has 59"):
        LogisticProbe().fit(X, y[:-1])
    y_nan = y.float()
    y_nan[4] = float("nan")
    with pytest.raises(ValueError, match=r"y has NaN in 1 of 60 rows \(first at row 4\)"):  # not NaN coefficients
        RidgeProbe().fit(X, y_nan)
    with pytest.raises(ValueError, match="array of numbers"):
        check_array(np.array([["a", "b"]]))
    assert check_targets(np.arange(3), 3).dtype == torch.int64
    t, numpy = check_array(np.ones((2, 3)))
    assert numpy and t.dtype == torch.float32


def test_sae_warns_on_a_poor_fit_and_stays_silent_on_a_good_one():
    g = torch.Generator().manual_seed(1)
    codes = torch.rand(4000, 16, generator=g) * (torch.rand(4000, 16, generator=g) < 0.15)
    X = codes @ torch.randn(16, 12, generator=g)  # sparse sums of 16 directions: an SAE's home ground
    kw = dict(n_samples=40_000, batch_size=256, progress=False, seed=0)
    # measured: explained_variance -0.08 (an L1 penalty 30000x too strong), no dead latents
    with pytest.warns(SAEFitWarning, match=r"explained_variance is -?0\.\d+ on the first 1,024 training rows "
                      r"\(limit 0\.5\)\. Knobs to turn: lower l1_coefficient \(now 30\)") as w:
        weak = SparseAutoencoder(d_sae=32, l1_coefficient=30.0, **kw).fit(X)
    assert len(w) == 1 and weak.fit_metrics_["explained_variance"] < 0.5
    # measured: 61% of 64 latents dead on rank-1 data (explained_variance 0.99): far too many latents
    with pytest.warns(SAEFitWarning, match=r"\d+\.\d% of the 64 latents are dead \(silent for the last 5,120") as w:
        dead = SparseAutoencoder(d_sae=64, l1_coefficient=0.3, **kw).fit(X[:, :1] @ torch.ones(1, 12))
    assert len(w) == 1 and dead.fit_metrics_["dead_latents"] > 0.5 and "explained_variance is" not in str(w[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SAEFitWarning)
        good = SparseAutoencoder(d_sae=32, l1_coefficient=1.0, **kw).fit(X)
    # measured: explained_variance 0.84, L0 8.2 of 12 dimensions (l1 1e-3: L0 14.2, a dense code, warns)
    assert good.fit_metrics_["explained_variance"] > 0.75 and good.fit_metrics_["dead_latents"] < 0.5
    assert good.fit_metrics_["l0"] <= 12


def test_sae_warns_on_a_dense_code():
    """Explained variance and dead latents miss a dense code (docs/SAE_DEFAULTS.md): L0 above d_in warns."""
    g = torch.Generator().manual_seed(1)
    codes = torch.rand(4000, 16, generator=g) * (torch.rand(4000, 16, generator=g) < 0.15)
    X = codes @ torch.randn(16, 12, generator=g)
    kw = dict(n_samples=40_000, batch_size=256, progress=False, seed=0)
    with pytest.warns(SAEFitWarning, match=r"the code is dense: L0 \d+\.\d latents fire per row, more than the 12 "
                      r"input dimensions.*Knobs to turn: raise l1_coefficient \(now 1e-07\)") as w:
        dense = SparseAutoencoder(d_sae=48, l1_coefficient=1e-7, **kw).fit(X)
    assert len(w) == 1 and dense.fit_metrics_["l0"] > 12 and dense.fit_metrics_["explained_variance"] > 0.9
    assert "lower l1_coefficient" not in str(w[0].message)
    with pytest.warns(SAEFitWarning, match=r"the code is dense.*Knobs to turn: lower k \(now 20\)"):
        SparseAutoencoder(d_sae=48, architecture="topk", k=20, **kw).fit(X)
