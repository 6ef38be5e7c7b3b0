"""Probe estimators and solvers: agreement with scikit-learn, all label kinds, MLP > linear on XOR, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _tolerance import assert_close_to_scale
from sklearn.linear_model import LogisticRegression, Ridge

from toolkit import probes
from toolkit.probes import logistic, solvers
from toolkit.probes.lbfgs import History

# A batched fit runs the same L-BFGS iterations as a lone fit; only the batched matmuls could round differently
# (measured: identical logits on both kernel paths). 1e-5 of the logits' scale; a different line search or
# stopping step moves them by >= 1e-3.
BATCH_REL = 1e-5


def planted(n=3000, d=16, k=4, seed=0, noise=1.0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g) * torch.linspace(0.2, 3.0, d)  # badly scaled features
    W = torch.randn(d, k, generator=g)
    y = (X @ W + noise * torch.randn(n, k, generator=g)).argmax(1)
    return X, y


def test_batched_logistic_matches_sklearn():
    X, y = planted()
    Xs = (X - X.mean(0)) / X.std(0, unbiased=False)
    ours = probes.LogisticProbe(C=0.5).fit(X[:2000], y[:2000])
    ref = LogisticRegression(C=0.5, max_iter=2000, tol=1e-8).fit(Xs[:2000].numpy(), y[:2000].numpy())
    ref_acc = ref.score(Xs[2000:].numpy(), y[2000:].numpy())
    assert ours.score(X[2000:], y[2000:]) == pytest.approx(ref_acc, abs=0.01)
    # same solution: probabilities agree closely
    p_ours = ours.predict_proba(X[2000:])
    p_ref = torch.as_tensor(ref.predict_proba(Xs[2000:].numpy()), dtype=torch.float32)
    assert float((p_ours - p_ref).abs().max()) < 0.02


def test_many_problems_at_once_equal_one_at_a_time():
    Xs, ys = zip(*(planted(n=800, d=8, k=3, seed=s) for s in range(4)))
    X = torch.stack(Xs)
    m, s = solvers.standardize(X)
    X = (X - m) / s
    Y = torch.stack(ys)
    W, b = solvers.fit_logistic(X, Y, 3, C=1.0)
    for i in range(4):  # each problem keeps its own line search and stopping test: identical to a lone fit
        Wi, bi = solvers.fit_logistic(X[i:i + 1], Y[i:i + 1], 3, C=1.0)
        assert_close_to_scale(solvers.logits(X[i:i + 1], W[i:i + 1], b[i:i + 1]), solvers.logits(X[i:i + 1], Wi, bi),
                              BATCH_REL, "same iterations as a lone fit", f"problem {i}")
    # without preconditioning the optimum is the same (plain L-BFGS just needs more iterations to get there)
    W2, b2 = solvers.fit_logistic(X, Y, 3, C=1.0, tol=1e-4, precondition=False, max_iter=300)
    same = solvers.logits(X, W, b).argmax(-1) == solvers.logits(X, W2, b2).argmax(-1)
    assert float(same.float().mean()) > 0.99


def test_ridge_matches_sklearn():
    g = torch.Generator().manual_seed(1)
    X = torch.randn(500, 6, generator=g) * 3 + 1
    y = X @ torch.randn(6, 2, generator=g) + 0.1 * torch.randn(500, 2, generator=g)
    ours = probes.RidgeProbe(alpha=2.0).fit(X, y)
    Xs = (X - X.mean(0)) / X.std(0, unbiased=False)
    ref = Ridge(alpha=2.0).fit(Xs.numpy(), y.numpy())
    np.testing.assert_allclose(ours.predict(X).numpy(), ref.predict(Xs.numpy()), atol=1e-3)
    assert ours.score(X, y) == pytest.approx(ref.score(Xs.numpy(), y.numpy()), abs=1e-4)
    scalar = probes.RidgeProbe().fit(X, y[:, 0])
    assert scalar.predict(X).shape == (500,)


def test_binary_multilabel_and_numpy_io():
    g = torch.Generator().manual_seed(2)
    X = torch.randn(1200, 10, generator=g)
    yb = (X[:, 0] + 0.3 * X[:, 1] > 0).long()
    pb = probes.LogisticProbe().fit(X.numpy(), yb.numpy())
    assert pb.kind_ == "binary" and pb.predict_proba(X.numpy()).shape == (1200, 2)
    assert isinstance(pb.predict(X.numpy()), np.ndarray) and pb.score(X, yb) > 0.95
    Ym = torch.stack([X[:, 0] > 0, X[:, 3] < 0.5, X[:, 0] + X[:, 5] > 1], 1).long()
    pm = probes.LogisticProbe().fit(X, Ym)
    assert pm.kind_ == "multilabel" and pm.predict(X).shape == (1200, 3) and pm.score(X, Ym) > 0.95
    # coef_ / intercept_ are in the original coordinates: logits = X @ coef_.T + intercept_
    torch.testing.assert_close(pm.decision_function(X), X @ pm.coef_.T + pm.intercept_)


def test_mlp_probe_reads_what_a_linear_probe_cannot():
    g = torch.Generator().manual_seed(3)
    X = torch.randn(3000, 6, generator=g)
    y = ((X[:, 0] > 0) ^ (X[:, 1] > 0)).long()  # XOR: no linear readout
    lin = probes.LogisticProbe().fit(X[:2000], y[:2000]).score(X[2000:], y[2000:])
    mlp = probes.MLPProbe(hidden=32, seed=0).fit(X[:2000], y[:2000]).score(X[2000:], y[2000:])
    assert lin < 0.6 and mlp > 0.9, (lin, mlp)
    reg = probes.MLPProbe(kind="regression").fit(X[:2000], X[:2000, 0] * X[:2000, 1])
    assert reg.score(X[2000:], X[2000:, 0] * X[2000:, 1]) > 0.7


def test_estimator_errors_name_the_fix():
    with pytest.raises(RuntimeError, match="fit"):
        probes.LogisticProbe().predict(torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"\[n_rows, n_features\]"):
        probes.LogisticProbe().fit(torch.zeros(4, 2, 3), torch.zeros(4))
    bad = probes.LogisticProbe(kind="ordinal")  # scikit-learn style: __init__ stores, fit checks
    assert bad.kind == "ordinal"
    with pytest.raises(ValueError, match="kind"):
        bad.fit(torch.randn(10, 3), torch.arange(10) % 2)
    p = probes.LogisticProbe().fit(torch.randn(50, 3), torch.arange(50) % 3)
    with pytest.raises(ValueError, match="fitted on 3"):
        p.predict(torch.zeros(2, 4))


def test_buckets_of_different_row_counts_equal_one_at_a_time():
    # problems of 900 / 700 / 300 / 120 rows, padded to 900 with a row mask: re-bucketed by row count inside the
    # solver, each still converges to its own optimum
    counts = [900, 120, 700, 300]
    Xs, ys = zip(*(planted(n=900, d=8, k=3, seed=s) for s in range(4)))
    X, Y = torch.stack(Xs), torch.stack(ys)
    w = (torch.arange(900)[None] < torch.tensor(counts)[:, None]).float()
    m, s = solvers.standardize(X, w)
    X = (X - m) / s * w[..., None]
    assert logistic.bucket_rows(counts) == [[0], [2], [3], [1]]
    W, b = solvers.fit_logistic(X, Y, 3, C=1.0, weights=w)
    for i, n in enumerate(counts):
        Wi, bi = solvers.fit_logistic(X[i:i + 1, :n], Y[i:i + 1, :n], 3, C=1.0)
        assert_close_to_scale(solvers.logits(X[i:i + 1, :n], W[i:i + 1], b[i:i + 1]),
                              solvers.logits(X[i:i + 1, :n], Wi, bi), BATCH_REL, "same iterations as a lone fit",
                              f"softmax problem {i}")
    # sigmoid outputs (binary / multilabel) take the same path
    Yb = (Y[..., None] == torch.arange(2)).float()
    Wb, bb = solvers.fit_logistic(X, Yb, 2, C=1.0, weights=w)
    for i, n in enumerate(counts):
        Wi, bi = solvers.fit_logistic(X[i:i + 1, :n], Yb[i:i + 1, :n], 2, C=1.0)
        assert_close_to_scale(solvers.logits(X[i:i + 1, :n], Wb[i:i + 1], bb[i:i + 1]),
                              solvers.logits(X[i:i + 1, :n], Wi, bi), BATCH_REL, "same iterations as a lone fit",
                              f"sigmoid problem {i}")


def test_compact_lbfgs_direction_equals_the_two_loop_recursion():
    g = torch.Generator().manual_seed(5)
    A, p, m = 3, 12, 4
    memory = History(A, p, m, gamma0=2.0, dtype=torch.float64)
    pairs = []
    for step in range(6):  # more pairs than slots: the ring buffer wraps; problem 1 skips one update
        s = torch.randn(A, p, generator=g, dtype=torch.float64)
        y = s + 0.3 * torch.randn(A, p, generator=g, dtype=torch.float64)  # s . y > 0
        good = torch.tensor([True, step != 4, True])
        memory.push(s, y, good)
        pairs.append((s, y, good))
    grad = torch.randn(A, p, generator=g, dtype=torch.float64)
    direction = memory.direction(grad)
    for i in range(A):
        kept = [(s[i], y[i]) for s, y, good in pairs[-m:] if good[i]]
        q, alphas = grad[i].clone(), []
        for s, y in reversed(kept):
            a = (s @ q) / (s @ y)
            q -= a * y
            alphas.append(a)
        s_new, y_new = pairs[-1][0][i], pairs[-1][1][i]
        r = q * (s_new @ y_new) / (y_new @ y_new)
        for (s, y), a in zip(kept, reversed(alphas)):
            r += s * (a - (y @ r) / (s @ y))
        torch.testing.assert_close(direction[i], -r)
