"""The 04 probe exercises' references agree with toolkit.probes: standardisation with solvers.standardize, the
gradient-descent probe with LogisticProbe (L-BFGS on the same objective) within a tolerance."""

from __future__ import annotations

import pytest
import torch

from toolkit import probes
from toolkit.exercises.chapters import ch04_probing_by_hand as ch
from toolkit.probes import solvers


def test_standardize_matches_the_solvers():
    for _, (X_train, X_test) in ch._std_cases():
        mean, std = solvers.standardize(X_train[None])
        got_train, got_test = ch.standardize(X_train, X_test)
        torch.testing.assert_close(got_train, ((X_train - mean) / std)[0])
        torch.testing.assert_close(got_test, ((X_test - mean) / std)[0])


def test_gradient_descent_probe_matches_logistic_probe():
    for case in ch._fit_cases():
        _, (X, y, K), kwargs = (*case, {})[:3] if len(case) == 2 else case
        C = kwargs.get("C", 1.0)
        X = ch.standardize(X, X)[0]  # LogisticProbe standardises internally; on standardised X it is a no-op
        W, b = ch.fit_logistic(X, y, K, C)
        probe = probes.LogisticProbe(C=C, kind="multiclass", n_classes=K, tol=1e-6, max_iter=1000).fit(X, y)
        expected = torch.as_tensor(probe.predict_proba(X))
        assert float(((X @ W + b).softmax(-1) - expected).abs().max()) < 0.005


def test_held_out_accuracy_matches_logistic_probe_score():
    for _, args, kwargs in ch._acc_cases():
        X_train, y_train, X_test, y_test, K = args
        probe = probes.LogisticProbe(C=kwargs["C"], kind="multiclass", n_classes=K).fit(X_train, y_train)
        assert ch.held_out_accuracy(*args, **kwargs) == pytest.approx(probe.score(X_test, y_test), abs=0.015)
